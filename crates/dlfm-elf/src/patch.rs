//! Laying out the patched ld.so: the original bytes, the site windows
//! replaced by jumps, and two added segments (docs/internals.md §1): R+X at
//! file offset == vaddr with the new program-header table and the code, and a
//! R+W segment (file size 0) holding the entry slot. With `--embed`, the R+X
//! segment also carries the wrapper, linked from its archive at one page into
//! the segment, and the R+W segment its zeroed data after the slot's page.

use crate::codegen::{a64, generate, Layout};
use crate::elf::{write_phdr, Elf, Phdr, ET_DYN, PF_R, PF_W, PF_X, PHENT, PT_LOAD};
use crate::embed::{link, Blob, EmbedError};
use crate::error::PatchError;
use crate::finder::find_sites;
use crate::sites::Arch;

/// The alignment of the added segments: the page size, or on aarch64 the
/// largest page size its kernels use (64 KiB), as its loaders' own
/// segments are aligned. The header table, trampolines and stub must fit in
/// the R+X segment's first page; an embedded wrapper follows.
fn page_of(arch: Arch) -> u64 {
    match arch {
        Arch::X86_64 => 4096,
        Arch::Aarch64 => 65536,
    }
}
/// Marks an ld.so written by dlpatch (in the added code page).
const MARKER: &[u8] = b"dlfm: ld.so patched by dlpatch (abi 1)";

/// One patched site, for the report and for tests.
#[derive(Debug, Clone)]
pub struct PatchedSite {
    /// The system call's name.
    pub name: &'static str,
    /// The system call number.
    pub nr: u32,
    /// File offset of the replaced window.
    pub window_offset: u64,
    /// Virtual address of the window (relative to ld.so's load base).
    pub window_vaddr: u64,
    /// Bytes replaced.
    pub window_len: u64,
    /// Where the site's trampoline starts.
    pub trampoline_vaddr: u64,
}

/// A patched ld.so.
#[derive(Debug, Clone)]
pub struct Patched {
    /// The loader's architecture.
    pub arch: Arch,
    /// The new file's bytes.
    pub bytes: Vec<u8>,
    /// The sites, in address order.
    pub sites: Vec<PatchedSite>,
    /// The original's GNU build-id (hex).
    pub build_id: String,
    /// Where the added code starts.
    pub code_vaddr: u64,
    /// The entry slot's address.
    pub slot_vaddr: u64,
    /// The embedded wrapper's entry, with `--embed`.
    pub embedded_entry: Option<u64>,
    /// System calls left alone because they make other calls.
    pub others: usize,
    /// Addresses of system calls left alone because the code does not show
    /// their number (set from a variable, or across a branch target).
    pub unknown: Vec<u64>,
}

/// Patches a copy of the ld.so in `bytes`; its file calls go to the wrapper
/// linked into each program, found at run time.
pub fn patch_ldso(bytes: &[u8]) -> Result<Patched, PatchError> {
    patch(bytes, None)
}

/// Patches a copy of the ld.so in `bytes` that carries the wrapper itself,
/// linked from the archive `wrapper` (`libdlfm_wrap.a`): no program needs
/// relinking.
pub fn patch_ldso_embedded(bytes: &[u8], wrapper: &[u8]) -> Result<Patched, PatchError> {
    patch(bytes, Some(wrapper))
}

/// How far past the end of its file an ld.so's segments may reach in
/// memory: its `.bss` (a few KiB in every glibc). The added segments go at
/// the file offset equal to that end, so a crafted loader claiming more
/// would make dlpatch write a file of that size.
const MAX_BSS: u64 = 16 << 20;

/// The end address of ld.so's highest PT_LOAD, refused when it overflows or
/// lies more than [`MAX_BSS`] past the end of the file.
fn loads_end(elf: &Elf, build_id: &str) -> Result<u64, PatchError> {
    let mut end = 0u64;
    for p in elf.phdrs.iter().filter(|p| p.p_type == PT_LOAD) {
        let this = p.p_vaddr.checked_add(p.p_memsz);
        match this {
            Some(e) if e <= (elf.bytes.len() as u64).saturating_add(MAX_BSS) => end = end.max(e),
            _ => {
                return Err(PatchError::UnknownLdso {
                    detail: format!(
                        "a loadable segment ({:#x} bytes at {:#x}) reaches far past the end of the {}-byte file",
                        p.p_memsz,
                        p.p_vaddr,
                        elf.bytes.len()
                    ),
                    build_id: build_id.to_string(),
                })
            }
        }
    }
    Ok(end)
}

fn patch(bytes: &[u8], wrapper: Option<&[u8]>) -> Result<Patched, PatchError> {
    let elf = Elf::parse(bytes, "ld.so")?;
    if elf.kind != ET_DYN {
        return Err(PatchError::NotElf {
            what: "ld.so",
            detail: "not a shared object (a dynamic loader is ET_DYN)".into(),
        });
    }
    if bytes.windows(MARKER.len()).any(|w| w == MARKER) {
        return Err(PatchError::AlreadyPatched);
    }
    let build_id = elf.build_id();
    let stack_end_vaddr =
        dynamic_symbol(bytes, "__libc_stack_end").ok_or_else(|| PatchError::UnknownLdso {
            detail: "it exports no __libc_stack_end, so it is not a glibc dynamic loader (a statically linked program?)".into(),
            build_id: build_id.clone(),
        })?;
    let survey = find_sites(&elf)?;
    let sites = &survey.sites;
    let page = page_of(elf.arch);
    let stub_room = page;

    let load_end = loads_end(&elf, &build_id)?;
    let rx_vaddr = (bytes.len() as u64).max(load_end).next_multiple_of(page);
    let table_len = (elf.phdrs.len() + 2) * PHENT;
    let code_vaddr = rx_vaddr + (table_len as u64).next_multiple_of(16);
    let blob_vaddr = rx_vaddr + stub_room;
    let blob: Option<Blob> = match wrapper {
        // The slot's page comes first in the R+W segment, the blob's data
        // after it; where that is depends only on the blob's code size.
        Some(archive) => {
            let embed_error = |e: EmbedError| match e {
                EmbedError::Arch(wrapper) => PatchError::WrapperArch {
                    wrapper,
                    ldso: elf.arch.name(),
                },
                other => PatchError::Embed(other.to_string()),
            };
            let probe = link(archive, elf.arch, blob_vaddr, 0).map_err(embed_error)?;
            let slot = blob_vaddr + (probe.text.len() as u64).next_multiple_of(page);
            Some(link(archive, elf.arch, blob_vaddr, slot + page).map_err(embed_error)?)
        }
        None => None,
    };
    let rx_size = stub_room
        + blob
            .as_ref()
            .map_or(0, |b| (b.text.len() as u64).next_multiple_of(page));
    let slot_vaddr = rx_vaddr + rx_size;
    let rw_size = page
        + blob
            .as_ref()
            .map_or(0, |b| b.bss_len.next_multiple_of(page));
    let code = generate(
        elf.arch,
        sites,
        &Layout {
            code_vaddr,
            slot_vaddr,
            stack_end_vaddr,
            embedded_entry: blob.as_ref().map(|b| b.entry),
        },
    )
    .map_err(|e| PatchError::UnknownLdso {
        detail: format!("code generation failed: {e}"),
        build_id: build_id.clone(),
    })?;

    // The new program-header table: the two segments go after the last
    // original PT_LOAD, keeping PT_LOADs in ascending address order.
    let rx = Phdr {
        p_type: PT_LOAD,
        p_flags: PF_R | PF_X,
        p_offset: rx_vaddr,
        p_vaddr: rx_vaddr,
        p_paddr: rx_vaddr,
        p_filesz: rx_size,
        p_memsz: rx_size,
        p_align: page,
    };
    let rw = Phdr {
        p_type: PT_LOAD,
        p_flags: PF_R | PF_W,
        p_offset: 0,
        p_vaddr: slot_vaddr,
        p_paddr: slot_vaddr,
        p_filesz: 0,
        p_memsz: rw_size,
        p_align: page,
    };
    let last_load = elf
        .phdrs
        .iter()
        .rposition(|p| p.p_type == PT_LOAD)
        .unwrap_or(0);
    let mut phdrs = elf.phdrs.clone();
    phdrs.splice(last_load + 1..last_load + 1, [rx, rw]);

    let mut segment = vec![0u8; rx_size as usize];
    for (i, p) in phdrs.iter().enumerate() {
        write_phdr(p, &mut segment[i * PHENT..(i + 1) * PHENT])?;
    }
    let code_at = (code_vaddr - rx_vaddr) as usize;
    let marker_at = code_at + code.bytes.len();
    if marker_at + MARKER.len() > stub_room as usize {
        return Err(PatchError::UnknownLdso {
            detail: "the added code does not fit its segment".into(),
            build_id,
        });
    }
    segment[code_at..marker_at].copy_from_slice(&code.bytes);
    segment[marker_at..marker_at + MARKER.len()].copy_from_slice(MARKER);
    if let Some(b) = &blob {
        let at = stub_room as usize;
        segment[at..at + b.text.len()].copy_from_slice(&b.text);
    }

    let mut out = bytes.to_vec();
    out.resize(rx_vaddr as usize, 0);
    out.extend_from_slice(&segment);
    out[32..40].copy_from_slice(&rx_vaddr.to_le_bytes());
    out[56..58].copy_from_slice(&(phdrs.len() as u16).to_le_bytes());

    let mut patched = Vec::new();
    for (site, &tramp) in sites.iter().zip(&code.trampolines) {
        let at = site.window_offset as usize;
        let window = &mut out[at..at + site.window_len() as usize];
        branch(elf.arch, window, site.window_vaddr, tramp).ok_or_else(|| {
            PatchError::UnknownLdso {
                detail: "a trampoline is out of jump range".into(),
                build_id: build_id.clone(),
            }
        })?;
        patched.push(PatchedSite {
            name: site.call.name,
            nr: site.nr,
            window_offset: site.window_offset,
            window_vaddr: site.window_vaddr,
            window_len: site.window_len(),
            trampoline_vaddr: tramp,
        });
    }
    Ok(Patched {
        arch: elf.arch,
        bytes: out,
        sites: patched,
        build_id,
        code_vaddr,
        slot_vaddr,
        embedded_entry: blob.map(|b| b.entry),
        others: survey.others.len(),
        unknown: survey.unknown.clone(),
    })
}

/// Replaces `window` (at `from`) with a branch to `to`: `jmp rel32` and
/// `int3` filler on x86_64, `b` on aarch64 (whose window is the `svc`
/// alone). None if `to` is out of the branch's range.
fn branch(arch: Arch, window: &mut [u8], from: u64, to: u64) -> Option<()> {
    match arch {
        Arch::X86_64 => {
            let rel = i32::try_from(to as i64 - (from as i64 + 5)).ok()?;
            window[0] = 0xe9;
            window[1..5].copy_from_slice(&rel.to_le_bytes());
            window[5..].fill(0xcc);
        }
        Arch::Aarch64 => window.copy_from_slice(&a64::b_word(from, to)?.to_le_bytes()),
    }
    Some(())
}

/// The value of dynamic symbol `name`.
fn dynamic_symbol(bytes: &[u8], name: &str) -> Option<u64> {
    let elf = goblin::elf::Elf::parse(bytes).ok()?;
    elf.dynsyms
        .iter()
        .find(|s| elf.dynstrtab.get_at(s.st_name) == Some(name) && s.st_value != 0)
        .map(|s| s.st_value)
}
