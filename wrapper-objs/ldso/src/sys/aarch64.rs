//! aarch64's system call instruction, and its `access`: aarch64 has no
//! `access` call; its loaders ask `faccessat(AT_FDCWD, path, mode)`.

use core::arch::asm;

use super::nr;

/// The number of ld.so's `access` call (`faccessat`).
pub const ACCESS: u32 = nr::__NR_faccessat;
/// Its name in traces.
pub const ACCESS_NAME: &[u8] = b"faccessat";

/// The path and mode of `faccessat(AT_FDCWD, path, mode)`: an `access`;
/// None for another directory. (The system call has three arguments; glibc
/// leaves x3 as it was, so it is not read.)
#[inline]
pub fn access_args(a: &[u64; 6]) -> Option<(u64, u32)> {
    (a[0] as i32 == nr::AT_FDCWD).then_some((a[1], a[2] as u32))
}

/// `faccessat(AT_FDCWD, path, mode)`.
///
/// # Safety
/// `path` must point at a NUL-terminated string.
#[inline]
pub unsafe fn access(path: *const u8, mode: u32) -> i64 {
    let cwd = nr::AT_FDCWD as i64 as u64;
    // SAFETY: the caller vouches for the path; faccessat writes no memory.
    unsafe {
        syscall6(
            u64::from(ACCESS),
            [cwd, path as u64, u64::from(mode), 0, 0, 0],
        )
    }
}

/// Issues system call `n` with six arguments and returns the raw result.
///
/// # Safety
/// The arguments must be valid for system call `n` (pointers readable or
/// writable as that call requires).
#[inline(always)]
pub unsafe fn syscall6(n: u64, a: [u64; 6]) -> i64 {
    let ret: i64;
    // SAFETY: the caller vouches for the arguments; `svc #0` takes the number
    // in x8 and the arguments in x0-x5, returns in x0 and changes nothing
    // else.
    unsafe {
        asm!(
            "svc #0",
            in("x8") n,
            inlateout("x0") a[0] as i64 => ret,
            in("x1") a[1],
            in("x2") a[2],
            in("x3") a[3],
            in("x4") a[4],
            in("x5") a[5],
            options(nostack)
        );
    }
    ret
}

/// Stops the process at once (SIGILL), touching no memory.
#[inline(always)]
pub fn trap() -> ! {
    loop {
        // SAFETY: `udf #0` raises SIGILL and never returns; it touches no memory.
        unsafe { asm!("udf #0", options(nomem, nostack)) };
    }
}
