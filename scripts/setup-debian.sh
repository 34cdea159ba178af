#!/usr/bin/env bash
# Installs what dlfm needs on a fresh Debian 12 machine (run as root; safe
# to run again: only what is missing is installed). One script for the
# README's set-up commands and .ci/run, so that they cannot drift.
#
#   scripts/setup-debian.sh demo   to build dlfm and run demo/run.sh
#   scripts/setup-debian.sh test   also everything the test suite runs
#                                  (cargo test --locked --release --workspace)
#   scripts/setup-debian.sh fuzz   also the nightly toolchain and cargo-fuzz
#                                  (fuzz/run)
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-test}"
case "$mode" in
    demo | test | fuzz) ;;
    *)
        echo "setup-debian.sh: say what to set up: demo, test or fuzz (got '$mode')" >&2
        exit 2
        ;;
esac
if [ "$(id -u)" != 0 ]; then
    echo "setup-debian.sh: run as root (it installs Debian packages)" >&2
    exit 2
fi

# The demo: a C toolchain, strace (its counts), python3 and Open MPI (the
# FMCaching interposer's build and the demo's programs), fuse3 (dlfm-pfs),
# procps (kill, ps) and certificates for crates.io and PyPI.
packages=(build-essential ca-certificates strace gdb procps python3 python3-dev fuse3
    openmpi-bin libopenmpi-dev fonts-dejavu-core)
if [ "$mode" != demo ]; then
    # The tests: gdb for every architecture, the aarch64 cross toolchain and
    # qemu-user (the aarch64 wrapper), pip (numpy, scipy, pandas, matplotlib for the
    # FMCaching tests), Slurm and munge (a real cluster in network
    # namespaces: iproute2 for ip, util-linux for nsenter and unshare), Lmod
    # (dlfm's modulefile after `make install`), GNU time (the benchmarks' peak
    # memory per process).
    packages+=(gdb-multiarch binutils gcc-aarch64-linux-gnu qemu-user-static python3-pip
        slurm-wlm munge util-linux iproute2 lmod time)
fi
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup-debian.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q "${missing[@]}"
fi

# Rust from rustup (Debian 12's rustc is older than dlfm needs); this
# script does not download toolchains itself.
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1 || ! command -v rustup >/dev/null 2>&1; then
    echo "setup-debian.sh: dlfm builds with Rust from rustup (rust-version 1.87 or newer), which is not on this machine: install it (https://rustup.rs), then run this again" >&2
    exit 2
fi
[ "$mode" = demo ] && exit 0

# The aarch64 wrapper is cross-built and its crates tested under qemu.
rustup target list --installed | grep -q '^aarch64-unknown-linux-gnu$' ||
    rustup target add aarch64-unknown-linux-gnu

# numpy, scipy, pandas and matplotlib from PyPI for FMCaching's scientific-stack test
# (tests/tests/fmcache.rs, tests/src/pydeps.rs), kept under target/pydeps.
pydeps="numpy scipy pandas matplotlib"
if ! PYTHONPATH=target/pydeps /usr/bin/python3 -c "import ${pydeps// /, }" 2>/dev/null; then
    # shellcheck disable=SC2086
    /usr/bin/python3 -m pip install -q --disable-pip-version-check --break-system-packages \
        --target target/pydeps $pydeps
fi
[ "$mode" = test ] && exit 0

# Coverage-guided fuzzing (fuzz/run) needs nightly and cargo-fuzz.
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
cargo +nightly fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked
