//! Reading `dlcache.dat` without std, allocation or panics: every offset and
//! length read from the file is checked against the buffer, so a damaged or
//! hostile file gives an error or a miss, never a crash. The wrapper runs
//! this inside ld.so, so every function here is `#[inline]`: it is compiled
//! into the wrapper's own object and never called through the GOT.

use core::cmp::Ordering;

pub use crate::hash::fnv1a64;
use crate::layout::{
    checksum, DirEntry, EntryRecord, FileRecord, Header, IdKind, IdRecord, ListRecord, Plain,
    ENTRY_LEN, FILE_LEN, HEADER_LEN, ID_LEN, LIST_LEN, PAGE, STAT_SIZE,
};

/// Everything recorded about one path (`open`, `stat`, `access`, `lstat`,
/// and `opendir`: a listing index, see [`Cache::listing`]).
pub use crate::layout::Lookups as Entry;

/// A directory's recorded entries, in the order `readdir` gave them.
#[derive(Clone, Copy, Debug)]
pub struct Listing<'a> {
    data: &'a [u8],
    count: u32,
}

impl<'a> Listing<'a> {
    /// How many entries.
    #[inline]
    pub fn len(&self) -> u32 {
        self.count
    }

    /// Whether it has none.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The entry that starts `at` bytes into the listing, and where the next
    /// one starts (`None` at the end or on damage).
    #[inline]
    pub fn entry_at(&self, at: usize) -> Option<(DirEntry<'a>, usize)> {
        let (e, len) = DirEntry::read(self.data.get(at..)?)?;
        Some((e, at + len))
    }
}

/// A stored file: where its bytes are and which stat it has.
#[derive(Clone, Copy, Debug)]
pub struct FileRef<'a> {
    /// Offset of its bytes in the cache file (a multiple of PAGE).
    pub data_off: u64,
    /// Its length.
    pub size: u64,
    /// Index of its recorded stat.
    pub stat_index: u32,
    /// The path it was recorded under.
    pub path: &'a [u8],
    /// FNV-1a 32 of its bytes, as packed.
    pub data_sum: u32,
    /// Its canonical path: absolute, with no empty, `.` or `..` component
    /// (checked by `parse`); a node-local copy keeps the file under it.
    pub real_path: &'a [u8],
}

/// Why a cache file was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheError {
    /// Shorter than a header.
    TooShort,
    /// Not a dlfm cache.
    BadMagic,
    /// A dlfm cache of another format version.
    BadVersion,
    /// The header's length differs from the file's (truncated or extended).
    LengthMismatch,
    /// The metadata does not match its checksum.
    BadChecksum,
    /// A table or string lies outside the metadata, or a file's bytes
    /// outside the file's data region.
    OutOfBounds,
    /// The tables contradict each other: entries out of order, an index
    /// past its table, an errno or identity the format cannot hold.
    BadTable,
}

impl CacheError {
    /// A short reason for trace lines.
    #[inline]
    pub fn reason(self) -> &'static [u8] {
        match self {
            CacheError::TooShort => b"shorter than a header",
            CacheError::BadMagic => b"not a dlfm cache",
            CacheError::BadVersion => b"another cache format version",
            CacheError::LengthMismatch => b"truncated or extended since it was written",
            CacheError::BadChecksum => b"bad checksum: the metadata is damaged",
            CacheError::OutOfBounds => b"a table or file lies outside the cache file",
            CacheError::BadTable => b"inconsistent tables: the writer was faulty",
        }
    }
}

/// A validated cache file. It holds the metadata (the file's first
/// `meta_len` bytes, which the wrapper maps); file data is addressed by
/// offset into the whole file of `file_len` bytes.
#[derive(Clone, Copy, Debug)]
pub struct Cache<'a> {
    bytes: &'a [u8],
    file_len: u64,
    entries: Table,
    files: Table,
    stats: Table,
    ids: Table,
    strings: &'a [u8],
    width: u32,
    fm_path: (u32, u32),
    lists: Table,
    scope: (u32, u32),
}

/// Where a table of fixed-size records lies.
#[derive(Clone, Copy, Debug)]
struct Table {
    off: usize,
    count: u32,
    size: usize,
}

impl Table {
    /// Checks the table lies within the first `meta` bytes.
    #[inline]
    fn new(off: u64, count: u32, size: usize, meta: usize) -> Result<Table, CacheError> {
        let off = usize::try_from(off).map_err(|_| CacheError::OutOfBounds)?;
        let end = (count as usize)
            .checked_mul(size)
            .and_then(|n| n.checked_add(off))
            .ok_or(CacheError::OutOfBounds)?;
        if off < HEADER_LEN || end > meta {
            return Err(CacheError::OutOfBounds);
        }
        Ok(Table { off, count, size })
    }

    /// Record `i`, if it exists.
    #[inline]
    fn get<'a>(&self, bytes: &'a [u8], i: u32) -> Option<&'a [u8]> {
        if i >= self.count {
            return None;
        }
        let at = self.off.checked_add((i as usize).checked_mul(self.size)?)?;
        bytes.get(at..at.checked_add(self.size)?)
    }
}

impl<'a> Cache<'a> {
    /// Validates the header, the lengths, the checksum, that every table
    /// lies inside the metadata, and that the tables agree with each other
    /// and with the file (the rules in [`crate::layout`]); one pass over the
    /// metadata, like the checksum. `bytes` starts at the file's first byte
    /// and holds at least the metadata (the wrapper maps only that);
    /// `file_len` is the whole file's length, which the header must state.
    // Always inlined: returned out of line, the Cache would be copied with
    // a `memcpy` call, which the wrapper cannot make.
    #[inline(always)]
    pub fn parse(bytes: &'a [u8], file_len: u64) -> Result<Cache<'a>, CacheError> {
        let h = Header::from_bytes(bytes).ok_or(CacheError::TooShort)?;
        let (magic_ok, version_ok) = h.is_this_version();
        if !magic_ok {
            return Err(CacheError::BadMagic);
        }
        if !version_ok {
            return Err(CacheError::BadVersion);
        }
        if h.file_len.get() != file_len || bytes.len() as u64 > file_len {
            return Err(CacheError::LengthMismatch);
        }
        let meta = usize::try_from(h.meta_len.get()).map_err(|_| CacheError::OutOfBounds)?;
        let meta_bytes = bytes.get(..meta).ok_or(CacheError::OutOfBounds)?;
        if meta < HEADER_LEN {
            return Err(CacheError::OutOfBounds);
        }
        if h.checksum.get() != checksum(meta_bytes) {
            return Err(CacheError::BadChecksum);
        }
        let strings_off =
            usize::try_from(h.strings_off.get()).map_err(|_| CacheError::OutOfBounds)?;
        let strings_len =
            usize::try_from(h.strings_len.get()).map_err(|_| CacheError::OutOfBounds)?;
        let strings = strings_off
            .checked_add(strings_len)
            .and_then(|end| meta_bytes.get(strings_off..end))
            .ok_or(CacheError::OutOfBounds)?;
        if strings_off < HEADER_LEN {
            return Err(CacheError::OutOfBounds);
        }
        let cache = Cache {
            bytes,
            file_len,
            entries: Table::new(h.entries_off.get(), h.entries_count.get(), ENTRY_LEN, meta)?,
            files: Table::new(h.files_off.get(), h.files_count.get(), FILE_LEN, meta)?,
            stats: Table::new(h.stats_off.get(), h.stats_count.get(), STAT_SIZE, meta)?,
            ids: Table::new(h.ids_off.get(), h.ids_count.get(), ID_LEN, meta)?,
            strings,
            width: h.width.get(),
            fm_path: (h.fm_path_off.get(), h.fm_path_len.get()),
            lists: Table::new(h.lists_off.get(), h.lists_count.get(), LIST_LEN, meta)?,
            scope: (h.scope_off.get(), h.scope_len.get()),
        };
        if cache.string(cache.fm_path.0, cache.fm_path.1).is_none()
            || cache.string(cache.scope.0, cache.scope.1).is_none()
        {
            return Err(CacheError::OutOfBounds);
        }
        cache.check_entries()?;
        cache.check_files(meta as u64)?;
        cache.check_ids()?;
        cache.check_lists()?;
        Ok(cache)
    }

    /// Every entry's path is a string, the entries ascend strictly by
    /// (hash, path) as binary search needs, and every result is one the
    /// format allows with its index inside its table.
    #[inline]
    fn check_entries(&self) -> Result<(), CacheError> {
        let mut prev: Option<(u64, &[u8])> = None;
        for i in 0..self.entries.count {
            let e = self
                .entries
                .get(self.bytes, i)
                .ok_or(CacheError::OutOfBounds)?;
            let rec = EntryRecord::from_bytes(e).ok_or(CacheError::OutOfBounds)?;
            let (hash, path) = self.entry_key(rec).ok_or(CacheError::OutOfBounds)?;
            if let Some((prev_hash, prev_path)) = prev {
                let order = prev_hash.cmp(&hash).then_with(|| compare(prev_path, path));
                if order != Ordering::Less {
                    return Err(CacheError::BadTable);
                }
            }
            prev = Some((hash, path));
            let rec = rec.lookups();
            let valid = rec.open.is_valid(self.files.count)
                && rec.stat.is_valid(self.stats.count)
                && rec.access.is_valid(1)
                && rec.lstat.is_valid(self.stats.count)
                && rec.list.is_valid(self.lists.count);
            if !valid {
                return Err(CacheError::BadTable);
            }
        }
        Ok(())
    }

    /// Every file's bytes lie page-aligned in the data region (which starts
    /// at the first page boundary at or after `meta_len`), its path is a
    /// string and its stat exists.
    #[inline]
    fn check_files(&self, meta_len: u64) -> Result<(), CacheError> {
        let data_start = meta_len
            .checked_add(PAGE - 1)
            .ok_or(CacheError::OutOfBounds)?
            & !(PAGE - 1);
        // The writer lays files out in index order, each on its own pages:
        // a file that starts before the previous one's last page overlaps it
        // (two libraries sharing bytes), and is refused.
        let mut free_from = data_start;
        for i in 0..self.files.count {
            let f = self.file(i).ok_or(CacheError::OutOfBounds)?;
            if f.data_off < data_start {
                return Err(CacheError::OutOfBounds);
            }
            if f.data_off < free_from
                || f.stat_index >= self.stats.count
                || !is_canonical(f.real_path)
            {
                return Err(CacheError::BadTable);
            }
            free_from = f
                .data_off
                .checked_add(f.size.div_ceil(PAGE) * PAGE)
                .ok_or(CacheError::OutOfBounds)?;
        }
        Ok(())
    }

    /// Every listing lies in the string table and holds exactly its count
    /// of well-formed entries.
    #[inline]
    fn check_lists(&self) -> Result<(), CacheError> {
        for i in 0..self.lists.count {
            let l = self.listing(i).ok_or(CacheError::OutOfBounds)?;
            let mut at = 0;
            for _ in 0..l.count {
                at = l.entry_at(at).ok_or(CacheError::BadTable)?.1;
            }
            if at != l.data.len() {
                return Err(CacheError::BadTable);
            }
        }
        Ok(())
    }

    /// Listing `index`, if it exists and lies in the string table.
    #[inline]
    pub fn listing(&self, index: u32) -> Option<Listing<'a>> {
        let r = ListRecord::from_bytes(self.lists.get(self.bytes, index)?)?;
        Some(Listing {
            data: self.string(r.data_off.get(), r.data_len.get())?,
            count: r.count.get(),
        })
    }

    /// Every identity has a known kind and fits its room.
    #[inline]
    fn check_ids(&self) -> Result<(), CacheError> {
        for i in 0..self.ids.count {
            let rec = self.ids.get(self.bytes, i).ok_or(CacheError::OutOfBounds)?;
            if IdRecord::from_bytes(rec)
                .and_then(IdRecord::parts)
                .is_none()
            {
                return Err(CacheError::BadTable);
            }
        }
        Ok(())
    }

    /// An entry's hash and path.
    #[inline]
    fn entry_key(&self, e: &EntryRecord) -> Option<(u64, &'a [u8])> {
        Some((
            e.hash.get(),
            self.string(e.path_off.get(), e.path_len.get())?,
        ))
    }

    /// A string of the string table.
    #[inline]
    fn string(&self, off: u32, len: u32) -> Option<&'a [u8]> {
        let off = off as usize;
        self.strings.get(off..off.checked_add(len as usize)?)
    }

    /// What was recorded about `path` (binary search by hash, then path).
    #[inline]
    pub fn lookup(&self, path: &[u8]) -> Option<Entry> {
        let hash = fnv1a64(path);
        let (mut lo, mut hi) = (0u32, self.entries.count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let e = EntryRecord::from_bytes(self.entries.get(self.bytes, mid)?)?;
            let (e_hash, e_path) = self.entry_key(e)?;
            let order = e_hash.cmp(&hash).then_with(|| compare(e_path, path));
            match order {
                Ordering::Less => lo = mid + 1,
                Ordering::Greater => hi = mid,
                Ordering::Equal => return Some(e.lookups()),
            }
        }
        None
    }

    /// Index entry `i` (in index order): its path and what it holds.
    #[inline]
    pub fn entry_at(&self, i: u32) -> Option<(&'a [u8], Entry)> {
        let e = EntryRecord::from_bytes(self.entries.get(self.bytes, i)?)?;
        let path = self.string(e.path_off.get(), e.path_len.get())?;
        Some((path, e.lookups()))
    }

    /// File `index`, if it exists and its bytes lie page-aligned in the file.
    #[inline]
    pub fn file(&self, index: u32) -> Option<FileRef<'a>> {
        let f = FileRecord::from_bytes(self.files.get(self.bytes, index)?)?;
        let (data_off, size) = (f.data_off.get(), f.size.get());
        let end = data_off.checked_add(size)?;
        if end > self.file_len || !data_off.is_multiple_of(PAGE) {
            return None;
        }
        Some(FileRef {
            data_off,
            size,
            stat_index: f.stat_index.get(),
            path: self.string(f.path_off.get(), f.path_len.get())?,
            data_sum: f.data_sum.get(),
            real_path: self.string(f.real_off.get(), f.real_len.get())?,
        })
    }

    /// Stat `index` (STAT_SIZE bytes), if it exists.
    #[inline]
    pub fn stat(&self, index: u32) -> Option<&'a [u8]> {
        self.stats.get(self.bytes, index)
    }

    /// Whether the cache was recorded for identity `id` of kind `kind`.
    #[inline]
    pub fn has_id(&self, kind: IdKind, id: &[u8]) -> bool {
        (0..self.ids.count).any(|i| {
            self.ids
                .get(self.bytes, i)
                .and_then(IdRecord::from_bytes)
                .and_then(IdRecord::parts)
                .is_some_and(|(k, i)| k == kind && dlfm_bytes::equal(i, id))
        })
    }

    /// The metadata's length: how much of the file `parse` needs.
    #[inline]
    pub fn meta_len(header: &[u8]) -> Option<u64> {
        Header::from_bytes(header).map(|h| h.meta_len.get())
    }

    /// The FMCaching interposer replay preloads, if the cache has one.
    #[inline]
    pub fn fm_path(&self) -> Option<&'a [u8]> {
        self.string(self.fm_path.0, self.fm_path.1)
            .filter(|p| !p.is_empty())
    }

    /// The `--include`/`--exclude` patterns the cache was packed with, in
    /// `dlfm_runtime::scope::Rules`' encoding (empty: none).
    #[inline]
    pub fn scope_patterns(&self) -> &'a [u8] {
        self.string(self.scope.0, self.scope.1).unwrap_or(&[])
    }

    /// The width given to `dlfm.pre read-cache`.
    #[inline]
    pub fn width(&self) -> u32 {
        self.width
    }

    /// How many paths the index holds.
    #[inline]
    pub fn entries(&self) -> u32 {
        self.entries.count
    }

    /// How many files are stored.
    #[inline]
    pub fn files(&self) -> u32 {
        self.files.count
    }
}

/// Whether `path` is absolute with no empty, `.` or `..` component: a
/// node-local copy puts the file at `<root><path>`, which such a path
/// cannot leave.
#[inline]
pub fn is_canonical(path: &[u8]) -> bool {
    // (No indexing: the wrapper may not carry a panic path.)
    let Some((&b'/', rest)) = path.split_first() else {
        return false;
    };
    !rest.is_empty()
        && rest
            .split(|&b| b == b'/')
            .all(|c| !c.is_empty() && !dlfm_bytes::equal(c, b".") && !dlfm_bytes::equal(c, b".."))
}

/// Byte-wise order of two paths (the order the writer sorts by).
#[inline]
fn compare(a: &[u8], b: &[u8]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return x.cmp(y);
        }
    }
    a.len().cmp(&b.len())
}
