//! The site finder and the patcher against this machine's real ld.so.

use dlfm_elf::{check_program, patch_ldso, PatchError, CALLS};

const LDSO: &str = "/lib64/ld-linux-x86-64.so.2";

fn ldso() -> Vec<u8> {
    std::fs::read(LDSO).expect("the system ld.so")
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// `syscall`s whose number an independent reading (objdump's disassembly)
/// shows as one of `CALLS`: the last write of `%eax` before each, with no
/// jump, call or return in between.
fn file_calls_by_objdump() -> Vec<(u64, u32)> {
    let out = std::process::Command::new("objdump")
        .args(["-d", "--no-show-raw-insn", LDSO])
        .output()
        .expect("objdump (binutils)");
    let text = String::from_utf8(out.stdout).unwrap();
    let insns: Vec<(u64, &str)> = text
        .lines()
        .filter_map(|l| {
            let (addr, insn) = l.trim_start().split_once(":\t")?;
            Some((u64::from_str_radix(addr, 16).ok()?, insn.trim()))
        })
        .collect();
    let mut found = Vec::new();
    for (i, (addr, insn)) in insns.iter().enumerate() {
        if *insn != "syscall" {
            continue;
        }
        for (_, prev) in insns[..i].iter().rev().take(32) {
            let ends_run = ["j", "call", "ret"].iter().any(|p| prev.starts_with(p));
            let nr = if let Some(imm) = prev
                .strip_prefix("mov    $0x")
                .and_then(|r| r.strip_suffix(",%eax"))
            {
                u32::from_str_radix(imm, 16).ok()
            } else if *prev == "xor    %eax,%eax" {
                Some(0)
            } else if ends_run || prev.ends_with("%eax") || prev.ends_with("%rax") {
                break;
            } else {
                continue;
            };
            if let Some(nr) = nr.filter(|&nr| CALLS.iter().any(|c| c.x86_64 == Some(nr))) {
                found.push((*addr, nr));
            }
            break;
        }
    }
    found
}

#[test]
fn every_file_call_objdump_shows_is_patched_or_named_unknown() {
    let p = patch_ldso(&ldso()).expect("patch");
    let expected = file_calls_by_objdump();
    assert!(expected.len() >= 8, "objdump found {expected:?}");
    for (addr, nr) in &expected {
        let patched = p
            .sites
            .iter()
            .any(|s| s.nr == *nr && (s.window_vaddr..s.window_vaddr + s.window_len).contains(addr));
        assert!(
            patched || p.unknown.contains(addr),
            "the call {nr} at {addr:#x} is neither patched nor reported: {:?}",
            p.sites
        );
    }
    for s in &p.sites {
        assert!(
            expected.iter().any(|(a, nr)| *nr == s.nr
                && (s.window_vaddr..s.window_vaddr + s.window_len).contains(a)),
            "{} at {:#x} was patched but objdump shows no such call there",
            s.name,
            s.window_vaddr
        );
        assert!(s.window_len >= 5, "{}: a jmp rel32 needs 5 bytes", s.name);
    }
}

#[test]
fn patched_copy_has_two_new_segments_and_jumps_to_its_trampolines() {
    let bytes = ldso();
    let p = patch_ldso(&bytes).expect("patch");
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

/// `bytes` with every occurrence of `from` replaced by `to` (same length).
fn replace_all(bytes: &mut [u8], from: &[u8], to: &[u8]) -> usize {
    assert_eq!(from.len(), to.len());
    let mut n = 0;
    let mut at = 0;
    while let Some(i) = bytes[at..].windows(from.len()).position(|w| w == from) {
        bytes[at + i..at + i + to.len()].copy_from_slice(to);
        at += i + to.len();
        n += 1;
    }
    n
}

fn refusal(bytes: &[u8]) -> String {
    match patch_ldso(bytes) {
        Err(e @ PatchError::UnknownLdso { .. }) => e.to_string(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_loader_whose_calls_cannot_be_read_or_moved_is_refused_in_one_line() {
    // No mmap call left: every `mov $9,%eax; syscall` made an mprotect.
    let mut bytes = ldso();
    let mmap = [0xb8, 0x09, 0, 0, 0, 0x0f, 0x05];
    let mprotect = [0xb8, 0x0a, 0, 0, 0, 0x0f, 0x05];
    assert!(replace_all(&mut bytes, &mmap, &mprotect) >= 1);
    let msg = refusal(&bytes);
    assert!(
        msg.contains("no mmap call was found") && msg.contains("build-id") && !msg.contains('\n'),
        "{msg}"
    );
    // close's `mov $3,%eax; syscall; cmp $-4096,%rax` becomes
    // `mov $3,%eax; push %rbx; pop %rbx; syscall; ja +0; nop; nop`: the
    // number still shows, but no 5-byte window of plain instructions exists.
    let mut bytes = ldso();
    let close = [
        0xb8, 0x03, 0, 0, 0, 0x0f, 0x05, 0x48, 0x3d, 0x00, 0xf0, 0xff, 0xff,
    ];
    let pushed = [
        0xb8, 0x03, 0, 0, 0, 0x53, 0x5b, 0x0f, 0x05, 0x77, 0x00, 0x90, 0x90,
    ];
    assert_eq!(replace_all(&mut bytes, &close, &pushed), 1);
    let msg = refusal(&bytes);
    assert!(
        msg.contains("the close call at") && msg.contains("cannot be patched safely"),
        "{msg}"
    );
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

/// A crafted loader whose last PT_LOAD claims `memsz` bytes of memory.
fn with_last_load_memsz(memsz: u64) -> Vec<u8> {
    let mut bytes = ldso();
    let phoff = u64_at(&bytes, 32) as usize;
    let phnum = u16::from_le_bytes([bytes[56], bytes[57]]) as usize;
    let last = (0..phnum)
        .map(|i| phoff + i * 56)
        .rfind(|&at| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) == 1)
        .expect("ld.so has a PT_LOAD");
    bytes[last + 40..last + 48].copy_from_slice(&memsz.to_le_bytes());
    bytes
}

#[test]
fn a_loader_whose_segments_reach_far_past_its_file_is_refused() {
    // The patcher places its segments at the file offset equal to the end
    // of the loads: these would ask for a 2 TiB file, or overflow.
    for memsz in [1u64 << 41, u64::MAX - 8] {
        let msg = refusal(&with_last_load_memsz(memsz));
        assert!(
            msg.contains("reaches far past the end of the") && !msg.contains('\n'),
            "{msg}"
        );
    }
    // A .bss of 1 MiB is still a loader.
    let bss = with_last_load_memsz(1 << 20);
    let p = patch_ldso(&bss).expect("a loader with a larger .bss is patched");
    assert!(p.bytes.len() as u64 >= 1 << 20);
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
