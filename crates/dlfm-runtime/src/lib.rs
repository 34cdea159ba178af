//! The wrapper's pure logic: decisions and arithmetic that need no system
//! call and no state, kept apart from `wrapper-objs` (a `no_std` static
//! library without a test harness) so that host unit tests reach them.
//!
//! The wrapper's rules apply here too (see `wrapper-objs/src/lib.rs`): no
//! std, no allocation, no panics, no relocations, every function
//! `#[inline]` so that it is compiled into the wrapper's own object.
//!
//! - [`legacy_stat`]: older glibc's stat, fstat and lstat as newfstatat;
//! - [`keys`]: which calls are lookups (the filters record and replay share);
//! - [`vfd`]: virtual descriptors, and the read/seek/map arithmetic on them;
//! - [`env`]: what the environment's values ask for;
//! - [`staging`]: what they ask of node-local staging, and a process's job;
//! - [`fixed_path`]: a NUL-terminated path in a fixed buffer;
//! - [`elf`]: program headers and notes of objects mapped in memory;
//! - [`line`]: a trace line built in a fixed buffer;
//! - [`summary`]: the trace's summary line, written and read back;
//! - [`trace_name`]: the name of a process's trace file;
//! - [`scope`]: which lookups a cache serves (the pack, the fold and the
//!   noting of misses share it).
#![no_std]

pub mod elf;
pub mod env;
pub mod fixed_path;
pub mod keys;
pub mod legacy_stat;
pub mod line;
pub mod scope;
pub mod staging;
pub mod summary;
pub mod trace_name;
pub mod vfd;
