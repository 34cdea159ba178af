//! Packs a dlfm pilot's journal into `dlcache.dat`: the std side of the cache
//! format whose no_std reader lives in `dlfm-cache`.
//!
//! It owns reading the journal, merging what the pilot's processes recorded,
//! refusing libraries that changed since the pilot, and writing the cache
//! file. It knows nothing of ld.so or of how replay uses the cache.

pub mod bytecode;
pub mod check;
pub mod data_sum;
pub mod disk;
pub mod error;
pub mod installed;
pub mod listing;
pub mod merge;
pub mod metadata;
pub mod pack;
pub mod scan;
pub mod scope;
pub mod writer;

pub use check::{check, CheckReport, Sums};
pub use error::PackError;
pub use pack::{pack, PackReport};
