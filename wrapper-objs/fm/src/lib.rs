//! FMCaching's interposer, `libdlfm_fm.so`: the program's own file lookups
//! (Python's imports, MPI's component discovery), recorded in the pilot and
//! answered from `dlcache.dat` in the large run.
//!
//! The patched ld.so loads it into every process whose pilot or cache names
//! it, by answering ld.so's read of `/etc/ld.so.preload`
//! (`wrapper-objs/ldso/src/preload.rs`): no environment variable and no relink.
//! It defines libc's lookup functions (`stat`, `open`, `access`, ...);
//! ld.so binds the program's calls to them first, and each either answers
//! from the cache, records, or calls the next definition (libc's).
//!
//! # The world this code runs in (read before changing anything)
//! Unlike the ld.so wrapper it runs after libc is up, inside the program's
//! threads: other threads exist, signal handlers and `fork` happen, the
//! program owns its descriptors. So:
//! - no locks and no allocation: state is set once by the constructor
//!   before `main` (published with a release store, read with acquire
//!   loads) and the table of served descriptors is made of atomics, so
//!   every function here is thread-safe and async-signal-safe (the one
//!   exception is libc's own: `realpath(path, NULL)` returns memory from
//!   `malloc`, as libc's does, and is no more signal-safe than libc's);
//! - after `fork` the child inherits the same state and the same
//!   descriptors, so the table stays true in both processes;
//! - every descriptor handed to the program is a real one the kernel knows
//!   (a memfd holding the recorded bytes), so `read`, `lseek`, `mmap`,
//!   `dup`, `fcntl`, `ioctl`, `fdopen` and `fork` behave as for the real
//!   file; only `fstat` on it is translated to the recorded stat, after
//!   checking the descriptor still is that memfd;
//! - its own work goes through raw system calls, never through the libc
//!   functions it defines (which would call back into it);
//! - when in doubt it calls the real function: a miss, a full table, an
//!   unexpected error, a relative path.
#![no_std]

mod calls;
mod dirs;
mod node_copy;
mod own_fd;
mod real;
mod realpath;
mod record;
mod replay;
mod served;
mod shared_index;
mod state;
mod statx;
mod stored_stat;
mod sys;
mod trace;
mod xstat;

/// A panic cannot happen by construction (every read is checked); should
/// one be compiled in anyway, abort rather than unwind through C.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    // SAFETY: abort takes no arguments and never returns.
    unsafe { libc::abort() }
}

/// Runs once, before `main`, while the process is still single-threaded.
extern "C" fn init() {
    state::init();
}

#[used]
#[link_section = ".init_array"]
static INIT: extern "C" fn() = init;

// libc is what this library calls (dlsym, getenv, syscall) and what it
// stands in front of; name it as a dependency so ld.so finds its symbols
// in libc whatever the load order.
#[link(name = "c")]
extern "C" {}

/// An instruction that traps, for a routine that must never run.
#[cfg(target_arch = "x86_64")]
macro_rules! trap {
    () => {
        "ud2"
    };
}
#[cfg(target_arch = "aarch64")]
macro_rules! trap {
    () => {
        "udf #0"
    };
}

// core, precompiled for unwinding, names Rust's personality routine in the
// unwind tables of what it contributes; nothing here unwinds (panic =
// abort), so it is never called. Defined hidden, so that the library does
// not export it and cannot stand in for a Rust program's own.
core::arch::global_asm!(
    ".globl rust_eh_personality",
    ".hidden rust_eh_personality",
    ".type rust_eh_personality, @function",
    "rust_eh_personality:",
    trap!(),
);
