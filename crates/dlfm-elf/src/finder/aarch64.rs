//! The aarch64 reader. Instructions are 4 bytes, so the sweep is exact (the
//! code sections hold no data in glibc's loaders) and the window is the
//! `svc #0` alone: one `b` to the trampoline takes its place, no other
//! instruction moves, and a branch to the `svc` takes the `b` too. The
//! number is the `movz` into w8/x8 before it in straight-line code; any
//! other instruction that may write x8 in between, a branch, or a branch
//! target makes it unknown (left alone). The test for "may write x8" is
//! deliberately wide (any instruction naming register 8 as a destination
//! field, and in loads and stores as any register field): a false "may"
//! leaves a call alone, never patches a wrong one.

use std::collections::BTreeSet;

use super::{Code, FoundSite, Survey};
use crate::sites::{call, Arch};

/// `svc #0`.
const SVC0: u32 = 0xd400_0001;
/// Every instruction is 4 bytes.
const INSN: u64 = 4;
/// How far back the `movz` into x8 is looked for.
const MAX_BACK: usize = 32;
/// The register the system call number is passed in.
const X8: u32 = 8;

/// Every `svc #0` in `code`: sites of routed calls, the others, and those
/// whose number the code does not show.
pub(super) fn survey(code: &[Code<'_>]) -> Result<Survey, String> {
    let words: Vec<Vec<u32>> = code.iter().map(words).collect();
    let targets = branch_targets(code, &words);
    let mut survey = Survey {
        sites: Vec::new(),
        others: Vec::new(),
        unknown: Vec::new(),
    };
    for (part, ws) in code.iter().zip(&words) {
        for (at, &w) in ws.iter().enumerate() {
            if w != SVC0 {
                continue;
            }
            let vaddr = part.vaddr + at as u64 * INSN;
            let Some(nr) = syscall_number(part, ws, at, &targets) else {
                survey.unknown.push(vaddr);
                continue;
            };
            let Some(call) = call(Arch::Aarch64, nr) else {
                survey.others.push((vaddr, nr));
                continue;
            };
            survey.sites.push(FoundSite {
                call,
                nr,
                window_offset: part.offset + at as u64 * INSN,
                window_vaddr: vaddr,
                before: Vec::new(),
                trap_len: INSN,
                after: Vec::new(),
            });
        }
    }
    Ok(survey)
}

/// The section's instruction words (a trailing partial word is ignored).
fn words(code: &Code<'_>) -> Vec<u32> {
    code.bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// The target of a direct branch (`b`, `bl`, `b.cond`, `cbz`/`cbnz`,
/// `tbz`/`tbnz`) at `pc`, if `w` is one.
fn branch_target(w: u32, pc: u64) -> Option<u64> {
    let signed = |value: u32, bits: u32| -> i64 {
        let shift = 32 - bits;
        (((value << shift) as i32) >> shift) as i64
    };
    let offset = if w & 0x7c00_0000 == 0x1400_0000 {
        signed(w & 0x03ff_ffff, 26)
    } else if w & 0xff00_0010 == 0x5400_0000 || w & 0x7e00_0000 == 0x3400_0000 {
        signed((w >> 5) & 0x7ffff, 19)
    } else if w & 0x7e00_0000 == 0x3600_0000 {
        signed((w >> 5) & 0x3fff, 14)
    } else {
        return None;
    };
    Some(pc.wrapping_add_signed(offset * 4))
}

/// Every direct branch or call target in the code.
fn branch_targets(code: &[Code<'_>], words: &[Vec<u32>]) -> BTreeSet<u64> {
    code.iter()
        .zip(words)
        .flat_map(|(part, ws)| {
            ws.iter()
                .enumerate()
                .filter_map(|(i, &w)| branch_target(w, part.vaddr + i as u64 * INSN))
        })
        .collect()
}

/// Whether `w` may not fall through to the next instruction: a branch of
/// any kind, or an exception-generating instruction (`svc`, `brk`, ...).
fn ends_run(w: u32) -> bool {
    branch_target(w, 0).is_some()
        || w & 0xfe00_0000 == 0xd600_0000
        || w & 0xff00_0000 == 0xd400_0000
}

/// Whether `w` may write x8 (wide on purpose: see the module doc).
fn may_write_x8(w: u32) -> bool {
    let field = |shift: u32| (w >> shift) & 0x1f == X8;
    // Loads and stores: op0 bits x1x0 (bit 27 set, bit 25 clear).
    let load_store = w & 0x0a00_0000 == 0x0800_0000;
    field(0) || (load_store && (field(5) || field(10) || field(16)))
}

/// `movz w8/x8, #imm16, lsl #(16 * hw)`: the value; else None.
fn constant_into_x8(w: u32) -> Option<u32> {
    if w & 0x7f80_0000 != 0x5280_0000 || w & 0x1f != X8 {
        return None;
    }
    let hw = (w >> 21) & 3;
    let imm = (w >> 5) & 0xffff;
    u32::try_from(u64::from(imm) << (16 * hw)).ok()
}

/// The number the `svc` at `ws[at]` makes: the `movz` into x8 before it,
/// if nothing that may write x8, no branch and no branch target lies
/// between (the `svc` itself may not be a branch target either).
fn syscall_number(part: &Code<'_>, ws: &[u32], at: usize, targets: &BTreeSet<u64>) -> Option<u32> {
    let mut k = at;
    for _ in 0..MAX_BACK {
        if targets.contains(&(part.vaddr + k as u64 * INSN)) || k == 0 {
            return None;
        }
        k -= 1;
        let w = ws[k];
        if ends_run(w) {
            return None;
        }
        if may_write_x8(w) {
            return constant_into_x8(w);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_read_as_the_architecture_manual_says() {
        // movz w8, #0x38 / movz x8, #0xde / movz x8, #1, lsl #16
        assert_eq!(constant_into_x8(0x5280_0708), Some(0x38));
        assert_eq!(constant_into_x8(0xd280_1bc8), Some(0xde));
        assert_eq!(constant_into_x8(0xd2a0_0028), Some(0x10000));
        // movz x9, #0x38 is not x8; movk x8 is not a constant.
        assert_eq!(constant_into_x8(0xd280_0709), None);
        assert_eq!(constant_into_x8(0xf280_0708), None);
        // b .+8, bl .-4, b.ne .+0x10, cbz x0, .+0x20, tbnz w1, #3, .-8
        assert_eq!(branch_target(0x1400_0002, 0x100), Some(0x108));
        assert_eq!(branch_target(0x97ff_ffff, 0x100), Some(0xfc));
        assert_eq!(branch_target(0x5400_0081, 0x100), Some(0x110));
        assert_eq!(branch_target(0xb400_0100, 0x100), Some(0x120));
        assert_eq!(branch_target(0x371f_ffc1, 0x100), Some(0xf8));
        // ret, br x16, svc #0 end a run; add x0, x0, #1 does not.
        assert!(ends_run(0xd65f_03c0) && ends_run(0xd61f_0200) && ends_run(SVC0));
        assert!(!ends_run(0x9100_0400));
        // ldr x8, [sp]; ldp x7, x8, [sp]; ldr x0, [x8], #8 may write x8;
        // add x0, x1, x2 and str x1, [sp, #8] do not.
        assert!(may_write_x8(0xf940_03e8));
        assert!(may_write_x8(0xa940_23e7));
        assert!(may_write_x8(0xf840_8500));
        assert!(!may_write_x8(0x8b02_0020));
        assert!(!may_write_x8(0xf900_07e1));
    }
}
