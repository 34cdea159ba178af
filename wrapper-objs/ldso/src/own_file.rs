//! The wrapper's own files (the cache, the journal, a trace file): opened so
//! that no open can block and nothing but a regular file is used, and kept
//! honest against a program that closes or replaces their descriptors.
//!
//! A misconfigured path must never stop a job: a FIFO would block an
//! ordinary open until a writer (or reader) appears, and a device or a
//! directory is never a dlfm file. So every open adds `O_NONBLOCK` (which
//! changes nothing for a regular file) and the descriptor is checked with
//! `fstat` before use; anything else is closed and refused.
//!
//! Programs may close every descriptor they did not open themselves
//! (`os.closerange(3, ...)`, `close_range(3, ~0U, 0)`) or `dup2` another file
//! onto one of ours. So [`OwnFile::ensure`] compares the descriptor's
//! identity (device and inode) with the file's before a use that matters
//! (once per library in replay, before each journal or trace write), and
//! [`OwnFile::with`] retries an operation that failed with EBADF. When the
//! descriptor is no longer ours, the file is opened again by its absolute
//! path and accepted only if it is the same file; a number that now belongs
//! to the program is never closed, read or written. When the file cannot be
//! had again, the caller does without it: replay turns served opens into
//! misses (ld.so reads the libraries from the file system, as without dlfm),
//! recording and tracing stop writing.

use crate::sys::{self, errno, nr, Status};
use dlfm_runtime::fixed_path::FixedPath;

/// Why a file of ours could not be used.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// The open itself failed (missing, no permission, a symlink where none
    /// is allowed, ...).
    Open,
    /// It opened, but is not a regular file (a FIFO, a device, a directory).
    NotRegular,
}

/// Opens `path` with `flags` (plus `O_NONBLOCK | O_CLOEXEC`), checks that it
/// is a regular file, and moves the descriptor high (see
/// [`sys::move_high`]). Returns the descriptor and the file's status.
fn open_regular(path: &FixedPath, flags: u32) -> Result<(i32, Status), OpenError> {
    open_regular_mode(path, flags, 0)
}

/// [`open_regular`] with the `mode` a created file gets (node-local
/// staging creates its files with `O_CREAT`).
pub fn open_regular_mode(
    path: &FixedPath,
    flags: u32,
    mode: u32,
) -> Result<(i32, Status), OpenError> {
    // SAFETY: `path` is NUL-terminated.
    let fd = unsafe { sys::open(path.as_ptr(), flags | nr::O_NONBLOCK | nr::O_CLOEXEC, mode) };
    if sys::errno_of(fd).is_some() {
        return Err(OpenError::Open);
    }
    let fd = fd as i32;
    match sys::status(fd, false) {
        Some(st) if st.mode & nr::S_IFMT == nr::S_IFREG => Ok((sys::move_high(fd), st)),
        _ => {
            sys::close(fd);
            Err(OpenError::NotRegular)
        }
    }
}

/// One of the wrapper's own open files: its descriptor, identity, absolute
/// path and the flags to open it again with.
pub struct OwnFile {
    fd: i32,
    identity: (u64, u64),
    path: FixedPath,
    flags: u32,
}

impl OwnFile {
    /// No file (all zero, so that the state lives in `.bss`): no file has
    /// the identity (0, 0) and the empty path opens nothing.
    pub const EMPTY: OwnFile = OwnFile {
        fd: 0,
        identity: (0, 0),
        path: FixedPath::EMPTY,
        flags: 0,
    };

    /// Opens `path` with `flags` (see [`open_regular`]) and holds it;
    /// returns the descriptor and the file's status. If the absolute path
    /// does not fit, the file is held all the same but cannot be opened
    /// again once the program closes it.
    pub fn open(&mut self, path: &FixedPath, flags: u32) -> Result<(i32, Status), OpenError> {
        let (fd, status) = open_regular(path, flags)?;
        self.fd = fd;
        self.identity = status.identity;
        self.flags = flags;
        // On failure the path is left empty, and empty opens nothing.
        let _ = self.path.set(b"") && self.path.push_absolute(path.as_bytes(), sys::getcwd);
        Ok((fd, status))
    }

    /// Like [`OwnFile::open`], creating the file with `mode` if it does not
    /// exist (`flags` holds `O_CREAT`); a later reopen does not create it
    /// again.
    pub fn create(&mut self, path: &FixedPath, flags: u32, mode: u32) -> Result<(), OpenError> {
        let (fd, status) = open_regular_mode(path, flags, mode)?;
        self.fd = fd;
        self.identity = status.identity;
        self.flags = flags & !nr::O_CREAT;
        let _ = self.path.set(b"") && self.path.push_absolute(path.as_bytes(), sys::getcwd);
        Ok(())
    }

    /// Closes the file and forgets it.
    pub fn close(&mut self) {
        sys::close(self.fd);
        self.identity = (0, 0);
    }

    /// The descriptor, reopened first if the program closed or replaced it;
    /// `None` if the file cannot be had again.
    pub fn ensure(&mut self) -> Option<i32> {
        let ours = sys::status(self.fd, true).map(|st| st.identity) == Some(self.identity);
        if ours || self.reopen() {
            Some(self.fd)
        } else {
            None
        }
    }

    /// Runs `op` on the descriptor; if it fails with EBADF (the program
    /// closed it meanwhile), reopens the file and runs `op` once more.
    pub fn with(&mut self, op: impl Fn(i32) -> i64) -> i64 {
        let r = op(self.fd);
        if r == -i64::from(errno::EBADF) && self.reopen() {
            op(self.fd)
        } else {
            r
        }
    }

    /// Opens the file again by its absolute path; true if it is the same
    /// file as before.
    fn reopen(&mut self) -> bool {
        match open_regular(&self.path, self.flags) {
            Ok((fd, st)) if st.identity == self.identity => {
                self.fd = fd;
                true
            }
            Ok((fd, _)) => {
                sys::close(fd);
                false
            }
            Err(_) => false,
        }
    }
}
