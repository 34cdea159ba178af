//! The layout of `dlcache.dat` (all integers little-endian), shared by the
//! writer (`dlfm-pack`) and the reader (`read`).
//!
//! ```text
//! header, 128 bytes at offset 0:
//!   0 magic "DLFMCACH"   8 version u32 (1)   12 header_len u32 (128)
//!  16 file_len u64       24 meta_len u64: [0, meta_len) is metadata
//!  32 checksum u64: FNV-1a 64 of [0, meta_len) with these 8 bytes as zero
//!  40 entries_off u64    48 entries_count u32   52 files_count u32
//!  56 files_off u64      64 stats_off u64       72 stats_count u32
//!  76 ids_count u32      80 ids_off u64         88 strings_off u64
//!  96 strings_len u64   104 width u32          108..128 zero
//! entry, 32 bytes, sorted by (FNV-1a 64 of the path, path bytes):
//!   0 hash u64   8 path_off u32   12 path_len u32 (into strings)
//!  16 open i32   20 stat i32   24 access i32   28 zero
//!     each: i32::MIN = not recorded, < 0 = -errno,
//!     >= 0 = file index (open), stat index (stat), 0 (access)
//! file, 32 bytes:
//!   0 data_off u64 (a multiple of 4096, in the data region)  8 size u64
//!  16 stat index u32   20 path_off u32   24 path_len u32
//!  28 data_sum u32: FNV-1a 32 of the file's `size` bytes (checked by
//!     `dlfm.pre check`, not by replay: see docs/internals.md)
//! stat, 144 bytes: the kernel's x86_64 struct stat as newfstatat wrote it
//! id, 40 bytes: kind u8 (1 program, 2 ld.so), len u8 (<= 32), 6 zero, 32 bytes
//! ```
//! The data region starts at the first page boundary after the metadata;
//! each file's bytes start on a page boundary and are padded with zeros.
//!
//! Beyond the checksum, [`crate::read::Cache::parse`] insists that the
//! metadata is consistent, so that a cache that is sealed but wrong (a buggy
//! or hostile writer) is refused as a whole rather than half used:
//! - every table and the string table lie in `[128, meta_len)`;
//! - every path (entry or file) lies inside the string table;
//! - entries are strictly ascending by (hash, path bytes), byte-wise;
//! - an entry's results are `NOT_RECORDED`, `-errno` with errno in
//!   `1..=4095`, or an index below the file count (open), below the stat
//!   count (stat), or exactly 0 (access);
//! - a file's `data_off` is a multiple of 4096, at or after the data region,
//!   and `data_off + size <= file_len`; its stat index is below the stat count;
//! - an identity's kind is 1 or 2 and its length at most 32.

pub use crate::hash::fnv1a64;
use crate::hash::{fnv1a64_continue, FNV64_OFFSET};
use crate::read::Outcome;

/// The file's first 8 bytes.
pub const MAGIC: [u8; 8] = *b"DLFMCACH";
/// The format version this code reads and writes.
pub const VERSION: u32 = 1;
/// Length of the header.
pub const HEADER_LEN: usize = 128;
/// Length of an index entry.
pub const ENTRY_LEN: usize = 32;
/// Length of a file record.
pub const FILE_LEN: usize = 32;
/// Length of an identity record.
pub const ID_LEN: usize = 40;
/// Longest identity.
pub const ID_MAX: usize = 32;
/// Where the checksum lies in the header.
const CHECKSUM_AT: usize = 32;
/// An entry's field for a lookup the pilot did not make.
pub const NOT_RECORDED: i32 = i32::MIN;
/// The largest errno an entry may hold (the kernel's `MAX_ERRNO`).
pub const MAX_ERRNO: i32 = 4095;

/// The header's variable fields; magic, version and length are implied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// Total file length.
    pub file_len: u64,
    /// Length of the metadata (covered by the checksum).
    pub meta_len: u64,
    /// Offset of the index.
    pub entries_off: u64,
    /// Index entries.
    pub entries_count: u32,
    /// File records.
    pub files_count: u32,
    /// Offset of the file records.
    pub files_off: u64,
    /// Offset of the stats.
    pub stats_off: u64,
    /// Stats.
    pub stats_count: u32,
    /// Identity records.
    pub ids_count: u32,
    /// Offset of the identity records.
    pub ids_off: u64,
    /// Offset of the string table.
    pub strings_off: u64,
    /// Length of the string table.
    pub strings_len: u64,
    /// The run width given to dlfm.pre.
    pub width: u32,
}

impl Header {
    /// Writes the header into the first HEADER_LEN bytes of `out` (the
    /// checksum is left for `seal`).
    #[inline]
    pub fn write(&self, out: &mut [u8]) {
        put(out, 0, &MAGIC);
        put(out, 8, &VERSION.to_le_bytes());
        put(out, 12, &(HEADER_LEN as u32).to_le_bytes());
        put(out, 16, &self.file_len.to_le_bytes());
        put(out, 24, &self.meta_len.to_le_bytes());
        put(out, 40, &self.entries_off.to_le_bytes());
        put(out, 48, &self.entries_count.to_le_bytes());
        put(out, 52, &self.files_count.to_le_bytes());
        put(out, 56, &self.files_off.to_le_bytes());
        put(out, 64, &self.stats_off.to_le_bytes());
        put(out, 72, &self.stats_count.to_le_bytes());
        put(out, 76, &self.ids_count.to_le_bytes());
        put(out, 80, &self.ids_off.to_le_bytes());
        put(out, 88, &self.strings_off.to_le_bytes());
        put(out, 96, &self.strings_len.to_le_bytes());
        put(out, 104, &self.width.to_le_bytes());
    }
}

/// Copies `value` to `out[at..]` if it fits.
#[inline]
fn put(out: &mut [u8], at: usize, value: &[u8]) {
    if let Some(dst) = at
        .checked_add(value.len())
        .and_then(|end| out.get_mut(at..end))
    {
        dlfm_bytes::copy(dst, value);
    }
}

/// The checksum of the metadata `meta` (its own 8 bytes taken as zero).
/// Metadata shorter than the header is hashed as it is.
#[inline]
pub fn checksum(meta: &[u8]) -> u64 {
    let (Some(before), Some(after)) = (meta.get(..CHECKSUM_AT), meta.get(CHECKSUM_AT + 8..)) else {
        return fnv1a64(meta);
    };
    let h = fnv1a64_continue(FNV64_OFFSET, before);
    let h = fnv1a64_continue(h, &[0; 8]);
    fnv1a64_continue(h, after)
}

/// Stores the checksum of `meta` in its header.
#[inline]
pub fn seal(meta: &mut [u8]) {
    let sum = checksum(meta);
    put(meta, CHECKSUM_AT, &sum.to_le_bytes());
}

/// An [`Outcome`] as an entry stores it. Values the format cannot hold are
/// clamped (an errno outside `1..=MAX_ERRNO`, an index above `i32::MAX`),
/// so the reader refuses the cache instead of misreading it.
#[inline]
pub fn encode_outcome(o: Outcome) -> i32 {
    match o {
        Outcome::NotRecorded => NOT_RECORDED,
        Outcome::Err(errno) if (1..=MAX_ERRNO).contains(&errno) => -errno,
        Outcome::Err(_) => -(MAX_ERRNO + 1),
        Outcome::Ok(index) => i32::try_from(index).unwrap_or(i32::MAX),
    }
}

/// An entry's stored value as an [`Outcome`].
#[inline]
pub fn decode_outcome(v: i32) -> Outcome {
    match v {
        NOT_RECORDED => Outcome::NotRecorded,
        v if v < 0 => Outcome::Err(-v),
        v => Outcome::Ok(v as u32),
    }
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
    fn outcomes_round_trip() {
        for o in [
            Outcome::NotRecorded,
            Outcome::Err(2),
            Outcome::Err(13),
            Outcome::Ok(0),
            Outcome::Ok(77),
        ] {
            assert_eq!(decode_outcome(encode_outcome(o)), o);
        }
    }

    #[test]
    fn checksum_ignores_its_own_field() {
        let mut meta = [7u8; 200];
        seal(&mut meta);
        let sum = le_u64(&meta, 32).unwrap();
        assert_eq!(checksum(&meta), sum);
        meta[150] ^= 1;
        assert_ne!(checksum(&meta), sum);
    }
}
