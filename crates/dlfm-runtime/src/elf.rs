//! Program headers and notes of ELF64 objects mapped in memory: what the
//! wrapper reads to identify the program and ld.so. Field places and sizes
//! come from `linux_raw_sys::elf_uapi` (the kernel's own structs).
//!
//! The note alignment rule, stated once for the wrapper's side: a PT_NOTE
//! segment whose `p_align` is 8 holds 8-byte aligned notes (the gABI's
//! SHT_NOTE with 8-byte alignment, as `.note.gnu.property` uses); any other
//! holds 4-byte aligned ones. (`dlfm-elf` reads notes with goblin, which
//! agrees for `p_align` 0-4 and 8 but finds no note in a segment of any
//! other alignment: there dlpatch would refuse a program whose note the
//! wrapper could still read, never the other way round. Linkers write
//! note segments aligned to 4 or 8.)

use core::mem::{offset_of, size_of};

use dlfm_bytes::{le_u16, le_u32, le_u64};
use linux_raw_sys::elf_uapi::{elf64_hdr, elf64_note, elf64_phdr};

pub use linux_raw_sys::elf_uapi::{PT_NOTE, PT_PHDR};

/// Size of an ELF64 program header.
pub const PHENT: usize = size_of::<elf64_phdr>();
/// Size of an ELF64 header.
pub const EHDR: usize = size_of::<elf64_hdr>();
/// A GNU build-id note's type (`NT_GNU_BUILD_ID`, `<elf.h>`; not in the
/// kernel's headers).
pub const NT_GNU_BUILD_ID: u32 = 3;

/// Where the program headers of the ELF header `ehdr` lie: `(e_phoff,
/// e_phnum)`.
#[inline]
pub fn program_headers_of(ehdr: &[u8]) -> Option<(u64, u16)> {
    Some((
        le_u64(ehdr, offset_of!(elf64_hdr, e_phoff))?,
        le_u16(ehdr, offset_of!(elf64_hdr, e_phnum))?,
    ))
}

/// The ELF machine (`e_machine`) of code built for this target: what a
/// library must be to load into this process.
#[cfg(target_arch = "x86_64")]
pub const THIS_MACHINE: u16 = linux_raw_sys::elf_uapi::EM_X86_64 as u16;
/// The ELF machine (`e_machine`) of code built for this target: what a
/// library must be to load into this process.
#[cfg(target_arch = "aarch64")]
pub const THIS_MACHINE: u16 = linux_raw_sys::elf_uapi::EM_AARCH64 as u16;

/// Whether `head`, the first bytes of a file, is an ELF header for
/// [`THIS_MACHINE`] (so ld.so can load it here).
#[inline]
pub fn built_for_this_machine(head: &[u8]) -> bool {
    head.get(..4) == Some(b"\x7fELF".as_slice())
        && le_u16(head, offset_of!(elf64_hdr, e_machine)) == Some(THIS_MACHINE)
}

/// The fields of one program header that identification needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Phdr {
    /// `p_type`.
    pub kind: u32,
    /// `p_vaddr`.
    pub vaddr: u64,
    /// `p_filesz`.
    pub filesz: u64,
    /// `p_align`.
    pub align: u64,
}

impl Phdr {
    /// The alignment of the notes in this (PT_NOTE) segment: 8 if `p_align`
    /// is 8, else 4 (the rule in the module comment).
    #[inline]
    pub fn note_align(&self) -> usize {
        if self.align == 8 {
            8
        } else {
            4
        }
    }
}

/// A program-header table.
#[derive(Clone, Copy)]
pub struct Headers<'a> {
    table: &'a [u8],
}

impl<'a> Headers<'a> {
    /// The table in `table` (PHENT bytes per header).
    #[inline]
    pub fn new(table: &'a [u8]) -> Headers<'a> {
        Headers { table }
    }

    /// The table's bytes.
    #[inline]
    pub fn bytes(&self) -> &'a [u8] {
        self.table
    }

    /// How many headers the table holds.
    #[inline]
    pub fn len(&self) -> usize {
        self.table.len() / PHENT
    }

    /// Whether the table is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Header `i`.
    #[inline]
    pub fn get(&self, i: usize) -> Option<Phdr> {
        let h = self
            .table
            .get(i.checked_mul(PHENT)?..i.checked_add(1)?.checked_mul(PHENT)?)?;
        Some(Phdr {
            kind: le_u32(h, offset_of!(elf64_phdr, p_type))?,
            vaddr: le_u64(h, offset_of!(elf64_phdr, p_vaddr))?,
            filesz: le_u64(h, offset_of!(elf64_phdr, p_filesz))?,
            align: le_u64(h, offset_of!(elf64_phdr, p_align))?,
        })
    }

    /// The first header of type `kind`.
    #[inline]
    pub fn find(&self, kind: u32) -> Option<Phdr> {
        (0..self.len())
            .filter_map(|i| self.get(i))
            .find(|p| p.kind == kind)
    }
}

/// The descriptor of the first note named `name` (NUL included) of type
/// `kind` among `notes`, aligned to `align` (4 or 8).
#[inline]
pub fn find_note<'a>(notes: &'a [u8], align: usize, name: &[u8], kind: u32) -> Option<&'a [u8]> {
    const HEADER: usize = size_of::<elf64_note>();
    let mut at = 0usize;
    while at.checked_add(HEADER)? <= notes.len() {
        let namesz = le_u32(notes, at + offset_of!(elf64_note, n_namesz))? as usize;
        let descsz = le_u32(notes, at + offset_of!(elf64_note, n_descsz))? as usize;
        let n_type = le_u32(notes, at + offset_of!(elf64_note, n_type))?;
        let name_at = at + HEADER;
        let desc_at = round_up(name_at.checked_add(namesz)?, align)?;
        let next = round_up(desc_at.checked_add(descsz)?, align)?;
        let note_name = notes.get(name_at..name_at + namesz)?;
        if n_type == kind && dlfm_bytes::equal(note_name, name) {
            return notes.get(desc_at..desc_at.checked_add(descsz)?);
        }
        at = next;
    }
    None
}

/// `v` rounded up to a multiple of `align` (a power of two).
#[inline]
fn round_up(v: usize, align: usize) -> Option<usize> {
    Some(v.checked_add(align - 1)? & !(align - 1))
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_an_elf_header_for_this_machine_is_loadable_here() {
        let mut head = [0u8; 64];
        head[..4].copy_from_slice(b"\x7fELF");
        head[18..20].copy_from_slice(&super::THIS_MACHINE.to_le_bytes());
        assert!(super::built_for_this_machine(&head));
        let other: u16 = if super::THIS_MACHINE == 62 { 183 } else { 62 };
        head[18..20].copy_from_slice(&other.to_le_bytes());
        assert!(!super::built_for_this_machine(&head));
        assert!(!super::built_for_this_machine(b"\x7fEL"));
        assert!(!super::built_for_this_machine(&[0u8; 64]));
    }

    extern crate std;
    use std::vec::Vec;

    use super::*;

    fn note(out: &mut Vec<u8>, name: &[u8], kind: u32, desc: &[u8], align: usize) {
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(name);
        out.resize(out.len().next_multiple_of(align), 0);
        out.extend_from_slice(desc);
        out.resize(out.len().next_multiple_of(align), 0);
    }

    #[test]
    fn finds_the_build_id_after_other_notes_at_either_alignment() {
        for align in [4, 8] {
            let mut notes = Vec::new();
            note(&mut notes, b"GNU\0", 5, &[1; 12], align);
            note(&mut notes, b"DLFM\0", 1, &[2; 20], align);
            note(&mut notes, b"GNU\0", NT_GNU_BUILD_ID, &[7; 20], align);
            let id = find_note(&notes, align, b"GNU\0", NT_GNU_BUILD_ID);
            assert_eq!(id, Some(&[7u8; 20][..]), "align {align}");
            assert_eq!(find_note(&notes, align, b"GNU\0", 99), None);
        }
    }

    #[test]
    fn damaged_notes_give_none_not_a_panic() {
        let mut notes = Vec::new();
        note(&mut notes, b"GNU\0", NT_GNU_BUILD_ID, &[7; 20], 4);
        for cut in 0..notes.len() {
            let _ = find_note(&notes[..cut], 4, b"GNU\0", NT_GNU_BUILD_ID);
        }
        let mut huge = notes.clone();
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(find_note(&huge, 4, b"GNU\0", NT_GNU_BUILD_ID), None);
    }

    #[test]
    fn program_headers_read_at_the_kernels_offsets() {
        assert_eq!((PHENT, EHDR), (56, 64));
        let mut table = std::vec![0u8; 2 * PHENT];
        table[PHENT..PHENT + 4].copy_from_slice(&PT_NOTE.to_le_bytes());
        table[PHENT + 16..PHENT + 24].copy_from_slice(&0x1000u64.to_le_bytes());
        table[PHENT + 32..PHENT + 40].copy_from_slice(&0x24u64.to_le_bytes());
        table[PHENT + 48..PHENT + 56].copy_from_slice(&8u64.to_le_bytes());
        let h = Headers::new(&table);
        let p = h.find(PT_NOTE).unwrap();
        assert_eq!((p.vaddr, p.filesz, p.note_align()), (0x1000, 0x24, 8));
        assert_eq!(h.find(PT_PHDR), None);
        let mut ehdr = [0u8; EHDR];
        ehdr[32..40].copy_from_slice(&64u64.to_le_bytes());
        ehdr[56..58].copy_from_slice(&9u16.to_le_bytes());
        assert_eq!(program_headers_of(&ehdr), Some((64, 9)));
    }
}
