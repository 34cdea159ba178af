//! Building and running for aarch64 on this x86_64 machine: Rust's
//! `aarch64-unknown-linux-gnu` target (`rustup target add`), Debian's cross
//! toolchain (`gcc-aarch64-linux-gnu`, which brings the arm64 libc6 in
//! `/usr/aarch64-linux-gnu`) and `qemu-aarch64-static` to run the results.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use crate::artifacts::{target_dir, workspace_root};

/// Rust's name for the target.
pub const TARGET: &str = "aarch64-unknown-linux-gnu";
/// The cross C compiler.
pub const CC: &str = "aarch64-linux-gnu-gcc";
/// Where the cross toolchain keeps arm64's libc (qemu's `-L` prefix).
pub const SYSROOT: &str = "/usr/aarch64-linux-gnu";

/// Environment that makes cargo link with the cross compiler and run test
/// binaries under qemu.
pub fn cargo_env(cmd: &mut Command) -> &mut Command {
    cmd.env("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER", CC)
        .env(
            "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER",
            format!("qemu-aarch64-static -L {SYSROOT}"),
        )
}

/// `cargo` with the arguments of a release build for aarch64.
pub fn cargo(subcommand: &str) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root()).args([
        subcommand,
        "--locked",
        "--release",
        "--target",
        TARGET,
    ]);
    cargo_env(&mut cmd);
    cmd
}

/// The wrapper built for aarch64 (`libdlfm_wrap.a`), once per test process.
pub fn wrapper() -> &'static PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = cargo("build")
            .args(["--quiet", "-p", "dlfm-wrap"])
            .output()
            .expect("run cargo");
        assert!(
            out.status.success(),
            "building the aarch64 wrapper failed (rustup target add {TARGET}?):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let a = target_dir().join(TARGET).join("release/libdlfm_wrap.a");
        assert!(a.exists(), "{} missing after the build", a.display());
        a
    })
}
