//! glibc's stat entry points before 2.33 (`__xstat`, `__lxstat`,
//! `__fxstat`, `__fxstatat` and their `64` twins): programs and extension
//! modules built against an older glibc (conda's Python, manylinux wheels)
//! still call these. Each takes a version first: on x86_64 versions 0 and 1
//! both mean the kernel's `struct stat`, on aarch64 version 0 does (its
//! glibc 2.17-2.32 exports the family too); those are served like `stat`,
//! any other version goes to libc unchanged.

use core::ffi::{c_char, c_int};

use libc::stat as Stat;

use crate::calls::{at_stat_like, fd_stat_like, stat_like};
use crate::real::Next;
use crate::replay::Follow;

type VerPath = unsafe extern "C" fn(c_int, *const c_char, *mut Stat) -> c_int;
type VerFd = unsafe extern "C" fn(c_int, c_int, *mut Stat) -> c_int;
type VerAt = unsafe extern "C" fn(c_int, c_int, *const c_char, *mut Stat, c_int) -> c_int;

/// Whether `ver` names the kernel's `struct stat` (`_STAT_VER_KERNEL` or
/// `_STAT_VER_LINUX`, which are 0 and 1 on x86_64 and both 0 on aarch64).
fn plain(ver: c_int) -> bool {
    ver == 0 || (cfg!(target_arch = "x86_64") && ver == 1)
}

/// `__xstat`/`__lxstat` through the next `f`.
fn ver_path(
    f: &Next<VerPath>,
    ver: c_int,
    path: *const c_char,
    buf: *mut Stat,
    follow: Follow,
) -> c_int {
    let call = || {
        f.call(|real| {
            // SAFETY: the next definition; the program's own call, unchanged.
            unsafe { real(ver, path, buf) }
        })
    };
    if plain(ver) {
        stat_like(path, follow, buf, call)
    } else {
        call()
    }
}

/// `__fxstat` through the next `f`.
fn ver_fd(f: &Next<VerFd>, ver: c_int, fd: c_int, buf: *mut Stat) -> c_int {
    let call = || {
        f.call(|real| {
            // SAFETY: the next definition; the program's own call, unchanged.
            unsafe { real(ver, fd, buf) }
        })
    };
    if plain(ver) {
        fd_stat_like(fd, buf, call)
    } else {
        call()
    }
}

/// `__fxstatat` through the next `f`.
fn ver_at(
    f: &Next<VerAt>,
    ver: c_int,
    dirfd: c_int,
    path: *const c_char,
    buf: *mut Stat,
    flags: c_int,
) -> c_int {
    let call = || {
        f.call(|real| {
            // SAFETY: the next definition; the program's own call, unchanged.
            unsafe { real(ver, dirfd, path, buf, flags) }
        })
    };
    if plain(ver) {
        at_stat_like(dirfd, path, buf, flags, call)
    } else {
        call()
    }
}

// SAFETY: `VerPath` is `__xstat`'s C type.
static XSTAT: Next<VerPath> = unsafe { Next::new(c"__xstat") };
// SAFETY: `VerPath` is `__xstat64`'s C type.
static XSTAT64: Next<VerPath> = unsafe { Next::new(c"__xstat64") };
// SAFETY: `VerPath` is `__lxstat`'s C type.
static LXSTAT: Next<VerPath> = unsafe { Next::new(c"__lxstat") };
// SAFETY: `VerPath` is `__lxstat64`'s C type.
static LXSTAT64: Next<VerPath> = unsafe { Next::new(c"__lxstat64") };
// SAFETY: `VerFd` is `__fxstat`'s C type.
static FXSTAT: Next<VerFd> = unsafe { Next::new(c"__fxstat") };
// SAFETY: `VerFd` is `__fxstat64`'s C type.
static FXSTAT64: Next<VerFd> = unsafe { Next::new(c"__fxstat64") };
// SAFETY: `VerAt` is `__fxstatat`'s C type.
static FXSTATAT: Next<VerAt> = unsafe { Next::new(c"__fxstatat") };
// SAFETY: `VerAt` is `__fxstatat64`'s C type.
static FXSTATAT64: Next<VerAt> = unsafe { Next::new(c"__fxstatat64") };

/// `__xstat`: `stat` with a version.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn __xstat(ver: c_int, path: *const c_char, buf: *mut Stat) -> c_int {
    ver_path(&XSTAT, ver, path, buf, Follow::Yes)
}

/// `__xstat64`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn __xstat64(ver: c_int, path: *const c_char, buf: *mut Stat) -> c_int {
    ver_path(&XSTAT64, ver, path, buf, Follow::Yes)
}

/// `__lxstat`: `lstat` with a version.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn __lxstat(ver: c_int, path: *const c_char, buf: *mut Stat) -> c_int {
    ver_path(&LXSTAT, ver, path, buf, Follow::No)
}

/// `__lxstat64`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn __lxstat64(ver: c_int, path: *const c_char, buf: *mut Stat) -> c_int {
    ver_path(&LXSTAT64, ver, path, buf, Follow::No)
}

/// `__fxstat`: `fstat` with a version.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn __fxstat(ver: c_int, fd: c_int, buf: *mut Stat) -> c_int {
    ver_fd(&FXSTAT, ver, fd, buf)
}

/// `__fxstat64`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn __fxstat64(ver: c_int, fd: c_int, buf: *mut Stat) -> c_int {
    ver_fd(&FXSTAT64, ver, fd, buf)
}

/// `__fxstatat`: `fstatat` with a version.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn __fxstatat(
    ver: c_int,
    dirfd: c_int,
    path: *const c_char,
    buf: *mut Stat,
    flags: c_int,
) -> c_int {
    ver_at(&FXSTATAT, ver, dirfd, path, buf, flags)
}

/// `__fxstatat64`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn __fxstatat64(
    ver: c_int,
    dirfd: c_int,
    path: *const c_char,
    buf: *mut Stat,
    flags: c_int,
) -> c_int {
    ver_at(&FXSTATAT64, ver, dirfd, path, buf, flags)
}
