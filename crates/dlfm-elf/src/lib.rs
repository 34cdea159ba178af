//! Reading ELF files and patching a copy of ld.so so that its file calls
//! branch to the dlfm wrapper.
//!
//! It owns: the system calls sent to the wrapper (`sites`), finding and
//! verifying their sites in a given ld.so's code (`finder`), the machine code added to the
//! copy (`codegen`), laying out the patched file (`patch`), and checking that
//! a program carries the wrapper (`program`). docs/internals.md §1–2 is the
//! contract with the wrapper. It knows nothing of the cache or the journal.

mod codegen;
mod elf;
mod embed;
mod error;
mod finder;
mod patch;
mod program;
mod sites;

pub use error::PatchError;
pub use patch::{patch_ldso, patch_ldso_embedded, Patched, PatchedSite};
pub use program::{
    arch_of, check_program, identity, origin_search_paths, program_interp, with_interp, Identity,
    ProgramInfo,
};
pub use sites::{Arch, Call, CALLS};
