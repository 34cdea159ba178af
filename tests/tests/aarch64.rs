//! aarch64 on this x86_64 machine: the no_std crates the wrapper is made of
//! (byte routines in aarch64 assembly, the cache reader and journal, the
//! stored stat's translation from aarch64's kernel layout, the wrapper's
//! pure logic) pass their own tests built for aarch64 and run under
//! qemu-aarch64-static.

use dlfm_tests::aarch64;

#[test]
fn the_wrappers_crates_pass_their_tests_on_aarch64() {
    let out = aarch64::cargo("test")
        .args([
            "-p",
            "dlfm-bytes",
            "-p",
            "dlfm-cache",
            "-p",
            "dlfm-wrap-logic",
        ])
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
