//! The runtime contract and the logic both worlds share: what the ld.so
//! wrapper (`wrapper-objs/ldso`, inside ld.so before libc), the FMCaching
//! interposer (`wrapper-objs/fm`, in the program's threads) and `dlfm.pre`
//! must agree on: every environment name ([`env`]), the entry ABI
//! ([`entry_abi`]), the scope rule ([`scope`]), the node-local staging
//! policy ([`staging_policy`]), file names of traces and miss journals
//! ([`trace_name`]), and the pure decisions and arithmetic that need no
//! system call and no state, kept apart so that host unit tests reach them.
//! It must not know system calls, descriptors or processes.
//!
//! The wrapper's rules apply here too (see `wrapper-objs/ldso/src/lib.rs`): no
//! std, no allocation, no panics, no relocations, every function
//! `#[inline]` so that it is compiled into the wrapper's own object.
//!
//! - [`legacy_calls`]: older glibc's stat, fstat, lstat and open as
//!   newfstatat and openat;
//! - [`keys`]: which calls are lookups (the filters record and replay share);
//! - [`vfd`]: virtual descriptors, and the read/seek/map arithmetic on them;
//! - [`env`]: every environment variable dlfm reads, and what it asks for;
//! - [`staging_policy`]: what they ask of node-local staging, a process's
//!   job, which node-local files to trust;
//! - [`fixed_path`]: a NUL-terminated path in a fixed buffer;
//! - [`entry_abi`]: the note through which the patched ld.so finds the
//!   wrapper;
//! - [`elf`]: program headers and notes of objects mapped in memory;
//! - [`line`]: a trace line built in a fixed buffer;
//! - [`summary`]: the trace's summary line, written and read back;
//! - [`trace_name`]: the name of a process's trace file;
//! - [`scope`]: which lookups a cache serves (the pack, the fold and the
//!   noting of misses share it).
#![no_std]

pub mod elf;
pub mod entry_abi;
pub mod env;
pub mod fixed_path;
pub mod keys;
pub mod legacy_calls;
pub mod line;
pub mod name_walk;
pub mod proc_maps;
pub mod scope;
pub mod staging_policy;
pub mod summary;
pub mod trace_name;
pub mod vfd;
