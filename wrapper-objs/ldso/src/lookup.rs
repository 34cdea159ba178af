//! Lookups in ld.so's calls: reads the path out of ld.so's memory and asks
//! `dlfm_runtime::keys` whether the call is one that record and replay
//! share (see there for the rules).
//!
//! A relative path (ld.so probes the working directory for an empty entry
//! of a RUNPATH such as `$ORIGIN:`, or a relative `LD_LIBRARY_PATH` entry)
//! is a lookup of `<working directory>/<path>`, joined in `rel`: recorded
//! with the directory it was relative to, and served when the replay runs
//! in the same directory (elsewhere it is another path, which the cache does
//! not hold: it passes to the kernel).

use dlfm_runtime::fixed_path::{FixedPath, PATH_MAX};
use dlfm_runtime::keys;

use crate::sys;

/// The path at `p` as a lookup key: as it is if absolute; if relative and
/// `rel` is given, joined to the working directory in `rel`; `None` for a
/// relative path without `rel`, an empty one, or one too long.
fn key_path(p: u64, rel: Option<&mut FixedPath>) -> Option<&[u8]> {
    if p == 0 {
        return None;
    }
    // SAFETY: ld.so passes NUL-terminated strings; at most PATH_MAX bytes are
    // read, stopping at the NUL.
    let len = unsafe { dlfm_bytes::c_strlen(p as *const u8, PATH_MAX) }?;
    // SAFETY: `len` bytes before the NUL are readable for the call's duration.
    let path: &'static [u8] = unsafe { core::slice::from_raw_parts(p as *const u8, len) };
    if keys::is_absolute(path) {
        return Some(path);
    }
    let rel = rel?;
    (!path.is_empty() && rel.set(b"") && rel.push_absolute(path, sys::getcwd))
        .then(|| rel.as_bytes())
}

/// `openat(AT_FDCWD, path, flags)` opening a path read-only (a relative
/// one joined in `rel`, if given).
pub fn open_key<'a>(args: &[u64; 6], rel: Option<&'a mut FixedPath>) -> Option<&'a [u8]> {
    if !keys::open_is_lookup(args[0] as i32, args[2] as u32) {
        return None;
    }
    key_path(args[1], rel)
}

/// `newfstatat(AT_FDCWD, path, buf, 0)`: `stat` of a path (a relative one
/// joined in `rel`, if given).
pub fn stat_key<'a>(args: &[u64; 6], rel: Option<&'a mut FixedPath>) -> Option<&'a [u8]> {
    if !keys::stat_is_lookup(args[0] as i32, args[3] as u32) || args[3] >> 32 != 0 {
        return None;
    }
    key_path(args[1], rel)
}

/// `newfstatat(fd, "", buf, AT_EMPTY_PATH)`: `fstat` of descriptor `fd`.
pub fn fstat_fd(args: &[u64; 6]) -> Option<i64> {
    let empty = args[1] != 0
        // SAFETY: a non-null path argument points at a NUL-terminated string.
        && unsafe { *(args[1] as *const u8) } == 0;
    keys::is_fstat(empty, args[3] as u32).then(|| i64::from(args[0] as i32))
}

/// `access(path, R_OK)` (`faccessat(AT_FDCWD, path, R_OK)` on aarch64)
/// of a path (a relative one joined in `rel`, if given): the path and the
/// mode.
pub fn access_key<'a>(args: &[u64; 6], rel: Option<&'a mut FixedPath>) -> Option<(&'a [u8], u32)> {
    let (path, mode) = sys::access_args(args)?;
    if !keys::access_is_lookup(mode) {
        return None;
    }
    Some((key_path(path, rel)?, mode))
}
