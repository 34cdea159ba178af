//! Finding the sites of `SITES` in a given ld.so and checking that they can be
//! patched: each pattern occurs exactly once in the executable segment, its
//! window holds exactly the instructions the table expects, and no direct
//! branch anywhere in ld.so's code lands inside a window.

use std::collections::BTreeSet;

use iced_x86::{Decoder, DecoderOptions, FlowControl, Instruction, Mnemonic, OpKind};

use crate::elf::{Elf, PF_X, PT_LOAD};
use crate::error::PatchError;
use crate::sites::{SiteSpec, SITES};

/// A site found in ld.so.
#[derive(Debug, Clone)]
pub struct FoundSite {
    /// Its table entry.
    pub spec: &'static SiteSpec,
    /// File offset of the window.
    pub window_offset: u64,
    /// Virtual address of the window.
    pub window_vaddr: u64,
    /// The window's bytes before the `syscall`.
    pub before: Vec<u8>,
    /// The window's bytes after the `syscall`.
    pub after: Vec<u8>,
}

impl FoundSite {
    /// The window's length.
    pub fn len(&self) -> u64 {
        self.spec.window.len() as u64
    }
}

/// Finds and verifies every site.
pub fn find_sites(elf: &Elf<'_>) -> Result<Vec<FoundSite>, PatchError> {
    let unknown = |detail: String| PatchError::UnknownLdso {
        detail,
        build_id: elf.build_id(),
    };
    let text = elf
        .phdrs
        .iter()
        .find(|p| p.kind == PT_LOAD && p.flags & PF_X != 0)
        .ok_or_else(|| unknown("no executable segment".into()))?;
    let code = elf
        .bytes
        .get(text.offset as usize..(text.offset + text.filesz) as usize)
        .ok_or_else(|| unknown("executable segment lies outside the file".into()))?;
    let targets = branch_targets(code, text.vaddr);
    let mut found = Vec::new();
    for spec in SITES {
        let hits: Vec<usize> = code
            .windows(spec.pattern.len())
            .enumerate()
            .filter(|(_, w)| *w == spec.pattern)
            .map(|(i, _)| i)
            .collect();
        let at = match hits.as_slice() {
            [one] => *one,
            [] => return Err(unknown(format!("the {} site was not found", spec.name))),
            many => {
                return Err(unknown(format!(
                    "the {} site pattern occurs {} times",
                    spec.name,
                    many.len()
                )))
            }
        };
        let window_in_code = at + spec.window.start;
        let window_vaddr = text.vaddr + window_in_code as u64;
        let window = &code[window_in_code..at + spec.window.end];
        let syscall_at = spec
            .syscall_at()
            .ok_or_else(|| unknown(format!("the {} window has no syscall", spec.name)))?;
        check_window(spec, window, window_vaddr, syscall_at).map_err(unknown)?;
        let inside = window_vaddr + 1..window_vaddr + window.len() as u64;
        if let Some(t) = targets.range(inside).next() {
            return Err(unknown(format!(
                "a branch lands inside the {} window (at {t:#x})",
                spec.name
            )));
        }
        found.push(FoundSite {
            spec,
            window_offset: text.offset + window_in_code as u64,
            window_vaddr,
            before: window[..syscall_at].to_vec(),
            after: window[syscall_at + 2..].to_vec(),
        });
    }
    Ok(found)
}

/// Every direct branch or call target in `code` (linear sweep; glibc's code
/// holds no data between functions on x86_64).
fn branch_targets(code: &[u8], vaddr: u64) -> BTreeSet<u64> {
    let mut targets = BTreeSet::new();
    let mut decoder = Decoder::with_ip(64, code, vaddr, DecoderOptions::NONE);
    let mut insn = Instruction::default();
    while decoder.can_decode() {
        decoder.decode_out(&mut insn);
        match insn.flow_control() {
            FlowControl::UnconditionalBranch
            | FlowControl::ConditionalBranch
            | FlowControl::Call => {
                if matches!(
                    insn.op0_kind(),
                    OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64
                ) {
                    targets.insert(insn.near_branch_target());
                }
            }
            _ => {}
        }
    }
    targets
}

/// The window must decode into the instructions the table expects: plain,
/// position-independent moves or compares around one `syscall`.
fn check_window(
    spec: &SiteSpec,
    window: &[u8],
    vaddr: u64,
    syscall_at: usize,
) -> Result<(), String> {
    let mut decoder = Decoder::with_ip(64, window, vaddr, DecoderOptions::NONE);
    let mut offset = 0;
    let mut saw_syscall = false;
    while decoder.can_decode() {
        let insn = decoder.decode();
        if insn.is_invalid() {
            return Err(format!("the {} window does not decode", spec.name));
        }
        if insn.mnemonic() == Mnemonic::Syscall {
            if offset != syscall_at {
                return Err(format!("the {} window's syscall is misplaced", spec.name));
            }
            saw_syscall = true;
        } else if insn.is_ip_rel_memory_operand()
            || insn.flow_control() != FlowControl::Next
            || !matches!(
                insn.mnemonic(),
                Mnemonic::Mov | Mnemonic::Xor | Mnemonic::Cmp
            )
        {
            return Err(format!(
                "the {} window holds an instruction that cannot be moved ({:?})",
                spec.name,
                insn.mnemonic()
            ));
        }
        offset += insn.len();
    }
    if !saw_syscall || offset != window.len() {
        return Err(format!(
            "the {} window does not end on an instruction boundary",
            spec.name
        ));
    }
    Ok(())
}
