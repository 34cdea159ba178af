//! The layout of `dlcache.dat` (all integers little-endian), shared by the
//! writer (`dlfm-pack`) and the reader (`read`).
//!
//! ```text
//! header, 136 bytes at offset 0:
//!   0 magic "DLFMCACH"   8 version u32 (3)   12 header_len u32 (136)
//!  16 file_len u64       24 meta_len u64: [0, meta_len) is metadata
//!  32 checksum u64: FNV-1a 64 of [0, meta_len) with these 8 bytes as zero
//!  40 entries_off u64    48 entries_count u32   52 files_count u32
//!  56 files_off u64      64 stats_off u64       72 stats_count u32
//!  76 ids_count u32      80 ids_off u64         88 strings_off u64
//!  96 strings_len u64   104 width u32
//! 108 fm_path_off u32   112 fm_path_len u32 (into strings; length 0: no
//!     FMCaching; else the interposer replay preloads)
//! 116 lists_count u32   120 lists_off u64
//! 128 scope_off u32      132 scope_len u32 (into strings: the pack's
//!     `--include`/`--exclude` patterns, `dlfm_runtime::scope::Rules`'
//!     encoding, which the noting of misses applies)
//! entry, 40 bytes, sorted by (FNV-1a 64 of the path, path bytes):
//!   0 hash u64   8 path_off u32   12 path_len u32 (into strings)
//!  16 open i32   20 stat i32   24 access i32   28 lstat i32   32 list i32
//!  36 zero
//!     each: i32::MIN = not recorded, < 0 = -errno,
//!     >= 0 = file index (open), stat index (stat, lstat), 0 (access),
//!     list index (list: the directory's listing, `opendir`/`readdir`)
//! list, 16 bytes: data_off u32, data_len u32 (into strings), count u32,
//!     zero; the data is `count` directory entries, each ino u64, d_type u8,
//!     name_len u8 (1..=255), the name (no NUL)
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
//! - every path (entry, file, the interposer's) lies inside the string table;
//! - entries are strictly ascending by (hash, path bytes), byte-wise;
//! - an entry's results are `NOT_RECORDED`, `-errno` with errno in
//!   `1..=4095`, or an index below the file count (open), below the stat
//!   count (stat), or exactly 0 (access);
//! - a file's `data_off` is a multiple of 4096, at or after the data region,
//!   and `data_off + size <= file_len`; its stat index is below the stat count;
//! - an identity's kind is 1 or 2 and its length at most 32.

use dlfm_bytes::{le_u32, le_u64};

use crate::hash::{fnv1a64_continue, FNV64_OFFSET};

/// The file's first 8 bytes.
pub const MAGIC: [u8; 8] = *b"DLFMCACH";
/// The format version this code reads and writes.
pub const VERSION: u32 = 3;
/// Length of the header.
pub const HEADER_LEN: usize = 136;
/// Length of an index entry.
pub const ENTRY_LEN: usize = 40;
/// Length of a list record.
pub const LIST_LEN: usize = 16;
/// Length of a file record.
pub const FILE_LEN: usize = 32;
/// Length of an identity record.
pub const ID_LEN: usize = 40;
/// Longest identity (also the room for one in a journal Process record).
pub const ID_MAX: usize = 32;
/// Size of a stored stat: the kernel's x86_64 `struct stat`.
pub const STAT_SIZE: usize = 144;
/// File data is aligned to this (the page size).
pub const PAGE: u64 = 4096;
/// An entry's field for a lookup the pilot did not make.
pub const NOT_RECORDED: i32 = i32::MIN;
/// The largest errno an entry may hold (the kernel's `MAX_ERRNO`).
pub const MAX_ERRNO: i32 = 4095;

/// Byte offsets of the header's fields (the table in the module comment).
pub mod header_at {
    /// `magic`, 8 bytes.
    pub const MAGIC: usize = 0;
    /// `version` u32.
    pub const VERSION: usize = 8;
    /// `header_len` u32.
    pub const HEADER_LEN: usize = 12;
    /// `file_len` u64.
    pub const FILE_LEN: usize = 16;
    /// `meta_len` u64.
    pub const META_LEN: usize = 24;
    /// `checksum` u64.
    pub const CHECKSUM: usize = 32;
    /// `entries_off` u64.
    pub const ENTRIES_OFF: usize = 40;
    /// `entries_count` u32.
    pub const ENTRIES_COUNT: usize = 48;
    /// `files_count` u32.
    pub const FILES_COUNT: usize = 52;
    /// `files_off` u64.
    pub const FILES_OFF: usize = 56;
    /// `stats_off` u64.
    pub const STATS_OFF: usize = 64;
    /// `stats_count` u32.
    pub const STATS_COUNT: usize = 72;
    /// `ids_count` u32.
    pub const IDS_COUNT: usize = 76;
    /// `ids_off` u64.
    pub const IDS_OFF: usize = 80;
    /// `strings_off` u64.
    pub const STRINGS_OFF: usize = 88;
    /// `strings_len` u64.
    pub const STRINGS_LEN: usize = 96;
    /// `width` u32.
    pub const WIDTH: usize = 104;
    /// `fm_path_off` u32.
    pub const FM_PATH_OFF: usize = 108;
    /// `fm_path_len` u32.
    pub const FM_PATH_LEN: usize = 112;
    /// `lists_count` u32.
    pub const LISTS_COUNT: usize = 116;
    /// `lists_off` u64.
    pub const LISTS_OFF: usize = 120;
    /// `scope_off` u32.
    pub const SCOPE_OFF: usize = 128;
    /// `scope_len` u32.
    pub const SCOPE_LEN: usize = 132;
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

/// The header's variable fields; magic, version and length are implied,
/// and the checksum is `seal`'s.
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
    /// The FMCaching interposer's path in the string table (length 0: none).
    pub fm_path_off: u32,
    /// Its length.
    pub fm_path_len: u32,
    /// Directory listings.
    pub lists_count: u32,
    /// Offset of the list records.
    pub lists_off: u64,
    /// The scope's patterns in the string table.
    pub scope_off: u32,
    /// Their length (0: the default scope).
    pub scope_len: u32,
}

impl Header {
    /// Writes the header into the first HEADER_LEN bytes of `out` (the
    /// checksum is left for `seal`).
    #[inline]
    pub fn write(&self, out: &mut [u8]) {
        use header_at as at;
        put(out, at::MAGIC, &MAGIC);
        put(out, at::VERSION, &VERSION.to_le_bytes());
        put(out, at::HEADER_LEN, &(HEADER_LEN as u32).to_le_bytes());
        put(out, at::FILE_LEN, &self.file_len.to_le_bytes());
        put(out, at::META_LEN, &self.meta_len.to_le_bytes());
        put(out, at::ENTRIES_OFF, &self.entries_off.to_le_bytes());
        put(out, at::ENTRIES_COUNT, &self.entries_count.to_le_bytes());
        put(out, at::FILES_COUNT, &self.files_count.to_le_bytes());
        put(out, at::FILES_OFF, &self.files_off.to_le_bytes());
        put(out, at::STATS_OFF, &self.stats_off.to_le_bytes());
        put(out, at::STATS_COUNT, &self.stats_count.to_le_bytes());
        put(out, at::IDS_COUNT, &self.ids_count.to_le_bytes());
        put(out, at::IDS_OFF, &self.ids_off.to_le_bytes());
        put(out, at::STRINGS_OFF, &self.strings_off.to_le_bytes());
        put(out, at::STRINGS_LEN, &self.strings_len.to_le_bytes());
        put(out, at::WIDTH, &self.width.to_le_bytes());
        put(out, at::FM_PATH_OFF, &self.fm_path_off.to_le_bytes());
        put(out, at::FM_PATH_LEN, &self.fm_path_len.to_le_bytes());
        put(out, at::LISTS_COUNT, &self.lists_count.to_le_bytes());
        put(out, at::LISTS_OFF, &self.lists_off.to_le_bytes());
        put(out, at::SCOPE_OFF, &self.scope_off.to_le_bytes());
        put(out, at::SCOPE_LEN, &self.scope_len.to_le_bytes());
    }

    /// Reads the variable fields of `h` (at least HEADER_LEN bytes); does
    /// not check magic, version or checksum (see [`Preamble`]).
    #[inline]
    pub fn read(h: &[u8]) -> Option<Header> {
        use header_at as at;
        if h.len() < HEADER_LEN {
            return None;
        }
        Some(Header {
            file_len: le_u64(h, at::FILE_LEN)?,
            meta_len: le_u64(h, at::META_LEN)?,
            entries_off: le_u64(h, at::ENTRIES_OFF)?,
            entries_count: le_u32(h, at::ENTRIES_COUNT)?,
            files_count: le_u32(h, at::FILES_COUNT)?,
            files_off: le_u64(h, at::FILES_OFF)?,
            stats_off: le_u64(h, at::STATS_OFF)?,
            stats_count: le_u32(h, at::STATS_COUNT)?,
            ids_count: le_u32(h, at::IDS_COUNT)?,
            ids_off: le_u64(h, at::IDS_OFF)?,
            strings_off: le_u64(h, at::STRINGS_OFF)?,
            strings_len: le_u64(h, at::STRINGS_LEN)?,
            width: le_u32(h, at::WIDTH)?,
            fm_path_off: le_u32(h, at::FM_PATH_OFF)?,
            fm_path_len: le_u32(h, at::FM_PATH_LEN)?,
            lists_count: le_u32(h, at::LISTS_COUNT)?,
            lists_off: le_u64(h, at::LISTS_OFF)?,
            scope_off: le_u32(h, at::SCOPE_OFF)?,
            scope_len: le_u32(h, at::SCOPE_LEN)?,
        })
    }
}

/// The header's fixed fields, which say whether the rest can be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Preamble {
    /// The first 8 bytes are [`MAGIC`].
    pub magic_ok: bool,
    /// The version and header length are this code's.
    pub version_ok: bool,
    /// The stored checksum.
    pub checksum: u64,
}

impl Preamble {
    /// Reads the fixed fields of `h`, if it holds a header.
    #[inline]
    pub fn read(h: &[u8]) -> Option<Preamble> {
        use header_at as at;
        let magic = h.get(at::MAGIC..at::MAGIC + MAGIC.len())?;
        Some(Preamble {
            magic_ok: dlfm_bytes::equal(magic, &MAGIC),
            version_ok: le_u32(h, at::VERSION)? == VERSION
                && le_u32(h, at::HEADER_LEN)? == HEADER_LEN as u32,
            checksum: le_u64(h, at::CHECKSUM)?,
        })
    }
}

/// An index entry: a path (hash and place in the string table) and the
/// three lookups recorded for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryRecord {
    /// FNV-1a 64 of the path.
    pub hash: u64,
    /// The path's offset in the string table.
    pub path_off: u32,
    /// The path's length.
    pub path_len: u32,
    /// `open(path, O_RDONLY)`.
    pub open: Outcome,
    /// `stat(path)`.
    pub stat: Outcome,
    /// `access(path, R_OK)`.
    pub access: Outcome,
    /// `lstat(path)`.
    pub lstat: Outcome,
    /// `opendir(path)` and its `readdir`s: a list index.
    pub list: Outcome,
}

impl EntryRecord {
    /// Reads a record from the first ENTRY_LEN bytes of `b`.
    #[inline]
    pub fn read(b: &[u8]) -> Option<EntryRecord> {
        Some(EntryRecord {
            hash: le_u64(b, 0)?,
            path_off: le_u32(b, 8)?,
            path_len: le_u32(b, 12)?,
            open: Outcome::decode(le_u32(b, 16)? as i32),
            stat: Outcome::decode(le_u32(b, 20)? as i32),
            access: Outcome::decode(le_u32(b, 24)? as i32),
            lstat: Outcome::decode(le_u32(b, 28)? as i32),
            list: Outcome::decode(le_u32(b, 32)? as i32),
        })
    }

    /// Writes the record into the first ENTRY_LEN bytes of `out`.
    #[inline]
    pub fn write(&self, out: &mut [u8]) {
        put(out, 0, &self.hash.to_le_bytes());
        put(out, 8, &self.path_off.to_le_bytes());
        put(out, 12, &self.path_len.to_le_bytes());
        put(out, 16, &self.open.encode().to_le_bytes());
        put(out, 20, &self.stat.encode().to_le_bytes());
        put(out, 24, &self.access.encode().to_le_bytes());
        put(out, 28, &self.lstat.encode().to_le_bytes());
        put(out, 32, &self.list.encode().to_le_bytes());
        put(out, 36, &[0; 4]);
    }
}

/// A file record: where a stored file's bytes lie and what they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileRecord {
    /// Offset of its bytes in the cache file (a multiple of PAGE).
    pub data_off: u64,
    /// Its length.
    pub size: u64,
    /// Index of its recorded stat.
    pub stat_index: u32,
    /// The recorded path's offset in the string table.
    pub path_off: u32,
    /// The path's length.
    pub path_len: u32,
    /// FNV-1a 32 of its bytes.
    pub data_sum: u32,
}

impl FileRecord {
    /// Reads a record from the first FILE_LEN bytes of `b`.
    #[inline]
    pub fn read(b: &[u8]) -> Option<FileRecord> {
        Some(FileRecord {
            data_off: le_u64(b, 0)?,
            size: le_u64(b, 8)?,
            stat_index: le_u32(b, 16)?,
            path_off: le_u32(b, 20)?,
            path_len: le_u32(b, 24)?,
            data_sum: le_u32(b, 28)?,
        })
    }

    /// Writes the record into the first FILE_LEN bytes of `out`.
    #[inline]
    pub fn write(&self, out: &mut [u8]) {
        put(out, 0, &self.data_off.to_le_bytes());
        put(out, 8, &self.size.to_le_bytes());
        put(out, 16, &self.stat_index.to_le_bytes());
        put(out, 20, &self.path_off.to_le_bytes());
        put(out, 24, &self.path_len.to_le_bytes());
        put(out, 28, &self.data_sum.to_le_bytes());
    }
}

/// A list record: where a directory's entries lie in the string table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListRecord {
    /// Offset of the entries in the string table.
    pub data_off: u32,
    /// Their length in bytes.
    pub data_len: u32,
    /// How many entries.
    pub count: u32,
}

impl ListRecord {
    /// Reads a record from the first LIST_LEN bytes of `b`.
    #[inline]
    pub fn read(b: &[u8]) -> Option<ListRecord> {
        Some(ListRecord {
            data_off: le_u32(b, 0)?,
            data_len: le_u32(b, 4)?,
            count: le_u32(b, 8)?,
        })
    }

    /// Writes the record into the first LIST_LEN bytes of `out`.
    #[inline]
    pub fn write(&self, out: &mut [u8]) {
        put(out, 0, &self.data_off.to_le_bytes());
        put(out, 4, &self.data_len.to_le_bytes());
        put(out, 8, &self.count.to_le_bytes());
        put(out, 12, &[0; 4]);
    }
}

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
pub struct IdRecord<'a> {
    /// What it names.
    pub kind: IdKind,
    /// The identity (at most ID_MAX bytes).
    pub id: &'a [u8],
}

impl<'a> IdRecord<'a> {
    /// Reads a record from the first ID_LEN bytes of `b`; `None` if its kind
    /// is unknown or its length exceeds ID_MAX.
    #[inline]
    pub fn read(b: &'a [u8]) -> Option<IdRecord<'a>> {
        let kind = IdKind::from_byte(*b.first()?)?;
        let len = *b.get(1)? as usize;
        if len > ID_MAX {
            return None;
        }
        Some(IdRecord {
            kind,
            id: b.get(8..8 + len)?,
        })
    }

    /// Writes the record into the first ID_LEN bytes of `out`; `false` (and
    /// nothing written) if the identity is longer than ID_MAX.
    #[inline]
    pub fn write(&self, out: &mut [u8]) -> bool {
        if self.id.len() > ID_MAX || out.len() < ID_LEN {
            return false;
        }
        put(
            out,
            0,
            &[self.kind as u8, self.id.len() as u8, 0, 0, 0, 0, 0, 0],
        );
        put(out, 8, self.id);
        if let Some(pad) = out.get_mut(8 + self.id.len()..ID_LEN) {
            dlfm_bytes::fill(pad, 0);
        }
        true
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
    let at = header_at::CHECKSUM;
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
    let sum = checksum(meta);
    put(meta, header_at::CHECKSUM, &sum.to_le_bytes());
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
            let rec = EntryRecord { hash, path_off, path_len, open, stat, access, lstat, list: open };
            let mut b = [0xffu8; ENTRY_LEN];
            rec.write(&mut b);
            prop_assert_eq!(EntryRecord::read(&b), Some(rec));
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
            let rec = FileRecord { data_off, size, stat_index, path_off, path_len, data_sum };
            let mut b = [0u8; FILE_LEN];
            rec.write(&mut b);
            prop_assert_eq!(FileRecord::read(&b), Some(rec));
        }

        #[test]
        fn id_records_round_trip(program: bool, id in proptest::collection::vec(any::<u8>(), 0..=40)) {
            let kind = if program { IdKind::Program } else { IdKind::Ldso };
            let rec = IdRecord { kind, id: &id };
            let mut b = [0xffu8; ID_LEN];
            let written = rec.write(&mut b);
            prop_assert_eq!(written, id.len() <= ID_MAX);
            if written {
                prop_assert_eq!(IdRecord::read(&b), Some(rec));
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
                file_len: a.0, meta_len: a.1, entries_off: a.2, entries_count: a.3,
                files_count: a.4, files_off: a.5, stats_off: b.0, stats_count: b.1,
                ids_count: b.2, ids_off: b.3, strings_off: b.4, strings_len: b.5, width: b.6,
                fm_path_off: fm.0, fm_path_len: fm.1, lists_count: fm.0 ^ 7, lists_off: a.0 ^ 9,
                scope_off: fm.1 ^ 3, scope_len: fm.0 ^ 5,
            };
            let mut bytes = [0u8; HEADER_LEN];
            h.write(&mut bytes);
            prop_assert_eq!(Header::read(&bytes), Some(h));
            let pre = Preamble::read(&bytes).unwrap();
            prop_assert!(pre.magic_ok && pre.version_ok);
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
