//! Where an installed dlfm's pieces lie, the one owner of the layout that
//! `make install` writes and every tool searches:
//!
//! | piece | installed | in a build (`target/release`) |
//! |---|---|---|
//! | `dlfm`, `dlpatch`, `dlfm.pre`, `dlfm-pfs` | `PREFIX/bin/` | beside each other (`dlfm.pre` is `dlfm-pre` there) |
//! | `libdlfm_wrap.a`, `libdlfm_fm.so` | `PREFIX/lib/` | beside the tools |
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

/// The tool known by any of `names` beside the running tool, if there.
pub fn tool(names: &[&str]) -> Option<PathBuf> {
    let bin = bin_dir()?;
    names.iter().map(|n| bin.join(n)).find(|p| p.is_file())
}
