//! Reading a packed cache's metadata from the std side (`dlfm.pre check`,
//! `dlfm.pre report`): the header, then the first `meta_len` bytes, which
//! `dlfm_cache::read::Cache::parse` validates.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use dlfm_cache::read::Cache;

use crate::error::PackError;

/// A cache file's metadata, read into memory.
pub struct Metadata {
    /// The open cache file.
    pub file: File,
    /// Its first `meta_len` bytes.
    pub meta: Vec<u8>,
    /// The whole file's length.
    pub len: u64,
}

impl Metadata {
    /// Reads the metadata of the cache at `path`.
    pub fn read(path: &Path) -> Result<Metadata, PackError> {
        let read_err = |source| PackError::Read {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(|source| PackError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let len = file.metadata().map_err(read_err)?.len();
        let mut header = vec![0u8; dlfm_cache::layout::HEADER_LEN];
        file.read_exact_at(&mut header, 0)
            .map_err(|_| PackError::TooShort(path.to_path_buf()))?;
        let meta_len = Cache::meta_len(&header).unwrap_or(0).min(len);
        let mut meta = vec![0u8; meta_len as usize];
        file.read_exact_at(&mut meta, 0).map_err(read_err)?;
        Ok(Metadata { file, meta, len })
    }

    /// The validated cache (`path` names it in the error).
    pub fn parse(&self, path: &Path) -> Result<Cache<'_>, PackError> {
        Cache::parse(&self.meta, self.len).map_err(|e| PackError::Unusable {
            path: path.to_path_buf(),
            reason: String::from_utf8_lossy(e.reason()).into_owned(),
        })
    }
}
