//! Reading the fields dlfm needs out of a raw x86_64 `struct stat` (the
//! 144 bytes the kernel writes, stored as-is in the journal and the cache).

use dlfm_cache::read::STAT_SIZE;

/// A view of a raw `struct stat`.
#[derive(Clone, Copy)]
pub struct StatView<'a>(pub &'a [u8; STAT_SIZE]);

impl StatView<'_> {
    fn u64_at(&self, at: usize) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[at..at + 8]);
        u64::from_le_bytes(b)
    }

    /// `st_dev`.
    pub fn dev(&self) -> u64 {
        self.u64_at(0)
    }

    /// `st_ino`.
    pub fn ino(&self) -> u64 {
        self.u64_at(8)
    }

    /// `st_mode`.
    pub fn mode(&self) -> u32 {
        u32::from_le_bytes([self.0[24], self.0[25], self.0[26], self.0[27]])
    }

    /// `st_size`.
    pub fn size(&self) -> u64 {
        self.u64_at(48)
    }

    /// `st_mtime` seconds and nanoseconds.
    pub fn mtime(&self) -> (i64, i64) {
        (self.u64_at(88) as i64, self.u64_at(96) as i64)
    }

    /// Whether this is a regular file.
    pub fn is_regular(&self) -> bool {
        self.mode() & 0o170000 == 0o100000
    }

    /// Same inode, size and modification time: the same file content, as far
    /// as a metadata check can tell.
    pub fn same_file_content(&self, other: &StatView<'_>) -> bool {
        self.ino() == other.ino() && self.size() == other.size() && self.mtime() == other.mtime()
    }
}
