//! The loader matrix: glibc's loaders from Debian's archive (11, 12, 13 and
//! unstable), each patched by dlpatch (linked and `--embed`) and taken
//! through a pilot, `dlfm.pre read-cache` and replay of the generated
//! 20-library program with a dlopen: the same output, nothing on recorded
//! paths and no ENOENT probe in the replay. The arm64 loaders the same way
//! under qemu-aarch64-static with a small program (`dlfm_tests::aarch64`),
//! and their sites checked against objdump. Downloads are kept under
//! target/.

use std::process::Command;

use dlfm_elf::{patch_ldso, PatchError};
use dlfm_tests::aarch64;
use dlfm_tests::debian::{self, glibc, Glibc, SUITES};
use dlfm_tests::strace::{self, looked_up, touches};
use dlfm_tests::{artifacts, old_loader, Scenario};
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
    // The patched loader passes an `open` on as `openat` too.
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

/// glibc before 2.26 (RHEL 7's 2.17) opens libraries with `open` and has an
/// `openat` only in opendir: its loader is patched for `open` too, and
/// served. bookworm's loader made so (`dlfm_tests::old_loader`): unpatched,
/// it opens libc with `open` and never with `openat`.
#[test]
fn a_loader_that_opens_libraries_with_open_is_served() {
    let g = glibc("bookworm", "amd64");
    let dir = tempfile::tempdir().unwrap();
    let old = old_loader::glibc_opening_with_open(&g, dir.path());
    let mut plain = Command::new(old.ldso());
    plain
        .arg("--library-path")
        .arg(old.libdir())
        .arg("/bin/true");
    let log = dir.path().join("plain.strace");
    let out = strace::run_traced(&plain, &log);
    assert!(out.status.success(), "{out:?}");
    let calls = strace::parse(&log);
    let libc = old.libdir().join("libc.so.6");
    let opened_with = |name: &str| {
        calls
            .iter()
            .any(|c| c.name == name && c.path.as_deref() == libc.to_str())
    };
    assert!(opened_with("open") && !opened_with("openat"), "{calls:#?}");
    records_and_replays(&old, false);
    records_and_replays(&old, true);
}

/// The finder on such a loader: the rewritten call is a site of `open`, the
/// loader's remaining `openat`s are sites too, and a loader with neither
/// is refused in one line.
#[test]
fn the_finder_patches_open_and_refuses_a_loader_with_no_open_call() {
    let g = glibc("bookworm", "amd64");
    let original = std::fs::read(g.ldso()).unwrap();
    let (bytes, syscall_at) = old_loader::opening_with_open(&original).expect("bookworm's call");
    let count =
        |p: &dlfm_elf::Patched, name: &str| p.sites.iter().filter(|s| s.name == name).count();
    let before = patch_ldso(&original).unwrap();
    let after = patch_ldso(&bytes).unwrap();
    assert_eq!(count(&before, "open"), 0);
    assert_eq!(count(&after, "open"), 1);
    assert_eq!(count(&after, "openat"), count(&before, "openat") - 1);
    let open = after.sites.iter().find(|s| s.name == "open").unwrap();
    let window = open.window_offset..open.window_offset + open.window_len;
    assert!(window.contains(&(syscall_at as u64)), "{open:?}");
    // No open and no openat left (each made a getpid): refused.
    let mut none = bytes.clone();
    let mut made = 0;
    for (from, to) in [
        ([0xb8, 0x02, 0, 0, 0], [0xb8, 0x27, 0, 0, 0]),
        ([0xb8, 0x01, 0x01, 0, 0], [0xb8, 0x27, 0, 0, 0]),
    ] {
        let mut at = 0;
        while let Some(i) = none[at..].windows(5).position(|w| w == from) {
            none[at + i..at + i + 5].copy_from_slice(&to);
            at += i + 5;
            made += 1;
        }
    }
    assert!(made >= 3, "{made} calls rewritten");
    match patch_ldso(&none) {
        Err(e @ PatchError::UnknownLdso { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("no openat or open call was found") && !msg.contains('\n'),
                "{msg}"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// The suite's arm64 loader, with a small program built against bullseye's
/// arm64 glibc, under qemu-aarch64-static (`dlfm_tests::aarch64`).
fn suite_arm64(name: &str) {
    let g = glibc(name, "arm64");
    let loader = aarch64::Loader {
        ldso: g.ldso(),
        libc_dir: g.libdir(),
        sysroot: Some(debian::sysroot("arm64")),
        what: g.describe(),
    };
    aarch64::records_and_replays(&loader, false);
    aarch64::records_and_replays(&loader, true);
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
fn debian_11_glibc_2_31_arm64() {
    suite_arm64("bullseye");
}

#[test]
fn debian_12_glibc_2_36_arm64() {
    suite_arm64("bookworm");
}

#[test]
fn debian_13_glibc_2_41_arm64() {
    suite_arm64("trixie");
}

#[test]
fn debian_unstable_arm64() {
    suite_arm64("sid");
}

/// A system call's address and number.
type Numbered = (u64, u32);

/// What an independent reading (binutils' aarch64 objdump) of `ldso` shows:
/// each `svc #0` that is no branch target and comes right after a
/// `mov x8, #N` (or w8) with N a routed call, as (address, N); and, for
/// every `svc`, the N of the last `mov x8/w8, #N` before it, if the last
/// instruction naming x8/w8 first is one.
fn svc_numbers_by_objdump(ldso: &std::path::Path) -> (Vec<Numbered>, Vec<Numbered>) {
    let out = Command::new("aarch64-linux-gnu-objdump")
        .args(["-d", "--no-show-raw-insn"])
        .arg(ldso)
        .output()
        .expect("aarch64-linux-gnu-objdump (binutils-aarch64-linux-gnu)");
    assert!(out.status.success(), "objdump failed");
    let text = String::from_utf8(out.stdout).unwrap();
    let insns: Vec<(u64, String)> = text
        .lines()
        .filter_map(|l| {
            let (addr, insn) = l.trim_start().split_once(":\t")?;
            let insn = insn.split("//").next()?.trim().replace('\t', " ");
            Some((u64::from_str_radix(addr, 16).ok()?, insn))
        })
        .collect();
    let targets: std::collections::BTreeSet<u64> = insns
        .iter()
        .filter(|(_, i)| {
            ["b", "bl", "b.", "cbz", "cbnz", "tbz", "tbnz"]
                .iter()
                .any(|m| {
                    i.split(' ').next().is_some_and(|first| {
                        first == *m || (m.ends_with('.') && first.starts_with(m))
                    })
                })
        })
        .filter_map(|(_, i)| {
            let word = i
                .split([' ', ','])
                .filter(|w| !w.is_empty())
                .find(|w| w.len() > 2 && w.chars().all(|c| c.is_ascii_hexdigit()))?;
            u64::from_str_radix(word, 16).ok()
        })
        .collect();
    let mov_x8 = |i: &str| -> Option<u32> {
        let imm = i
            .strip_prefix("mov x8, #0x")
            .or_else(|| i.strip_prefix("mov w8, #0x"))?;
        u32::from_str_radix(imm.trim(), 16).ok()
    };
    let routed = |n: u32| dlfm_elf::CALLS.iter().any(|c| c.aarch64 == Some(n));
    let (mut adjacent, mut nearest) = (Vec::new(), Vec::new());
    for (k, (addr, insn)) in insns.iter().enumerate() {
        if insn != "svc #0x0" || k == 0 {
            continue;
        }
        if let Some(n) = mov_x8(&insns[k - 1].1).filter(|&n| routed(n)) {
            if !targets.contains(addr) {
                adjacent.push((*addr, n));
            }
        }
        let last = insns[..k].iter().rev().take(32).find(|(_, i)| {
            let mut ops = i.splitn(2, ' ');
            let _ = ops.next();
            ops.next()
                .is_some_and(|o| o.starts_with("x8,") || o.starts_with("w8,"))
        });
        if let Some(n) = last.and_then(|(_, i)| mov_x8(i)) {
            nearest.push((*addr, n));
        }
    }
    (adjacent, nearest)
}

/// aarch64: the finder's sites in each loader are the ones an independent
/// reading (objdump) shows, and `dlpatch --dry-run` lists them.
#[test]
fn aarch64_sites_agree_with_objdump() {
    let art = artifacts();
    for (suite, _) in SUITES {
        let g = glibc(suite, "arm64");
        let what = g.describe();
        let patched = dlfm_elf::patch_ldso(&std::fs::read(g.ldso()).unwrap())
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(patched.arch, dlfm_elf::Arch::Aarch64);
        let sites = &patched.sites;
        let (adjacent, nearest) = svc_numbers_by_objdump(&g.ldso());
        assert!(adjacent.len() >= 8, "{what}: objdump shows {adjacent:?}");
        for (addr, n) in &adjacent {
            assert!(
                sites.iter().any(|s| s.window_vaddr == *addr && s.nr == *n),
                "{what}: objdump shows call {n} at {addr:#x}, the finder did not patch it"
            );
        }
        for site in sites {
            assert!(
                nearest.contains(&(site.window_vaddr, site.nr)),
                "{what}: the finder says {} at {:#x}; objdump does not show that number there",
                site.name,
                site.window_vaddr
            );
        }
        for name in ["openat", "read", "mmap", "close"] {
            assert!(
                sites.iter().any(|s| s.name == name),
                "{what}: no {name} site"
            );
        }

        let out = Command::new(&art.dlpatch)
            .args(["--dry-run", "--embed", "--wrapper"])
            .arg(aarch64::wrapper())
            .arg("--ldso")
            .arg(g.ldso())
            .output()
            .expect("run dlpatch");
        let listed = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for site in sites {
            assert!(
                listed.contains(&format!("{:#x}", site.window_vaddr)),
                "{what}: --dry-run does not list {:#x}:\n{listed}",
                site.window_vaddr
            );
        }
    }
}

/// Mixing machines is refused in one line: an x86_64 wrapper embedded in an
/// aarch64 loader, and an aarch64 program with the x86_64 system loader.
#[test]
fn mixing_machines_is_refused_in_one_line() {
    let art = artifacts();
    let g = glibc("bookworm", "arm64");
    refused_in_one_line(
        Command::new(&art.dlpatch)
            .args(["--dry-run", "--embed", "--wrapper"])
            .arg(&art.wrapper)
            .arg("--ldso")
            .arg(g.ldso()),
        "built for x86_64, the ld.so is aarch64",
    );

    let dir = tempfile::tempdir().unwrap();
    let (src, prog) = (dir.path().join("p.c"), dir.path().join("p"));
    std::fs::write(&src, "int main(void) { return 0; }\n").unwrap();
    let built = Command::new(aarch64::CC)
        .arg("-o")
        .arg(&prog)
        .arg(&src)
        .arg(aarch64::wrapper())
        .status()
        .expect("aarch64-linux-gnu-gcc");
    assert!(built.success());
    refused_in_one_line(
        Command::new(&art.dlpatch)
            .arg("--dry-run")
            .arg(&prog)
            .args(["--ldso", "/lib64/ld-linux-x86-64.so.2"]),
        "the program is aarch64 but the ld.so is x86_64",
    );
}

/// Runs `cmd` and checks it refused with exit 2 and one line holding `why`.
fn refused_in_one_line(cmd: &mut Command, why: &str) {
    let out = cmd.output().expect("run dlpatch");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(why), "{err}");
}
