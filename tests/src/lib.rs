//! What the end-to-end tests share: the built dlfm artifacts, running
//! programs under strace and reading what reached the kernel, and a
//! `Scenario` that takes a generated program through dlpatch, a pilot,
//! `dlfm.pre read-cache` and replay.

pub mod artifacts;
pub mod pydeps;
pub mod scenario;
pub mod strace;

pub use artifacts::{artifacts, Artifacts};
pub use scenario::Scenario;
