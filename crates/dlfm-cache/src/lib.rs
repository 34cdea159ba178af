//! The `dlcache.dat` and journal formats, for code that runs before libc:
//! `#![no_std]`, no allocation, no panics, no calls to `memcpy`-like
//! routines (bulk byte work goes through `dlfm-bytes`).
//!
//! What it owns: the byte layout of the cache ([`layout`]), the checked
//! reader the wrapper answers lookups from ([`read`]), the journal record
//! format and its encoder ([`journal`]), the names and pointer file of
//! node-local copies ([`stage`]), and the hashes they use ([`hash`]).
//! The wrapper uses the reader and the encoder inside ld.so; `dlfm-pack`
//! writes caches with [`layout`] and decodes journals against [`journal`].
//!
//! What it must not know: ld.so, system calls, descriptors, files on disk,
//! processes or MPI. It only lays out and checks bytes that others read or
//! write.
//!
//! There is deliberately no `std` feature (so the std-side cache writer and
//! journal decoder live in `dlfm-pack`): cargo unifies features across the
//! workspace, so one member enabling it would put std into the wrapper's
//! `no_std` static library, whose own panic handler then clashes with std's
//! (`duplicate lang item panic_impl`) in every `cargo build --workspace`.
#![no_std]

pub mod hash;
pub mod journal;
pub mod layout;
pub mod names;
pub mod read;
pub mod stage;
pub mod stat;
