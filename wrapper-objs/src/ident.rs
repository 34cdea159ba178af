//! Who is running: the identity of the program and of the ld.so that loads
//! it, read from their ELF notes in memory (no file access). A cache records
//! the identities it was made for; replay refuses a cache made for another
//! program or another ld.so build.

use linux_raw_sys::auxvec::{AT_BASE, AT_PHDR, AT_PHNUM};

use crate::initial_stack::InitialStack;

const PT_NOTE: u32 = 4;
const PT_PHDR: u32 = 6;
const NT_GNU_BUILD_ID: u32 = 3;
/// Size of an ELF64 program header.
const PHENT: usize = 56;
/// Longest identity kept (a SHA-1 build-id is 20 bytes).
pub const ID_MAX: usize = 32;

/// An identity: a GNU build-id, or for an object without one, an FNV-1a hash
/// of its ELF and program headers.
#[derive(Clone, Copy)]
pub struct Id {
    bytes: [u8; ID_MAX],
    len: usize,
}

impl Id {
    const EMPTY: Id = Id {
        bytes: [0; ID_MAX],
        len: 0,
    };

    /// The identity's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or(&[])
    }

    fn from_bytes(b: &[u8]) -> Id {
        let mut id = Id::EMPTY;
        id.len = dlfm_bytes::copy(&mut id.bytes, b);
        id
    }
}

/// The identities of this process's program and ld.so.
#[derive(Clone, Copy)]
pub struct Ids {
    /// The executable's identity.
    pub program: Id,
    /// The dynamic loader's identity.
    pub ldso: Id,
}

impl Ids {
    /// No identities yet.
    pub const EMPTY: Ids = Ids {
        program: Id::EMPTY,
        ldso: Id::EMPTY,
    };

    /// Reads both identities through the aux vector.
    pub fn read(stack: &InitialStack) -> Ids {
        Ids {
            program: program_id(stack),
            ldso: ldso_id(stack),
        }
    }
}

/// The program's program headers and load base, from AT_PHDR and AT_PHNUM.
fn program_id(stack: &InitialStack) -> Id {
    let (Some(phdr), Some(phnum)) = (stack.aux(AT_PHDR), stack.aux(AT_PHNUM)) else {
        return Id::EMPTY;
    };
    // SAFETY: the kernel's AT_PHDR points at AT_PHNUM program headers of the
    // mapped executable.
    let headers = unsafe { Headers::at(phdr as *const u8, phnum as usize) };
    // Without PT_PHDR the load base is unknown (ld.so run as a program,
    // `./ld.so prog`, describes itself this way): identify by the headers.
    match headers.find(PT_PHDR) {
        Some(p) => headers.identity(phdr.wrapping_sub(p.vaddr)),
        None => headers.hash(),
    }
}

/// ld.so's headers, found through its ELF header at AT_BASE.
fn ldso_id(stack: &InitialStack) -> Id {
    let Some(base) = stack.aux(AT_BASE).filter(|&b| b != 0) else {
        return Id::EMPTY;
    };
    // SAFETY: AT_BASE is the address of ld.so's ELF header, mapped readable;
    // e_phoff (offset 32) and e_phnum (offset 56) lie inside the header, and
    // the table lies in a segment mapped at vaddr == offset (true of the
    // original first segment and of the one dlpatch adds).
    let headers = unsafe {
        let ehdr = base as *const u8;
        let phoff = core::ptr::read_unaligned(ehdr.add(32) as *const u64);
        let phnum = core::ptr::read_unaligned(ehdr.add(56) as *const u16);
        Headers::at(ehdr.add(phoff as usize), phnum as usize)
    };
    headers.identity(base)
}

/// A loaded object's program-header table.
struct Headers {
    table: &'static [u8],
}

/// The fields of one program header that identification needs.
struct Phdr {
    kind: u32,
    vaddr: u64,
    filesz: u64,
    align: u64,
}

impl Headers {
    /// # Safety
    /// `at` must point at `count` mapped ELF64 program headers.
    unsafe fn at(at: *const u8, count: usize) -> Headers {
        // SAFETY: vouched for by the caller.
        let table = unsafe { core::slice::from_raw_parts(at, count.saturating_mul(PHENT)) };
        Headers { table }
    }

    fn get(&self, i: usize) -> Option<Phdr> {
        let h = self.table.get(i * PHENT..(i + 1) * PHENT)?;
        Some(Phdr {
            kind: le_u32(h, 0)?,
            vaddr: le_u64(h, 16)?,
            filesz: le_u64(h, 32)?,
            align: le_u64(h, 48)?,
        })
    }

    fn find(&self, kind: u32) -> Option<Phdr> {
        (0..self.table.len() / PHENT)
            .filter_map(|i| self.get(i))
            .find(|p| p.kind == kind)
    }

    /// The GNU build-id from a PT_NOTE segment, else a hash of the headers.
    fn identity(&self, base: u64) -> Id {
        for i in 0..self.table.len() / PHENT {
            let Some(p) = self.get(i).filter(|p| p.kind == PT_NOTE) else {
                continue;
            };
            // SAFETY: a PT_NOTE segment lies inside a loaded segment of this
            // object, mapped readable at base + p_vaddr for p_filesz bytes.
            let notes = unsafe {
                core::slice::from_raw_parts(
                    base.wrapping_add(p.vaddr) as *const u8,
                    p.filesz as usize,
                )
            };
            if let Some(id) = build_id(notes, if p.align == 8 { 8 } else { 4 }) {
                return Id::from_bytes(id);
            }
        }
        self.hash()
    }

    /// An FNV-1a hash of the program headers, for objects without build-id.
    fn hash(&self) -> Id {
        Id::from_bytes(&dlfm_cache::hash::fnv1a64(self.table).to_le_bytes())
    }
}

/// The descriptor of the `GNU` NT_GNU_BUILD_ID note among `notes`.
fn build_id(notes: &[u8], align: usize) -> Option<&[u8]> {
    let mut at = 0usize;
    while at + 12 <= notes.len() {
        let namesz = le_u32(notes, at)? as usize;
        let descsz = le_u32(notes, at + 4)? as usize;
        let kind = le_u32(notes, at + 8)?;
        let name_at = at + 12;
        let desc_at = round_up(name_at.checked_add(namesz)?, align);
        let next = round_up(desc_at.checked_add(descsz)?, align);
        let name = notes.get(name_at..name_at + namesz)?;
        if kind == NT_GNU_BUILD_ID && dlfm_bytes::equal(name, b"GNU\0") {
            return notes.get(desc_at..desc_at + descsz);
        }
        at = next;
    }
    None
}

fn round_up(v: usize, align: usize) -> usize {
    (v + align - 1) & !(align - 1)
}

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from(s[0]) | u32::from(s[1]) << 8 | u32::from(s[2]) << 16 | u32::from(s[3]) << 24)
}

fn le_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from(le_u32(b, at)?) | u64::from(le_u32(b, at.checked_add(4)?)?) << 32)
}
