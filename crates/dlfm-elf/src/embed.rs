//! A small static linker for `dlpatch --embed`: it links the wrapper archive
//! (`libdlfm_wrap.a`) into a blob that can be placed at a fixed address in
//! the ld.so copy, so that programs need no relinking.
//!
//! It works only because the wrapper obeys its rules (no GOT, no absolute
//! relocations, no initialised data: `tests/tests/wrapper_rules.rs`): every
//! relocation is PC-relative and is resolved here, so the blob carries none.
//! It starts from the archive member that defines `dlfm_entry`, pulls in the
//! members that define what it needs, and leaves out what a freestanding blob
//! cannot have: notes, `.fini_array` (so no exit-time trace summary) and
//! unwind tables.

use std::collections::{BTreeMap, VecDeque};

use goblin::archive::Archive;
use goblin::elf::section_header::{SHF_ALLOC, SHF_EXECINSTR, SHF_WRITE, SHT_NOBITS};
use goblin::elf::Elf;

use crate::codegen::a64;
use crate::elf::range_in;

/// The largest section alignment an archive member may ask for.
const MAX_ALIGN: u64 = 1 << 16;
/// The largest `.bss` the wrapper may have (its state is a few pages).
const MAX_BSS: u64 = 1 << 30;
use crate::sites::Arch;

/// The entry point the blob exports.
const ENTRY: &str = "dlfm_entry";
const R_X86_64_PC32: u32 = 2;
const R_X86_64_PLT32: u32 = 4;
const R_AARCH64_PREL32: u32 = 261;
const R_AARCH64_ADR_PREL_PG_HI21: u32 = 275;
const R_AARCH64_ADD_ABS_LO12_NC: u32 = 277;
const R_AARCH64_LDST8_ABS_LO12_NC: u32 = 278;
const R_AARCH64_TSTBR14: u32 = 279;
const R_AARCH64_CONDBR19: u32 = 280;
const R_AARCH64_JUMP26: u32 = 282;
const R_AARCH64_CALL26: u32 = 283;
const R_AARCH64_LDST16_ABS_LO12_NC: u32 = 284;
const R_AARCH64_LDST32_ABS_LO12_NC: u32 = 285;
const R_AARCH64_LDST64_ABS_LO12_NC: u32 = 286;
const R_AARCH64_LDST128_ABS_LO12_NC: u32 = 299;

/// The wrapper, linked.
#[derive(Debug, Clone)]
pub struct Blob {
    /// Code and read-only data, to be placed at `text_vaddr`.
    pub text: Vec<u8>,
    /// Size of the zero-initialised data, placed at `bss_vaddr`.
    pub bss_len: u64,
    /// Address of `dlfm_entry`.
    pub entry: u64,
}

/// Why the archive cannot be embedded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmbedError {
    /// The archive is built for this other machine.
    Arch(&'static str),
    /// Anything else, said in words.
    Other(String),
}

impl std::fmt::Display for EmbedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EmbedError::Arch(a) => write!(f, "cannot embed the wrapper: it is built for {a}"),
            EmbedError::Other(why) => write!(f, "cannot embed the wrapper: {why}"),
        }
    }
}

impl std::error::Error for EmbedError {}

fn err(msg: impl Into<String>) -> EmbedError {
    EmbedError::Other(msg.into())
}

/// Where each included section of an object goes.
struct Placed<'a> {
    elf: Elf<'a>,
    /// Section index -> address.
    addr: BTreeMap<usize, u64>,
}

/// What a section holds.
#[derive(PartialEq, Eq, Clone, Copy)]
enum Kind {
    Text,
    Bss,
}

fn kind_of(elf: &Elf<'_>, i: usize) -> Result<Option<Kind>, EmbedError> {
    let sh = &elf.section_headers[i];
    let name = elf.shdr_strtab.get_at(sh.sh_name).unwrap_or("");
    if sh.sh_flags & u64::from(SHF_ALLOC) == 0
        || name.starts_with(".note")
        || name.starts_with(".eh_frame")
        || name == ".fini_array"
        || name == ".init_array"
        || sh.sh_size == 0
    {
        return Ok(None);
    }
    if sh.sh_flags & u64::from(SHF_WRITE) == 0 || sh.sh_flags & u64::from(SHF_EXECINSTR) != 0 {
        return Ok(Some(Kind::Text));
    }
    if sh.sh_type == SHT_NOBITS {
        return Ok(Some(Kind::Bss));
    }
    Err(err(format!(
        "section {name} holds initialised data, which a blob cannot carry"
    )))
}

/// Links the archive's wrapper (built for `arch`) for `text_vaddr` (code,
/// read-only) and `bss_vaddr` (zeroed data).
pub fn link(
    archive: &[u8],
    arch: Arch,
    text_vaddr: u64,
    bss_vaddr: u64,
) -> Result<Blob, EmbedError> {
    if !archive.starts_with(b"!<arch>\n") {
        return Err(err(
            "the wrapper is not a static library (no ar archive header)",
        ));
    }
    let ar =
        Archive::parse(archive).map_err(|e| err(format!("the wrapper archive is damaged: {e}")))?;
    // Pull in members from dlfm_entry's, following undefined symbols.
    let mut members: Vec<&str> = Vec::new();
    let mut queue = VecDeque::from([ENTRY.to_string()]);
    let mut objects: Vec<(Elf<'_>, &[u8])> = Vec::new();
    while let Some(sym) = queue.pop_front() {
        let Some(member) = ar.member_of_symbol(&sym) else {
            return Err(err(format!("no member of the archive defines {sym}")));
        };
        if members.contains(&member) {
            continue;
        }
        members.push(member);
        let bytes = ar
            .extract(member, archive)
            .map_err(|e| err(e.to_string()))?;
        let elf = Elf::parse(bytes).map_err(|e| err(format!("{member}: {e}")))?;
        let built_for = match elf.header.e_machine {
            goblin::elf::header::EM_X86_64 => Some(Arch::X86_64),
            goblin::elf::header::EM_AARCH64 => Some(Arch::Aarch64),
            _ => None,
        };
        if built_for != Some(arch) {
            return Err(EmbedError::Arch(
                built_for.map_or("another machine", Arch::name),
            ));
        }
        for s in elf
            .syms
            .iter()
            .filter(|s| s.st_shndx == 0 && s.st_bind() != goblin::elf::sym::STB_WEAK)
        {
            if let Some(name) = elf.strtab.get_at(s.st_name).filter(|n| !n.is_empty()) {
                queue.push_back(name.to_string());
            }
        }
        objects.push((elf, bytes));
    }

    // Lay the sections out.
    let mut text = Vec::new();
    let mut bss_len = 0u64;
    let mut placed = Vec::new();
    for (elf, bytes) in objects {
        let mut addr = BTreeMap::new();
        for i in 0..elf.section_headers.len() {
            let sh = &elf.section_headers[i];
            let align = sh.sh_addralign.max(1);
            if align > MAX_ALIGN {
                return Err(err("a section asks for an alignment above 64 KiB"));
            }
            match kind_of(&elf, i)? {
                Some(Kind::Text) => {
                    let at = (text.len() as u64).next_multiple_of(align);
                    text.resize(at as usize, 0xcc);
                    let data = range_in(bytes, sh.sh_offset, sh.sh_size)
                        .ok_or_else(|| err("a section lies outside its object"))?;
                    text.extend_from_slice(data);
                    addr.insert(i, text_vaddr + at);
                }
                Some(Kind::Bss) => {
                    let at = bss_len.next_multiple_of(align);
                    bss_len = at
                        .checked_add(sh.sh_size)
                        .filter(|&end| end <= MAX_BSS)
                        .ok_or_else(|| err("the wrapper's .bss is larger than 1 GiB"))?;
                    addr.insert(i, bss_vaddr + at);
                }
                None => {}
            }
        }
        placed.push(Placed { elf, addr });
    }

    // Global symbols, then relocations.
    let mut globals = BTreeMap::new();
    for p in &placed {
        for s in p
            .elf
            .syms
            .iter()
            .filter(|s| s.st_shndx != 0 && s.st_bind() != goblin::elf::sym::STB_LOCAL)
        {
            if let (Some(name), Some(base)) =
                (p.elf.strtab.get_at(s.st_name), p.addr.get(&s.st_shndx))
            {
                globals.entry(name.to_string()).or_insert(base + s.st_value);
            }
        }
    }
    for p in &placed {
        for (shndx, relocs) in &p.elf.shdr_relocs {
            let target = p.elf.section_headers[*shndx].sh_info as usize;
            let Some(&section_addr) = p.addr.get(&target) else {
                continue;
            };
            for r in relocs.iter() {
                let sym = p
                    .elf
                    .syms
                    .get(r.r_sym)
                    .ok_or_else(|| err("bad relocation symbol"))?;
                let name = p.elf.strtab.get_at(sym.st_name).unwrap_or("");
                let s = if sym.st_shndx != 0 {
                    let base = p.addr.get(&sym.st_shndx).ok_or_else(|| {
                        err(format!(
                            "a relocation refers to a left-out section (symbol `{name}`)"
                        ))
                    })?;
                    base + sym.st_value
                } else {
                    *globals
                        .get(name)
                        .ok_or_else(|| err(format!("unresolved symbol {name}")))?
                };
                let place = section_addr + r.r_offset;
                let at = (place - text_vaddr) as usize;
                let word = text
                    .get_mut(at..at + 4)
                    .ok_or_else(|| err("a relocation lies outside the code"))?;
                let target = (s as i64 + r.r_addend.unwrap_or(0)) as u64;
                apply(arch, r.r_type, word, target, place).map_err(|why| {
                    err(format!(
                        "relocation type {} against `{name}`: {why}",
                        r.r_type
                    ))
                })?;
            }
        }
    }
    let entry = *globals
        .get(ENTRY)
        .ok_or_else(|| err("dlfm_entry is not defined"))?;
    Ok(Blob {
        text,
        bss_len,
        entry,
    })
}

/// Resolves one relocation of type `kind` at `place` (its 4 bytes in
/// `word`) to `target` (symbol + addend). Only PC-relative kinds exist in a
/// wrapper that obeys its rules; aarch64's `*_LO12` kinds are the low bits
/// of an address whose page an `adrp` gives PC-relatively.
fn apply(arch: Arch, kind: u32, word: &mut [u8], target: u64, place: u64) -> Result<(), String> {
    let delta = target.wrapping_sub(place) as i64;
    let range = || "out of range".to_string();
    let old = u32::from_le_bytes(word[..4].try_into().expect("4 bytes"));
    let new = match (arch, kind) {
        (Arch::X86_64, R_X86_64_PC32 | R_X86_64_PLT32) => {
            i32::try_from(delta).map_err(|_| range())? as u32
        }
        (Arch::Aarch64, R_AARCH64_PREL32) => i32::try_from(delta).map_err(|_| range())? as u32,
        (Arch::Aarch64, R_AARCH64_ADR_PREL_PG_HI21) => {
            old & 0x9f00_001f | a64::adrp_bits(place, target).ok_or_else(range)?
        }
        (Arch::Aarch64, R_AARCH64_ADD_ABS_LO12_NC | R_AARCH64_LDST8_ABS_LO12_NC) => {
            lo12(old, target, 0)
        }
        (Arch::Aarch64, R_AARCH64_LDST16_ABS_LO12_NC) => lo12(old, target, 1),
        (Arch::Aarch64, R_AARCH64_LDST32_ABS_LO12_NC) => lo12(old, target, 2),
        (Arch::Aarch64, R_AARCH64_LDST64_ABS_LO12_NC) => lo12(old, target, 3),
        (Arch::Aarch64, R_AARCH64_LDST128_ABS_LO12_NC) => lo12(old, target, 4),
        (Arch::Aarch64, R_AARCH64_JUMP26 | R_AARCH64_CALL26) => {
            old & 0xfc00_0000 | a64::branch_field(delta, 26).ok_or_else(range)?
        }
        (Arch::Aarch64, R_AARCH64_CONDBR19) => {
            old & 0xff00_001f | a64::branch_field(delta, 19).ok_or_else(range)? << 5
        }
        (Arch::Aarch64, R_AARCH64_TSTBR14) => {
            old & 0xfff8_001f | a64::branch_field(delta, 14).ok_or_else(range)? << 5
        }
        _ => return Err("the wrapper must use PC-relative references only".into()),
    };
    word[..4].copy_from_slice(&new.to_le_bytes());
    Ok(())
}

/// An instruction's 12-bit immediate (bits 10-21) set to the low 12 bits of
/// `target`, scaled down by `2^shift` (the access size of a load or store).
fn lo12(insn: u32, target: u64, shift: u32) -> u32 {
    insn & !(0xfff << 10) | (((target & 0xfff) >> shift) as u32) << 10
}
