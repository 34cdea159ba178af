//! Virtual descriptors: what replay hands ld.so instead of a real `open`.
//!
//! They are numbered from [`VFD_BASE`], above the largest descriptor the kernel
//! can ever return: `fs.nr_open` cannot exceed `INT_MAX & -64` (0x7fffffc0,
//! `sysctl_nr_open_max` in fs/file.c) and a descriptor is always below
//! `nr_open`. So a virtual descriptor can never collide with a real one, and
//! one that leaks to the kernel fails with EBADF instead of touching a file.

use linux_raw_sys::errno::EINVAL;
use linux_raw_sys::general as nr;

/// The first virtual descriptor.
pub const VFD_BASE: i32 = 0x7fff_ffc0;
/// How many virtual descriptors can be open at once (ld.so opens one library
/// at a time; the table being full makes `open` pass through to the kernel).
/// The one number above them, `i32::MAX`, is the wrapper's synthetic
/// `/etc/ld.so.preload` (FMCaching's way in).
pub const VFD_SLOTS: usize = 63;

/// One open virtual descriptor.
#[derive(Clone, Copy)]
pub struct Slot {
    /// Whether the slot is in use.
    pub used: bool,
    /// The cache's file index.
    pub file: u32,
    /// The file position (`read`, `lseek`).
    pub pos: u64,
    /// The node-local copy of the file the bytes come from, open; -1: they
    /// come from the cache file, at the file's offset in it.
    pub fd: i32,
}

/// The table of virtual descriptors.
pub struct VfdTable {
    slots: [Slot; VFD_SLOTS],
}

impl VfdTable {
    /// No descriptor open.
    pub const EMPTY: VfdTable = VfdTable {
        // All zero (a free slot's fd is never read), so that the table
        // lives in `.bss`: the embedded wrapper carries no initialised data.
        slots: [Slot {
            used: false,
            file: 0,
            pos: 0,
            fd: 0,
        }; VFD_SLOTS],
    };

    /// Whether a slot is free (an `open` would succeed).
    #[inline]
    pub fn has_room(&self) -> bool {
        self.slots.iter().any(|s| !s.used)
    }

    /// Opens a descriptor on cache file `file`, whose bytes come from the
    /// node-local file open on `fd` (-1: from the cache file); `None` when
    /// the table is full.
    #[inline]
    pub fn open(&mut self, file: u32, fd: i32) -> Option<i32> {
        let (i, slot) = self.slots.iter_mut().enumerate().find(|(_, s)| !s.used)?;
        *slot = Slot {
            used: true,
            file,
            pos: 0,
            fd,
        };
        Some(VFD_BASE + i as i32)
    }

    /// The slot behind descriptor `fd`, if `fd` is an open virtual one.
    #[inline]
    pub fn get(&mut self, fd: i64) -> Option<&mut Slot> {
        let i = usize::try_from(fd.checked_sub(i64::from(VFD_BASE))?).ok()?;
        self.slots.get_mut(i).filter(|s| s.used)
    }
}

impl Slot {
    /// `lseek(fd, offset, whence)` on a file of `size` bytes: the new
    /// position, or `-EINVAL` (an unknown `whence`, a position before 0 or
    /// past `i64::MAX`), as the kernel answers for a regular file.
    #[inline]
    pub fn seek(&mut self, size: u64, offset: i64, whence: u32) -> i64 {
        let base = match whence {
            nr::SEEK_SET => 0,
            nr::SEEK_CUR => self.pos as i64,
            nr::SEEK_END => size as i64,
            _ => return -i64::from(EINVAL),
        };
        match base.checked_add(offset) {
            Some(pos) if pos >= 0 => {
                self.pos = pos as u64;
                pos
            }
            _ => -i64::from(EINVAL),
        }
    }
}

/// How many bytes a read of `count` at position `pos` gets from a file of
/// `size` bytes (0 at or past the end, as `read` gives).
#[inline]
pub fn read_len(size: u64, pos: u64, count: u64) -> u64 {
    count.min(size.saturating_sub(pos))
}

/// Where in the cache file a mapping at `offset` of a file whose bytes start
/// at `data_off` begins, under a kernel whose pages are `page` bytes, or
/// `-EINVAL` as `mmap` answers: an offset that is not page-aligned, one
/// that overflows, or a place in the cache file that is not (ld.so's files
/// lie at `layout::MAP_ALIGN` boundaries, so that never happens for pages
/// up to 64 KiB).
#[inline]
pub fn map_at(data_off: u64, offset: u64, page: u64) -> Result<u64, i64> {
    let aligned = |v: u64| page != 0 && v.is_multiple_of(page);
    match data_off.checked_add(offset) {
        Some(at) if aligned(offset) && aligned(at) => Ok(at),
        _ => Err(-i64::from(EINVAL)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_never_collide_with_real_ones_and_are_reused() {
        let mut t = VfdTable::EMPTY;
        let a = t.open(7, -1).unwrap();
        assert_eq!(a, VFD_BASE);
        assert!(t.get(i64::from(VFD_BASE - 1)).is_none());
        assert!(t.get(3).is_none());
        let b = t.open(8, -1).unwrap();
        assert_eq!(t.get(i64::from(b)).unwrap().file, 8);
        t.get(i64::from(a)).unwrap().used = false;
        assert!(t.get(i64::from(a)).is_none());
        assert_eq!(t.open(9, -1), Some(a));
        for _ in 2..VFD_SLOTS {
            assert!(t.open(1, -1).is_some());
        }
        assert_eq!(
            t.open(1, -1),
            None,
            "a full table sends opens to the kernel"
        );
    }

    #[test]
    fn seeks_answer_as_the_kernel_does_for_a_regular_file() {
        let mut s = Slot {
            used: true,
            file: 0,
            pos: 10,
            fd: -1,
        };
        assert_eq!(s.seek(100, 5, nr::SEEK_CUR), 15);
        assert_eq!(s.seek(100, -1, nr::SEEK_END), 99);
        assert_eq!(
            s.seek(100, 500, nr::SEEK_SET),
            500,
            "past the end is allowed"
        );
        assert_eq!(s.seek(100, -501, nr::SEEK_CUR), -i64::from(EINVAL));
        assert_eq!(s.pos, 500, "a failed seek leaves the position");
        assert_eq!(s.seek(100, 0, 9), -i64::from(EINVAL));
        assert_eq!(s.seek(100, i64::MAX, nr::SEEK_END), -i64::from(EINVAL));
    }

    #[test]
    fn reads_stop_at_the_end_and_maps_need_page_offsets() {
        assert_eq!(read_len(100, 0, 4096), 100);
        assert_eq!(read_len(100, 90, 4096), 10);
        assert_eq!(read_len(100, 200, 4096), 0);
        assert_eq!(map_at(8192, 4096, 4096), Ok(12288));
        assert_eq!(map_at(8192, 100, 4096), Err(-i64::from(EINVAL)));
        assert_eq!(map_at(u64::MAX - 4095, 4096, 4096), Err(-i64::from(EINVAL)));
    }

    /// A library at a `MAP_ALIGN` boundary maps under 4, 16 and 64 KiB
    /// pages (aarch64's kernels); one at a 4 KiB boundary only (a version 3
    /// cache's) would be refused as mmap refuses it, not mapped wrong.
    #[test]
    fn maps_of_loader_files_are_valid_for_every_page_size() {
        let lib = 7 * dlfm_cache::layout::MAP_ALIGN;
        for page in [4096u64, 16384, 65536] {
            for k in 0..4 {
                let at = map_at(lib, k * page, page).unwrap();
                assert_eq!(at % page, 0, "page {page}");
            }
            assert_eq!(map_at(lib, page / 2, page), Err(-i64::from(EINVAL)));
        }
        assert_eq!(map_at(3 * 4096, 0, 16384), Err(-i64::from(EINVAL)));
        assert_eq!(map_at(lib, 0, 0), Err(-i64::from(EINVAL)));
    }
}
