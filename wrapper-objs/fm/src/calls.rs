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

use dlfm_cache::journal::Record;
use dlfm_runtime::keys;
use libc::{mode_t, stat as Stat};

use crate::real::Next;
use crate::record::{self, stat_bytes};
use crate::replay::{self, Answer, Follow};
use crate::state::Sink;
use crate::{served, state, sys};

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

/// The next definition as a function of type `F`, or `None` if libc has none.
///
/// # Safety
/// `F` must be the function's C type.
pub(crate) unsafe fn next<F: Copy>(n: &Next) -> Option<F> {
    let p = n.get();
    // SAFETY: a non-null dlsym result is the function, of type F (vouched
    // for by the caller); fn pointers and data pointers have one size here.
    (!p.is_null()).then(|| unsafe { core::mem::transmute_copy(&p) })
}

// ---- stat, lstat, fstatat -------------------------------------------------

/// `stat`/`lstat` of `path` into `buf` through the next `f`.
fn path_stat(f: &Next, path: *const c_char, buf: *mut Stat, follow: Follow) -> c_int {
    stat_like(path, follow, buf, || {
        // SAFETY: the type of the stat family's path functions.
        let Some(real) = (unsafe { next::<PathStat>(f) }) else {
            return fail(libc::ENOSYS);
        };
        // SAFETY: the program's own call, unchanged.
        unsafe { real(path, buf) }
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

/// Journals a `stat` or `lstat` that gave `result` (0 or -errno) and, on
/// success, `buf`.
pub(crate) fn record_stat(
    journal: Sink,
    path: &[u8],
    follow: Follow,
    result: i32,
    buf: *const Stat,
) {
    let zeros = [0u8; dlfm_cache::layout::STAT_SIZE];
    let stat = if result == 0 {
        // SAFETY: a successful stat filled the caller's buffer.
        stat_bytes(unsafe { &*buf })
    } else {
        &zeros
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
            stat,
            path,
        },
    );
}

static STAT: Next = Next::new(c"stat");
static STAT64: Next = Next::new(c"stat64");
static LSTAT: Next = Next::new(c"lstat");
static LSTAT64: Next = Next::new(c"lstat64");

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
fn at_stat(f: &Next, dirfd: c_int, path: *const c_char, buf: *mut Stat, flags: c_int) -> c_int {
    at_stat_like(dirfd, path, buf, flags, || {
        // SAFETY: fstatat's type.
        let Some(real) = (unsafe { next::<AtStat>(f) }) else {
            return fail(libc::ENOSYS);
        };
        // SAFETY: the program's own call, unchanged.
        unsafe { real(dirfd, path, buf, flags) }
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

static FSTATAT: Next = Next::new(c"fstatat");
static FSTATAT64: Next = Next::new(c"fstatat64");

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
fn fd_stat(f: &Next, fd: c_int, buf: *mut Stat) -> c_int {
    fd_stat_like(fd, buf, || {
        // SAFETY: fstat's type.
        let Some(real) = (unsafe { next::<FdStat>(f) }) else {
            return fail(libc::ENOSYS);
        };
        // SAFETY: the program's own call, unchanged.
        unsafe { real(fd, buf) }
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

static FSTAT: Next = Next::new(c"fstat");
static FSTAT64: Next = Next::new(c"fstat64");

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

/// Answers or records `access(path, R_OK)`; `call` makes the real call.
fn access_like(path: *const c_char, mode: c_int, call: impl FnOnce() -> c_int) -> c_int {
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

static ACCESS: Next = Next::new(c"access");
static FACCESSAT: Next = Next::new(c"faccessat");

/// `access(2)`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn access(path: *const c_char, mode: c_int) -> c_int {
    access_like(path, mode, || {
        // SAFETY: access's type; the program's own call, unchanged.
        match unsafe { next::<Access>(&ACCESS) } {
            // SAFETY: the next definition, of its C type; the program's own call, unchanged.
            Some(real) => unsafe { real(path, mode) },
            None => fail(libc::ENOSYS),
        }
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
    // SAFETY: faccessat's type; the program's own call, unchanged.
    let call = || match unsafe { next::<AtAccess>(&FACCESSAT) } {
        // SAFETY: the next definition, of its C type; the program's own call, unchanged.
        Some(real) => unsafe { real(dirfd, path, mode, flags) },
        None => fail(libc::ENOSYS),
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
        let have = r >= 0 && sys::fstat(r, &mut st);
        record::append(
            j,
            &Record::Open {
                flags: flags as u32,
                result,
                stat: have.then(|| stat_bytes(&st)),
                path: p,
            },
        );
    }
    r
}

static OPEN: Next = Next::new(c"open");
static OPEN64: Next = Next::new(c"open64");
static OPEN_2: Next = Next::new(c"__open_2");
static OPEN64_2: Next = Next::new(c"__open64_2");
static OPENAT: Next = Next::new(c"openat");
static OPENAT64: Next = Next::new(c"openat64");
static OPENAT_2: Next = Next::new(c"__openat_2");
static OPENAT64_2: Next = Next::new(c"__openat64_2");

/// An open of `path` through the next `f` (type `Open`).
fn path_open(f: &Next, path: *const c_char, flags: c_int, mode: mode_t) -> c_int {
    open_like(path, flags, || {
        // SAFETY: open's type; the program's own call, unchanged.
        match unsafe { next::<Open>(f) } {
            // SAFETY: the next definition, of its C type; the program's own call, unchanged.
            Some(real) => unsafe { real(path, flags, mode) },
            None => fail(libc::ENOSYS),
        }
    })
}

/// An open relative to `dirfd` through the next `f` (type `AtOpen`); a
/// lookup only for an absolute path (which ignores `dirfd`).
fn at_open(f: &Next, dirfd: c_int, path: *const c_char, flags: c_int, mode: mode_t) -> c_int {
    open_like(path, flags, || {
        // SAFETY: openat's type; the program's own call, unchanged.
        match unsafe { next::<AtOpen>(f) } {
            // SAFETY: the next definition, of its C type; the program's own call, unchanged.
            Some(real) => unsafe { real(dirfd, path, flags, mode) },
            None => fail(libc::ENOSYS),
        }
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

static FOPEN: Next = Next::new(c"fopen");
static FOPEN64: Next = Next::new(c"fopen64");

/// `fopen` through the next `f`: a lookup for a read-only mode ("r", "rb",
/// "re", ...: no '+', 'w', 'a'); served as a stream over a memfd.
fn fopen_like(f: &Next, path: *const c_char, mode: *const c_char) -> *mut libc::FILE {
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
    // SAFETY: fopen's type.
    let Some(real) = (unsafe { next::<Fopen>(f) }) else {
        fail(libc::ENOSYS);
        return core::ptr::null_mut();
    };
    // SAFETY: the program's own call, unchanged.
    let stream = unsafe { real(path, mode) };
    if let Some((p, j)) = key.and_then(|p| Some((p, state::sink_for(p)?))) {
        let saved = errno();
        let fd = if stream.is_null() {
            -1
        } else {
            // SAFETY: a stream fopen returned.
            unsafe { libc::fileno(stream) }
        };
        let mut st = sys::zeroed_stat();
        let have = fd >= 0 && sys::fstat(fd, &mut st);
        record::append(
            j,
            &Record::Open {
                flags: libc::O_RDONLY as u32,
                result: if stream.is_null() { -saved } else { fd },
                stat: have.then(|| stat_bytes(&st)),
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

static READLINK: Next = Next::new(c"readlink");
static READLINKAT: Next = Next::new(c"readlinkat");

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
        let saved = errno();
        let mut st = sys::zeroed_stat();
        let result = sys::lstat(path as *const u8, &mut st);
        record_stat(j, p, Follow::No, result, &st);
        // SAFETY: this thread's errno slot.
        unsafe { *libc::__errno_location() = saved };
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
        // SAFETY: readlink's type; the program's own call, unchanged.
        match unsafe { next::<Readlink>(&READLINK) } {
            // SAFETY: the next definition, of its C type; the program's own call, unchanged.
            Some(real) => unsafe { real(path, buf, size) },
            None => fail(libc::ENOSYS) as isize,
        }
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
        // SAFETY: readlinkat's type; the program's own call, unchanged.
        match unsafe { next::<AtReadlink>(&READLINKAT) } {
            // SAFETY: the next definition, of its C type; the program's own call, unchanged.
            Some(real) => unsafe { real(dirfd, path, buf, size) },
            None => fail(libc::ENOSYS) as isize,
        }
    })
}

// ---- descriptors: close, dup, fcntl ----------------------------------------

static CLOSE: Next = Next::new(c"close");
static DUP: Next = Next::new(c"dup");
static DUP2: Next = Next::new(c"dup2");
static DUP3: Next = Next::new(c"dup3");
static FCNTL: Next = Next::new(c"fcntl");
static FCNTL64: Next = Next::new(c"fcntl64");

/// `close(2)`: forgets a served descriptor first.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    served::remove(fd);
    // SAFETY: close's type; the program's own call, unchanged.
    match unsafe { next::<FdOnly>(&CLOSE) } {
        // SAFETY: the next definition, of its C type; the program's own call, unchanged.
        Some(real) => unsafe { real(fd) },
        None => fail(libc::ENOSYS),
    }
}

/// `dup(2)`: the copy serves the same file.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn dup(fd: c_int) -> c_int {
    // SAFETY: dup's type; the program's own call, unchanged.
    let r = match unsafe { next::<FdOnly>(&DUP) } {
        // SAFETY: the next definition, of its C type; the program's own call, unchanged.
        Some(real) => unsafe { real(fd) },
        None => fail(libc::ENOSYS),
    };
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
    // SAFETY: dup2's type; the program's own call, unchanged.
    let r = match unsafe { next::<FdFd>(&DUP2) } {
        // SAFETY: the next definition, of its C type; the program's own call, unchanged.
        Some(real) => unsafe { real(old, new) },
        None => fail(libc::ENOSYS),
    };
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
    // SAFETY: dup3's type; the program's own call, unchanged.
    let r = match unsafe { next::<FdFdFlags>(&DUP3) } {
        // SAFETY: the next definition, of its C type; the program's own call, unchanged.
        Some(real) => unsafe { real(old, new, flags) },
        None => fail(libc::ENOSYS),
    };
    if r >= 0 {
        served::copy(old, new);
    }
    r
}

/// `fcntl` through the next `f`: `F_DUPFD` copies serve the same file.
fn fcntl_like(f: &Next, fd: c_int, cmd: c_int, arg: c_long) -> c_int {
    // SAFETY: fcntl's type (its third argument is an int or a pointer,
    // passed in one register); the program's own call, unchanged.
    let r = match unsafe { next::<Fcntl>(f) } {
        // SAFETY: the next definition, of its C type; the program's own call, unchanged.
        Some(real) => unsafe { real(fd, cmd, arg) },
        None => fail(libc::ENOSYS),
    };
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
