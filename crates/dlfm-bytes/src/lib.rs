//! Byte copy, fill and compare for code that runs before libc exists.
//!
//! The dlfm wrapper runs inside ld.so's load path, before the program is
//! relocated: a call to libc's `memcpy`, `memset` or `bcmp` would jump through
//! a GOT slot that is still zero. The compiler emits such calls on its own for
//! plain loops and slice operations, so every bulk byte operation in the
//! wrapper (and in the parts of `dlfm-cache` it uses) goes through this crate,
//! whose routines are inline assembly that no optimiser can turn into a call:
//! `rep` string instructions on x86_64 (`x86_64.rs`), byte loops on aarch64
//! (`aarch64.rs`).
//!
//! It also holds the little-endian field reads every format parser here
//! uses (`le_u16`, `le_u32`, `le_u64`: bounds-checked, no panic).
//!
//! This crate knows nothing about dlfm.
#![no_std]

#[cfg(target_arch = "aarch64")]
#[path = "aarch64.rs"]
mod arch;
#[cfg(target_arch = "x86_64")]
#[path = "x86_64.rs"]
mod arch;

/// Copies `src` into the start of `dst`; copies `min(dst.len(), src.len())`
/// bytes and returns that count.
#[inline(always)]
pub fn copy(dst: &mut [u8], src: &[u8]) -> usize {
    let n = if dst.len() < src.len() {
        dst.len()
    } else {
        src.len()
    };
    // SAFETY: `n` is within both slices, which cannot overlap (one is `&mut`).
    unsafe { arch::copy(dst.as_mut_ptr(), src.as_ptr(), n) };
    n
}

/// Sets every byte of `dst` to `value`.
#[inline(always)]
pub fn fill(dst: &mut [u8], value: u8) {
    // SAFETY: `dst` is writable for its length, which the exclusive borrow owns.
    unsafe { arch::fill(dst.as_mut_ptr(), value, dst.len()) };
}

/// Returns whether `a` and `b` hold the same bytes.
#[inline(always)]
pub fn equal(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    if a.is_empty() {
        return true;
    }
    // SAFETY: both slices are readable for `a.len()` bytes (same lengths).
    unsafe { arch::equal(a.as_ptr(), b.as_ptr(), a.len()) }
}

/// Returns the length of the NUL-terminated string at `s`, looking at no more
/// than `max` bytes; `None` when no NUL is found within `max`.
///
/// # Safety
/// `s` must be readable for `max` bytes or up to and including its NUL,
/// whichever comes first.
#[inline(always)]
pub unsafe fn c_strlen(s: *const u8, max: usize) -> Option<usize> {
    let mut n = 0;
    while n < max {
        // SAFETY: the caller guarantees bytes up to the NUL (or `max`) are
        // readable; `n` has not passed either yet.
        if unsafe { core::ptr::read_volatile(s.add(n)) } == 0 {
            return Some(n);
        }
        n += 1;
    }
    None
}

/// The little-endian u16 at `at`, if `b` holds it.
#[inline]
pub fn le_u16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes(<[u8; 2]>::try_from(s).ok()?))
}

/// The little-endian u32 at `at`, if `b` holds it.
#[inline]
pub fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(<[u8; 4]>::try_from(s).ok()?))
}

/// The little-endian u64 at `at`, if `b` holds it.
#[inline]
pub fn le_u64(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(<[u8; 8]>::try_from(s).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_takes_the_shorter_length() {
        let mut d = [0u8; 4];
        assert_eq!(copy(&mut d, b"abcdef"), 4);
        assert_eq!(&d, b"abcd");
        let mut d = [9u8; 6];
        assert_eq!(copy(&mut d, b"xy"), 2);
        assert_eq!(&d, b"xy\x09\x09\x09\x09");
    }

    #[test]
    fn fill_sets_every_byte() {
        let mut d = [1u8; 33];
        fill(&mut d, 0);
        assert!(d.iter().all(|&b| b == 0));
    }

    #[test]
    fn equal_compares_every_byte() {
        assert!(equal(b"", b""));
        assert!(equal(b"abc", b"abc"));
        assert!(!equal(b"abc", b"abd"));
        assert!(!equal(b"abc", b"xbc"));
        assert!(!equal(b"abc", b"ab"));
        assert!(equal(b"a", b"a"));
        assert!(!equal(b"a", b"b"));
    }

    #[test]
    fn c_strlen_stops_at_nul_or_max() {
        let s = b"hello\0world";
        // SAFETY: `s` is readable for its whole length.
        unsafe {
            assert_eq!(c_strlen(s.as_ptr(), s.len()), Some(5));
            assert_eq!(c_strlen(s.as_ptr(), 3), None);
        }
    }
}
