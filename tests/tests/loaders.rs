//! The loader matrix: glibc's loaders from Debian's archive (11, 12, 13 and
//! unstable), each patched by dlpatch (linked and `--embed`) and taken
//! through a pilot, `dlfm.pre read-cache` and replay of the generated
//! 20-library program with a dlopen: the same output, nothing on recorded
//! paths and no ENOENT probe in the replay. aarch64's loaders are refused in
//! one line until aarch64 is done. Downloads are kept under target/.

use std::process::Command;

use dlfm_tests::debian::{glibc, Glibc, SUITES};
use dlfm_tests::strace::{looked_up, touches};
use dlfm_tests::{artifacts, Scenario};
use dlfm_workload::Spec;

fn records_and_replays(g: &Glibc, embed: bool) {
    let what = format!(
        "{} ({})",
        g.describe(),
        if embed { "--embed" } else { "linked" }
    );
    let s = Scenario::on_glibc(Spec::small(), g, embed);
    let base = s.traced(s.cmd(None), "base.strace");
    let libc = g.libdir().join("libc.so.6");
    assert!(
        base.iter()
            .any(|c| c.name == "openat" && c.path.as_deref() == libc.to_str()),
        "{what}: the program did not load {}",
        libc.display()
    );
    let recorded = looked_up(&base);
    s.pilot_and_pack();
    let bad = touches(&s.replay_on_shared("replay.strace"), &recorded);
    assert!(
        bad.is_empty(),
        "{what}: the read-cache run reached the file system:\n{}",
        bad.join("\n")
    );
    let traces = s.trace_text();
    for lib in s.w.dlopen_libs.iter().chain([&libc]) {
        let line = format!("openat served {}", lib.display());
        assert!(traces.contains(&line), "{what}: no `{line}` in:\n{traces}");
    }
}

fn suite(name: &str) {
    let g = glibc(name, "amd64");
    records_and_replays(&g, false);
    records_and_replays(&g, true);
}

#[test]
fn debian_11_glibc_2_31() {
    suite("bullseye");
}

#[test]
fn debian_12_glibc_2_36() {
    suite("bookworm");
}

#[test]
fn debian_13_glibc_2_41() {
    suite("trixie");
}

#[test]
fn debian_unstable() {
    suite("sid");
}

#[test]
fn aarch64_loaders_are_refused_in_one_line() {
    let art = artifacts();
    for (suite, _) in SUITES {
        let g = glibc(suite, "arm64");
        let out = Command::new(&art.dlpatch)
            .args(["--embed", "--dry-run", "--ldso"])
            .arg(g.ldso())
            .output()
            .expect("run dlpatch");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}: {err}", g.describe());
        assert_eq!(err.lines().count(), 1, "{}: {err}", g.describe());
        assert!(
            err.contains("aarch64") && err.contains("x86_64 only"),
            "{}: {err}",
            g.describe()
        );
    }
}
