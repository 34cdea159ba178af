//! Opening the wrapper's own files (the cache, the journal, a trace file) so
//! that no open can block and nothing but a regular file is used.
//!
//! A misconfigured path must never stop a job: a FIFO would block an
//! ordinary open until a writer (or reader) appears, and a device or a
//! directory is never a dlfm file. So every open adds `O_NONBLOCK` (which
//! changes nothing for a regular file) and the descriptor is checked with
//! `fstat` before use; anything else is closed and refused.

use core::mem::MaybeUninit;

use crate::config::PathBuf;
use crate::sys::{self, nr};

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
/// [`sys::move_high`]). On success `stat` holds the file's status.
pub fn open_regular(
    path: &PathBuf,
    flags: u32,
    stat: &mut MaybeUninit<nr::stat>,
) -> Result<i32, OpenError> {
    // SAFETY: `path` is NUL-terminated.
    let fd = unsafe { sys::open(path.as_ptr(), flags | nr::O_NONBLOCK | nr::O_CLOEXEC, 0) };
    if fd < 0 {
        return Err(OpenError::Open);
    }
    let fd = fd as i32;
    match sys::stat_of(fd, stat) {
        Some(st) if st.st_mode & nr::S_IFMT == nr::S_IFREG => Ok(sys::move_high(fd)),
        _ => {
            sys::close(fd);
            Err(OpenError::NotRegular)
        }
    }
}
