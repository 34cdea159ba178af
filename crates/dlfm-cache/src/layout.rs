//! The layout of `dlcache.dat`: every on-disk record is a `#[repr(C)]`
//! struct of little-endian fields ([`U32`], [`U64`], [`I32`]: byte arrays,
//! alignment 1), so the struct *is* the format; a record is read in place
//! with one checked cast ([`Plain::from_bytes`]) and written as its bytes
//! ([`Plain::as_bytes`]). Shared by the writer (`dlfm-pack`) and the reader
//! (`read`).
//!
//! ```text
//! [Header]        at offset 0; [0, meta_len) is the metadata, under the checksum
//! [EntryRecord]   entries_count of them at entries_off, sorted by (FNV-1a 64
//!                 of the path, path bytes)
//! [FileRecord]    files_count at files_off
//! stat            stats_count stored `struct stat`s at stats_off (STAT_SIZE
//!                 bytes each: the kernel's x86_64 layout, `crate::stat`)
//! [IdRecord]      ids_count at ids_off
//! [ListRecord]    lists_count at lists_off; each names `count` [`DirEntry`]s
//!                 in the string table
//! strings         strings_len bytes at strings_off: paths, listings, the
//!                 interposer's path, the scope's patterns
//! data            from the first page boundary after the metadata, each
//!                 stored file's bytes at a page-aligned offset (a file
//!                 ld.so opened, which it may map, at a MAP_ALIGN-aligned
//!                 one), zero padded
//! ```
//!
//! Beyond the checksum, [`crate::read::Cache::parse`] insists that the
//! metadata is consistent, so that a cache that is sealed but wrong (a buggy
//! or hostile writer) is refused as a whole rather than half used:
//! - every table and the string table lie in `[HEADER_LEN, meta_len)`;
//! - every path (entry, file, the interposer's) lies inside the string table;
//! - entries are strictly ascending by (hash, path bytes), byte-wise;
//! - an entry's results are `NOT_RECORDED`, `-errno` with errno in
//!   `1..=4095`, or an index below the file count (open), below the stat
//!   count (stat), or exactly 0 (access);
//! - a file's `data_off` is a multiple of [`PAGE`], at or after the data
//!   region, and `data_off + size <= file_len`; its stat index is below the
//!   stat count;
//! - an identity's kind is 1 or 2 and its length at most 32.

use core::mem::{offset_of, size_of};

use dlfm_bytes::le_u64;

use crate::hash::{fnv1a64_continue, FNV64_OFFSET};

/// The file's first 8 bytes.
pub const MAGIC: [u8; 8] = *b"DLFMCACH";
/// The format version this code reads and writes (4: files ld.so opened
/// are aligned to [`MAP_ALIGN`]).
pub const VERSION: u32 = 4;
/// Length of the header.
pub const HEADER_LEN: usize = size_of::<Header>();
/// Length of an index entry.
pub const ENTRY_LEN: usize = size_of::<EntryRecord>();
/// Length of a list record.
pub const LIST_LEN: usize = size_of::<ListRecord>();
/// Length of a file record.
pub const FILE_LEN: usize = size_of::<FileRecord>();
/// Length of an identity record.
pub const ID_LEN: usize = size_of::<IdRecord>();
/// Longest identity (also the room for one in a journal Process record).
pub const ID_MAX: usize = 32;
/// Size of a stored stat: the kernel's x86_64 `struct stat`.
pub const STAT_SIZE: usize = 144;
/// File data is aligned to this (the smallest page size).
pub const PAGE: u64 = 4096;
/// The data of a file ld.so opened is aligned to this: the largest page
/// size of an x86_64 or aarch64 kernel (4, 16 and 64 KiB exist on
/// aarch64), so that ld.so's mappings of it from the cache file, at
/// offsets that are multiples of the kernel's page size, are valid under
/// any of them. A kernel with larger pages does not replay from the cache
/// file (`dlfm_runtime::vfd::map_at`).
pub const MAP_ALIGN: u64 = 65536;
/// An entry's field for a lookup the pilot did not make.
pub const NOT_RECORDED: i32 = i32::MIN;
/// The largest errno an entry may hold (the kernel's `MAX_ERRNO`).
pub const MAX_ERRNO: i32 = 4095;

// The format's sizes, checked against the structs that are the format.
const _: () = assert!(HEADER_LEN == 136 && ENTRY_LEN == 40 && FILE_LEN == 40);
const _: () = assert!(LIST_LEN == 16 && ID_LEN == 40);

/// A little-endian `u32` as stored (alignment 1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(transparent)]
pub struct U32([u8; 4]);

impl U32 {
    /// `v`, stored.
    #[inline]
    pub const fn new(v: u32) -> U32 {
        U32(v.to_le_bytes())
    }

    /// The value.
    #[inline]
    pub const fn get(self) -> u32 {
        u32::from_le_bytes(self.0)
    }
}

/// A little-endian `i32` as stored (alignment 1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(transparent)]
pub struct I32([u8; 4]);

impl I32 {
    /// `v`, stored.
    #[inline]
    pub const fn new(v: i32) -> I32 {
        I32(v.to_le_bytes())
    }

    /// The value.
    #[inline]
    pub const fn get(self) -> i32 {
        i32::from_le_bytes(self.0)
    }
}

/// A little-endian `u64` as stored (alignment 1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(transparent)]
pub struct U64([u8; 8]);

impl U64 {
    /// `v`, stored.
    #[inline]
    pub const fn new(v: u64) -> U64 {
        U64(v.to_le_bytes())
    }

    /// The value.
    #[inline]
    pub const fn get(self) -> u64 {
        u64::from_le_bytes(self.0)
    }
}

/// A record of the format: readable in place from any bytes.
///
/// # Safety
/// Only for `#[repr(C)]` structs made of byte arrays and the types above:
/// alignment 1, no padding, and every byte pattern a valid value.
pub unsafe trait Plain: Sized {
    /// The record at the start of `b`, if `b` is long enough.
    #[inline]
    fn from_bytes(b: &[u8]) -> Option<&Self> {
        let b = b.get(..size_of::<Self>())?;
        // SAFETY: `b` holds size_of::<Self>() bytes; Self has alignment 1
        // and every byte pattern is a valid Self (the trait's promise).
        Some(unsafe { &*(b.as_ptr() as *const Self) })
    }

    /// The record's bytes.
    #[inline]
    fn as_bytes(&self) -> &[u8] {
        // SAFETY: Self is size_of::<Self>() initialised bytes with no
        // padding (the trait's promise), borrowed for as long as `self`.
        unsafe { core::slice::from_raw_parts(self as *const Self as *const u8, size_of::<Self>()) }
    }
}

/// The header, at offset 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Header {
    /// [`MAGIC`].
    pub magic: [u8; 8],
    /// [`VERSION`].
    pub version: U32,
    /// [`HEADER_LEN`].
    pub header_len: U32,
    /// Total file length.
    pub file_len: U64,
    /// Length of the metadata (covered by the checksum).
    pub meta_len: U64,
    /// FNV-1a 64 of `[0, meta_len)` with these 8 bytes taken as zero.
    pub checksum: U64,
    /// Offset of the index.
    pub entries_off: U64,
    /// Index entries.
    pub entries_count: U32,
    /// File records.
    pub files_count: U32,
    /// Offset of the file records.
    pub files_off: U64,
    /// Offset of the stats.
    pub stats_off: U64,
    /// Stats.
    pub stats_count: U32,
    /// Identity records.
    pub ids_count: U32,
    /// Offset of the identity records.
    pub ids_off: U64,
    /// Offset of the string table.
    pub strings_off: U64,
    /// Length of the string table.
    pub strings_len: U64,
    /// The run width given to dlfm.pre.
    pub width: U32,
    /// The FMCaching interposer's path in the string table (length 0: no
    /// FMCaching).
    pub fm_path_off: U32,
    /// Its length.
    pub fm_path_len: U32,
    /// Directory listings.
    pub lists_count: U32,
    /// Offset of the list records.
    pub lists_off: U64,
    /// The scope's `--include`/`--exclude` patterns in the string table
    /// (`dlfm_runtime::scope::Rules`' encoding, which the noting of misses
    /// applies).
    pub scope_off: U32,
    /// Their length (0: the default scope).
    pub scope_len: U32,
}

// SAFETY: repr(C), byte arrays and U32/U64 only: alignment 1, no padding.
unsafe impl Plain for Header {}

impl Header {
    /// Whether the magic, version and header length are this code's.
    #[inline]
    pub fn is_this_version(&self) -> (bool, bool) {
        (
            dlfm_bytes::equal(&self.magic, &MAGIC),
            self.version.get() == VERSION && self.header_len.get() == HEADER_LEN as u32,
        )
    }

    /// This header with magic, version and length set (the checksum is
    /// [`seal`]'s).
    #[inline]
    pub fn stamped(mut self) -> Header {
        self.magic = MAGIC;
        self.version = U32::new(VERSION);
        self.header_len = U32::new(HEADER_LEN as u32);
        self
    }
}

/// Byte offsets of the header's fields, derived from [`Header`] (for tests
/// and tools that damage caches on purpose).
pub mod header_at {
    use super::Header;
    use core::mem::offset_of;

    /// `magic`.
    pub const MAGIC: usize = offset_of!(Header, magic);
    /// `version`.
    pub const VERSION: usize = offset_of!(Header, version);
    /// `header_len`.
    pub const HEADER_LEN: usize = offset_of!(Header, header_len);
    /// `file_len`.
    pub const FILE_LEN: usize = offset_of!(Header, file_len);
    /// `meta_len`.
    pub const META_LEN: usize = offset_of!(Header, meta_len);
    /// `checksum`.
    pub const CHECKSUM: usize = offset_of!(Header, checksum);
    /// `entries_off`.
    pub const ENTRIES_OFF: usize = offset_of!(Header, entries_off);
    /// `entries_count`.
    pub const ENTRIES_COUNT: usize = offset_of!(Header, entries_count);
    /// `files_count`.
    pub const FILES_COUNT: usize = offset_of!(Header, files_count);
    /// `files_off`.
    pub const FILES_OFF: usize = offset_of!(Header, files_off);
    /// `stats_off`.
    pub const STATS_OFF: usize = offset_of!(Header, stats_off);
    /// `stats_count`.
    pub const STATS_COUNT: usize = offset_of!(Header, stats_count);
    /// `ids_count`.
    pub const IDS_COUNT: usize = offset_of!(Header, ids_count);
    /// `ids_off`.
    pub const IDS_OFF: usize = offset_of!(Header, ids_off);
    /// `strings_off`.
    pub const STRINGS_OFF: usize = offset_of!(Header, strings_off);
    /// `strings_len`.
    pub const STRINGS_LEN: usize = offset_of!(Header, strings_len);
    /// `lists_count`.
    pub const LISTS_COUNT: usize = offset_of!(Header, lists_count);
    /// `lists_off`.
    pub const LISTS_OFF: usize = offset_of!(Header, lists_off);
}

/// What an identity names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdKind {
    /// A program the cache was recorded for.
    Program = 1,
    /// An ld.so build the cache was recorded with.
    Ldso = 2,
}

impl IdKind {
    /// The kind a stored byte names, if any.
    #[inline]
    pub fn from_byte(b: u8) -> Option<IdKind> {
        match b {
            1 => Some(IdKind::Program),
            2 => Some(IdKind::Ldso),
            _ => None,
        }
    }
}

/// The recorded result of one lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The pilot did not make this lookup.
    NotRecorded,
    /// It failed with this errno (positive).
    Err(i32),
    /// It succeeded: a file index (open), a stat index (stat), 0 (access).
    Ok(u32),
}

impl Outcome {
    /// As an entry stores it. Values the format cannot hold are clamped (an
    /// errno outside `1..=MAX_ERRNO`, an index above `i32::MAX`), so the
    /// reader refuses the cache instead of misreading it.
    #[inline]
    pub fn encode(self) -> i32 {
        match self {
            Outcome::NotRecorded => NOT_RECORDED,
            Outcome::Err(errno) if (1..=MAX_ERRNO).contains(&errno) => -errno,
            Outcome::Err(_) => -(MAX_ERRNO + 1),
            Outcome::Ok(index) => i32::try_from(index).unwrap_or(i32::MAX),
        }
    }

    /// An entry's stored value.
    #[inline]
    pub fn decode(v: i32) -> Outcome {
        match v {
            NOT_RECORDED => Outcome::NotRecorded,
            v if v < 0 => Outcome::Err(-v),
            v => Outcome::Ok(v as u32),
        }
    }

    /// Whether the format allows it, given that a success must name an
    /// index below `count`.
    #[inline]
    pub fn is_valid(self, count: u32) -> bool {
        match self {
            Outcome::NotRecorded => true,
            Outcome::Err(errno) => (1..=MAX_ERRNO).contains(&errno),
            Outcome::Ok(index) => index < count,
        }
    }
}

/// What was recorded about one path: the five lookups, each an [`Outcome`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lookups {
    /// `open(path, O_RDONLY)`: a file index.
    pub open: Outcome,
    /// `stat(path)`: a stat index.
    pub stat: Outcome,
    /// `access(path, R_OK)`: 0.
    pub access: Outcome,
    /// `lstat(path)`: a stat index.
    pub lstat: Outcome,
    /// `opendir(path)` and its `readdir`s: a list index.
    pub list: Outcome,
}

impl Lookups {
    /// Nothing recorded.
    pub const NONE: Lookups = Lookups {
        open: Outcome::NotRecorded,
        stat: Outcome::NotRecorded,
        access: Outcome::NotRecorded,
        lstat: Outcome::NotRecorded,
        list: Outcome::NotRecorded,
    };
}

/// An index entry: a path (hash and place in the string table) and what was
/// recorded for it (each field: [`NOT_RECORDED`], `-errno`, or an index).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct EntryRecord {
    /// FNV-1a 64 of the path.
    pub hash: U64,
    /// The path's offset in the string table.
    pub path_off: U32,
    /// The path's length.
    pub path_len: U32,
    /// `open`.
    pub open: I32,
    /// `stat`.
    pub stat: I32,
    /// `access`.
    pub access: I32,
    /// `lstat`.
    pub lstat: I32,
    /// `opendir`.
    pub list: I32,
    /// Zero.
    pub zero: U32,
}

// SAFETY: repr(C), U32/U64/I32 only: alignment 1, no padding.
unsafe impl Plain for EntryRecord {}

impl EntryRecord {
    /// The entry for the path at `path_off`/`path_len` with hash `hash`.
    #[inline]
    pub fn new(hash: u64, path_off: u32, path_len: u32, l: &Lookups) -> EntryRecord {
        EntryRecord {
            hash: U64::new(hash),
            path_off: U32::new(path_off),
            path_len: U32::new(path_len),
            open: I32::new(l.open.encode()),
            stat: I32::new(l.stat.encode()),
            access: I32::new(l.access.encode()),
            lstat: I32::new(l.lstat.encode()),
            list: I32::new(l.list.encode()),
            zero: U32::new(0),
        }
    }

    /// What it records.
    #[inline]
    pub fn lookups(&self) -> Lookups {
        Lookups {
            open: Outcome::decode(self.open.get()),
            stat: Outcome::decode(self.stat.get()),
            access: Outcome::decode(self.access.get()),
            lstat: Outcome::decode(self.lstat.get()),
            list: Outcome::decode(self.list.get()),
        }
    }
}

/// A file record: where a stored file's bytes lie and what they are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct FileRecord {
    /// Offset of its bytes in the cache file (a multiple of [`PAGE`], in the
    /// data region).
    pub data_off: U64,
    /// Its length.
    pub size: U64,
    /// Index of its recorded stat.
    pub stat_index: U32,
    /// The recorded path's offset in the string table.
    pub path_off: U32,
    /// The path's length.
    pub path_len: U32,
    /// FNV-1a 32 of its bytes (checked by `dlfm.pre check`, not by replay:
    /// see docs/internals.md).
    pub data_sum: U32,
    /// The file's canonical path (no symbolic link, `.` or `..`: what the
    /// kernel names it by in `/proc/self/maps`) in the string table: where
    /// a node-local copy keeps it.
    pub real_off: U32,
    /// Its length.
    pub real_len: U32,
}

// SAFETY: repr(C), U32/U64 only: alignment 1, no padding.
unsafe impl Plain for FileRecord {}

/// A list record: where a directory's entries lie in the string table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct ListRecord {
    /// Offset of the entries ([`DirEntry`]s) in the string table.
    pub data_off: U32,
    /// Their length in bytes.
    pub data_len: U32,
    /// How many entries.
    pub count: U32,
    /// Zero.
    pub zero: U32,
}

// SAFETY: repr(C), U32 only: alignment 1, no padding.
unsafe impl Plain for ListRecord {}

/// One directory entry of a listing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirEntry<'a> {
    /// `d_ino`.
    pub ino: u64,
    /// `d_type` (DT_DIR, DT_REG, ...).
    pub d_type: u8,
    /// The name (1..=255 bytes, no NUL, no '/').
    pub name: &'a [u8],
}

impl<'a> DirEntry<'a> {
    /// The entry at the start of `b` and its encoded length, if whole.
    #[inline]
    pub fn read(b: &'a [u8]) -> Option<(DirEntry<'a>, usize)> {
        let ino = le_u64(b, 0)?;
        let d_type = *b.get(8)?;
        let len = *b.get(9)? as usize;
        let name = b.get(10..10 + len)?;
        if len == 0 || !plain_name(name) {
            return None;
        }
        Some((DirEntry { ino, d_type, name }, 10 + len))
    }

    /// Appends the entry's encoding to `out` by `push`; false (nothing
    /// written) if the name cannot be stored (empty, over 255 bytes, or
    /// holding '/' or NUL).
    #[inline]
    pub fn write(&self, mut push: impl FnMut(&[u8])) -> bool {
        let ok = !self.name.is_empty() && self.name.len() <= 255 && plain_name(self.name);
        if ok {
            push(&self.ino.to_le_bytes());
            push(&[self.d_type, self.name.len() as u8]);
            push(self.name);
        }
        ok
    }
}

/// Whether `name` holds neither '/' nor NUL. (A plain loop: `contains`
/// would call core's out-of-line `memchr`, which the wrapper cannot link.)
#[inline]
fn plain_name(name: &[u8]) -> bool {
    name.iter().all(|&b| b != b'/' && b != 0)
}

/// An identity record: a program or ld.so the cache was recorded for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct IdRecord {
    /// An [`IdKind`] (1 program, 2 ld.so).
    pub kind: u8,
    /// The identity's length (at most [`ID_MAX`]).
    pub len: u8,
    /// Zero.
    pub zero: [u8; 6],
    /// The identity, zero padded.
    pub id: [u8; ID_MAX],
}

// SAFETY: repr(C), byte arrays only: alignment 1, no padding.
unsafe impl Plain for IdRecord {}

impl IdRecord {
    /// The record of identity `id` of `kind`; `None` if it is longer than
    /// [`ID_MAX`].
    #[inline]
    pub fn new(kind: IdKind, id: &[u8]) -> Option<IdRecord> {
        let mut r = IdRecord {
            kind: kind as u8,
            len: u8::try_from(id.len())
                .ok()
                .filter(|&n| usize::from(n) <= ID_MAX)?,
            zero: [0; 6],
            id: [0; ID_MAX],
        };
        dlfm_bytes::copy(r.id.get_mut(..id.len())?, id);
        Some(r)
    }

    /// Its kind and identity; `None` if the kind is unknown or the length
    /// exceeds [`ID_MAX`].
    #[inline]
    pub fn parts(&self) -> Option<(IdKind, &[u8])> {
        Some((
            IdKind::from_byte(self.kind)?,
            self.id.get(..usize::from(self.len))?,
        ))
    }
}

/// The checksum of the metadata `meta` (its own 8 bytes taken as zero).
/// Metadata shorter than the header is hashed as it is.
#[inline]
pub fn checksum(meta: &[u8]) -> u64 {
    let at = offset_of!(Header, checksum);
    let (Some(before), Some(after)) = (meta.get(..at), meta.get(at + 8..)) else {
        return crate::hash::fnv1a64(meta);
    };
    let h = fnv1a64_continue(FNV64_OFFSET, before);
    let h = fnv1a64_continue(h, &[0; 8]);
    fnv1a64_continue(h, after)
}

/// Stores the checksum of `meta` in its header.
#[inline]
pub fn seal(meta: &mut [u8]) {
    let sum = checksum(meta).to_le_bytes();
    let at = offset_of!(Header, checksum);
    if let Some(dst) = meta.get_mut(at..at + 8) {
        dlfm_bytes::copy(dst, &sum);
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use proptest::prelude::*;

    use super::*;

    fn outcome() -> impl Strategy<Value = Outcome> {
        prop_oneof![
            Just(Outcome::NotRecorded),
            (1..=MAX_ERRNO).prop_map(Outcome::Err),
            (0..=i32::MAX as u32).prop_map(Outcome::Ok),
        ]
    }

    proptest! {
        #[test]
        fn entry_records_round_trip(
            hash: u64, path_off: u32, path_len: u32,
            open in outcome(), stat in outcome(), access in outcome(), lstat in outcome(),
        ) {
            let l = Lookups { open, stat, access, lstat, list: open };
            let rec = EntryRecord::new(hash, path_off, path_len, &l);
            let back = EntryRecord::from_bytes(rec.as_bytes()).unwrap();
            prop_assert_eq!(back.lookups(), l);
            prop_assert_eq!((back.hash.get(), back.path_off.get(), back.path_len.get()), (hash, path_off, path_len));
            prop_assert_eq!(&rec.as_bytes()[36..], &[0u8; 4][..]);
        }

        #[test]
        fn dir_entries_round_trip(ino: u64, d_type: u8, name in proptest::collection::vec(1u8..=255, 0..300)) {
            let e = DirEntry { ino, d_type, name: &name };
            let mut out = std::vec::Vec::new();
            let ok = e.write(|b| out.extend_from_slice(b));
            prop_assert_eq!(ok, !name.is_empty() && name.len() <= 255 && !name.contains(&b'/'));
            if ok {
                prop_assert_eq!(DirEntry::read(&out), Some((e, out.len())));
            } else {
                prop_assert!(out.is_empty());
            }
        }

        #[test]
        fn file_records_round_trip(
            data_off: u64, size: u64, stat_index: u32, path_off: u32, path_len: u32, data_sum: u32,
        ) {
            let rec = FileRecord {
                data_off: U64::new(data_off), size: U64::new(size), stat_index: U32::new(stat_index),
                path_off: U32::new(path_off), path_len: U32::new(path_len), data_sum: U32::new(data_sum),
                real_off: U32::new(path_len ^ 1), real_len: U32::new(path_off ^ 2),
            };
            let b = rec.as_bytes();
            prop_assert_eq!(b.len(), FILE_LEN);
            prop_assert_eq!(FileRecord::from_bytes(b), Some(&rec));
            prop_assert_eq!(&b[..8], &data_off.to_le_bytes()[..]);
            prop_assert_eq!(&b[28..32], &data_sum.to_le_bytes()[..]);
        }

        #[test]
        fn id_records_round_trip(program: bool, id in proptest::collection::vec(any::<u8>(), 0..=40)) {
            let kind = if program { IdKind::Program } else { IdKind::Ldso };
            let rec = IdRecord::new(kind, &id);
            prop_assert_eq!(rec.is_some(), id.len() <= ID_MAX);
            if let Some(rec) = rec {
                let b = rec.as_bytes();
                prop_assert_eq!(IdRecord::from_bytes(b).unwrap().parts(), Some((kind, &id[..])));
                prop_assert!(b[2..8].iter().chain(&b[8 + id.len()..]).all(|&x| x == 0));
            }
        }

        #[test]
        fn headers_round_trip(
            a: (u64, u64, u64, u32, u32, u64),
            b: (u64, u32, u32, u64, u64, u64, u32),
            fm: (u32, u32),
        ) {
            let h = Header {
                file_len: U64::new(a.0), meta_len: U64::new(a.1), entries_off: U64::new(a.2),
                entries_count: U32::new(a.3), files_count: U32::new(a.4), files_off: U64::new(a.5),
                stats_off: U64::new(b.0), stats_count: U32::new(b.1), ids_count: U32::new(b.2),
                ids_off: U64::new(b.3), strings_off: U64::new(b.4), strings_len: U64::new(b.5),
                width: U32::new(b.6), fm_path_off: U32::new(fm.0), fm_path_len: U32::new(fm.1),
                lists_count: U32::new(fm.0 ^ 7), lists_off: U64::new(a.0 ^ 9),
                scope_off: U32::new(fm.1 ^ 3), scope_len: U32::new(fm.0 ^ 5),
                ..Header::default()
            }
            .stamped();
            let bytes = h.as_bytes();
            prop_assert_eq!(bytes.len(), HEADER_LEN);
            prop_assert_eq!(Header::from_bytes(bytes), Some(&h));
            prop_assert_eq!(h.is_this_version(), (true, true));
            prop_assert_eq!(&bytes[header_at::LISTS_OFF..header_at::LISTS_OFF + 8], &(a.0 ^ 9).to_le_bytes()[..]);
        }

        #[test]
        fn outcomes_round_trip_through_entries(o in outcome()) {
            prop_assert!(o.is_valid(u32::MAX));
            prop_assert_eq!(Outcome::decode(o.encode()), o);
        }
    }

    #[test]
    fn outcomes_round_trip() {
        for o in [
            Outcome::NotRecorded,
            Outcome::Err(2),
            Outcome::Err(13),
            Outcome::Ok(0),
            Outcome::Ok(77),
        ] {
            assert_eq!(Outcome::decode(o.encode()), o);
        }
    }

    #[test]
    fn checksum_ignores_its_own_field() {
        let mut meta = [7u8; 200];
        seal(&mut meta);
        let sum = le_u64(&meta, header_at::CHECKSUM).unwrap();
        assert_eq!(checksum(&meta), sum);
        meta[150] ^= 1;
        assert_ne!(checksum(&meta), sum);
    }
}
