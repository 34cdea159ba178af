//! Why dlpatch refuses: each variant's message is the one line the user sees.

/// A refusal, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The file is not an ELF64 x86_64 or aarch64 object of the expected kind.
    #[error("{what} is not usable: {detail}")]
    NotElf {
        /// Which file.
        what: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// The program names no interpreter and none was given.
    #[error("the program names no dynamic loader (PT_INTERP): it is statically linked, so ld.so never loads anything for it and dlfm has nothing to do")]
    NoInterp,
    /// The program was not linked with the wrapper.
    #[error("the program is not linked with the dlfm wrapper ({detail}): add target/release/libdlfm_wrap.a to its link line")]
    NoWrapper {
        /// What was missing.
        detail: String,
    },
    /// ld.so's code could not be read or patched safely.
    #[error("ld.so build not supported (build-id {build_id}): {detail}; dlpatch supports glibc's x86_64 loaders (tested: 2.31, 2.36, 2.41, 2.43)")]
    UnknownLdso {
        /// What did not match.
        detail: String,
        /// The ld.so's GNU build-id.
        build_id: String,
    },
    /// The loader was read, but patching its architecture is not written yet.
    #[error("{arch} loaders cannot be patched yet: the site finder reads this one ({sites} file-call sites, build-id {build_id}; `dlpatch --dry-run` lists them), but the {arch} trampolines and wrapper are not written; x86_64 loaders work")]
    ArchNotDone {
        /// The loader's architecture.
        arch: &'static str,
        /// How many file-call sites the finder found.
        sites: usize,
        /// The ld.so's GNU build-id.
        build_id: String,
    },
    /// The ld.so copy was already patched by dlpatch.
    #[error("this ld.so was already patched by dlpatch: patch the system ld.so instead (--ldso)")]
    AlreadyPatched,
    /// The wrapper archive could not be embedded.
    #[error("{0} (is it target/release/libdlfm_wrap.a?)")]
    Embed(String),
    /// The loader's path does not fit in the program's PT_INTERP.
    #[error("the loader's path is {len} bytes but the program's interpreter field holds {room}: write the loader to a shorter path (--loader)")]
    InterpTooLong {
        /// The loader path's length.
        len: usize,
        /// What the field holds (without its NUL).
        room: usize,
    },
}
