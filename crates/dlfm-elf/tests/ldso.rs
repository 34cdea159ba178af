//! The site table and the patcher against this machine's real ld.so.

use dlfm_elf::{check_program, patch_ldso, PatchError, SITES};

const LDSO: &str = "/lib64/ld-linux-x86-64.so.2";

fn ldso() -> Vec<u8> {
    std::fs::read(LDSO).expect("the system ld.so")
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

#[test]
fn every_pattern_occurs_exactly_once_in_the_real_ldso() {
    let bytes = ldso();
    for site in SITES {
        let n = bytes
            .windows(site.pattern.len())
            .filter(|w| *w == site.pattern)
            .count();
        assert_eq!(n, 1, "{} pattern occurs {n} times", site.name);
        assert!(
            site.window.len() >= 5,
            "{}: a jmp rel32 needs 5 bytes",
            site.name
        );
        assert!(
            site.syscall_at().is_some(),
            "{}: window without syscall",
            site.name
        );
    }
}

#[test]
fn patched_copy_has_two_new_segments_and_jumps_to_its_trampolines() {
    let bytes = ldso();
    let p = patch_ldso(&bytes).expect("patch");
    assert_eq!(p.sites.len(), SITES.len());
    let out = &p.bytes;
    let phoff = u64_at(out, 32);
    let phnum = u16::from_le_bytes([out[56], out[57]]) as usize;
    let orig_phnum = u16::from_le_bytes([bytes[56], bytes[57]]) as usize;
    assert_eq!(phnum, orig_phnum + 2);
    let loads: Vec<(u32, u64, u64, u64)> = (0..phnum)
        .map(|i| {
            let h = &out[phoff as usize + i * 56..];
            (
                u32::from_le_bytes(h[0..4].try_into().unwrap()),
                u64_at(h, 8),
                u64_at(h, 16),
                u64_at(h, 32),
            )
        })
        .filter(|h| h.0 == 1)
        .collect();
    assert!(
        loads.windows(2).all(|w| w[0].2 < w[1].2),
        "PT_LOADs in ascending order: {loads:?}"
    );
    let rx = loads[loads.len() - 2];
    assert_eq!(rx.1, rx.2, "the R+X segment has offset == vaddr");
    assert!(
        phoff >= rx.1 && phoff < rx.1 + rx.3,
        "e_phoff lies in the new R+X segment"
    );
    for s in &p.sites {
        let at = s.window_offset as usize;
        assert_eq!(out[at], 0xe9, "{}: starts with jmp rel32", s.name);
        let rel = i32::from_le_bytes(out[at + 1..at + 5].try_into().unwrap());
        assert_eq!(
            s.window_vaddr as i64 + 5 + rel as i64,
            s.trampoline_vaddr as i64,
            "{}",
            s.name
        );
        assert!(out[at + 5..at + s.window_len as usize]
            .iter()
            .all(|&b| b == 0xcc));
    }
    // Everything else is untouched.
    let windows: Vec<std::ops::Range<usize>> = p
        .sites
        .iter()
        .map(|s| s.window_offset as usize..(s.window_offset + s.window_len) as usize)
        .collect();
    let changed = (64..bytes.len())
        .filter(|i| {
            !(32..40).contains(i) && bytes[*i] != out[*i] && !windows.iter().any(|w| w.contains(i))
        })
        .count();
    assert_eq!(changed, 0, "only e_phoff, e_phnum and the windows change");
}

#[test]
fn an_unknown_ldso_is_refused_naming_the_site() {
    let mut bytes = ldso();
    let mmap = SITES.iter().find(|s| s.name == "mmap").unwrap();
    let at = bytes
        .windows(mmap.pattern.len())
        .position(|w| w == mmap.pattern)
        .unwrap();
    bytes[at + 3] ^= 0xff;
    match patch_ldso(&bytes) {
        Err(e @ PatchError::UnknownLdso { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("the mmap site") && msg.contains("build-id"),
                "{msg}"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let true_bin = std::fs::read("/bin/true").unwrap();
    assert!(matches!(
        patch_ldso(&true_bin),
        Err(PatchError::UnknownLdso { .. })
    ));
    assert!(matches!(
        patch_ldso(b"#!/bin/sh\n"),
        Err(PatchError::NotElf { .. })
    ));
}

#[test]
fn a_patched_copy_is_not_patched_twice() {
    let p = patch_ldso(&ldso()).unwrap();
    assert_eq!(
        patch_ldso(&p.bytes).unwrap_err(),
        PatchError::AlreadyPatched
    );
}

#[test]
fn a_program_without_the_wrapper_is_refused() {
    let true_bin = std::fs::read("/bin/true").unwrap();
    let e = check_program(&true_bin).unwrap_err();
    assert!(matches!(e, PatchError::NoWrapper { .. }), "{e:?}");
    assert!(e.to_string().contains("libdlfm_wrap.a"));
}
