//! The few ELF64 structures dlpatch reads and writes, at offsets computed from
//! the headers (never from this ld.so build's addresses).

use crate::error::PatchError;

/// A loadable segment.
pub const PT_LOAD: u32 = 1;
/// A note segment.
pub const PT_NOTE: u32 = 4;
/// Segment flag: executable.
pub const PF_X: u32 = 1;
/// Segment flag: writable.
pub const PF_W: u32 = 2;
/// Segment flag: readable.
pub const PF_R: u32 = 4;
/// Size of an ELF64 program header.
pub const PHENT: usize = 56;
const EM_X86_64: u16 = 62;
/// A fixed-address executable.
pub const ET_EXEC: u16 = 2;
/// A shared object or PIE (and ld.so).
pub const ET_DYN: u16 = 3;

/// One program header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Phdr {
    /// p_type.
    pub kind: u32,
    /// p_flags.
    pub flags: u32,
    /// p_offset.
    pub offset: u64,
    /// p_vaddr (p_paddr is written equal to it).
    pub vaddr: u64,
    /// p_filesz.
    pub filesz: u64,
    /// p_memsz.
    pub memsz: u64,
    /// p_align.
    pub align: u64,
}

impl Phdr {
    /// Writes the header into the first PHENT bytes of `out`.
    pub fn write(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.kind.to_le_bytes());
        out[4..8].copy_from_slice(&self.flags.to_le_bytes());
        out[8..16].copy_from_slice(&self.offset.to_le_bytes());
        out[16..24].copy_from_slice(&self.vaddr.to_le_bytes());
        out[24..32].copy_from_slice(&self.vaddr.to_le_bytes());
        out[32..40].copy_from_slice(&self.filesz.to_le_bytes());
        out[40..48].copy_from_slice(&self.memsz.to_le_bytes());
        out[48..56].copy_from_slice(&self.align.to_le_bytes());
    }
}

/// An ELF64 x86_64 file held in memory.
pub struct Elf<'a> {
    /// The whole file.
    pub bytes: &'a [u8],
    /// e_type.
    pub kind: u16,
    /// The program headers.
    pub phdrs: Vec<Phdr>,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
/// The little-endian u64 at `at`, if `b` holds it.
pub fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

impl<'a> Elf<'a> {
    /// Parses the ELF header and program headers; `what` names the file in errors.
    pub fn parse(bytes: &'a [u8], what: &'static str) -> Result<Self, PatchError> {
        let bad = |detail: &str| PatchError::NotElf {
            what,
            detail: detail.to_string(),
        };
        if bytes.get(0..4) != Some(b"\x7fELF") {
            return Err(bad("not an ELF file"));
        }
        if bytes.get(4) != Some(&2) || bytes.get(5) != Some(&1) {
            return Err(bad("not a 64-bit little-endian ELF file"));
        }
        let machine = u16_at(bytes, 18).ok_or_else(|| bad("truncated ELF header"))?;
        if machine != EM_X86_64 {
            return Err(bad("not an x86_64 ELF file"));
        }
        let kind = u16_at(bytes, 16).ok_or_else(|| bad("truncated ELF header"))?;
        let phoff = u64_at(bytes, 32).ok_or_else(|| bad("truncated ELF header"))?;
        let phentsize = u16_at(bytes, 54).ok_or_else(|| bad("truncated ELF header"))? as usize;
        let phnum = u16_at(bytes, 56).ok_or_else(|| bad("truncated ELF header"))? as usize;
        if phentsize != PHENT {
            return Err(bad("unexpected program header size"));
        }
        let mut phdrs = Vec::with_capacity(phnum);
        for i in 0..phnum {
            let at = phoff as usize + i * PHENT;
            let h = bytes
                .get(at..at + PHENT)
                .ok_or_else(|| bad("program headers lie outside the file"))?;
            phdrs.push(Phdr {
                kind: u32_at(h, 0).unwrap_or(0),
                flags: u32_at(h, 4).unwrap_or(0),
                offset: u64_at(h, 8).unwrap_or(0),
                vaddr: u64_at(h, 16).unwrap_or(0),
                filesz: u64_at(h, 32).unwrap_or(0),
                memsz: u64_at(h, 40).unwrap_or(0),
                align: u64_at(h, 48).unwrap_or(0),
            });
        }
        Ok(Elf { bytes, kind, phdrs })
    }

    /// The GNU build-id, as hex, or "none".
    pub fn build_id(&self) -> String {
        for p in self.phdrs.iter().filter(|p| p.kind == PT_NOTE) {
            let Some(notes) = self
                .bytes
                .get(p.offset as usize..(p.offset + p.filesz) as usize)
            else {
                continue;
            };
            let mut at = 0;
            while at + 12 <= notes.len() {
                let namesz = u32_at(notes, at).unwrap_or(0) as usize;
                let descsz = u32_at(notes, at + 4).unwrap_or(0) as usize;
                let kind = u32_at(notes, at + 8).unwrap_or(0);
                let desc = at + 12 + namesz.next_multiple_of(4);
                if kind == 3 && notes.get(at + 12..at + 12 + namesz) == Some(b"GNU\0") {
                    if let Some(d) = notes.get(desc..desc + descsz) {
                        return d.iter().map(|b| format!("{b:02x}")).collect();
                    }
                }
                at = desc + descsz.next_multiple_of(4);
            }
        }
        "none".to_string()
    }
}
