//! Finding ld.so's file-call sites by reading its code, not by matching one
//! build's bytes (docs/internals.md §1): every system call instruction in its
//! executable sections, the number each one makes (from the instruction that
//! sets the number register before it in straight-line code), and for each
//! call in `sites::CALLS` a patch window that is safe to replace by a branch
//! to a trampoline. How that reads depends on the instruction set:
//! `x86_64` and `aarch64` hold one reader each.

mod aarch64;
mod x86_64;

use crate::elf::{range_in, Elf, PF_X, PT_LOAD};
use crate::error::PatchError;
use crate::sites::{Arch, Call, NEEDED};

/// A site found in ld.so.
#[derive(Debug, Clone)]
pub struct FoundSite {
    /// The call it makes.
    pub call: &'static Call,
    /// Its number on this loader's architecture.
    pub nr: u32,
    /// File offset of the window.
    pub window_offset: u64,
    /// Virtual address of the window.
    pub window_vaddr: u64,
    /// The window's bytes before the system call instruction.
    pub before: Vec<u8>,
    /// The system call instruction's length.
    pub trap_len: u64,
    /// The window's bytes after the system call instruction.
    pub after: Vec<u8>,
}

impl FoundSite {
    /// The window's length.
    pub fn window_len(&self) -> u64 {
        self.before.len() as u64 + self.trap_len + self.after.len() as u64
    }
}

/// What reading ld.so's code found.
#[derive(Debug, Clone)]
pub struct Survey {
    /// Every site of a call in `CALLS`, in address order.
    pub sites: Vec<FoundSite>,
    /// Addresses of system calls left alone: their number is another call's.
    pub others: Vec<(u64, u32)>,
    /// Addresses of system calls whose number the code does not show (left alone).
    pub unknown: Vec<u64>,
}

/// Code of one executable section (or segment, without section headers).
struct Code<'a> {
    bytes: &'a [u8],
    vaddr: u64,
    offset: u64,
}

/// Finds and verifies every site.
pub fn find_sites(elf: &Elf<'_>) -> Result<Survey, PatchError> {
    let unknown = |detail: String| PatchError::UnknownLdso {
        detail,
        build_id: elf.build_id(),
    };
    let code = executable_code(elf).map_err(unknown)?;
    let survey = match elf.arch {
        Arch::X86_64 => x86_64::survey(&code),
        Arch::Aarch64 => aarch64::survey(&code),
    }
    .map_err(unknown)?;
    for group in NEEDED {
        if !survey.sites.iter().any(|s| group.contains(&s.call.name)) {
            return Err(unknown(format!(
                "no {} call was found in its code",
                group.join(" or ")
            )));
        }
    }
    Ok(survey)
}

/// The executable sections (from the section headers, so that data in an
/// executable segment is never decoded as code), else the executable segment.
fn executable_code<'a>(elf: &Elf<'a>) -> Result<Vec<Code<'a>>, String> {
    const SHF_EXECINSTR: u64 = 4;
    const SHT_NOBITS: u32 = 8;
    let slice = |offset: u64, size: u64| range_in(elf.bytes, offset, size);
    if let Ok(g) = goblin::elf::Elf::parse(elf.bytes) {
        let sections: Vec<Code<'a>> = g
            .section_headers
            .iter()
            .filter(|s| s.sh_flags & SHF_EXECINSTR != 0 && s.sh_type != SHT_NOBITS)
            .filter_map(|s| {
                Some(Code {
                    bytes: slice(s.sh_offset, s.sh_size)?,
                    vaddr: s.sh_addr,
                    offset: s.sh_offset,
                })
            })
            .collect();
        if !sections.is_empty() {
            return Ok(sections);
        }
    }
    let text = elf
        .phdrs
        .iter()
        .find(|p| p.p_type == PT_LOAD && p.p_flags & PF_X != 0)
        .ok_or("no executable segment")?;
    let bytes =
        slice(text.p_offset, text.p_filesz).ok_or("executable segment lies outside the file")?;
    Ok(vec![Code {
        bytes,
        vaddr: text.p_vaddr,
        offset: text.p_offset,
    }])
}
