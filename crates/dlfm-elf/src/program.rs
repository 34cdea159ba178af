//! Checking the program that will run through the patched ld.so: it must
//! carry the wrapper, recognised by the note of docs/internals.md §2 (and,
//! when the program has a symbol table, by `dlfm_entry` at the same address).

use crate::codegen::ENTRY_MAGIC;
use crate::elf::{Elf, ET_DYN, ET_EXEC, PT_NOTE};
use crate::error::PatchError;
use crate::sites::Arch;

const PT_INTERP: u32 = 3;

/// What dlpatch learned about the program.
#[derive(Debug, Clone)]
pub struct ProgramInfo {
    /// Its PT_INTERP, if any.
    pub interp: Option<String>,
    /// Position independent (ET_DYN) or not.
    pub pie: bool,
    /// The wrapper's entry address (link-time, relative to the load base for a PIE).
    pub entry_vaddr: u64,
    /// Whether `dlfm_entry` was found in the symbol table too.
    pub entry_symbol: bool,
}

/// Checks `bytes` is an x86_64 or aarch64 program linked with the wrapper.
pub fn check_program(bytes: &[u8]) -> Result<ProgramInfo, PatchError> {
    let elf = Elf::parse(bytes, "the program")?;
    if elf.kind != ET_EXEC && elf.kind != ET_DYN {
        return Err(PatchError::NotElf {
            what: "the program",
            detail: "not an executable".into(),
        });
    }
    let interp = elf
        .phdrs
        .iter()
        .find(|p| p.kind == PT_INTERP)
        .and_then(|p| {
            let raw = bytes.get(p.offset as usize..(p.offset + p.filesz) as usize)?;
            let raw = raw.split(|&b| b == 0).next()?;
            Some(String::from_utf8_lossy(raw).into_owned())
        });
    let entry_vaddr = note_entry(&elf).ok_or_else(|| PatchError::NoWrapper {
        detail: "no dlfm note found".into(),
    })?;
    let symbol = symbol_value(bytes, "dlfm_entry");
    if let Some(v) = symbol {
        if v != entry_vaddr {
            return Err(PatchError::NoWrapper {
                detail: format!(
                    "its dlfm note points at {entry_vaddr:#x} but dlfm_entry is at {v:#x}"
                ),
            });
        }
    }
    Ok(ProgramInfo {
        interp,
        pie: elf.kind == ET_DYN,
        entry_vaddr,
        entry_symbol: symbol.is_some(),
    })
}

/// The architecture of the program in `bytes`.
pub fn arch_of(bytes: &[u8]) -> Result<Arch, PatchError> {
    Ok(Elf::parse(bytes, "the program")?.arch)
}

/// The PT_INTERP of the program in `bytes`, if it is an ELF with one.
pub fn interp_of(bytes: &[u8]) -> Option<String> {
    interp_in(&Elf::parse(bytes, "the program").ok()?)
}

/// The entries of the program's RUNPATH and RPATH that name `$ORIGIN`
/// (the program's own directory, which ld.so computes from where the file
/// it runs lies).
pub fn origin_search_paths(bytes: &[u8]) -> Vec<String> {
    let Ok(elf) = goblin::elf::Elf::parse(bytes) else {
        return Vec::new();
    };
    elf.runpaths
        .iter()
        .chain(&elf.rpaths)
        .flat_map(|list| list.split(':'))
        .filter(|entry| entry.contains("$ORIGIN") || entry.contains("${ORIGIN}"))
        .map(str::to_string)
        .collect()
}

fn interp_in(elf: &Elf<'_>) -> Option<String> {
    let p = elf.phdrs.iter().find(|p| p.kind == PT_INTERP)?;
    let raw = elf
        .bytes
        .get(p.offset as usize..(p.offset + p.filesz) as usize)?;
    let raw = raw.split(|&b| b == 0).next()?;
    Some(String::from_utf8_lossy(raw).into_owned())
}

/// The entry address the wrapper's note gives (owner `DLFM`, type 1, desc
/// = the magic then an i32 relative to its own address).
fn note_entry(elf: &Elf<'_>) -> Option<u64> {
    let (note, desc_off) = elf
        .notes()
        .into_iter()
        .find(|(n, _)| n.name == "DLFM" && n.n_type == 1 && n.desc.starts_with(ENTRY_MAGIC))?;
    let rel = i32::from_le_bytes(
        note.desc
            .get(ENTRY_MAGIC.len()..ENTRY_MAGIC.len() + 4)?
            .try_into()
            .ok()?,
    );
    let rel_off = desc_off + ENTRY_MAGIC.len() as u64;
    let p = elf
        .phdrs
        .iter()
        .find(|p| p.kind == PT_NOTE && (p.offset..p.offset + p.filesz).contains(&rel_off))?;
    let rel_vaddr = p.vaddr + (rel_off - p.offset);
    Some(rel_vaddr.wrapping_add(rel as i64 as u64))
}

/// The value of symbol `name` in the program's symbol table, if it has one.
fn symbol_value(bytes: &[u8], name: &str) -> Option<u64> {
    let elf = goblin::elf::Elf::parse(bytes).ok()?;
    elf.syms
        .iter()
        .find(|s| elf.strtab.get_at(s.st_name) == Some(name))
        .map(|s| s.st_value)
}

/// A copy of `bytes` (a program) whose PT_INTERP names `interp`. The new
/// name must fit where the old one was (ld.so reads PT_INTERP from memory,
/// so it cannot simply move to the end of the file).
pub fn with_interp(bytes: &[u8], interp: &str) -> Result<Vec<u8>, PatchError> {
    let elf = Elf::parse(bytes, "the program")?;
    let p = elf
        .phdrs
        .iter()
        .find(|p| p.kind == PT_INTERP)
        .ok_or(PatchError::NoInterp)?;
    let room = p.filesz as usize;
    if interp.len() + 1 > room {
        return Err(PatchError::InterpTooLong {
            len: interp.len(),
            room: room.saturating_sub(1),
        });
    }
    let mut out = bytes.to_vec();
    let field = &mut out[p.offset as usize..p.offset as usize + room];
    field.fill(0);
    field[..interp.len()].copy_from_slice(interp.as_bytes());
    Ok(out)
}
