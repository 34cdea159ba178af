//! Lookups in ld.so's calls: reads the path out of ld.so's memory and asks
//! `dlfm_runtime::keys` whether the call is one that record and replay
//! share (see there for the rules).

use dlfm_runtime::fixed_path::PATH_MAX;
use dlfm_runtime::keys;

use crate::sys;

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
    keys::is_absolute(path).then_some(path)
}

/// `openat(AT_FDCWD, path, flags)` opening an absolute path read-only.
pub fn open_key(args: &[u64; 6]) -> Option<&'static [u8]> {
    if !keys::open_is_lookup(args[0] as i32, args[2] as u32) {
        return None;
    }
    absolute_path(args[1])
}

/// `newfstatat(AT_FDCWD, path, buf, 0)`: `stat` of an absolute path.
pub fn stat_key(args: &[u64; 6]) -> Option<&'static [u8]> {
    if !keys::stat_is_lookup(args[0] as i32, args[3] as u32) || args[3] >> 32 != 0 {
        return None;
    }
    absolute_path(args[1])
}

/// `newfstatat(fd, "", buf, AT_EMPTY_PATH)`: `fstat` of descriptor `fd`.
pub fn fstat_fd(args: &[u64; 6]) -> Option<i64> {
    let empty = args[1] != 0
        // SAFETY: a non-null path argument points at a NUL-terminated string.
        && unsafe { *(args[1] as *const u8) } == 0;
    keys::is_fstat(empty, args[3] as u32).then(|| i64::from(args[0] as i32))
}

/// `access(path, R_OK)` (`faccessat(AT_FDCWD, path, R_OK)` on aarch64)
/// of an absolute path: the path and the mode.
pub fn access_key(args: &[u64; 6]) -> Option<(&'static [u8], u32)> {
    let (path, mode) = sys::access_args(args)?;
    if !keys::access_is_lookup(mode) {
        return None;
    }
    Some((absolute_path(path)?, mode))
}
