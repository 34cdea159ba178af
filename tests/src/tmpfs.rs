//! A tmpfs mounted for one test (a small or read-only file system to fail
//! into), unmounted when dropped, a failing test included.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::scenario::assert_ok;

/// A mounted tmpfs; `.0` is its mount point.
pub struct TmpFs(pub PathBuf);

impl TmpFs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` takes it) at `at`,
    /// creating the directory.
    pub fn mount(at: &Path, size: &str) -> TmpFs {
        std::fs::create_dir_all(at).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .expect("run mount");
        assert_ok(&out, "mount tmpfs");
        TmpFs(at.to_path_buf())
    }

    /// Remounts it read-only (`false`) or writable (`true`).
    pub fn writable(&self, yes: bool) {
        let how = if yes { "remount,rw" } else { "remount,ro" };
        let out = Command::new("mount")
            .args(["-o", how])
            .arg(&self.0)
            .output()
            .expect("run mount");
        assert_ok(&out, "remount tmpfs");
    }
}

impl Drop for TmpFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
