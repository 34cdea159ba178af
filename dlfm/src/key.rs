//! The key of a store entry: what decides which lookups a program makes.
//! Two runs with the same key make the same lookups, up to their input
//! files and arguments (what one script misses the next run learns).
//!
//! The key covers, in this order:
//! - dlfm's version and the cache format's version;
//! - the program as `execvp` finds it (its path, links not resolved: a
//!   venv's `bin/python` is not `/usr/bin/python3`) and its identity (GNU
//!   build-id, else inode, size and change time); a script's interpreter
//!   too;
//! - the loader (PT_INTERP) and its identity;
//! - the value (or absence) of each variable of [`VARIABLES`].

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

use crate::target::Target;

/// The environment variables that steer ld.so's and Python's lookups and so
/// belong to the key (docs/dlfm-run.md explains each).
pub const VARIABLES: [&str; 16] = [
    "LD_LIBRARY_PATH",
    "LD_PRELOAD",
    "LD_AUDIT",
    "LD_BIND_NOW",
    "GLIBC_TUNABLES",
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONNOUSERSITE",
    "PYTHONUSERBASE",
    "PYTHONSAFEPATH",
    "PYTHONPLATLIBDIR",
    "PYTHONPYCACHEPREFIX",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "HOME",
    "OPAL_PREFIX",
];

/// A computed key: its hex name and what went into it.
#[derive(Debug, Clone)]
pub struct Key {
    /// 16 hex digits (FNV-1a 64 of `material`).
    pub name: String,
    /// The lines hashed, for `entry.json` and `dlfm ls --json`.
    pub material: Vec<String>,
    /// The key's variables that were set: (name, value).
    pub environment: Vec<(String, String)>,
}

/// The key of running `target` (whose loader has identity `loader_id`) in
/// the environment `getenv` reads.
pub fn key_of(
    target: &Target,
    loader: &str,
    loader_id: &str,
    getenv: impl Fn(&str) -> Option<OsString>,
) -> Key {
    let mut material = vec![
        format!("dlfm {}", env!("CARGO_PKG_VERSION")),
        format!("cache format {}", dlfm_cache::layout::VERSION),
        format!("program {}", target.path.display()),
        format!("elf {} {}", target.elf.display(), target.identity.id),
        format!("loader {loader} {loader_id}"),
    ];
    let mut environment = Vec::new();
    for name in VARIABLES {
        match getenv(name) {
            Some(v) => {
                let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
                material.push(format!("env {name}={v}"));
                environment.push((name.to_string(), v));
            }
            None => material.push(format!("env {name} unset")),
        }
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for line in &material {
        for &b in line.as_bytes().iter().chain(b"\n") {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    Key {
        name: format!("{hash:016x}"),
        material,
        environment,
    }
}
