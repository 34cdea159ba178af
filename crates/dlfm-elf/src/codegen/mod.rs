//! The machine code dlpatch adds to the ld.so copy (docs/internals.md §1):
//! one trampoline per site, the common stub that saves what the kernel
//! preserves and calls the wrapper, and the resolver that finds the wrapper
//! in the running program once per process. One generator per instruction
//! set: `x86_64` (iced-x86's assembler) and `aarch64` (with `a64`).

pub mod a64;
mod aarch64;
mod x86_64;

use crate::finder::FoundSite;
use crate::sites::Arch;

pub use dlfm_runtime::entry_abi::TOKEN as ENTRY_MAGIC;
/// Slot value meaning "this program carries no wrapper".
const NO_WRAPPER: u64 = 1;
use goblin::elf::program_header::program_header64::SIZEOF_PHDR as PHENT;
use goblin::elf::program_header::{PT_NOTE, PT_PHDR};
use linux_raw_sys::auxvec::{AT_PHDR, AT_PHNUM};

/// Addresses the generated code needs.
pub struct Layout {
    /// Where the code is placed.
    pub code_vaddr: u64,
    /// The 8-byte entry slot in the RW segment.
    pub slot_vaddr: u64,
    /// ld.so's `__libc_stack_end` variable.
    pub stack_end_vaddr: u64,
    /// The wrapper's entry when it is embedded in the ld.so copy (then the
    /// stub calls it directly, with no slot and no resolver).
    pub embedded_entry: Option<u64>,
}

/// The generated code and where each site's trampoline starts.
pub struct Code_ {
    /// Machine code, to be placed at `Layout::code_vaddr`.
    pub bytes: Vec<u8>,
    /// Trampoline address per site, in the order given.
    pub trampolines: Vec<u64>,
}

/// Generates trampolines, the common stub and the resolver for `arch`.
pub fn generate(arch: Arch, sites: &[FoundSite], layout: &Layout) -> Result<Code_, String> {
    match arch {
        Arch::X86_64 => x86_64::generate(sites, layout).map_err(|e| e.to_string()),
        Arch::Aarch64 => aarch64::generate(sites, layout).map_err(|e| e.0),
    }
}
