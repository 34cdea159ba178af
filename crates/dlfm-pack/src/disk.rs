//! What the disk says now, when packing and checking: a path's status in
//! the stored form, and how a recorded file differs from it.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
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

/// What a file's status says now: what the stale checks compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// Inode number.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time (seconds, nanoseconds).
    pub mtime: (i64, i64),
}

/// Looks files up directory by directory: each directory is opened once
/// (`O_PATH`) and each file looked up by name relative to it, so that a
/// check of N files in D directories walks D paths and makes N one-name
/// lookups, instead of walking every file's whole path (on a parallel file
/// system whose client does not cache, each component is a request).
#[derive(Default)]
pub struct Prober {
    dirs: BTreeMap<Vec<u8>, Option<OwnedFd>>,
}

impl Prober {
    /// A prober with no directory open yet.
    pub fn new() -> Prober {
        Prober::default()
    }

    /// The status of the file at `path` (links followed, as `stat`).
    pub fn status(&mut self, path: &[u8]) -> io::Result<Status> {
        let split = path.iter().rposition(|&b| b == b'/');
        let (dir, name) = match split {
            Some(0) => (&b"/"[..], &path[1..]),
            Some(i) if path.first() == Some(&b'/') => (&path[..i], &path[i + 1..]),
            _ => return status_by_path(path),
        };
        if name.is_empty() {
            return status_by_path(path);
        }
        let fd = self
            .dirs
            .entry(dir.to_vec())
            .or_insert_with(|| open_dir(dir).ok());
        let Some(fd) = fd else {
            return status_by_path(path);
        };
        let name = CString::new(name).map_err(|_| io::ErrorKind::InvalidInput)?;
        // SAFETY: an all-zero `stat` is a valid value to be overwritten.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `fd` is an open directory descriptor, `name` a
        // NUL-terminated string and `st` a writable `stat`, all alive across
        // the call.
        let r = unsafe { libc::fstatat(fd.as_raw_fd(), name.as_ptr(), &mut st, 0) };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Status {
            ino: st.st_ino,
            size: st.st_size as u64,
            mtime: (st.st_mtime, st.st_mtime_nsec),
        })
    }
}

/// `stat` by the whole path.
fn status_by_path(path: &[u8]) -> io::Result<Status> {
    let m = std::fs::metadata(Path::new(std::ffi::OsStr::from_bytes(path)))?;
    Ok(Status {
        ino: m.ino(),
        size: m.size(),
        mtime: (m.mtime(), m.mtime_nsec()),
    })
}

/// Opens the directory `dir` for lookups only.
fn open_dir(dir: &[u8]) -> io::Result<OwnedFd> {
    let c = CString::new(dir).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: `c` is a NUL-terminated path alive across the call.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// How the file at `path` differs on disk from `then` (inode, size and
/// modification time), phrased as "<path> changed since <since> (...)" or
/// "<path> is gone since <since>"; `None` if it is unchanged. `prober`
/// looks it up.
pub fn disk_change(
    prober: &mut Prober,
    path: &[u8],
    then: &StatView<'_>,
    since: &str,
) -> Option<String> {
    let name = String::from_utf8_lossy(path).into_owned();
    let now = match prober.status(path) {
        Err(e) => return Some(format!("{name} is gone since {since} ({e})")),
        Ok(now) => now,
    };
    let mut what = Vec::new();
    if now.ino != then.ino() {
        what.push(format!("inode {} -> {}", then.ino(), now.ino));
    }
    if now.size != then.size() {
        what.push(format!("size {} -> {}", then.size(), now.size));
    }
    if now.mtime != then.mtime() {
        what.push("modification time differs".to_string());
    }
    (!what.is_empty()).then(|| format!("{name} changed since {since} ({})", what.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_looked_up_by_directory_has_its_own_status() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::write(&a, b"12345").unwrap();
        std::os::unix::fs::symlink(&a, dir.path().join("link")).unwrap();
        let mut p = Prober::new();
        let bytes = |p: &Path| p.as_os_str().as_bytes().to_vec();
        let by_dir = p.status(&bytes(&a)).unwrap();
        assert_eq!(by_dir, status_by_path(&bytes(&a)).unwrap());
        assert_eq!(by_dir.size, 5);
        // Links are followed, as stat does; a missing name is an error.
        assert_eq!(p.status(&bytes(&dir.path().join("link"))).unwrap(), by_dir);
        let gone = p.status(&bytes(&dir.path().join("gone"))).unwrap_err();
        assert_eq!(gone.kind(), io::ErrorKind::NotFound);
        // The directory was opened once for all three.
        assert_eq!(p.dirs.len(), 1);
        // A file replaced after the directory was opened is seen as it is now.
        std::fs::remove_file(&a).unwrap();
        std::fs::write(&a, b"1").unwrap();
        assert_eq!(p.status(&bytes(&a)).unwrap().size, 1);
        // Paths without a directory part fall back to the whole path.
        assert!(p.status(b"no-such-relative-file").is_err());
        assert!(p.status(b"/").is_ok());
    }
}
