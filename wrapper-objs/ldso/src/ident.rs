//! Who is running: the identity of the program and of the ld.so that loads
//! it, read from their ELF notes in memory (no file access). A cache records
//! the identities it was made for; replay refuses a cache made for another
//! program or another ld.so build.

use dlfm_cache::layout::ID_MAX;
use dlfm_runtime::elf::{self, Headers, EHDR, NT_GNU_BUILD_ID, PHENT, PT_NOTE, PT_PHDR};
use linux_raw_sys::auxvec::{AT_BASE, AT_PHDR, AT_PHNUM};

use crate::initial_stack::InitialStack;

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
    let headers = unsafe { headers_at(phdr as *const u8, phnum as usize) };
    // Without PT_PHDR the load base is unknown (ld.so run as a program,
    // `./ld.so prog`, describes itself this way): identify by the headers.
    match headers.find(PT_PHDR) {
        Some(p) => identity(&headers, phdr.wrapping_sub(p.vaddr)),
        None => hash(&headers),
    }
}

/// ld.so's headers, found through its ELF header at AT_BASE.
fn ldso_id(stack: &InitialStack) -> Id {
    let Some(base) = stack.aux(AT_BASE).filter(|&b| b != 0) else {
        return Id::EMPTY;
    };
    // SAFETY: AT_BASE is the address of ld.so's ELF header, mapped readable
    // for its EHDR bytes.
    let ehdr = unsafe { core::slice::from_raw_parts(base as *const u8, EHDR) };
    let Some((phoff, phnum)) = elf::program_headers_of(ehdr) else {
        return Id::EMPTY;
    };
    // SAFETY: the table lies in a segment mapped at vaddr == offset (true of
    // the original first segment and of the one dlpatch adds).
    let headers = unsafe { headers_at((base as *const u8).add(phoff as usize), phnum as usize) };
    identity(&headers, base)
}

/// The program-header table of `count` headers at `at`.
///
/// # Safety
/// `at` must point at `count` mapped ELF64 program headers.
unsafe fn headers_at(at: *const u8, count: usize) -> Headers<'static> {
    // SAFETY: vouched for by the caller.
    Headers::new(unsafe { core::slice::from_raw_parts(at, count.saturating_mul(PHENT)) })
}

/// The GNU build-id from a PT_NOTE segment of the object loaded at `base`,
/// else a hash of its program headers.
fn identity(headers: &Headers<'_>, base: u64) -> Id {
    for p in (0..headers.len()).filter_map(|i| headers.get(i)) {
        if p.kind != PT_NOTE {
            continue;
        }
        // SAFETY: a PT_NOTE segment lies inside a loaded segment of this
        // object, mapped readable at base + p_vaddr for p_filesz bytes.
        let notes = unsafe {
            core::slice::from_raw_parts(base.wrapping_add(p.vaddr) as *const u8, p.filesz as usize)
        };
        if let Some(id) = elf::find_note(notes, p.note_align(), b"GNU\0", NT_GNU_BUILD_ID) {
            return Id::from_bytes(id);
        }
    }
    hash(headers)
}

/// An FNV-1a hash of the program headers, for objects without build-id.
fn hash(headers: &Headers<'_>) -> Id {
    Id::from_bytes(&dlfm_cache::hash::fnv1a64(headers.bytes()).to_le_bytes())
}
