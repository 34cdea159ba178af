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
    #[error("ld.so build not supported (build-id {build_id}): {detail}; dlpatch supports glibc's x86_64 and aarch64 loaders (tested: 2.31, 2.36, 2.41, 2.43)")]
    UnknownLdso {
        /// What did not match.
        detail: String,
        /// The ld.so's GNU build-id.
        build_id: String,
    },
    /// The program and the loader are built for different machines.
    #[error("the program is {program} but the ld.so is {ldso}: name the program's own loader with --ldso")]
    ArchMismatch {
        /// The program's architecture.
        program: &'static str,
        /// The loader's.
        ldso: &'static str,
    },
    /// The wrapper archive to embed is built for another machine.
    #[error("the wrapper archive is built for {wrapper}, the ld.so is {ldso}: name the {wrapper} loader with --ldso, or build the wrapper for {ldso} (cargo build --release --target {ldso}-unknown-linux-gnu -p dlfm-wrap) and name it with --wrapper")]
    WrapperArch {
        /// The archive's architecture.
        wrapper: &'static str,
        /// The loader's.
        ldso: &'static str,
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
