//! x86_64's system call instruction, and its `access`.

use core::arch::asm;

use super::nr;

/// The number of ld.so's `access` call.
pub const ACCESS: u32 = nr::__NR_access;
/// Its name in traces.
pub const ACCESS_NAME: &[u8] = b"access";

/// The path and mode of `access(path, mode)`.
#[inline]
pub fn access_args(a: &[u64; 6]) -> Option<(u64, u32)> {
    Some((a[0], a[1] as u32))
}

/// `access(path, mode)`.
///
/// # Safety
/// `path` must point at a NUL-terminated string.
#[inline]
pub unsafe fn access(path: *const u8, mode: u32) -> i64 {
    // SAFETY: the caller vouches for the path; access writes no memory.
    unsafe {
        syscall6(
            u64::from(ACCESS),
            [path as u64, u64::from(mode), 0, 0, 0, 0],
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
    // SAFETY: the caller vouches for the arguments; `syscall` clobbers only
    // rax, rcx and r11, which are declared.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") n as i64 => ret,
            in("rdi") a[0],
            in("rsi") a[1],
            in("rdx") a[2],
            in("r10") a[3],
            in("r8") a[4],
            in("r9") a[5],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack)
        );
    }
    ret
}

/// Stops the process at once (SIGILL), touching no memory.
#[inline(always)]
pub fn trap() -> ! {
    loop {
        // SAFETY: `ud2` raises SIGILL and never returns; it touches no memory.
        unsafe { asm!("ud2", options(nomem, nostack)) };
    }
}
