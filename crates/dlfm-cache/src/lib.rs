//! The `dlcache.dat` and journal formats, for code that runs before libc:
//! `#![no_std]`, no allocation, no panics. The wrapper uses the reader and the
//! journal encoder inside ld.so; `dlfm-pack` uses the layout to write caches
//! and decode journals.
//!
//! It must not know about ld.so, system calls or files: it only lays out and
//! checks bytes. There is deliberately no `std` feature: cargo unifies
//! features across the workspace, and std in the wrapper's dependency graph
//! would clash with its panic handler.
#![no_std]

pub mod journal;
pub mod layout;
pub mod read;
