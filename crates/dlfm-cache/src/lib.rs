//! The `dlcache.dat` and journal formats, for code that runs before libc:
//! `#![no_std]`, no allocation, no panics, no calls to `memcpy`-like
//! routines (bulk byte work goes through `dlfm-bytes`).
//!
//! What it owns: the byte layout of the cache ([`layout`]), the checked
//! reader the wrapper answers lookups from ([`read`]), the journal record
//! format and its encoder ([`journal`]), the names and pointer file of
//! node-local copies ([`node_files`]), and the hashes they use ([`hash`]).
//! The wrapper uses the reader and the encoder inside ld.so; `dlfm-pack`
//! writes caches with [`layout`] and decodes journals against [`journal`].
//!
//! What it must not know: ld.so, system calls, descriptors, files on disk,
//! processes or MPI. It only lays out and checks bytes that others read or
//! write.
//!
//! There is deliberately no `std` feature (so the std-side cache writer and
//! the scan of a whole journal past torn records live in `dlfm-pack`; the
//! record decoder itself, `journal::decode`, is here and borrows): cargo unifies features across the
//! workspace, so one member enabling it would put std into the wrapper's
//! `no_std` static library, whose own panic handler then clashes with std's
//! (`duplicate lang item panic_impl`) in every `cargo build --workspace`.
#![no_std]

pub mod hash;
pub mod journal;
pub mod layout;
pub mod names;
pub mod node_files;
pub mod read;
pub mod stat;
