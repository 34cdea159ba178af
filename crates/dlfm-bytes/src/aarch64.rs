//! The byte routines as aarch64 byte loops in inline assembly (a Rust loop
//! could be turned into a `memcpy`/`memset`/`bcmp` call by the optimiser).

/// Copies `n` bytes from `src` to `dst`.
///
/// # Safety
/// `src` readable and `dst` writable for `n` bytes; they do not overlap.
#[inline(always)]
pub unsafe fn copy(dst: *mut u8, src: *const u8, n: usize) {
    // SAFETY: the caller vouches for the ranges; the loop reads `n` bytes
    // from `src` and writes `n` to `dst`, nothing else.
    unsafe {
        core::arch::asm!(
            "cbz {n}, 3f",
            "2:",
            "ldrb {t:w}, [{s}], #1",
            "strb {t:w}, [{d}], #1",
            "subs {n}, {n}, #1",
            "b.ne 2b",
            "3:",
            n = inout(reg) n => _,
            s = inout(reg) src => _,
            d = inout(reg) dst => _,
            t = out(reg) _,
            options(nostack)
        );
    }
}

/// Sets `n` bytes at `dst` to `value`.
///
/// # Safety
/// `dst` writable for `n` bytes.
#[inline(always)]
pub unsafe fn fill(dst: *mut u8, value: u8, n: usize) {
    // SAFETY: writes exactly `n` bytes from `dst`, which the caller vouches for.
    unsafe {
        core::arch::asm!(
            "cbz {n}, 3f",
            "2:",
            "strb {v:w}, [{d}], #1",
            "subs {n}, {n}, #1",
            "b.ne 2b",
            "3:",
            n = inout(reg) n => _,
            d = inout(reg) dst => _,
            v = in(reg) u32::from(value),
            options(nostack)
        );
    }
}

/// Whether the `n` bytes (n > 0) at `a` and `b` are the same.
///
/// # Safety
/// Both readable for `n` bytes; `n` is not zero.
#[inline(always)]
pub unsafe fn equal(a: *const u8, b: *const u8, n: usize) -> bool {
    let same: u64;
    // SAFETY: reads at most `n` bytes from each, which the caller vouches
    // for; stops at the first difference.
    unsafe {
        core::arch::asm!(
            "mov {r}, #1",
            "cbz {n}, 4f",
            "2:",
            "ldrb {x:w}, [{a}], #1",
            "ldrb {y:w}, [{b}], #1",
            "cmp {x:w}, {y:w}",
            "b.ne 3f",
            "subs {n}, {n}, #1",
            "b.ne 2b",
            "b 4f",
            "3:",
            "mov {r}, #0",
            "4:",
            r = out(reg) same,
            n = inout(reg) n => _,
            a = inout(reg) a => _,
            b = inout(reg) b => _,
            x = out(reg) _,
            y = out(reg) _,
            options(nostack, readonly)
        );
    }
    same == 1
}
