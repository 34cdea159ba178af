//! `statx`: the stat call of programs built with newer toolchains (Rust's
//! `std::fs::metadata`, coreutils). An absolute path looked up with flags
//! that only choose whether to follow a final link is answered from the
//! same cache entry as `stat`/`lstat` (traced as those): the recorded
//! `struct stat` becomes a `struct statx` with the basic fields
//! (`STATX_BASIC_STATS`, as the kernel reports them; no birth time, which
//! the kernel may leave out too). The pilot records a `statx` that reported
//! every basic field as the `stat` it amounts to.

use core::ffi::{c_char, c_int, c_uint};

use libc::{stat as Stat, statx as Statx};

use crate::calls::{absolute, give, is_empty_path, record_stat, result_of, NOFOLLOW};
use crate::real::Next;
use crate::replay::{self, Answer, Follow};
use crate::state;
use crate::sys::zeroed_stat;

type StatxFn = unsafe extern "C" fn(c_int, *const c_char, c_int, c_uint, *mut Statx) -> c_int;

/// Flags that leave a `statx` a plain lookup: whether to follow a final
/// link, not triggering an automount, and not forcing a sync with a remote
/// server.
const LOOKUP_FLAGS: u32 = NOFOLLOW | libc::AT_NO_AUTOMOUNT as u32 | libc::AT_STATX_DONT_SYNC as u32;

/// Which stat a `statx` with `flags` asks for, if it is a plain lookup.
fn follow_of(flags: c_int) -> Option<Follow> {
    let flags = flags as u32;
    if flags & !LOOKUP_FLAGS != 0 {
        None
    } else if flags & NOFOLLOW != 0 {
        Some(Follow::No)
    } else {
        Some(Follow::Yes)
    }
}

/// The `struct stat` a `statx` result amounts to.
fn stat_of(x: &Statx) -> Stat {
    let mut st = zeroed_stat();
    st.st_dev = libc::makedev(x.stx_dev_major, x.stx_dev_minor);
    st.st_ino = x.stx_ino;
    st.st_nlink = x.stx_nlink as libc::nlink_t;
    st.st_mode = x.stx_mode.into();
    st.st_uid = x.stx_uid;
    st.st_gid = x.stx_gid;
    st.st_rdev = libc::makedev(x.stx_rdev_major, x.stx_rdev_minor);
    st.st_size = x.stx_size as i64;
    st.st_blksize = x.stx_blksize as _;
    st.st_blocks = x.stx_blocks as i64;
    st.st_atime = x.stx_atime.tv_sec;
    st.st_atime_nsec = x.stx_atime.tv_nsec.into();
    st.st_mtime = x.stx_mtime.tv_sec;
    st.st_mtime_nsec = x.stx_mtime.tv_nsec.into();
    st.st_ctime = x.stx_ctime.tv_sec;
    st.st_ctime_nsec = x.stx_ctime.tv_nsec.into();
    st
}

/// Fills the caller's `struct statx` with the basic fields of `st`.
fn fill(out: *mut Statx, st: &Stat) {
    // SAFETY: `struct statx` is plain integers, for which zero is valid.
    let mut x: Statx = unsafe { core::mem::zeroed() };
    x.stx_mask = libc::STATX_BASIC_STATS;
    x.stx_dev_major = libc::major(st.st_dev);
    x.stx_dev_minor = libc::minor(st.st_dev);
    x.stx_ino = st.st_ino;
    x.stx_nlink = st.st_nlink as libc::c_uint;
    x.stx_mode = st.st_mode as u16;
    x.stx_uid = st.st_uid;
    x.stx_gid = st.st_gid;
    x.stx_rdev_major = libc::major(st.st_rdev);
    x.stx_rdev_minor = libc::minor(st.st_rdev);
    x.stx_size = st.st_size as u64;
    x.stx_blksize = st.st_blksize as u32;
    x.stx_blocks = st.st_blocks as u64;
    x.stx_atime.tv_sec = st.st_atime;
    x.stx_atime.tv_nsec = st.st_atime_nsec as u32;
    x.stx_mtime.tv_sec = st.st_mtime;
    x.stx_mtime.tv_nsec = st.st_mtime_nsec as u32;
    x.stx_ctime.tv_sec = st.st_ctime;
    x.stx_ctime.tv_nsec = st.st_ctime_nsec as u32;
    // SAFETY: the caller passed a writable `struct statx`.
    unsafe { out.write(x) };
}

// SAFETY: `StatxFn` is `statx`'s C type.
static STATX: Next<StatxFn> = unsafe { Next::new(c"statx") };

/// `statx(2)`.
///
/// # Safety
/// As libc's: `path` NUL-terminated, `buf` a writable `struct statx`.
#[no_mangle]
pub unsafe extern "C" fn statx(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mask: c_uint,
    buf: *mut Statx,
) -> c_int {
    let key = absolute(path);
    let follow = follow_of(flags);
    if let (Some(p), Some(fl), Some((cache, _))) = (key, follow, state::cache()) {
        let mut st = zeroed_stat();
        if let Some(a) = replay::stat(&cache, p, fl, &mut st) {
            if let Answer::Ok(_) = a {
                fill(buf, &st);
            }
            return give(a);
        }
    }
    let r = STATX.call(|real| {
        // SAFETY: the next definition; the program's own call, unchanged.
        unsafe { real(dirfd, path, flags, mask, buf) }
    });
    if r == 0 && is_empty_path(path) && flags & libc::AT_EMPTY_PATH != 0 {
        if let Some((cache, _)) = state::cache() {
            // SAFETY: the successful statx filled `buf`.
            let real_stat = stat_of(unsafe { &*buf });
            let mut st = zeroed_stat();
            if replay::fstat(&cache, dirfd, &real_stat, &mut st) {
                fill(buf, &st);
            }
        }
    }
    if let (Some((p, j)), Some(fl)) = (key.and_then(|p| Some((p, state::sink_for(p)?))), follow) {
        if r != 0 {
            record_stat(j, p, fl, result_of(r), core::ptr::null());
        } else {
            // SAFETY: the successful statx filled `buf`.
            let x = unsafe { &*buf };
            if x.stx_mask & libc::STATX_BASIC_STATS == libc::STATX_BASIC_STATS {
                record_stat(j, p, fl, 0, &stat_of(x));
            }
        }
    }
    r
}
