//! Directory listings for FMCaching: read from the disk when packing (as
//! file contents are), laid out as `dlfm_cache::layout::DirEntry`s.
//!
//! A listing is cached only for a directory of installed content: every
//! regular file in it must be one the scope takes (code or package
//! metadata, a file an installed package's manifest names, or an
//! `--include`), so a directory that holds any other file (a job's working
//! directory, a source tree with its build files) is always listed by the
//! file system. Subdirectories, links and other entries do not count against it.

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirEntryExt, MetadataExt};
use std::path::Path;

use dlfm_cache::layout::DirEntry;

use crate::installed::Installed;
use crate::scope::Scope;

/// `d_type` values (`<dirent.h>`).
const DT_UNKNOWN: u8 = 0;
const DT_FIFO: u8 = 1;
const DT_CHR: u8 = 2;
const DT_DIR: u8 = 4;
const DT_BLK: u8 = 6;
const DT_REG: u8 = 8;
const DT_LNK: u8 = 10;
const DT_SOCK: u8 = 12;

/// A packed listing: the encoded entries and their count.
pub struct Packed {
    /// The entries, `.` and `..` first, then in the order the directory
    /// gives them.
    pub data: Vec<u8>,
    /// How many.
    pub count: u32,
}

/// Lists `dir` for the cache: `None` when it holds a regular file the
/// scope does not take, or a name the format cannot hold.
fn pack_listing(dir: &[u8], scope: &Scope, installed: &Installed) -> io::Result<Option<Packed>> {
    let path = Path::new(OsStr::from_bytes(dir));
    let mut out = Packed {
        data: Vec::new(),
        count: 0,
    };
    let push = |ino: u64, d_type: u8, name: &[u8], out: &mut Packed| -> bool {
        let ok = DirEntry { ino, d_type, name }.write(|b| out.data.extend_from_slice(b));
        out.count += u32::from(ok);
        ok
    };
    push(std::fs::metadata(path)?.ino(), DT_DIR, b".", &mut out);
    push(
        std::fs::metadata(path.join(".."))?.ino(),
        DT_DIR,
        b"..",
        &mut out,
    );
    for e in std::fs::read_dir(path)? {
        let e = e?;
        let t = e.file_type()?;
        let name = e.file_name();
        let full = path.join(&name);
        if t.is_file() && !scope.takes_file(full.as_os_str().as_bytes(), installed) {
            return Ok(None);
        }
        if !push(e.ino(), d_type(&t), name.as_bytes(), &mut out) {
            return Ok(None);
        }
    }
    Ok(Some(out))
}

/// The listings one pack reads, each from the disk once: the pack judges a
/// directory by its listing before deciding to serve missing names in it,
/// then stores that same listing.
#[derive(Default)]
pub struct Listings(HashMap<Vec<u8>, Option<Packed>>);

impl Listings {
    /// Whether `dir` can be listed from the cache (see [`pack_listing`]).
    pub fn cacheable(&mut self, dir: &[u8], scope: &Scope, installed: &Installed) -> bool {
        self.0
            .entry(dir.to_vec())
            .or_insert_with(|| pack_listing(dir, scope, installed).ok().flatten())
            .is_some()
    }

    /// `dir`'s listing for the cache, read now unless [`Listings::cacheable`]
    /// already read it; `None` if it cannot be cached (or is gone).
    pub fn take(&mut self, dir: &[u8], scope: &Scope, installed: &Installed) -> Option<Packed> {
        match self.0.remove(dir) {
            Some(judged) => judged,
            None => pack_listing(dir, scope, installed).ok().flatten(),
        }
    }
}

/// The names in `dir` now (without `.` and `..`), for `dlfm.pre check`.
pub fn names_now(dir: &[u8]) -> io::Result<BTreeSet<Vec<u8>>> {
    std::fs::read_dir(Path::new(OsStr::from_bytes(dir)))?
        .map(|e| e.map(|e| e.file_name().as_bytes().to_vec()))
        .collect()
}

fn d_type(t: &std::fs::FileType) -> u8 {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        DT_DIR
    } else if t.is_file() {
        DT_REG
    } else if t.is_symlink() {
        DT_LNK
    } else if t.is_fifo() {
        DT_FIFO
    } else if t.is_char_device() {
        DT_CHR
    } else if t.is_block_device() {
        DT_BLK
    } else if t.is_socket() {
        DT_SOCK
    } else {
        DT_UNKNOWN
    }
}
