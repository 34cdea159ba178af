//! The x86_64 reader: a linear sweep of the code (iced-x86); each `syscall`'s
//! number from the instruction that sets `eax` before it in straight-line
//! code; for each routed call a window of at least 5 bytes (a `jmp rel32`)
//! around the `syscall` that is safe to move into a trampoline: only plain,
//! position-independent instructions, and no direct branch anywhere in
//! ld.so's code lands inside it.

use std::collections::BTreeSet;

use iced_x86::{
    Decoder, DecoderOptions, FlowControl, Instruction, InstructionInfoFactory, Mnemonic, OpAccess,
    OpKind, Register,
};

use super::{Code, FoundSite, Survey};
use crate::sites::{call, Arch};

/// A `jmp rel32` is 5 bytes: the least a window can be.
const JMP_LEN: usize = 5;
/// At most this many instructions on each side of a `syscall` join its window.
const MAX_SIDE: usize = 3;
/// How far back the instruction that sets `eax` is looked for.
const MAX_BACK: usize = 32;
/// `syscall` is 2 bytes.
const SYSCALL_LEN: u64 = 2;

/// Every `syscall` in `code`: sites of routed calls with their windows, the
/// others, and those whose number the code does not show.
pub(super) fn survey(code: &[Code<'_>]) -> Result<Survey, String> {
    let decoded: Vec<Vec<Instruction>> = code.iter().map(decode).collect();
    let targets = branch_targets(&decoded);
    let mut info = InstructionInfoFactory::new();
    let mut survey = Survey {
        sites: Vec::new(),
        others: Vec::new(),
        unknown: Vec::new(),
    };
    for (part, insns) in code.iter().zip(&decoded) {
        for (at, insn) in insns.iter().enumerate() {
            if insn.mnemonic() != Mnemonic::Syscall {
                continue;
            }
            let Some(nr) = syscall_number(insns, at, &targets, &mut info) else {
                survey.unknown.push(insn.ip());
                continue;
            };
            let Some(call) = call(Arch::X86_64, nr) else {
                survey.others.push((insn.ip(), nr));
                continue;
            };
            let (lo, hi) = window(insns, at, &targets).map_err(|why| {
                format!(
                    "the {} call at {:#x} cannot be patched safely: {why}",
                    call.name,
                    insn.ip()
                )
            })?;
            let bytes_of = |r: std::ops::Range<usize>| -> Vec<u8> {
                let (Some(first), Some(last)) = (r.clone().next(), r.clone().last()) else {
                    return Vec::new();
                };
                let from = (insns[first].ip() - part.vaddr) as usize;
                let to = (insns[last].next_ip() - part.vaddr) as usize;
                part.bytes[from..to].to_vec()
            };
            let start = insns[lo].ip();
            survey.sites.push(FoundSite {
                call,
                nr,
                window_offset: part.offset + (start - part.vaddr),
                window_vaddr: start,
                before: bytes_of(lo..at),
                trap_len: SYSCALL_LEN,
                after: bytes_of(at + 1..hi),
            });
        }
    }
    Ok(survey)
}

/// Linear sweep (glibc's x86_64 code holds no data between functions).
fn decode(code: &Code<'_>) -> Vec<Instruction> {
    let mut decoder = Decoder::with_ip(64, code.bytes, code.vaddr, DecoderOptions::NONE);
    let mut out = Vec::new();
    while decoder.can_decode() {
        out.push(decoder.decode());
    }
    out
}

/// Every direct branch or call target in the code.
fn branch_targets(decoded: &[Vec<Instruction>]) -> BTreeSet<u64> {
    decoded
        .iter()
        .flatten()
        .filter(|insn| {
            matches!(
                insn.flow_control(),
                FlowControl::UnconditionalBranch
                    | FlowControl::ConditionalBranch
                    | FlowControl::Call
            ) && matches!(
                insn.op0_kind(),
                OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64
            )
        })
        .map(|insn| insn.near_branch_target())
        .collect()
}

/// The number the `syscall` at `insns[at]` makes: the constant the last
/// instruction writing `eax` before it puts there, if that instruction lies
/// in the same straight-line run (nothing can jump in between).
fn syscall_number(
    insns: &[Instruction],
    at: usize,
    targets: &BTreeSet<u64>,
    info: &mut InstructionInfoFactory,
) -> Option<u32> {
    let mut k = at;
    for _ in 0..MAX_BACK {
        if targets.contains(&insns[k].ip()) || k == 0 {
            return None;
        }
        k -= 1;
        let insn = &insns[k];
        if insn.flow_control() != FlowControl::Next {
            return None;
        }
        let writes_eax =
            info.info(insn).used_registers().iter().any(|u| {
                u.register().full_register() == Register::RAX && u.access() != OpAccess::Read
            });
        if writes_eax {
            return constant_into_eax(insn);
        }
    }
    None
}

/// `mov $imm, %eax` / `%rax` or `xor %eax, %eax`: the value; else None.
fn constant_into_eax(insn: &Instruction) -> Option<u32> {
    let to_eax = insn.op_count() == 2
        && insn.op0_kind() == OpKind::Register
        && matches!(insn.op0_register(), Register::EAX | Register::RAX);
    if !to_eax {
        return None;
    }
    match (insn.mnemonic(), insn.op1_kind()) {
        (Mnemonic::Mov, OpKind::Immediate32 | OpKind::Immediate32to64 | OpKind::Immediate64) => {
            u32::try_from(insn.immediate(1)).ok()
        }
        (Mnemonic::Xor, OpKind::Register) if insn.op1_register() == insn.op0_register() => Some(0),
        _ => None,
    }
}

/// Whether `insn` can run in a trampoline instead of in place: it falls
/// through, addresses nothing relative to its own address, and is one of
/// the plain data moves and arithmetic glibc puts around a `syscall`.
fn movable(insn: &Instruction) -> bool {
    insn.flow_control() == FlowControl::Next
        && !insn.is_ip_rel_memory_operand()
        && !insn.has_lock_prefix()
        && matches!(
            insn.mnemonic(),
            Mnemonic::Mov
                | Mnemonic::Movzx
                | Mnemonic::Movsx
                | Mnemonic::Movsxd
                | Mnemonic::Lea
                | Mnemonic::Xor
                | Mnemonic::Cmp
                | Mnemonic::Test
                | Mnemonic::Add
                | Mnemonic::Sub
                | Mnemonic::And
                | Mnemonic::Or
        )
}

/// The shortest window `insns[lo..hi]` around the `syscall` at `at` (of equal
/// ones, the one moving fewest instructions after it) that holds a `jmp rel32`, moves only movable instructions, and has no branch target
/// inside it (its first byte may be one: a branch there takes the jump).
fn window(
    insns: &[Instruction],
    at: usize,
    targets: &BTreeSet<u64>,
) -> Result<(usize, usize), String> {
    let mut best: Option<(usize, usize, usize, usize)> = None;
    for back in 0..=MAX_SIDE.min(at) {
        for ahead in 0..=MAX_SIDE.min(insns.len() - at - 1) {
            let (lo, hi) = (at - back, at + ahead + 1);
            let fits = (lo..hi).all(|k| k == at || movable(&insns[k]))
                && (lo + 1..hi).all(|k| !targets.contains(&insns[k].ip()));
            let len = (insns[hi - 1].next_ip() - insns[lo].ip()) as usize;
            if fits && len >= JMP_LEN && best.is_none_or(|b| (len, ahead) < (b.0, b.1)) {
                best = Some((len, ahead, lo, hi));
            }
        }
    }
    best.map(|(_, _, lo, hi)| (lo, hi)).ok_or_else(|| {
        "no 5-byte window of plain instructions without a branch target inside it".into()
    })
}
