//! Where an installed dlfm's pieces lie, the one owner of the layout that
//! `make install` writes and every tool searches:
//!
//! | piece | installed | in a build (`target/release`) |
//! |---|---|---|
//! | `dlfm`, `dlpatch`, `dlfm.pre`, `dlfm-pfs` | `PREFIX/bin/` | beside each other (`dlfm.pre` is `dlfm-pre` there) |
//! | `libdlfm_wrap.a`, `libdlfm_fm.so` | `PREFIX/lib/` | beside the tools |
//! | `libdlfm_fm.so` for another machine ([`MACHINES`]) | `PREFIX/lib/<machine>/` | `target/<rust target>/release/` |
//! | man pages | `PREFIX/share/man/man1/` | `target/man/` after `make man` |
//! | the Lmod modulefile | `PREFIX/share/modulefiles/dlfm/` | `packaging/modulefile.lua.in` (filled in by `make install`) |
//!
//! A tool finds a library beside itself first, then in `../lib`.

use std::path::{Path, PathBuf};

/// The wrapper's static library (linked into programs, embedded by
/// `dlpatch --embed`).
pub const WRAPPER_ARCHIVE: &str = "libdlfm_wrap.a";
/// FMCaching's interposer, preloaded into the pilot and the replays.
pub const INTERPOSER: &str = "libdlfm_fm.so";
/// The ld.so patcher.
pub const DLPATCH: &str = "dlpatch";
/// The job-step tool, under its installed name and its build name.
pub const DLFM_PRE: [&str; 2] = ["dlfm.pre", "dlfm-pre"];

/// The directory of the running tool (None if the kernel cannot say).
pub fn bin_dir() -> Option<PathBuf> {
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
}

/// The library `name` beside the running tool, else in `../lib` from it;
/// where it would be beside the tool when neither exists (so that the
/// error names a path).
pub fn library(name: &str) -> PathBuf {
    let Some(bin) = bin_dir() else {
        return PathBuf::from(name);
    };
    let candidates = [bin.join(name), bin.join("../lib").join(name)];
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| bin.join(name))
}

/// The machines an install can hold an FMCaching interposer for: the name
/// of its directory under `lib/`, Rust's target (where a cargo build for it
/// lands) and its ELF `e_machine`.
pub const MACHINES: [(&str, &str, u16); 2] = [
    ("x86_64", "x86_64-unknown-linux-gnu", 62),
    ("aarch64", "aarch64-unknown-linux-gnu", 183),
];

/// Every FMCaching interposer of this install, the host's first (found as
/// [`library`] finds it), then one for each other machine of [`MACHINES`]
/// that is there. The pilot's processes each preload the first one built for
/// their own machine.
pub fn interposers() -> Vec<PathBuf> {
    let host = library(INTERPOSER);
    let mut found = vec![host.canonicalize().unwrap_or(host)];
    let Some(bin) = bin_dir() else {
        return found;
    };
    for (dir, target, _) in MACHINES {
        for p in [
            bin.join("../lib").join(dir).join(INTERPOSER),
            bin.join("..").join(target).join("release").join(INTERPOSER),
        ] {
            let Ok(p) = p.canonicalize() else {
                continue;
            };
            if p.is_file() && !found.contains(&p) {
                found.push(p);
            }
        }
    }
    found
}

/// The machine (a name of [`MACHINES`]) an ELF file is built for, if it is
/// one of them.
pub fn machine_of(path: &Path) -> Option<&'static str> {
    use std::io::Read;
    let mut head = [0u8; 20];
    std::fs::File::open(path).ok()?.read_exact(&mut head).ok()?;
    let machine = u16::from_le_bytes([head[18], head[19]]);
    (head[..4] == *b"\x7fELF")
        .then(|| MACHINES.iter().find(|m| m.2 == machine).map(|m| m.0))
        .flatten()
}

/// The tool known by any of `names` beside the running tool, if there.
pub fn tool(names: &[&str]) -> Option<PathBuf> {
    let bin = bin_dir()?;
    names.iter().map(|n| bin.join(n)).find(|p| p.is_file())
}
