//! Why replay or recording was turned off for a process, and how a trace
//! line says it.

/// Why replay or recording was turned off for this process.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum OffReason {
    /// Not turned off (or never asked for).
    None = 0,
    /// `DLFM_CACHE` is longer than PATH_MAX.
    PathTooLong,
    /// The cache file could not be opened.
    CacheOpen,
    /// The cache path names a FIFO, a device or a directory.
    CacheNotRegular,
    /// The cache is owned by another user or writable by others.
    CacheUntrusted,
    /// The cache file could not be examined or mapped.
    CacheMap,
    /// The cache file failed validation (see the trace line before).
    CacheInvalid,
    /// The cache was recorded for other programs.
    OtherProgram,
    /// The cache was recorded with another ld.so build.
    OtherLdso,
    /// The journal could not be opened for appending (it must exist:
    /// `dlfm.pre write-cache` creates it).
    JournalOpen,
    /// The journal path names a FIFO, a device or a directory.
    JournalNotRegular,
    /// The kernel's pages are larger than the cache file's alignment of
    /// the loader's files, and there is no node copy to map them from.
    PageTooLarge,
}

impl OffReason {
    /// The text a trace line gives for it.
    pub fn text(self) -> &'static [u8] {
        match self {
            OffReason::None => b"",
            OffReason::PathTooLong => b"DLFM_CACHE path too long",
            OffReason::CacheOpen => b"cannot open the cache file",
            OffReason::CacheNotRegular => b"the cache is not a regular file",
            OffReason::CacheUntrusted => b"the cache is not trusted",
            OffReason::CacheMap => b"cannot map the cache file",
            OffReason::CacheInvalid => b"the cache file is damaged or of another version",
            OffReason::OtherProgram => b"the cache was recorded for another program",
            OffReason::OtherLdso => b"the cache was recorded with another ld.so build",
            OffReason::JournalOpen => {
                b"cannot open the journal (dlfm.pre write-cache creates it; it is never created here)"
            }
            OffReason::JournalNotRegular => b"the journal is not a regular file",
            OffReason::PageTooLarge => {
                b"this kernel's pages are larger than the cache's 64 KiB alignment, and there is no node-local copy"
            }
        }
    }
}
