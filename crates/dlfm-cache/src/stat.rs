//! The stored `struct stat` (in the journal and the cache) and a view of it.
//! The stored form is the kernel's x86_64 `struct stat` on every
//! architecture, so that a cache reads the same on any host: on x86_64 it is
//! the bytes the kernel wrote; elsewhere [`store`] and [`load`] move each
//! field between the kernel's layout of the running target (from
//! `linux_raw_sys::general::stat`) and the stored one.

use core::mem::{offset_of, size_of};

pub use linux_raw_sys::general::stat as KernelStat;
use linux_raw_sys::general::{stat, S_IFDIR, S_IFMT, S_IFREG};

use dlfm_bytes::{le_u32, le_u64};

use crate::layout::STAT_SIZE;

/// Size of this target's kernel `struct stat` (what a stat buffer holds).
pub const KERNEL_STAT_SIZE: usize = size_of::<stat>();

/// The stored fields' offsets (x86_64's `struct stat`).
mod at {
    pub const DEV: usize = 0;
    pub const INO: usize = 8;
    pub const NLINK: usize = 16;
    pub const MODE: usize = 24;
    pub const UID: usize = 28;
    pub const GID: usize = 32;
    pub const RDEV: usize = 40;
    pub const SIZE: usize = 48;
    pub const BLKSIZE: usize = 56;
    pub const BLOCKS: usize = 64;
    pub const ATIME: usize = 72;
    pub const ATIME_NSEC: usize = 80;
    pub const MTIME: usize = 88;
    pub const MTIME_NSEC: usize = 96;
    pub const CTIME: usize = 104;
    pub const CTIME_NSEC: usize = 112;
}

/// Width of `st_nlink` and `st_blksize` in this target's kernel stat (8 on
/// x86_64, 4 in the generic layout aarch64 uses; a test checks both).
#[cfg(target_arch = "x86_64")]
const NARROW: usize = 8;
#[cfg(not(target_arch = "x86_64"))]
const NARROW: usize = 4;

/// Each field: (stored offset, stored width, kernel offset, kernel width).
/// Integers are little-endian, so a field moves as its low bytes: narrower
/// kernel fields are zero-extended, and nothing stored is wider than 8.
/// Walked by reference: a by-value loop copies the table to the stack with
/// a `memcpy` call, which the wrapper cannot make (`wrapper_rules` test).
const FIELDS: [(usize, usize, usize, usize); 16] = [
    (at::DEV, 8, offset_of!(stat, st_dev), 8),
    (at::INO, 8, offset_of!(stat, st_ino), 8),
    (at::NLINK, 8, offset_of!(stat, st_nlink), NARROW),
    (at::MODE, 4, offset_of!(stat, st_mode), 4),
    (at::UID, 4, offset_of!(stat, st_uid), 4),
    (at::GID, 4, offset_of!(stat, st_gid), 4),
    (at::RDEV, 8, offset_of!(stat, st_rdev), 8),
    (at::SIZE, 8, offset_of!(stat, st_size), 8),
    (at::BLKSIZE, 8, offset_of!(stat, st_blksize), NARROW),
    (at::BLOCKS, 8, offset_of!(stat, st_blocks), 8),
    (at::ATIME, 8, offset_of!(stat, st_atime), 8),
    (at::ATIME_NSEC, 8, offset_of!(stat, st_atime_nsec), 8),
    (at::MTIME, 8, offset_of!(stat, st_mtime), 8),
    (at::MTIME_NSEC, 8, offset_of!(stat, st_mtime_nsec), 8),
    (at::CTIME, 8, offset_of!(stat, st_ctime), 8),
    (at::CTIME_NSEC, 8, offset_of!(stat, st_ctime_nsec), 8),
];

// On x86_64 the stored form is the kernel's own: same size, same places.
#[cfg(target_arch = "x86_64")]
const _: () = {
    assert!(KERNEL_STAT_SIZE == STAT_SIZE);
    let mut i = 0;
    while i < FIELDS.len() {
        assert!(FIELDS[i].0 == FIELDS[i].2 && FIELDS[i].1 == FIELDS[i].3);
        i += 1;
    }
};

/// Writes the stored form of `kernel` (this target's kernel stat bytes,
/// KERNEL_STAT_SIZE of them) into `out`; padding and reserved bytes are 0.
#[inline]
pub fn store(kernel: &[u8], out: &mut [u8; STAT_SIZE]) {
    move_fields(kernel, out, |(s_at, _, k_at, _)| (k_at, s_at));
}

/// Writes this target's kernel stat for the stored `stored` into `kernel`
/// (KERNEL_STAT_SIZE bytes; padding and reserved bytes 0).
#[inline]
pub fn load(stored: &[u8; STAT_SIZE], kernel: &mut [u8]) {
    move_fields(stored, kernel, |(s_at, _, k_at, _)| (s_at, k_at));
}

/// Zeroes `to` and copies each field of FIELDS into it from `from`, at the
/// (from, to) offsets `ends` picks from the field's row; each field moves
/// as its low bytes, the narrower of its two widths.
#[inline]
fn move_fields(
    from: &[u8],
    to: &mut [u8],
    ends: impl Fn((usize, usize, usize, usize)) -> (usize, usize),
) {
    dlfm_bytes::fill(to, 0);
    for &row in FIELDS.iter() {
        let (_, s_len, _, k_len) = row;
        let n = if s_len < k_len { s_len } else { k_len };
        let (src_at, dst_at) = ends(row);
        if let (Some(dst), Some(src)) =
            (to.get_mut(dst_at..dst_at + n), from.get(src_at..src_at + n))
        {
            dlfm_bytes::copy(dst, src);
        }
    }
}

/// A `KernelStat` of all zeros, for writers and tests to fill in.
#[inline]
pub fn blank() -> KernelStat {
    // SAFETY: all-zero bytes are a valid `stat` (integers only).
    unsafe { core::mem::zeroed() }
}

/// The stored form of `st` (for writers and tests that make stats rather
/// than receive them).
#[inline]
pub fn to_bytes(st: &KernelStat) -> [u8; STAT_SIZE] {
    // SAFETY: `KernelStat` is plain integers, all initialised (it is made
    // whole, from `blank` or by the kernel), KERNEL_STAT_SIZE bytes long.
    let raw =
        unsafe { core::slice::from_raw_parts(st as *const stat as *const u8, KERNEL_STAT_SIZE) };
    let mut out = [0u8; STAT_SIZE];
    store(raw, &mut out);
    out
}

/// A view of a raw `struct stat`.
#[derive(Clone, Copy, Debug)]
pub struct StatView<'a>(pub &'a [u8; STAT_SIZE]);

/// The unsigned 64-bit field at `at` of the stored form (all the fields
/// read here are 8 bytes there; `st_mode` is 4).
#[inline]
fn u64_field(b: &[u8], at: usize) -> u64 {
    le_u64(b, at).unwrap_or(0)
}

impl StatView<'_> {
    /// `st_dev`.
    #[inline]
    pub fn dev(&self) -> u64 {
        u64_field(self.0, at::DEV)
    }

    /// `st_ino`.
    #[inline]
    pub fn ino(&self) -> u64 {
        u64_field(self.0, at::INO)
    }

    /// `st_mode`.
    #[inline]
    pub fn mode(&self) -> u32 {
        le_u32(self.0, at::MODE).unwrap_or(0)
    }

    /// `st_size`.
    #[inline]
    pub fn size(&self) -> u64 {
        u64_field(self.0, at::SIZE)
    }

    /// `st_mtime` seconds and nanoseconds.
    #[inline]
    pub fn mtime(&self) -> (i64, i64) {
        (
            u64_field(self.0, at::MTIME) as i64,
            u64_field(self.0, at::MTIME_NSEC) as i64,
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
    fn this_targets_kernel_stat_is_the_layout_assumed() {
        let st = blank();
        assert_eq!(core::mem::size_of_val(&st.st_nlink), NARROW);
        assert_eq!(core::mem::size_of_val(&st.st_blksize), NARROW);
        for (_, _, k_at, k_len) in FIELDS {
            assert!(k_at + k_len <= KERNEL_STAT_SIZE);
        }
    }

    #[test]
    fn a_real_fstat_reads_right_through_the_stored_form() {
        extern crate std;
        use std::os::unix::fs::MetadataExt;
        use std::os::unix::io::AsRawFd;
        let f = std::fs::File::open("/proc/self/exe").unwrap();
        let meta = f.metadata().unwrap();
        let mut raw = [0u8; KERNEL_STAT_SIZE];
        // SAFETY: `raw` has room for this target's kernel stat; an empty
        // path with AT_EMPTY_PATH stats the descriptor.
        let r = unsafe { linux_raw_sys_fstat(f.as_raw_fd(), raw.as_mut_ptr()) };
        assert_eq!(r, 0);
        let mut stored = [0u8; STAT_SIZE];
        store(&raw, &mut stored);
        let v = StatView(&stored);
        assert_eq!(
            (v.dev(), v.ino(), v.size()),
            (meta.dev(), meta.ino(), meta.size())
        );
        assert_eq!(v.mode(), meta.mode());
        assert_eq!(v.mtime(), (meta.mtime(), meta.mtime_nsec()));
        let mut back = [0xffu8; KERNEL_STAT_SIZE];
        load(&stored, &mut back);
        assert_eq!(back, raw, "load gives back the kernel's bytes");
    }

    /// `newfstatat(fd, "", buf, AT_EMPTY_PATH)` through libc's `syscall`.
    unsafe fn linux_raw_sys_fstat(fd: i32, buf: *mut u8) -> i64 {
        extern "C" {
            fn syscall(nr: i64, ...) -> i64;
        }
        let nr = i64::from(linux_raw_sys::general::__NR_newfstatat);
        let flags = i64::from(linux_raw_sys::general::AT_EMPTY_PATH);
        // SAFETY: forwarded from the caller; the path is a NUL byte.
        unsafe { syscall(nr, i64::from(fd), c"".as_ptr(), buf, flags) }
    }

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
