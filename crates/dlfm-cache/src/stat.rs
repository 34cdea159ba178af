//! A view of a stored `struct stat` (the bytes the kernel wrote, kept as-is
//! in the journal and the cache). Field places come from
//! `linux_raw_sys::general::stat`, the kernel's own layout, not from
//! numbers written here.

use core::mem::{offset_of, size_of};

pub use linux_raw_sys::general::stat as KernelStat;
use linux_raw_sys::general::{stat, S_IFDIR, S_IFMT, S_IFREG};

use dlfm_bytes::{le_u32, le_u64};

use crate::layout::STAT_SIZE;

// The format stores the kernel's x86_64 struct stat; a target whose stat
// differs needs its own format version (see docs/internals.md).
#[cfg(target_arch = "x86_64")]
const _: () = assert!(size_of::<stat>() == STAT_SIZE);

/// A `KernelStat` of all zeros, for writers and tests to fill in.
#[inline]
pub fn blank() -> KernelStat {
    // SAFETY: all-zero bytes are a valid `stat` (integers only).
    unsafe { core::mem::zeroed() }
}

/// The bytes the kernel would have written for `st` (for writers and tests
/// that make stats rather than receive them).
#[inline]
pub fn to_bytes(st: &KernelStat) -> [u8; STAT_SIZE] {
    let mut out = [0u8; STAT_SIZE];
    // SAFETY: `KernelStat` is plain integers without padding on x86_64 and
    // exactly STAT_SIZE bytes long (asserted above), so all of its bytes are
    // initialised and readable.
    let src = unsafe { core::slice::from_raw_parts(st as *const stat as *const u8, STAT_SIZE) };
    dlfm_bytes::copy(&mut out, src);
    out
}

/// A view of a raw `struct stat`.
#[derive(Clone, Copy, Debug)]
pub struct StatView<'a>(pub &'a [u8; STAT_SIZE]);

/// The unsigned 64-bit field at `at` (all the fields read here are 8 bytes
/// on x86_64; `st_mode` is 4).
#[inline]
fn u64_field(b: &[u8], at: usize) -> u64 {
    le_u64(b, at).unwrap_or(0)
}

impl StatView<'_> {
    /// `st_dev`.
    #[inline]
    pub fn dev(&self) -> u64 {
        u64_field(self.0, offset_of!(stat, st_dev))
    }

    /// `st_ino`.
    #[inline]
    pub fn ino(&self) -> u64 {
        u64_field(self.0, offset_of!(stat, st_ino))
    }

    /// `st_mode`.
    #[inline]
    pub fn mode(&self) -> u32 {
        le_u32(self.0, offset_of!(stat, st_mode)).unwrap_or(0)
    }

    /// `st_size`.
    #[inline]
    pub fn size(&self) -> u64 {
        u64_field(self.0, offset_of!(stat, st_size))
    }

    /// `st_mtime` seconds and nanoseconds.
    #[inline]
    pub fn mtime(&self) -> (i64, i64) {
        (
            u64_field(self.0, offset_of!(stat, st_mtime)) as i64,
            u64_field(self.0, offset_of!(stat, st_mtime_nsec)) as i64,
        )
    }

    /// Whether this is a regular file.
    #[inline]
    pub fn is_regular(&self) -> bool {
        self.mode() & S_IFMT == S_IFREG
    }

    /// Whether this is a directory.
    #[inline]
    pub fn is_dir(&self) -> bool {
        self.mode() & S_IFMT == S_IFDIR
    }

    /// The same object of the same kind (inode and mode): what matters of a
    /// directory, whose times change while a pilot runs.
    #[inline]
    pub fn same_object(&self, other: &StatView<'_>) -> bool {
        self.ino() == other.ino() && self.mode() == other.mode()
    }

    /// Same inode, size and modification time: the same file content, as
    /// far as a metadata check can tell.
    #[inline]
    pub fn same_file_content(&self, other: &StatView<'_>) -> bool {
        self.ino() == other.ino() && self.size() == other.size() && self.mtime() == other.mtime()
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;

    #[test]
    fn fields_come_from_the_kernels_stat() {
        let mut st = blank();
        st.st_dev = 7;
        st.st_ino = 42;
        st.st_mode = S_IFREG | 0o644;
        st.st_size = 123_456;
        st.st_mtime = 1_700_000_000;
        st.st_mtime_nsec = 5;
        let bytes = to_bytes(&st);
        let v = StatView(&bytes);
        assert_eq!((v.dev(), v.ino(), v.size()), (7, 42, 123_456));
        assert_eq!(v.mtime(), (1_700_000_000, 5));
        assert!(v.is_regular());
        assert!(v.same_file_content(&v));
    }
}
