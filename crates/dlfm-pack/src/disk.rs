//! What the disk says now, when packing and checking: a path's status in
//! the stored form, and how a recorded file differs from it.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use dlfm_cache::layout::STAT_SIZE;
use dlfm_cache::stat::{blank, to_bytes, StatView};

/// The kernel's `struct stat` bytes for a file, from its metadata.
pub fn stat_of(m: &std::fs::Metadata) -> [u8; STAT_SIZE] {
    let mut st = blank();
    st.st_dev = m.dev();
    st.st_ino = m.ino();
    st.st_nlink = m.nlink();
    st.st_mode = m.mode();
    st.st_uid = m.uid();
    st.st_gid = m.gid();
    st.st_rdev = m.rdev();
    st.st_size = m.size() as _;
    st.st_blksize = m.blksize() as _;
    st.st_blocks = m.blocks() as _;
    st.st_atime = m.atime() as _;
    st.st_atime_nsec = m.atime_nsec() as _;
    st.st_mtime = m.mtime() as _;
    st.st_mtime_nsec = m.mtime_nsec() as _;
    st.st_ctime = m.ctime() as _;
    st.st_ctime_nsec = m.ctime_nsec() as _;
    to_bytes(&st)
}

/// How the file at `path` differs on disk from `then` (inode, size and
/// modification time), phrased as "<path> changed since <since> (...)" or
/// "<path> is gone since <since>"; `None` if it is unchanged.
pub fn disk_change(path: &[u8], then: &StatView<'_>, since: &str) -> Option<String> {
    let name = String::from_utf8_lossy(path).into_owned();
    let os_path = Path::new(std::ffi::OsStr::from_bytes(path));
    let now = match std::fs::metadata(os_path) {
        Err(e) => return Some(format!("{name} is gone since {since} ({e})")),
        Ok(now) => now,
    };
    let mut what = Vec::new();
    if now.ino() != then.ino() {
        what.push(format!("inode {} -> {}", then.ino(), now.ino()));
    }
    if now.size() != then.size() {
        what.push(format!("size {} -> {}", then.size(), now.size()));
    }
    if (now.mtime(), now.mtime_nsec()) != then.mtime() {
        what.push("modification time differs".to_string());
    }
    (!what.is_empty()).then(|| format!("{name} changed since {since} ({})", what.join(", ")))
}
