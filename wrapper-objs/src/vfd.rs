//! Virtual descriptors: what replay hands ld.so instead of a real `open`.
//!
//! They are numbered from [`VFD_BASE`], above the largest descriptor the kernel
//! can ever return: `fs.nr_open` cannot exceed `INT_MAX & -64` (0x7fffffc0,
//! `sysctl_nr_open_max` in fs/file.c) and a descriptor is always below
//! `nr_open`. So a virtual descriptor can never collide with a real one, and
//! one that leaks to the kernel fails with EBADF instead of touching a file.

/// The first virtual descriptor.
pub const VFD_BASE: i32 = 0x7fff_ffc0;
/// How many virtual descriptors can be open at once (ld.so opens one library
/// at a time; the table being full makes `open` pass through to the kernel).
pub const VFD_SLOTS: usize = 64;

/// One open virtual descriptor.
#[derive(Clone, Copy)]
pub struct Slot {
    /// Whether the slot is in use.
    pub used: bool,
    /// The cache's file index.
    pub file: u32,
    /// The file position (`read`, `lseek`).
    pub pos: u64,
}

/// The table of virtual descriptors.
pub struct VfdTable {
    slots: [Slot; VFD_SLOTS],
}

impl VfdTable {
    /// No descriptor open.
    pub const EMPTY: VfdTable = VfdTable {
        slots: [Slot {
            used: false,
            file: 0,
            pos: 0,
        }; VFD_SLOTS],
    };

    /// Opens a descriptor on cache file `file`; `None` when the table is full.
    pub fn open(&mut self, file: u32) -> Option<i32> {
        let (i, slot) = self.slots.iter_mut().enumerate().find(|(_, s)| !s.used)?;
        *slot = Slot {
            used: true,
            file,
            pos: 0,
        };
        Some(VFD_BASE + i as i32)
    }

    /// The slot behind descriptor `fd`, if `fd` is an open virtual one.
    pub fn get(&mut self, fd: i64) -> Option<&mut Slot> {
        let i = usize::try_from(fd.checked_sub(i64::from(VFD_BASE))?).ok()?;
        self.slots.get_mut(i).filter(|s| s.used)
    }
}
