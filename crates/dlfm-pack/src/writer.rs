//! The cache writer: lays out `dlcache.dat` as `dlfm-cache`'s `layout` module
//! describes (metadata under a checksum, then each file's bytes at a
//! page-aligned offset) and streams the files' contents from disk.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use dlfm_cache::hash::fnv1a64;
use dlfm_cache::layout::{
    self, EntryRecord, FileRecord, IdKind, IdRecord, ListRecord, Outcome, PAGE, STAT_SIZE,
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

#[derive(Clone, Copy)]
struct Lookups {
    open: Outcome,
    stat: Outcome,
    access: Outcome,
    lstat: Outcome,
    list: Outcome,
}

struct FileEntry {
    path: Vec<u8>,
    stat: u32,
    size: u64,
    source: PathBuf,
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
        let i = self.stats.len() as u32;
        self.stats.push(raw);
        self.stat_index.insert(raw, i);
        i
    }

    /// Adds a file whose bytes will be read from `source`; the same file
    /// (same st_dev and st_ino in its stat) under two paths is stored once.
    pub fn add_file(&mut self, path: &[u8], stat_index: u32, size: u64, source: PathBuf) -> u32 {
        let st = StatView(&self.stats[stat_index as usize]);
        let key = (st.dev(), st.ino());
        if let Some(&i) = self.file_by_inode.get(&key) {
            return i;
        }
        let i = self.files.len() as u32;
        self.files.push(FileEntry {
            path: path.to_vec(),
            stat: stat_index,
            size,
            source,
        });
        self.file_by_inode.insert(key, i);
        i
    }

    fn lookups(&mut self, path: &[u8]) -> &mut Lookups {
        self.lookups.entry(path.to_vec()).or_insert(Lookups {
            open: Outcome::NotRecorded,
            stat: Outcome::NotRecorded,
            access: Outcome::NotRecorded,
            lstat: Outcome::NotRecorded,
            list: Outcome::NotRecorded,
        })
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
        (self.lists.len() - 1) as u32
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
    /// `prepare` runs on the new, empty temporary file first.
    pub fn write_with(&self, out: &Path, prepare: impl FnOnce(&Path)) -> io::Result<Summary> {
        let mut tmp_name = out.as_os_str().to_os_string();
        tmp_name.push(".tmp");
        let tmp = PathBuf::from(tmp_name);
        let _ = std::fs::remove_file(&tmp);
        File::create(&tmp)?;
        let written = (|| {
            prepare(&tmp);
            let file = std::fs::OpenOptions::new().write(true).open(&tmp)?;
            let summary = self.write_into(file)?;
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

    fn write_into(&self, file: File) -> io::Result<Summary> {
        // Strings: every path, entries sorted by (hash, path).
        let mut strings = Vec::new();
        let mut offsets = HashMap::new();
        let mut intern = |p: &[u8], strings: &mut Vec<u8>| -> (u32, u32) {
            if let Some(&o) = offsets.get(p) {
                return (o, p.len() as u32);
            }
            let o = strings.len() as u32;
            strings.extend_from_slice(p);
            offsets.insert(p.to_vec(), o);
            (o, p.len() as u32)
        };
        let mut entries: Vec<(u64, &Vec<u8>, &Lookups)> = self
            .lookups
            .iter()
            .map(|(p, l)| (fnv1a64(p), p, l))
            .collect();
        entries.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));

        let entries_off = layout::HEADER_LEN as u64;
        let files_off = entries_off + (entries.len() * layout::ENTRY_LEN) as u64;
        let stats_off = files_off + (self.files.len() * layout::FILE_LEN) as u64;
        let ids_off = stats_off + (self.stats.len() * STAT_SIZE) as u64;
        let lists_off = ids_off + (self.ids.len() * layout::ID_LEN) as u64;
        let strings_off = lists_off + (self.lists.len() * layout::LIST_LEN) as u64;

        let mut entry_bytes = vec![0u8; entries.len() * layout::ENTRY_LEN];
        for ((hash, path, l), out) in entries
            .iter()
            .zip(entry_bytes.chunks_exact_mut(layout::ENTRY_LEN))
        {
            let (path_off, path_len) = intern(path, &mut strings);
            EntryRecord {
                hash: *hash,
                path_off,
                path_len,
                open: l.open,
                stat: l.stat,
                access: l.access,
                lstat: l.lstat,
                list: l.list,
            }
            .write(out);
        }
        let (fm_path_off, fm_path_len) = intern(&self.fm_path, &mut strings);
        let (scope_off, scope_len) = intern(&self.scope, &mut strings);
        let mut list_bytes = vec![0u8; self.lists.len() * layout::LIST_LEN];
        for ((data, count), out) in self
            .lists
            .iter()
            .zip(list_bytes.chunks_exact_mut(layout::LIST_LEN))
        {
            let (data_off, data_len) = intern(data, &mut strings);
            ListRecord {
                data_off,
                data_len,
                count: *count,
            }
            .write(out);
        }
        let file_paths: Vec<(u32, u32)> = self
            .files
            .iter()
            .map(|f| intern(&f.path, &mut strings))
            .collect();
        let mut id_bytes = vec![0u8; self.ids.len() * layout::ID_LEN];
        for ((kind, id), out) in self
            .ids
            .iter()
            .zip(id_bytes.chunks_exact_mut(layout::ID_LEN))
        {
            if !(IdRecord { kind: *kind, id }).write(out) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("identity longer than {} bytes", layout::ID_MAX),
                ));
            }
        }
        let meta_len = strings_off + strings.len() as u64;
        let mut data_off = meta_len.div_ceil(PAGE) * PAGE;
        let mut placed = Vec::new();
        for f in &self.files {
            placed.push(data_off);
            data_off += f.size.div_ceil(PAGE) * PAGE;
        }
        let file_len = data_off.max(meta_len.div_ceil(PAGE) * PAGE);

        // The data first (each file's checksum goes into its record), then
        // the metadata at offset 0.
        let mut out = BufWriter::new(file);
        let mut data_bytes = 0;
        let mut sums = Vec::with_capacity(self.files.len());
        for (f, off) in self.files.iter().zip(&placed) {
            out.seek(SeekFrom::Start(*off))?;
            let src = File::open(&f.source).map_err(|e| annotate(e, &f.source))?;
            let (copied, sum) = copy_and_sum(&mut src.take(f.size + 1), &mut out)?;
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
            data_bytes += f.size;
        }
        let mut file_bytes = vec![0u8; self.files.len() * layout::FILE_LEN];
        let records = self.files.iter().zip(&file_paths).zip(&placed).zip(&sums);
        for ((((f, (path_off, path_len)), off), sum), out) in
            records.zip(file_bytes.chunks_exact_mut(layout::FILE_LEN))
        {
            FileRecord {
                data_off: *off,
                size: f.size,
                stat_index: f.stat,
                path_off: *path_off,
                path_len: *path_len,
                data_sum: *sum,
            }
            .write(out);
        }

        let mut meta = vec![0u8; layout::HEADER_LEN];
        let header = layout::Header {
            file_len,
            meta_len,
            entries_off,
            entries_count: entries.len() as u32,
            files_count: self.files.len() as u32,
            files_off,
            stats_off,
            stats_count: self.stats.len() as u32,
            ids_count: self.ids.len() as u32,
            ids_off,
            strings_off,
            strings_len: strings.len() as u64,
            width: self.width,
            fm_path_off,
            fm_path_len,
            lists_count: self.lists.len() as u32,
            lists_off,
            scope_off,
            scope_len,
        };
        header.write(&mut meta);
        meta.extend_from_slice(&entry_bytes);
        meta.extend_from_slice(&file_bytes);
        for s in &self.stats {
            meta.extend_from_slice(s);
        }
        meta.extend_from_slice(&id_bytes);
        meta.extend_from_slice(&list_bytes);
        meta.extend_from_slice(&strings);
        layout::seal(&mut meta);

        out.seek(SeekFrom::Start(0))?;
        out.write_all(&meta)?;
        out.flush()?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.set_len(file_len)?;
        file.sync_all()?;
        Ok(Summary {
            entries: entries.len(),
            files: self.files.len(),
            data_bytes,
            file_len,
        })
    }
}

fn annotate(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}
