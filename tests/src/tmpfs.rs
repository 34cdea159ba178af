//! A tmpfs mounted for one test (a small or read-only file system to fail
//! into), unmounted when dropped, a failing test included. Mounted and
//! unmounted with system calls: no helper command to be missing.

use std::path::{Path, PathBuf};

use crate::sys;

/// A mounted tmpfs; `.0` is its mount point.
pub struct TmpFs(pub PathBuf);

impl TmpFs {
    /// Mounts a tmpfs of `size` (as the `size=` mount option takes it) at
    /// `at`, creating the directory.
    pub fn mount(at: &Path, size: &str) -> TmpFs {
        std::fs::create_dir_all(at).expect("mount point");
        sys::mount("tmpfs", at, "tmpfs", 0, &format!("size={size}"))
            .unwrap_or_else(|e| panic!("mount a tmpfs at {}: {e}", at.display()));
        TmpFs(at.to_path_buf())
    }

    /// Remounts it read-only (`false`) or writable (`true`).
    pub fn writable(&self, yes: bool) {
        let flags = libc::MS_REMOUNT | if yes { 0 } else { libc::MS_RDONLY };
        sys::mount("tmpfs", &self.0, "tmpfs", flags, "")
            .unwrap_or_else(|e| panic!("remount {}: {e}", self.0.display()));
    }
}

impl Drop for TmpFs {
    fn drop(&mut self) {
        sys::or_report(
            &format!("unmount {}", self.0.display()),
            sys::unmount(&self.0),
        );
    }
}
