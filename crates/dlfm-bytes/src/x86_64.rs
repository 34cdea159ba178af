//! The byte routines as x86_64 `rep` string instructions.

/// Copies `n` bytes from `src` to `dst`.
///
/// # Safety
/// `src` readable and `dst` writable for `n` bytes; they do not overlap.
#[inline(always)]
pub unsafe fn copy(dst: *mut u8, src: *const u8, n: usize) {
    // SAFETY: the caller vouches for the ranges. `rep movsb` with DF clear
    // (the ABI guarantees it) copies rcx bytes from rsi to rdi and touches
    // nothing else.
    unsafe {
        core::arch::asm!(
            "rep movsb",
            inout("rcx") n => _,
            inout("rdi") dst => _,
            inout("rsi") src => _,
            options(nostack, preserves_flags)
        );
    }
}

/// Sets `n` bytes at `dst` to `value`.
///
/// # Safety
/// `dst` writable for `n` bytes.
#[inline(always)]
pub unsafe fn fill(dst: *mut u8, value: u8, n: usize) {
    // SAFETY: writes exactly `n` bytes from `dst`, which the caller vouches
    // for; DF is clear by the ABI.
    unsafe {
        core::arch::asm!(
            "rep stosb",
            inout("rcx") n => _,
            inout("rdi") dst => _,
            in("al") value,
            options(nostack, preserves_flags)
        );
    }
}

/// Whether the `n` bytes (n > 0) at `a` and `b` are the same.
///
/// # Safety
/// Both readable for `n` bytes; `n` is not zero.
#[inline(always)]
pub unsafe fn equal(a: *const u8, b: *const u8, n: usize) -> bool {
    let all_equal: u8;
    // SAFETY: reads at most `n` bytes from each, which the caller vouches
    // for. `repe cmpsb` compares byte by byte while they are equal and rcx is
    // not zero; afterwards ZF is set exactly when the last comparison found
    // equal bytes, i.e. when every byte matched (n > 0).
    unsafe {
        core::arch::asm!(
            "repe cmpsb",
            "sete {z}",
            z = out(reg_byte) all_equal,
            inout("rcx") n => _,
            inout("rsi") a => _,
            inout("rdi") b => _,
            options(nostack, readonly)
        );
    }
    all_equal == 1
}
