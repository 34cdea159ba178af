//! The cache writer: lays out `dlcache.dat` as `dlfm-cache`'s `layout` module
//! describes (metadata under a checksum, then each file's bytes at a
//! page-aligned offset) and streams the files' contents from disk.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use dlfm_cache::hash::fnv1a64;
use dlfm_cache::layout::{
    self, EntryRecord, FileRecord, Header, IdKind, IdRecord, ListRecord, Lookups, Outcome, Plain,
    PAGE, STAT_SIZE, U32, U64,
};
use dlfm_cache::stat::StatView;

use crate::data_sum::copy_and_sum;

/// What was written.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    /// Path entries in the index.
    pub entries: usize,
    /// Distinct files stored.
    pub files: usize,
    /// Bytes of file data (before page padding).
    pub data_bytes: u64,
    /// Length of the cache file.
    pub file_len: u64,
}

struct FileEntry {
    path: Vec<u8>,
    /// The canonical path (`read::is_canonical`).
    real: Vec<u8>,
    stat: u32,
    size: u64,
    source: PathBuf,
    /// ld.so opened it, so it may map it: its data goes at a
    /// `layout::MAP_ALIGN` boundary.
    mapped: bool,
}

/// Collects what goes into a cache file, then writes it.
pub struct CacheWriter {
    width: u32,
    ids: Vec<(IdKind, Vec<u8>)>,
    stats: Vec<[u8; STAT_SIZE]>,
    stat_index: HashMap<[u8; STAT_SIZE], u32>,
    files: Vec<FileEntry>,
    file_by_inode: HashMap<(u64, u64), u32>,
    lookups: BTreeMap<Vec<u8>, Lookups>,
    fm_path: Vec<u8>,
    lists: Vec<(Vec<u8>, u32)>,
    scope: Vec<u8>,
}

impl CacheWriter {
    /// An empty cache for a run of `width` processes.
    pub fn new(width: u32) -> Self {
        CacheWriter {
            width,
            ids: Vec::new(),
            stats: Vec::new(),
            stat_index: HashMap::new(),
            files: Vec::new(),
            file_by_inode: HashMap::new(),
            lookups: BTreeMap::new(),
            fm_path: Vec::new(),
            lists: Vec::new(),
            scope: Vec::new(),
        }
    }

    /// Adds a program or ld.so identity the cache is valid for.
    pub fn add_id(&mut self, kind: IdKind, id: &[u8]) {
        let entry = (kind, id.to_vec());
        if !self.ids.contains(&entry) {
            self.ids.push(entry);
        }
    }

    /// Adds a raw `struct stat`, returning its index (identical ones shared).
    pub fn add_stat(&mut self, raw: [u8; STAT_SIZE]) -> u32 {
        if let Some(&i) = self.stat_index.get(&raw) {
            return i;
        }
        let i = index(self.stats.len());
        self.stats.push(raw);
        self.stat_index.insert(raw, i);
        i
    }

    /// Adds a file whose bytes will be read from `source` (its canonical
    /// path: absolute, no link, `.` or `..`); the same file (same st_dev and
    /// st_ino in its stat) under two paths is stored once.
    pub fn add_file(&mut self, path: &[u8], stat_index: u32, size: u64, source: PathBuf) -> u32 {
        let st = StatView(&self.stats[stat_index as usize]);
        let key = (st.dev(), st.ino());
        if let Some(&i) = self.file_by_inode.get(&key) {
            return i;
        }
        let i = index(self.files.len());
        self.files.push(FileEntry {
            path: path.to_vec(),
            real: source.as_os_str().as_bytes().to_vec(),
            stat: stat_index,
            size,
            source,
            mapped: false,
        });
        self.file_by_inode.insert(key, i);
        i
    }

    /// Marks file `file` as one ld.so opened (and may map from the cache
    /// file): its data is aligned for any kernel's page size.
    pub fn mark_mapped(&mut self, file: u32) {
        if let Some(f) = self.files.get_mut(file as usize) {
            f.mapped = true;
        }
    }

    fn lookups(&mut self, path: &[u8]) -> &mut Lookups {
        self.lookups.entry(path.to_vec()).or_insert(Lookups::NONE)
    }

    /// Records what `open(path)` gives.
    pub fn set_open(&mut self, path: &[u8], outcome: Outcome) {
        self.lookups(path).open = outcome;
    }

    /// Records what `stat(path)` gives.
    pub fn set_stat(&mut self, path: &[u8], outcome: Outcome) {
        self.lookups(path).stat = outcome;
    }

    /// Records what `lstat(path)` gives.
    pub fn set_lstat(&mut self, path: &[u8], outcome: Outcome) {
        self.lookups(path).lstat = outcome;
    }

    /// Adds a directory listing (`count` entries encoded as
    /// `layout::DirEntry` writes them), returning its index.
    pub fn add_listing(&mut self, data: Vec<u8>, count: u32) -> u32 {
        self.lists.push((data, count));
        index(self.lists.len() - 1)
    }

    /// Records what `opendir(path)` gives: a listing index or an errno.
    pub fn set_list(&mut self, path: &[u8], outcome: Outcome) {
        self.lookups(path).list = outcome;
    }

    /// Names the FMCaching interposer replay preloads.
    pub fn set_fm_path(&mut self, path: &[u8]) {
        self.fm_path = path.to_vec();
    }

    /// Stores the scope's `--include`/`--exclude` patterns (encoded as
    /// `dlfm_runtime::scope::Rules`), which replay's noting of misses
    /// applies.
    pub fn set_scope_patterns(&mut self, encoded: &[u8]) {
        self.scope = encoded.to_vec();
    }

    /// Records what `access(path, R_OK)` gives.
    pub fn set_access(&mut self, path: &[u8], outcome: Outcome) {
        self.lookups(path).access = outcome;
    }

    /// Writes the cache to `out` (through `out.tmp`, renamed at the end).
    /// `prepare` runs on the new, empty temporary file first; `progress`
    /// hears the bytes of file data written so far and in all.
    pub fn write_with(
        &self,
        out: &Path,
        prepare: impl FnOnce(&Path),
        progress: &mut dyn FnMut(u64, u64),
    ) -> io::Result<Summary> {
        let mut tmp_name = out.as_os_str().to_os_string();
        tmp_name.push(".tmp");
        let tmp = PathBuf::from(tmp_name);
        let _ = std::fs::remove_file(&tmp);
        File::create(&tmp)?;
        let written = (|| {
            prepare(&tmp);
            let file = std::fs::OpenOptions::new().write(true).open(&tmp)?;
            let summary = self.write_into(file, progress)?;
            // A new file renamed over the old one: processes that still map
            // the old cache keep their pages (truncating it in place would
            // kill them with SIGBUS).
            std::fs::rename(&tmp, out)?;
            Ok(summary)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }

    /// Lays the cache out and writes it: the files' data first (each
    /// file's checksum goes into its record), then the sealed metadata at
    /// offset 0.
    fn write_into(&self, file: File, progress: &mut dyn FnMut(u64, u64)) -> io::Result<Summary> {
        let plan = self.plan()?;
        let mut out = BufWriter::new(file);
        let sums = self.write_data(&mut out, &plan.placed, progress)?;
        let meta = self.metadata(&plan, &sums)?;
        out.seek(SeekFrom::Start(0))?;
        out.write_all(&meta)?;
        out.flush()?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.set_len(plan.file_len)?;
        file.sync_all()?;
        Ok(Summary {
            entries: self.lookups.len(),
            files: self.files.len(),
            data_bytes: self.files.iter().map(|f| f.size).sum(),
            file_len: plan.file_len,
        })
    }

    /// Where everything goes: the string table (every path, listing and
    /// the header's strings), the tables' offsets, each file's data offset.
    fn plan(&self) -> io::Result<Plan> {
        let mut strings = Strings::default();
        let mut entries: Vec<(u64, &Vec<u8>, &Lookups)> = self
            .lookups
            .iter()
            .map(|(p, l)| (fnv1a64(p), p, l))
            .collect();
        entries.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        let mut entry_bytes = Vec::with_capacity(entries.len() * layout::ENTRY_LEN);
        for (hash, path, l) in &entries {
            let (off, len) = strings.intern(path)?;
            entry_bytes.extend_from_slice(EntryRecord::new(*hash, off, len, l).as_bytes());
        }
        let fm_path = strings.intern(&self.fm_path)?;
        let scope = strings.intern(&self.scope)?;
        let mut list_bytes = Vec::with_capacity(self.lists.len() * layout::LIST_LEN);
        for (data, count) in &self.lists {
            let (data_off, data_len) = strings.intern(data)?;
            let rec = ListRecord {
                data_off: U32::new(data_off),
                data_len: U32::new(data_len),
                count: U32::new(*count),
                zero: U32::new(0),
            };
            list_bytes.extend_from_slice(rec.as_bytes());
        }
        let file_paths = self
            .files
            .iter()
            .map(|f| {
                if !dlfm_cache::read::is_canonical(&f.real) {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "cannot pack {}: its canonical path cannot be resolved",
                            f.source.display()
                        ),
                    ));
                }
                Ok((strings.intern(&f.path)?, strings.intern(&f.real)?))
            })
            .collect::<io::Result<Vec<_>>>()?;
        let mut id_bytes = Vec::with_capacity(self.ids.len() * layout::ID_LEN);
        for (kind, id) in &self.ids {
            let rec = IdRecord::new(*kind, id).ok_or_else(|| {
                too_big(format!("an identity longer than {} bytes", layout::ID_MAX))
            })?;
            id_bytes.extend_from_slice(rec.as_bytes());
        }

        let entries_off = layout::HEADER_LEN as u64;
        let files_off = entries_off + entry_bytes.len() as u64;
        let stats_off = files_off + (self.files.len() * layout::FILE_LEN) as u64;
        let ids_off = stats_off + (self.stats.len() * STAT_SIZE) as u64;
        let lists_off = ids_off + id_bytes.len() as u64;
        let strings_off = lists_off + list_bytes.len() as u64;
        let meta_len = strings_off + strings.bytes.len() as u64;
        let mut data_off = meta_len.div_ceil(PAGE) * PAGE;
        let mut placed = Vec::with_capacity(self.files.len());
        for f in &self.files {
            if f.mapped {
                data_off = data_off.div_ceil(layout::MAP_ALIGN) * layout::MAP_ALIGN;
            }
            placed.push(data_off);
            data_off += f.size.div_ceil(PAGE) * PAGE;
        }
        let header = Header {
            file_len: U64::new(data_off),
            meta_len: U64::new(meta_len),
            entries_off: U64::new(entries_off),
            entries_count: U32::new(count(entries.len(), "paths")?),
            files_count: U32::new(count(self.files.len(), "files")?),
            files_off: U64::new(files_off),
            stats_off: U64::new(stats_off),
            stats_count: U32::new(count(self.stats.len(), "stats")?),
            ids_count: U32::new(count(self.ids.len(), "identities")?),
            ids_off: U64::new(ids_off),
            strings_off: U64::new(strings_off),
            strings_len: U64::new(strings.bytes.len() as u64),
            width: U32::new(self.width),
            fm_path_off: U32::new(fm_path.0),
            fm_path_len: U32::new(fm_path.1),
            lists_count: U32::new(count(self.lists.len(), "listings")?),
            lists_off: U64::new(lists_off),
            scope_off: U32::new(scope.0),
            scope_len: U32::new(scope.1),
            ..Header::default()
        }
        .stamped();
        Ok(Plan {
            header,
            entry_bytes,
            id_bytes,
            list_bytes,
            strings: strings.bytes,
            file_paths,
            placed,
            file_len: data_off,
        })
    }

    /// Streams every file's bytes from its source to its place; returns
    /// their checksums. A file whose size differs from the pilot's is an
    /// error (it changed while packing).
    fn write_data(
        &self,
        out: &mut BufWriter<File>,
        placed: &[u64],
        progress: &mut dyn FnMut(u64, u64),
    ) -> io::Result<Vec<u32>> {
        let mut sums = Vec::with_capacity(self.files.len());
        let total: u64 = self.files.iter().map(|f| f.size).sum();
        let mut done = 0;
        for (f, off) in self.files.iter().zip(placed) {
            out.seek(SeekFrom::Start(*off))?;
            let src = File::open(&f.source).map_err(|e| annotate(e, &f.source))?;
            let (copied, sum) = copy_and_sum(&mut src.take(f.size + 1), out)?;
            if copied != f.size {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{} is {copied} bytes now, {} when recorded: it changed while packing",
                        f.source.display(),
                        f.size
                    ),
                ));
            }
            sums.push(sum);
            done += f.size;
            progress(done, total);
        }
        Ok(sums)
    }

    /// The sealed metadata: header, entries, file records (with their
    /// data's checksums), stats, identities, listings, strings.
    fn metadata(&self, plan: &Plan, sums: &[u32]) -> io::Result<Vec<u8>> {
        let mut meta = plan.header.as_bytes().to_vec();
        meta.extend_from_slice(&plan.entry_bytes);
        for (((f, ((path_off, path_len), (real_off, real_len))), off), sum) in self
            .files
            .iter()
            .zip(&plan.file_paths)
            .zip(&plan.placed)
            .zip(sums)
        {
            let rec = FileRecord {
                data_off: U64::new(*off),
                size: U64::new(f.size),
                stat_index: U32::new(f.stat),
                path_off: U32::new(*path_off),
                path_len: U32::new(*path_len),
                data_sum: U32::new(*sum),
                real_off: U32::new(*real_off),
                real_len: U32::new(*real_len),
            };
            meta.extend_from_slice(rec.as_bytes());
        }
        for s in &self.stats {
            meta.extend_from_slice(s);
        }
        meta.extend_from_slice(&plan.id_bytes);
        meta.extend_from_slice(&plan.list_bytes);
        meta.extend_from_slice(&plan.strings);
        if meta.len() as u64 != plan.header.meta_len.get() {
            return Err(io::Error::other(
                "the metadata's length differs from its plan",
            ));
        }
        layout::seal(&mut meta);
        Ok(meta)
    }
}

/// Where `write_into` puts everything, decided before anything is written.
struct Plan {
    header: Header,
    entry_bytes: Vec<u8>,
    id_bytes: Vec<u8>,
    list_bytes: Vec<u8>,
    strings: Vec<u8>,
    /// Each file's (path, canonical path) in the string table.
    file_paths: Vec<((u32, u32), (u32, u32))>,
    placed: Vec<u64>,
    file_len: u64,
}

/// The string table, each distinct string stored once.
#[derive(Default)]
struct Strings {
    bytes: Vec<u8>,
    offsets: HashMap<Vec<u8>, u32>,
}

impl Strings {
    /// The offset and length of `s` in the table, adding it if new; an
    /// error if the table would outgrow the format's 32-bit offsets.
    fn intern(&mut self, s: &[u8]) -> io::Result<(u32, u32)> {
        let len = u32::try_from(s.len()).map_err(|_| too_big("a string over 4 GiB".into()))?;
        if let Some(&o) = self.offsets.get(s) {
            return Ok((o, len));
        }
        let o = u32::try_from(self.bytes.len())
            .ok()
            .filter(|o| o.checked_add(len).is_some())
            .ok_or_else(|| too_big("a string table over 4 GiB".into()))?;
        self.bytes.extend_from_slice(s);
        self.offsets.insert(s.to_vec(), o);
        Ok((o, len))
    }
}

/// `n` as a table count of the format, or why it cannot be.
fn count(n: usize, what: &str) -> io::Result<u32> {
    u32::try_from(n).map_err(|_| too_big(format!("{n} {what}, more than the format holds")))
}

/// An index into a table that [`count`] bounds when the cache is written
/// (past `u32::MAX` the write refuses, so the saturated value is never
/// stored).
fn index(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

fn too_big(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("cannot pack {what}"))
}

fn annotate(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}
