//! The program's `struct stat` and the stored one: glibc's `struct stat`
//! is the kernel's on x86_64 and on aarch64 (the generic layout), and the
//! cache and journal hold x86_64's everywhere (`dlfm_cache::stat`), so
//! each crossing goes through `store`/`load` (a plain copy on x86_64, a
//! field-by-field move on aarch64).

use dlfm_cache::layout::STAT_SIZE;
use dlfm_cache::stat::{self, KERNEL_STAT_SIZE};

const _: () = assert!(core::mem::size_of::<libc::stat>() == KERNEL_STAT_SIZE);

/// The stored form of the program's `st`.
pub fn store(st: &libc::stat) -> [u8; STAT_SIZE] {
    // SAFETY: `libc::stat` is KERNEL_STAT_SIZE bytes (asserted above) of
    // plain integers, all initialised (made by `zeroed_stat` or a stat call).
    let raw = unsafe {
        core::slice::from_raw_parts(st as *const libc::stat as *const u8, KERNEL_STAT_SIZE)
    };
    let mut out = [0u8; STAT_SIZE];
    stat::store(raw, &mut out);
    out
}

/// Writes the stored `stored` into the caller's `struct stat` at `out`;
/// false (nothing written) if `stored` is not a whole stored stat.
pub fn load(stored: &[u8], out: *mut libc::stat) -> bool {
    let Ok(stored) = <&[u8; STAT_SIZE]>::try_from(stored) else {
        return false;
    };
    // SAFETY: the caller passed a buffer for a whole struct stat, which is
    // KERNEL_STAT_SIZE bytes (asserted above).
    let dst = unsafe { core::slice::from_raw_parts_mut(out as *mut u8, KERNEL_STAT_SIZE) };
    stat::load(stored, dst);
    true
}
