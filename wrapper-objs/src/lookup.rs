//! Which calls are *lookups*: the path-keyed questions ld.so asks that dlfm
//! records in the pilot and answers in replay. Record and replay share these
//! filters so that whatever is recorded is exactly what can be replayed.
//!
//! Only absolute paths are lookups (a relative name depends on the working
//! directory of the moment), and only read-only opens, plain `stat`
//! (`newfstatat(AT_FDCWD, path, buf, 0)`) and `access(path, R_OK)`.

use crate::config::PATH_MAX;
use crate::sys::{self, nr};

/// The absolute path at `p`, if it is one and fits in PATH_MAX.
fn absolute_path(p: u64) -> Option<&'static [u8]> {
    if p == 0 {
        return None;
    }
    // SAFETY: ld.so passes NUL-terminated strings; at most PATH_MAX bytes are
    // read, stopping at the NUL.
    let len = unsafe { dlfm_bytes::c_strlen(p as *const u8, PATH_MAX) }?;
    // SAFETY: `len` bytes before the NUL are readable for the call's duration.
    let path: &'static [u8] = unsafe { core::slice::from_raw_parts(p as *const u8, len) };
    match path.first() {
        Some(b'/') => Some(path),
        _ => None,
    }
}

/// `openat(AT_FDCWD, path, flags)` opening an absolute path read-only.
pub fn open_key(args: &[u64; 6]) -> Option<&'static [u8]> {
    let flags = args[2] as u32;
    let refused = nr::O_CREAT | nr::O_TRUNC | nr::O_DIRECTORY | nr::O_PATH | nr::O_TMPFILE;
    if args[0] as i32 != sys::AT_FDCWD
        || flags & nr::O_ACCMODE != nr::O_RDONLY
        || flags & refused != 0
    {
        return None;
    }
    absolute_path(args[1])
}

/// `newfstatat(AT_FDCWD, path, buf, 0)`: `stat` of an absolute path.
pub fn stat_key(args: &[u64; 6]) -> Option<&'static [u8]> {
    if args[0] as i32 != sys::AT_FDCWD || args[3] != 0 {
        return None;
    }
    absolute_path(args[1])
}

/// `newfstatat(fd, "", buf, AT_EMPTY_PATH)`: `fstat` of descriptor `fd`.
pub fn fstat_fd(args: &[u64; 6]) -> Option<i64> {
    let empty = args[1] != 0
        // SAFETY: a non-null path argument points at a NUL-terminated string.
        && unsafe { *(args[1] as *const u8) } == 0;
    if empty && args[3] as u32 & sys::AT_EMPTY_PATH != 0 {
        Some(i64::from(args[0] as i32))
    } else {
        None
    }
}

/// `access(path, R_OK)` of an absolute path.
pub fn access_key(args: &[u64; 6]) -> Option<&'static [u8]> {
    if args[1] as u32 != nr::R_OK {
        return None;
    }
    absolute_path(args[0])
}
