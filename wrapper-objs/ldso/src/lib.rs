//! The dlfm wrapper: the code an application links (`libdlfm_wrap.a`) so that
//! the ld.so copy written by `dlpatch` can record and replay its file calls.
//!
//! The patched ld.so calls [`entry::dlfm_entry`] for every `openat`, `read`,
//! `pread64`, `newfstatat`, `mmap`, `close`, `access` (`faccessat` on
//! aarch64) and `lseek` it makes
//! (docs/internals.md describes how it finds that function). Depending on
//! `DLFM_OP` the wrapper passes the call to the kernel (`off`), records it in
//! the journal (`write-cache`), or answers it from `dlcache.dat`
//! (`read-cache`).
//!
//! # The world this code runs in (read before changing anything)
//! It runs inside ld.so, before the program is relocated and before libc or
//! thread-local storage exist. So:
//! - no libc, no allocation, no `std`; system calls are raw (`sys`);
//! - no thread-local storage and nothing that reads `%fs` (no stack
//!   protector: Rust emits none);
//! - no dynamic relocations: no statics that hold addresses at compile time,
//!   no `&'static str` or function pointers in statics, no `dyn Trait`, no
//!   formatting machinery; state is one zero-initialised static (`state`),
//!   filled in at run time;
//! - no calls through the PLT/GOT: bulk byte work goes through `dlfm-bytes`
//!   (inline `rep` instructions), never through slice copies or comparisons
//!   that the compiler could turn into `memcpy`/`memset`/`bcmp` calls;
//! - no panics: every read of the cache goes through bounds-checked `get`;
//!   the panic handler traps, and a test proves no panic path is linked.
//!
//! A test in `tests/` disassembles the wrapper linked into a PIE program and
//! checks these rules on the machine code.
//!
//! Every entry returns what the kernel would: a value or `-errno`.
#![no_std]

mod config;
mod entry;
mod ident;
mod initial_stack;
mod lookup;
mod misses;
mod off_reason;
mod own_file;
mod preload;
mod record;
mod replay;
mod report;
mod stager;
mod state;
mod sys;
mod trace;
mod tree;

pub use entry::dlfm_entry;

/// A panic cannot happen by construction (see the crate doc); should one be
/// compiled in anyway, trap rather than reach for formatting machinery that
/// needs relocated statics.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    sys::trap()
}

// The note through which the patched ld.so finds `dlfm_entry` at run time
// (docs/internals.md §2). The weak, hidden `__TMC_END__` on it makes the
// linker take this archive member with no extra flag: gcc's crtbeginS.o
// references that symbol and crtendS.o, linked after all user archives,
// defines it strongly, so the program's own definition still wins.
core::arch::global_asm!(
    ".pushsection .note.dlfm,\"aR\",@note",
    ".balign 4",
    ".long 5, 20, {note_type}",
    concat!(".asciz \"", dlfm_runtime::entry_abi_owner!(), "\""),
    ".balign 4",
    ".weak __TMC_END__",
    ".hidden __TMC_END__",
    "__TMC_END__:",
    concat!(".ascii \"", dlfm_runtime::entry_abi_token!(), "\""),
    ".long {entry} - .",
    ".popsection",
    entry = sym entry::dlfm_entry,
    note_type = const dlfm_runtime::entry_abi::NOTE_TYPE,
);
