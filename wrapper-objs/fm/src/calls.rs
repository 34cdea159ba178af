//! The libc functions this library defines. Each answers from the cache
//! (replay), or calls libc's own and records what it gave (record), or just
//! calls libc's own (a call that is not a lookup of an absolute path, or
//! FMCaching off). Only absolute paths are lookups, as for ld.so's calls.
//!
//! `open` and friends are variadic in C; on x86_64 the optional mode is
//! passed in the third (fourth for `openat`) argument register, so they are
//! defined with that argument spelled out (it is only read with `O_CREAT` or
//! `O_TMPFILE`, which are never lookups). `fcntl`'s third argument likewise.

use core::ffi::{c_char, c_int, c_long, CStr};

use dlfm_cache::journal::{stored_open_flags, Record};
use dlfm_runtime::keys;
use libc::{mode_t, stat as Stat};

use crate::real::Next;
use crate::record;
use crate::replay::{self, Answer, Follow};
use crate::state::Sink;
use crate::{served, state, stored_stat, sys};

type PathStat = unsafe extern "C" fn(*const c_char, *mut Stat) -> c_int;
type AtStat = unsafe extern "C" fn(c_int, *const c_char, *mut Stat, c_int) -> c_int;
type FdStat = unsafe extern "C" fn(c_int, *mut Stat) -> c_int;
type Access = unsafe extern "C" fn(*const c_char, c_int) -> c_int;
type AtAccess = unsafe extern "C" fn(c_int, *const c_char, c_int, c_int) -> c_int;
type Open = unsafe extern "C" fn(*const c_char, c_int, mode_t) -> c_int;
type AtOpen = unsafe extern "C" fn(c_int, *const c_char, c_int, mode_t) -> c_int;
type FdOnly = unsafe extern "C" fn(c_int) -> c_int;
type FdFd = unsafe extern "C" fn(c_int, c_int) -> c_int;
type FdFdFlags = unsafe extern "C" fn(c_int, c_int, c_int) -> c_int;
type Fcntl = unsafe extern "C" fn(c_int, c_int, c_long) -> c_int;

/// `newfstatat`'s flag for `lstat`.
pub(crate) const NOFOLLOW: u32 = libc::AT_SYMLINK_NOFOLLOW as u32;

/// Sets errno and returns -1.
pub(crate) fn fail(errno: i32) -> c_int {
    // SAFETY: this thread's errno slot.
    unsafe { *libc::__errno_location() = errno };
    -1
}

/// This thread's errno.
pub(crate) fn errno() -> i32 {
    // SAFETY: this thread's errno slot.
    unsafe { *libc::__errno_location() }
}

/// A result for the journal: the value, or -errno.
pub(crate) fn result_of(r: c_int) -> i32 {
    if r < 0 {
        -errno()
    } else {
        r
    }
}

/// Returns a recorded answer as libc would.
pub(crate) fn give(a: Answer) -> c_int {
    match a {
        Answer::Ok(v) => v,
        Answer::Err(e) => fail(e),
    }
}

/// Whether `p` is the empty path (`AT_EMPTY_PATH` then names the
/// descriptor itself).
pub(crate) fn is_empty_path(p: *const c_char) -> bool {
    // SAFETY: a non-null path from libc's callers is NUL-terminated, so its
    // first byte is readable.
    !p.is_null() && unsafe { *p } == 0
}

/// The path at `p`, if it is absolute (only absolute paths are lookups).
pub(crate) fn absolute(p: *const c_char) -> Option<&'static [u8]> {
    if p.is_null() {
        return None;
    }
    // SAFETY: libc's callers pass NUL-terminated paths; the bytes are read
    // during the call only (the 'static is never kept).
    let b = unsafe { CStr::from_ptr(p) }.to_bytes();
    keys::is_absolute(b).then_some(b)
}

// ---- stat, lstat, fstatat -------------------------------------------------

/// `stat`/`lstat` of `path` into `buf` through the next `f`.
fn path_stat(f: &Next<PathStat>, path: *const c_char, buf: *mut Stat, follow: Follow) -> c_int {
    stat_like(path, follow, buf, || {
        f.call(|real| {
            // SAFETY: the next definition; the program's own call, unchanged.
            unsafe { real(path, buf) }
        })
    })
}

/// Answers or records a `stat`/`lstat` of `path` into `buf`; `call` makes
/// the real call (which fills `buf`).
pub(crate) fn stat_like(
    path: *const c_char,
    follow: Follow,
    buf: *mut Stat,
    call: impl FnOnce() -> c_int,
) -> c_int {
    let key = absolute(path);
    if let (Some(p), Some((cache, _))) = (key, state::cache()) {
        if let Some(a) = replay::stat(&cache, p, follow, buf) {
            return give(a);
        }
    }
    let r = call();
    if let Some((p, j)) = key.and_then(|p| Some((p, state::sink_for(p)?))) {
        record_stat(j, p, follow, result_of(r), buf);
    }
    r
}

/// `stat` or `lstat` of `path` by a system call of the interposer's own
/// (errno untouched, as every `sys` call): 0 or -errno, and the status.
pub(crate) fn own_status(path: &CStr, follow: Follow) -> (i32, Stat) {
    let mut st = sys::zeroed_stat();
    let r = match follow {
        Follow::Yes => sys::stat(path, &mut st),
        Follow::No => sys::lstat(path, &mut st),
    };
    (r.map_or_else(|e| -e.0, |()| 0), st)
}

/// Journals a `stat` or `lstat` that gave `result` (0 or -errno) and, on
/// success, `buf`.
pub(crate) fn record_stat(
    journal: Sink,
    path: &[u8],
    follow: Follow,
    result: i32,
    buf: *const Stat,
) {
    let stat = if result == 0 {
        // SAFETY: a successful stat filled the caller's buffer.
        stored_stat::store(unsafe { &*buf })
    } else {
        [0u8; dlfm_cache::layout::STAT_SIZE]
    };
    let flags = match follow {
        Follow::Yes => 0,
        Follow::No => NOFOLLOW,
    };
    record::append(
        journal,
        &Record::Stat {
            flags,
            result,
            stat: &stat,
            path,
        },
    );
}

// SAFETY: `PathStat` is `stat`'s C type.
static STAT: Next<PathStat> = unsafe { Next::new(c"stat") };
// SAFETY: `PathStat` is `stat64`'s C type.
static STAT64: Next<PathStat> = unsafe { Next::new(c"stat64") };
// SAFETY: `PathStat` is `lstat`'s C type.
static LSTAT: Next<PathStat> = unsafe { Next::new(c"lstat") };
// SAFETY: `PathStat` is `lstat64`'s C type.
static LSTAT64: Next<PathStat> = unsafe { Next::new(c"lstat64") };

/// `stat(2)`.
///
/// # Safety
/// As libc's: `path` NUL-terminated, `buf` a writable `struct stat`.
#[no_mangle]
pub unsafe extern "C" fn stat(path: *const c_char, buf: *mut Stat) -> c_int {
    path_stat(&STAT, path, buf, Follow::Yes)
}

/// `stat64` (the same `struct stat` on x86_64).
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn stat64(path: *const c_char, buf: *mut Stat) -> c_int {
    path_stat(&STAT64, path, buf, Follow::Yes)
}

/// `lstat(2)`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn lstat(path: *const c_char, buf: *mut Stat) -> c_int {
    path_stat(&LSTAT, path, buf, Follow::No)
}

/// `lstat64`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn lstat64(path: *const c_char, buf: *mut Stat) -> c_int {
    path_stat(&LSTAT64, path, buf, Follow::No)
}

/// `fstatat` through the next `f`: a path lookup for an absolute path with
/// flags 0 or `AT_SYMLINK_NOFOLLOW`; `fstat` for `AT_EMPTY_PATH` and "".
fn at_stat(
    f: &Next<AtStat>,
    dirfd: c_int,
    path: *const c_char,
    buf: *mut Stat,
    flags: c_int,
) -> c_int {
    at_stat_like(dirfd, path, buf, flags, || {
        f.call(|real| {
            // SAFETY: the next definition; the program's own call, unchanged.
            unsafe { real(dirfd, path, buf, flags) }
        })
    })
}

/// Answers or records an `fstatat(dirfd, path, buf, flags)`; `call` makes
/// the real call.
pub(crate) fn at_stat_like(
    dirfd: c_int,
    path: *const c_char,
    buf: *mut Stat,
    flags: c_int,
    call: impl FnOnce() -> c_int,
) -> c_int {
    let key = absolute(path);
    let follow = match flags as u32 {
        0 => Some(Follow::Yes),
        NOFOLLOW => Some(Follow::No),
        _ => None,
    };
    if let (Some(p), Some(fl), Some((cache, _))) = (key, follow, state::cache()) {
        if let Some(a) = replay::stat(&cache, p, fl, buf) {
            return give(a);
        }
    }
    let r = call();
    if r == 0 && is_empty_path(path) && flags & libc::AT_EMPTY_PATH != 0 {
        translate_fstat(dirfd, buf);
    }
    if let (Some((p, j)), Some(fl)) = (key.and_then(|p| Some((p, state::sink_for(p)?))), follow) {
        record_stat(j, p, fl, result_of(r), buf);
    }
    r
}

// SAFETY: `AtStat` is `fstatat`'s C type.
static FSTATAT: Next<AtStat> = unsafe { Next::new(c"fstatat") };
// SAFETY: `AtStat` is `fstatat64`'s C type.
static FSTATAT64: Next<AtStat> = unsafe { Next::new(c"fstatat64") };

/// `fstatat(2)`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn fstatat(
    dirfd: c_int,
    path: *const c_char,
    buf: *mut Stat,
    flags: c_int,
) -> c_int {
    at_stat(&FSTATAT, dirfd, path, buf, flags)
}

/// `fstatat64`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn fstatat64(
    dirfd: c_int,
    path: *const c_char,
    buf: *mut Stat,
    flags: c_int,
) -> c_int {
    at_stat(&FSTATAT64, dirfd, path, buf, flags)
}

// ---- fstat ----------------------------------------------------------------

/// Replaces the kernel's stat of a served memfd in `buf` (already filled
/// by a successful fstat of `fd`) with the recorded one.
pub(crate) fn translate_fstat(fd: c_int, buf: *mut Stat) {
    if let Some((cache, _)) = state::cache() {
        // SAFETY: the successful fstat filled `buf`; read it by value.
        let real = unsafe { core::ptr::read(buf) };
        replay::fstat(&cache, fd, &real, buf);
    }
}

/// `fstat` through the next `f`, translated for served descriptors.
fn fd_stat(f: &Next<FdStat>, fd: c_int, buf: *mut Stat) -> c_int {
    fd_stat_like(fd, buf, || {
        f.call(|real| {
            // SAFETY: the next definition; the program's own call, unchanged.
            unsafe { real(fd, buf) }
        })
    })
}

/// An `fstat(fd, buf)` made by `call`, translated for served descriptors.
pub(crate) fn fd_stat_like(fd: c_int, buf: *mut Stat, call: impl FnOnce() -> c_int) -> c_int {
    let r = call();
    if r == 0 {
        translate_fstat(fd, buf);
    }
    r
}

// SAFETY: `FdStat` is `fstat`'s C type.
static FSTAT: Next<FdStat> = unsafe { Next::new(c"fstat") };
// SAFETY: `FdStat` is `fstat64`'s C type.
static FSTAT64: Next<FdStat> = unsafe { Next::new(c"fstat64") };

/// `fstat(2)`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn fstat(fd: c_int, buf: *mut Stat) -> c_int {
    fd_stat(&FSTAT, fd, buf)
}

/// `fstat64`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn fstat64(fd: c_int, buf: *mut Stat) -> c_int {
    fd_stat(&FSTAT64, fd, buf)
}

// ---- access ---------------------------------------------------------------

/// Answers or records `access(path, R_OK)` (and `F_OK`, [`exists_like`]);
/// `call` makes the real call.
fn access_like(path: *const c_char, mode: c_int, call: impl FnOnce() -> c_int) -> c_int {
    if mode == libc::F_OK {
        return exists_like(path, call);
    }
    let key = absolute(path).filter(|_| keys::access_is_lookup(mode as u32));
    if let (Some(p), Some((cache, _))) = (key, state::cache()) {
        if let Some(a) = replay::access(&cache, p) {
            return give(a);
        }
    }
    let r = call();
    if let Some((p, j)) = key.and_then(|p| Some((p, state::sink_for(p)?))) {
        let result = result_of(r);
        record::append(
            j,
            &Record::Access {
                mode: mode as u32,
                result,
                path: p,
            },
        );
    }
    r
}

/// Answers or records `access(path, F_OK)` as the `stat` it amounts to: it
/// fails exactly where `stat` fails, with the same errno (the cache keeps
/// one `access` result per path, the `R_OK` one, which a file without read
/// permission would make wrong for `F_OK`). The pilot records the `stat`
/// (one more call, with errno kept) only when it agrees with the real
/// `access`; `call` makes the real call.
fn exists_like(path: *const c_char, call: impl FnOnce() -> c_int) -> c_int {
    let key = absolute(path);
    if let (Some(p), Some((cache, _))) = (key, state::cache()) {
        if let Some(a) = replay::exists(&cache, p) {
            return give(a);
        }
    }
    let r = call();
    if let Some((p, j)) = key.and_then(|p| Some((p, state::sink_for(p)?))) {
        // SAFETY: `absolute` read it as a NUL-terminated path.
        let (result, st) = own_status(unsafe { CStr::from_ptr(path) }, Follow::Yes);
        if result == result_of(r) {
            record_stat(j, p, Follow::Yes, result, &st);
        }
    }
    r
}

// SAFETY: `Access` is `access`'s C type.
static ACCESS: Next<Access> = unsafe { Next::new(c"access") };
// SAFETY: `AtAccess` is `faccessat`'s C type.
static FACCESSAT: Next<AtAccess> = unsafe { Next::new(c"faccessat") };

/// `access(2)`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn access(path: *const c_char, mode: c_int) -> c_int {
    access_like(path, mode, || {
        ACCESS.call(|real| {
            // SAFETY: the next definition; the program's own call, unchanged.
            unsafe { real(path, mode) }
        })
    })
}

/// `faccessat(2)`: a lookup only with flags 0 (an absolute path ignores
/// `dirfd`).
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn faccessat(
    dirfd: c_int,
    path: *const c_char,
    mode: c_int,
    flags: c_int,
) -> c_int {
    let call = || {
        FACCESSAT.call(|real| {
            // SAFETY: the next definition; the program's own call, unchanged.
            unsafe { real(dirfd, path, mode, flags) }
        })
    };
    if flags != 0 {
        return call();
    }
    access_like(path, mode, call)
}

// ---- open -----------------------------------------------------------------

/// Answers or records an open of `path` with `flags`; `call` makes the
/// real call. Lookups are read-only opens without `O_NOFOLLOW` (whose
/// result could differ from a plain open's).
fn open_like(path: *const c_char, flags: c_int, call: impl FnOnce() -> c_int) -> c_int {
    let lookup =
        keys::open_is_lookup(libc::AT_FDCWD, flags as u32) && flags & libc::O_NOFOLLOW == 0;
    let key = absolute(path).filter(|_| lookup);
    if let (Some(p), Some((cache, bytes))) = (key, state::cache()) {
        if let Some(a) = replay::open(&cache, bytes, p, flags & libc::O_CLOEXEC != 0) {
            return give(a);
        }
    }
    let r = call();
    if let Some((p, j)) = key.and_then(|p| Some((p, state::sink_for(p)?))) {
        let result = result_of(r);
        let mut st = sys::zeroed_stat();
        let have = r >= 0 && sys::fstat(r, &mut st).is_ok();
        record::append(
            j,
            &Record::Open {
                flags: stored_open_flags(flags as u32),
                result,
                stat: have.then(|| stored_stat::store(&st)).as_ref(),
                path: p,
            },
        );
    }
    r
}

// SAFETY: `Open` is `open`'s C type.
static OPEN: Next<Open> = unsafe { Next::new(c"open") };
// SAFETY: `Open` is `open64`'s C type.
static OPEN64: Next<Open> = unsafe { Next::new(c"open64") };
// SAFETY: `Open` (the plain call's type; `__open_2` takes the same first arguments and ignores the mode).
static OPEN_2: Next<Open> = unsafe { Next::new(c"__open_2") };
// SAFETY: `Open` (the plain call's type; `__open64_2` takes the same first arguments and ignores the mode).
static OPEN64_2: Next<Open> = unsafe { Next::new(c"__open64_2") };
// SAFETY: `AtOpen` is `openat`'s C type.
static OPENAT: Next<AtOpen> = unsafe { Next::new(c"openat") };
// SAFETY: `AtOpen` is `openat64`'s C type.
static OPENAT64: Next<AtOpen> = unsafe { Next::new(c"openat64") };
// SAFETY: `AtOpen` (the plain call's type; `__openat_2` takes the same first arguments and ignores the mode).
static OPENAT_2: Next<AtOpen> = unsafe { Next::new(c"__openat_2") };
// SAFETY: `AtOpen` (the plain call's type; `__openat64_2` takes the same first arguments and ignores the mode).
static OPENAT64_2: Next<AtOpen> = unsafe { Next::new(c"__openat64_2") };

/// An open of `path` through the next `f` (type `Open`).
fn path_open(f: &Next<Open>, path: *const c_char, flags: c_int, mode: mode_t) -> c_int {
    open_like(path, flags, || {
        f.call(|real| {
            // SAFETY: the next definition; the program's own call, unchanged.
            unsafe { real(path, flags, mode) }
        })
    })
}

/// An open relative to `dirfd` through the next `f` (type `AtOpen`); a
/// lookup only for an absolute path (which ignores `dirfd`).
fn at_open(
    f: &Next<AtOpen>,
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mode: mode_t,
) -> c_int {
    open_like(path, flags, || {
        f.call(|real| {
            // SAFETY: the next definition; the program's own call, unchanged.
            unsafe { real(dirfd, path, flags, mode) }
        })
    })
}

/// `open(2)`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn open(path: *const c_char, flags: c_int, mode: mode_t) -> c_int {
    path_open(&OPEN, path, flags, mode)
}

/// `open64`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn open64(path: *const c_char, flags: c_int, mode: mode_t) -> c_int {
    path_open(&OPEN64, path, flags, mode)
}

/// `__open_2` (`open` under `_FORTIFY_SOURCE`, no mode).
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn __open_2(path: *const c_char, flags: c_int) -> c_int {
    path_open(&OPEN_2, path, flags, 0)
}

/// `__open64_2`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn __open64_2(path: *const c_char, flags: c_int) -> c_int {
    path_open(&OPEN64_2, path, flags, 0)
}

/// `openat(2)`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn openat(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mode: mode_t,
) -> c_int {
    at_open(&OPENAT, dirfd, path, flags, mode)
}

/// `openat64`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn openat64(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mode: mode_t,
) -> c_int {
    at_open(&OPENAT64, dirfd, path, flags, mode)
}

/// `__openat_2`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn __openat_2(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int {
    at_open(&OPENAT_2, dirfd, path, flags, 0)
}

/// `__openat64_2`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn __openat64_2(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int {
    at_open(&OPENAT64_2, dirfd, path, flags, 0)
}

// ---- fopen ----------------------------------------------------------------

type Fopen = unsafe extern "C" fn(*const c_char, *const c_char) -> *mut libc::FILE;

// SAFETY: `Fopen` is `fopen`'s C type.
static FOPEN: Next<Fopen> = unsafe { Next::new(c"fopen") };
// SAFETY: `Fopen` is `fopen64`'s C type.
static FOPEN64: Next<Fopen> = unsafe { Next::new(c"fopen64") };

/// `fopen` through the next `f`: a lookup for a read-only mode ("r", "rb",
/// "re", ...: no '+', 'w', 'a'); served as a stream over a memfd.
fn fopen_like(f: &Next<Fopen>, path: *const c_char, mode: *const c_char) -> *mut libc::FILE {
    let m = if mode.is_null() {
        &[][..]
    } else {
        // SAFETY: fopen's callers pass a NUL-terminated mode.
        unsafe { CStr::from_ptr(mode) }.to_bytes()
    };
    let read_only = m.first() == Some(&b'r') && !m.contains(&b'+');
    let key = absolute(path).filter(|_| read_only);
    if let (Some(p), Some((cache, bytes))) = (key, state::cache()) {
        match replay::open(&cache, bytes, p, m.contains(&b'e')) {
            Some(Answer::Ok(fd)) => {
                // SAFETY: `fd` is the memfd just made; "r" is a valid mode.
                let stream = unsafe { libc::fdopen(fd, c"r".as_ptr()) };
                if !stream.is_null() {
                    return stream;
                }
                served::remove(fd);
                sys::close(fd);
            }
            Some(Answer::Err(e)) => {
                fail(e);
                return core::ptr::null_mut();
            }
            None => {}
        }
    }
    let stream = f.call(|real| {
        // SAFETY: the next definition; the program's own call, unchanged.
        unsafe { real(path, mode) }
    });
    if let Some((p, j)) = key.and_then(|p| Some((p, state::sink_for(p)?))) {
        let saved = errno();
        let fd = if stream.is_null() {
            -1
        } else {
            // SAFETY: a stream fopen returned.
            unsafe { libc::fileno(stream) }
        };
        let mut st = sys::zeroed_stat();
        let have = fd >= 0 && sys::fstat(fd, &mut st).is_ok();
        record::append(
            j,
            &Record::Open {
                flags: libc::O_RDONLY as u32,
                result: if stream.is_null() { -saved } else { fd },
                stat: have.then(|| stored_stat::store(&st)).as_ref(),
                path: p,
            },
        );
    }
    stream
}

/// `fopen(3)`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn fopen(path: *const c_char, mode: *const c_char) -> *mut libc::FILE {
    fopen_like(&FOPEN, path, mode)
}

/// `fopen64`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn fopen64(path: *const c_char, mode: *const c_char) -> *mut libc::FILE {
    fopen_like(&FOPEN64, path, mode)
}

// ---- readlink -------------------------------------------------------------

type Readlink = unsafe extern "C" fn(*const c_char, *mut c_char, usize) -> isize;
type AtReadlink = unsafe extern "C" fn(c_int, *const c_char, *mut c_char, usize) -> isize;

// SAFETY: `Readlink` is `readlink`'s C type.
static READLINK: Next<Readlink> = unsafe { Next::new(c"readlink") };
// SAFETY: `AtReadlink` is `readlinkat`'s C type.
static READLINKAT: Next<AtReadlink> = unsafe { Next::new(c"readlinkat") };

/// Answers `readlink(path)` from the recorded `lstat` or calls `call`; in
/// the pilot, records the path's `lstat` (which says what readlink gives
/// for anything but a link).
fn readlink_like(path: *const c_char, call: impl FnOnce() -> isize) -> isize {
    let key = absolute(path);
    if let (Some(p), Some((cache, _))) = (key, state::cache()) {
        if let Some(a) = replay::readlink(&cache, p) {
            return give(a) as isize;
        }
    }
    let r = call();
    // Replay answers readlink from the lstat for anything but a link: a
    // link's readlink (r >= 0) is never served, so never worth noting.
    let sink = key
        .and_then(|p| Some((p, state::sink_for(p)?)))
        .filter(|(_, sink)| *sink == Sink::Pilot || r < 0);
    if let Some((p, j)) = sink {
        // SAFETY: `key` is Some only for a non-null path, NUL-terminated
        // as libc's callers pass it.
        let (result, st) = own_status(unsafe { CStr::from_ptr(path) }, Follow::No);
        record_stat(j, p, Follow::No, result, &st);
    }
    r
}

/// `readlink(2)`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn readlink(path: *const c_char, buf: *mut c_char, size: usize) -> isize {
    readlink_like(path, || {
        READLINK.call(|real| {
            // SAFETY: the next definition; the program's own call, unchanged.
            unsafe { real(path, buf, size) }
        })
    })
}

/// `readlinkat(2)` (a lookup for an absolute path, which ignores `dirfd`).
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn readlinkat(
    dirfd: c_int,
    path: *const c_char,
    buf: *mut c_char,
    size: usize,
) -> isize {
    readlink_like(path, || {
        READLINKAT.call(|real| {
            // SAFETY: the next definition; the program's own call, unchanged.
            unsafe { real(dirfd, path, buf, size) }
        })
    })
}

// ---- descriptors: close, dup, fcntl ----------------------------------------

// SAFETY: `FdOnly` is `close`'s C type.
static CLOSE: Next<FdOnly> = unsafe { Next::new(c"close") };
// SAFETY: `FdOnly` is `dup`'s C type.
static DUP: Next<FdOnly> = unsafe { Next::new(c"dup") };
// SAFETY: `FdFd` is `dup2`'s C type.
static DUP2: Next<FdFd> = unsafe { Next::new(c"dup2") };
// SAFETY: `FdFdFlags` is `dup3`'s C type.
static DUP3: Next<FdFdFlags> = unsafe { Next::new(c"dup3") };
// SAFETY: `Fcntl` is `fcntl`'s C type.
static FCNTL: Next<Fcntl> = unsafe { Next::new(c"fcntl") };
// SAFETY: `Fcntl` is `fcntl64`'s C type.
static FCNTL64: Next<Fcntl> = unsafe { Next::new(c"fcntl64") };

/// `close(2)`: forgets a served descriptor first.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    served::remove(fd);
    CLOSE.call(|real| {
        // SAFETY: the next definition; the program's own call, unchanged.
        unsafe { real(fd) }
    })
}

/// `dup(2)`: the copy serves the same file.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn dup(fd: c_int) -> c_int {
    let r = DUP.call(|real| {
        // SAFETY: the next definition; the program's own call, unchanged.
        unsafe { real(fd) }
    });
    if r >= 0 {
        served::copy(fd, r);
    }
    r
}

/// `dup2(2)`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn dup2(old: c_int, new: c_int) -> c_int {
    let r = DUP2.call(|real| {
        // SAFETY: the next definition; the program's own call, unchanged.
        unsafe { real(old, new) }
    });
    if r >= 0 && old != new {
        served::copy(old, new);
    }
    r
}

/// `dup3(2)`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    let r = DUP3.call(|real| {
        // SAFETY: the next definition; the program's own call, unchanged.
        unsafe { real(old, new, flags) }
    });
    if r >= 0 {
        served::copy(old, new);
    }
    r
}

/// `fcntl` through the next `f`: `F_DUPFD` copies serve the same file.
fn fcntl_like(f: &Next<Fcntl>, fd: c_int, cmd: c_int, arg: c_long) -> c_int {
    let r = f.call(|real| {
        // SAFETY: the next definition; the program's own call, unchanged.
        unsafe { real(fd, cmd, arg) }
    });
    if r >= 0 && (cmd == libc::F_DUPFD || cmd == libc::F_DUPFD_CLOEXEC) {
        served::copy(fd, r);
    }
    r
}

/// `fcntl(2)`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn fcntl(fd: c_int, cmd: c_int, arg: c_long) -> c_int {
    fcntl_like(&FCNTL, fd, cmd, arg)
}

/// `fcntl64`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn fcntl64(fd: c_int, cmd: c_int, arg: c_long) -> c_int {
    fcntl_like(&FCNTL64, fd, cmd, arg)
}
