//! The few ELF64 structures dlpatch reads and writes, at offsets computed from
//! the headers (never from this ld.so build's addresses).

use crate::error::PatchError;
use crate::sites::Arch;

use goblin::elf::header::{EM_AARCH64, EM_X86_64};
use goblin::elf::note::NT_GNU_BUILD_ID;

pub use goblin::elf::header::{ET_DYN, ET_EXEC};
pub use goblin::elf::program_header::program_header64::SIZEOF_PHDR as PHENT;
pub use goblin::elf::program_header::{PF_R, PF_W, PF_X, PT_INTERP, PT_LOAD, PT_NOTE};

/// One program header: goblin's, whose fields are the ELF64 `Elf64_Phdr`
/// (`p_type`, `p_flags`, `p_offset`, ...); written with [`write_phdr`].
pub type Phdr = goblin::elf::ProgramHeader;

/// Writes `p` as an ELF64 little-endian program header into the first
/// [`PHENT`] bytes of `out` (goblin's layout: the struct is the format).
pub fn write_phdr(p: &Phdr, out: &mut [u8]) -> Result<(), PatchError> {
    use scroll::ctx::TryIntoCtx;
    p.clone()
        .try_into_ctx(out, ctx64())
        .map(drop)
        .map_err(|e| PatchError::NotElf {
            what: "the ld.so copy",
            detail: format!("a program header does not fit: {e}"),
        })
}

/// ELF64, little-endian: the only kind dlpatch reads and writes.
fn ctx64() -> goblin::container::Ctx {
    goblin::container::Ctx::new(
        goblin::container::Container::Big,
        goblin::container::Endian::Little,
    )
}

/// The program interpreter a PT_INTERP segment names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interp {
    /// The name (up to the field's first NUL).
    pub name: String,
    /// Where the field starts in the file.
    pub offset: usize,
    /// The field's length (`p_filesz`), NUL included.
    pub room: usize,
}

/// `bytes[offset..offset + size]`, if that range neither overflows nor
/// leaves `bytes`.
pub fn range_in(bytes: &[u8], offset: u64, size: u64) -> Option<&[u8]> {
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(usize::try_from(size).ok()?)?;
    bytes.get(start..end)
}

/// An ELF64 little-endian x86_64 or aarch64 file held in memory.
pub struct Elf<'a> {
    /// The whole file.
    pub bytes: &'a [u8],
    /// Which file it is, for errors ("the program", "ld.so").
    pub what: &'static str,
    /// e_machine.
    pub arch: Arch,
    /// e_type.
    pub kind: u16,
    /// The program headers.
    pub phdrs: Vec<Phdr>,
}

impl<'a> Elf<'a> {
    /// Parses the ELF header and program headers (with goblin); `what`
    /// names the file in errors.
    pub fn parse(bytes: &'a [u8], what: &'static str) -> Result<Self, PatchError> {
        use goblin::elf::{header, program_header::ProgramHeader, Elf as Goblin};
        let bad = |detail: &str| PatchError::NotElf {
            what,
            detail: detail.to_string(),
        };
        if bytes.get(0..4) != Some(header::ELFMAG) {
            return Err(bad("not an ELF file"));
        }
        if bytes.get(header::EI_CLASS) != Some(&header::ELFCLASS64)
            || bytes.get(header::EI_DATA) != Some(&header::ELFDATA2LSB)
        {
            return Err(bad("not a 64-bit little-endian ELF file"));
        }
        let h = Goblin::parse_header(bytes).map_err(|_| bad("truncated ELF header"))?;
        let arch = match h.e_machine {
            EM_X86_64 => Arch::X86_64,
            EM_AARCH64 => Arch::Aarch64,
            _ => return Err(bad("not an x86_64 or aarch64 ELF file")),
        };
        if usize::from(h.e_phentsize) != PHENT {
            return Err(bad("unexpected program header size"));
        }
        let phdrs = ProgramHeader::parse(bytes, h.e_phoff as usize, h.e_phnum.into(), ctx64())
            .map_err(|_| bad("program headers lie outside the file"))?;
        Ok(Elf {
            bytes,
            what,
            arch,
            kind: h.e_type,
            phdrs,
        })
    }

    /// The `size` bytes at file offset `offset`: the one checked way to
    /// take a range the file itself states (a segment's `p_offset` and
    /// `p_filesz`, a section's), refusing one that overflows or lies
    /// outside the file. `what` names the range in the error.
    pub fn bytes_at(&self, offset: u64, size: u64, what: &str) -> Result<&'a [u8], PatchError> {
        range_in(self.bytes, offset, size).ok_or_else(|| PatchError::NotElf {
            what: self.what,
            detail: format!(
                "its {what} ({size} bytes at offset {offset:#x}) lies outside the {}-byte file",
                self.bytes.len()
            ),
        })
    }

    /// A segment's bytes in the file (`p_offset`, `p_filesz`), checked.
    pub fn segment_bytes(&self, p: &Phdr, what: &str) -> Result<&'a [u8], PatchError> {
        self.bytes_at(p.p_offset, p.p_filesz, what)
    }

    /// The program interpreter (PT_INTERP): its name, up to the first NUL,
    /// and where its field lies in the file; `None` without one.
    pub fn interp(&self) -> Result<Option<Interp>, PatchError> {
        let Some(p) = self.phdrs.iter().find(|p| p.p_type == PT_INTERP) else {
            return Ok(None);
        };
        let field = self.segment_bytes(p, "interpreter (PT_INTERP)")?;
        let name = field.split(|&b| b == 0).next().unwrap_or(&[]);
        Ok(Some(Interp {
            name: String::from_utf8_lossy(name).into_owned(),
            // In range: segment_bytes checked it against the file's length.
            offset: p.p_offset as usize,
            room: field.len(),
        }))
    }

    /// The notes of every PT_NOTE segment (goblin applies the alignment
    /// rule of `dlfm_runtime::elf`: 8-byte notes where `p_align` is 8,
    /// 4-byte ones where it is 0-4; larger alignments end the walk). Each
    /// note comes with the file offset of its descriptor.
    pub fn notes(&self) -> Vec<(goblin::elf::note::Note<'a>, u64)> {
        use goblin::elf::note::NoteDataIterator;
        let mut out = Vec::new();
        for p in self.phdrs.iter().filter(|p| p.p_type == PT_NOTE) {
            // A note segment that overflows or leaves the file has no
            // notes (dlpatch only looks for its own and the build-id).
            if range_in(self.bytes, p.p_offset, p.p_filesz).is_none() {
                continue;
            }
            let offset = p.p_offset as usize;
            let notes = NoteDataIterator {
                data: self.bytes,
                size: offset + p.p_filesz as usize,
                offset,
                ctx: (usize::try_from(p.p_align).unwrap_or(usize::MAX), ctx64()),
            };
            for note in notes.map_while(Result::ok) {
                let desc_off = note.desc.as_ptr() as usize - self.bytes.as_ptr() as usize;
                out.push((note, desc_off as u64));
            }
        }
        out
    }

    /// The GNU build-id, as hex, or "none".
    pub fn build_id(&self) -> String {
        self.notes()
            .into_iter()
            .find(|(n, _)| n.n_type == NT_GNU_BUILD_ID && n.name == "GNU")
            .map(|(n, _)| n.desc.iter().map(|b| format!("{b:02x}")).collect())
            .unwrap_or_else(|| "none".to_string())
    }
}
