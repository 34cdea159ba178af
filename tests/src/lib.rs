//! What the end-to-end tests share: the built dlfm artifacts, running
//! programs under strace and reading what reached the kernel, and a
//! `Scenario` that takes a generated program through dlpatch, a pilot,
//! `dlfm.pre read-cache` and replay (on the machine's glibc or on one from
//! Debian's archive, `debian`), and a real Slurm cluster of namespaced
//! nodes (`slurm`).

pub mod aarch64;
pub mod artifacts;
pub mod debian;
pub mod mpi_hello;
pub mod node_copy;
pub mod old_loader;
pub mod pip_package;
pub mod pydeps;
pub mod scenario;
pub mod slurm;
pub mod strace;
pub mod sys;
pub mod tmpfs;

pub use artifacts::{artifacts, Artifacts};
pub use scenario::Scenario;
