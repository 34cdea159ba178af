//! Checking the program that will run through the patched ld.so: it must
//! carry the wrapper, recognised by the note of docs/internals.md §2 (and,
//! when the program has a symbol table, by `dlfm_entry` at the same address).

use dlfm_runtime::entry_abi::{NOTE_OWNER, NOTE_TYPE};

use crate::codegen::ENTRY_MAGIC;
use crate::elf::{range_in, Elf, ET_DYN, ET_EXEC, PT_NOTE};
use crate::error::PatchError;
use crate::sites::Arch;

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
    let elf = executable(bytes)?;
    let interp = elf.interp()?.map(|i| i.name);
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

/// What `dlfm run` needs to know of a program or loader, read from its
/// first bytes (`bytes` may be a prefix of the file: what lies past it is
/// treated as absent).
#[derive(Debug, Clone)]
pub struct Identity {
    /// Its machine.
    pub arch: Arch,
    /// Its PT_INTERP, if any.
    pub interp: Option<String>,
    /// Its GNU build-id as hex, if it has one.
    pub build_id: Option<String>,
    /// Whether it carries the dlfm wrapper (the note of docs/internals.md §2).
    pub wrapper: bool,
}

/// The [`Identity`] of the ELF file whose first bytes are `bytes`.
pub fn identity(bytes: &[u8]) -> Result<Identity, PatchError> {
    let elf = executable(bytes)?;
    let build_id = Some(elf.build_id()).filter(|b| b != "none");
    Ok(Identity {
        arch: elf.arch,
        interp: elf.interp()?.map(|i| i.name),
        build_id,
        wrapper: note_entry(&elf).is_some(),
    })
}

/// `bytes` parsed as an executable (ET_EXEC or ET_DYN).
fn executable(bytes: &[u8]) -> Result<Elf<'_>, PatchError> {
    let elf = Elf::parse(bytes, "the program")?;
    if elf.kind != ET_EXEC && elf.kind != ET_DYN {
        return Err(PatchError::NotElf {
            what: "the program",
            detail: "not an executable".into(),
        });
    }
    Ok(elf)
}

/// The architecture of the program in `bytes`.
pub fn arch_of(bytes: &[u8]) -> Result<Arch, PatchError> {
    Ok(Elf::parse(bytes, "the program")?.arch)
}

/// The PT_INTERP of any program in `bytes` (with or without the wrapper:
/// what `dlpatch --embed --program` needs), `None` for one without.
pub fn program_interp(bytes: &[u8]) -> Result<Option<String>, PatchError> {
    Ok(Elf::parse(bytes, "the program")?.interp()?.map(|i| i.name))
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

/// The entry address the wrapper's note gives (`dlfm_runtime::entry_abi`:
/// owner `DLFM`, type 1, desc
/// = the magic then an i32 relative to its own address).
fn note_entry(elf: &Elf<'_>) -> Option<u64> {
    let (note, desc_off) = elf.notes().into_iter().find(|(n, _)| {
        n.name == NOTE_OWNER && n.n_type == NOTE_TYPE && n.desc.starts_with(ENTRY_MAGIC)
    })?;
    let rel = i32::from_le_bytes(
        note.desc
            .get(ENTRY_MAGIC.len()..ENTRY_MAGIC.len() + 4)?
            .try_into()
            .ok()?,
    );
    let rel_off = desc_off + ENTRY_MAGIC.len() as u64;
    // Notes come only from segments inside the file (`Elf::notes`), so
    // these ranges are checked before they are compared.
    let p = elf.phdrs.iter().find(|p| {
        p.p_type == PT_NOTE
            && range_in(elf.bytes, p.p_offset, p.p_filesz).is_some()
            && (p.p_offset..p.p_offset + p.p_filesz).contains(&rel_off)
    })?;
    let rel_vaddr = p.p_vaddr.checked_add(rel_off - p.p_offset)?;
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
    let field = elf.interp()?.ok_or(PatchError::NoInterp)?;
    if interp.len() + 1 > field.room {
        return Err(PatchError::InterpTooLong {
            len: interp.len(),
            room: field.room.saturating_sub(1),
        });
    }
    let mut out = bytes.to_vec();
    // In range: `Elf::interp` checked the field against the file.
    let field = &mut out[field.offset..field.offset + field.room];
    field.fill(0);
    field[..interp.len()].copy_from_slice(interp.as_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::{PHENT, PT_INTERP};

    /// A 120-byte x86_64 PIE header with one program header of `kind` at
    /// `offset`, `filesz` bytes (what a crafted file may claim).
    fn crafted(kind: u32, offset: u64, filesz: u64) -> Vec<u8> {
        let mut b = vec![0u8; 64 + PHENT];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2; // ELFCLASS64
        b[5] = 1; // little-endian
        b[6] = 1;
        b[16..18].copy_from_slice(&3u16.to_le_bytes()); // ET_DYN
        b[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
        b[20..24].copy_from_slice(&1u32.to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        b[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
        b[54..56].copy_from_slice(&(PHENT as u16).to_le_bytes());
        b[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
        let p = crate::elf::Phdr {
            p_type: kind,
            p_flags: 4,
            p_offset: offset,
            p_vaddr: offset,
            p_paddr: offset,
            p_filesz: filesz,
            p_memsz: filesz,
            p_align: 1,
        };
        crate::elf::write_phdr(&p, &mut b[64..]).unwrap();
        b
    }

    #[test]
    fn ranges_a_file_states_are_checked_not_trusted() {
        for (offset, filesz) in [
            (1 << 20, 28),      // past the end of a 120-byte file
            (u64::MAX - 1, 28), // the end overflows
            (100, u64::MAX),    // likewise through the size
            (64, 120),          // starts inside, ends outside
        ] {
            let b = crafted(PT_INTERP, offset, filesz);
            let refused = |r: Result<_, PatchError>| match r {
                Err(PatchError::NotElf { detail, .. }) => {
                    assert!(detail.contains("lies outside"), "{detail}");
                }
                other => panic!("{offset:#x}+{filesz:#x}: {other:?}"),
            };
            refused(with_interp(&b, "/x/ld.so").map(drop));
            refused(program_interp(&b).map(drop));
            refused(check_program(&b).map(drop));
            assert!(origin_search_paths(&b).is_empty());
        }
        for (offset, filesz) in [(u64::MAX - 1, 28), (1 << 20, 8)] {
            let b = crafted(PT_NOTE, offset, filesz);
            assert!(matches!(
                check_program(&b),
                Err(PatchError::NoWrapper { .. })
            ));
        }
    }

    #[test]
    fn a_good_interpreter_field_is_rewritten_in_place() {
        let mut b = crafted(PT_INTERP, 64 + PHENT as u64, 28);
        b.extend_from_slice(b"/lib64/ld-linux-x86-64.so.2\0");
        assert_eq!(
            program_interp(&b).unwrap().as_deref(),
            Some("/lib64/ld-linux-x86-64.so.2")
        );
        let copy = with_interp(&b, "/tmp/ld.so").unwrap();
        assert_eq!(
            program_interp(&copy).unwrap().as_deref(),
            Some("/tmp/ld.so")
        );
        assert!(matches!(
            with_interp(&b, "/a/path/longer/than/the/field/ld.so"),
            Err(PatchError::InterpTooLong { room: 27, .. })
        ));
    }
}
