//! aarch64 on this x86_64 machine: the no_std crates the wrapper is made of
//! (byte routines in aarch64 assembly, the cache reader and journal, the
//! stored stat's translation from aarch64's kernel layout, the wrapper's
//! pure logic) pass their own tests built for aarch64 and run under
//! qemu-aarch64-static; and the generated 20-library program, built with
//! Debian's cross toolchain, records and replays through its patched loader
//! under qemu, with the wrapper linked and embedded.

use dlfm_tests::aarch64::{self, records_and_replays, Loader};

#[test]
fn the_wrappers_crates_pass_their_tests_on_aarch64() {
    let out = aarch64::cargo("test")
        .args(["-p", "dlfm-bytes", "-p", "dlfm-cache", "-p", "dlfm-runtime"])
        .output()
        .expect("run cargo");
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "aarch64 tests failed:\n{text}\n{err}");
    let passed: usize = text
        .lines()
        .filter_map(|l| l.strip_prefix("test result: ok. "))
        .filter_map(|l| l.split(' ').next()?.parse::<usize>().ok())
        .sum();
    assert!(passed >= 60, "only {passed} tests ran under qemu:\n{text}");
    // An aarch64 binary runs on this x86_64 machine only under qemu.
    assert!(
        err.contains(&format!("{}/release/deps", aarch64::TARGET)),
        "the tests that ran were not aarch64 builds:\n{err}"
    );
}

/// aarch64 end to end on the cross toolchain's glibc (Debian 12's 2.36):
/// the 20-library program with a dlopen, its loader patched by
/// dlpatch, run under qemu-aarch64-static: same output in the pilot and the
/// replay, and the replay looks up nothing the pilot recorded (no ENOENT).
/// (Debian's other arm64 loaders: `--test loaders`.)
#[test]
fn a_program_records_and_replays_on_aarch64_linked() {
    records_and_replays(&Loader::cross_toolchain(), false);
}

/// The same with the wrapper embedded in the loader (no relinking).
#[test]
fn a_program_records_and_replays_on_aarch64_embedded() {
    records_and_replays(&Loader::cross_toolchain(), true);
}

/// FMCaching on aarch64: Debian 12's arm64 python3 imports a generated
/// package tree, extension modules built with the cross compiler and its
/// standard library (in threads and a forked child) from the cache, under
/// qemu-aarch64-static; qemu's `-strace` shows no call on the tree and the
/// modules and no ENOENT on the recorded trees (see
/// `aarch64::python_records_and_replays`).
#[test]
fn python_imports_from_the_cache_on_aarch64() {
    let (base, replay) = aarch64::python_records_and_replays();
    eprintln!(
        "calls on the recorded trees: {} without dlfm ({} ENOENT), {} in the replay ({} ENOENT)",
        base.calls.len(),
        base.enoent,
        replay.calls.len(),
        replay.enoent
    );
}

/// Every stat call an aarch64 program can make (stat, lstat, fstatat,
/// fstat, statx by path and by descriptor, glibc 2.17's `__xstat`) is
/// answered from the cache with every field as the kernel gave it (see
/// `aarch64::stat_calls_are_served`).
#[test]
fn stat_calls_are_served_on_aarch64() {
    let base = aarch64::stat_calls_are_served();
    eprintln!("calls naming the paths: {base} without dlfm, 0 in the replay");
}
