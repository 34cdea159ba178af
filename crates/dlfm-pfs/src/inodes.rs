//! The inode table: FUSE inode numbers for the backing paths seen so far.
//! A path's number is its backing file's own inode number (the root's is
//! 1, as FUSE wants), so the numbers programs see in `st_ino` stay the same
//! across mounts of one backing directory: a cache packed through one mount
//! is not stale on the next (one mount per measurement, per node).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// FUSE's number for the root.
const ROOT: u64 = 1;

/// Paths by inode number.
pub struct Inodes {
    root_ino: u64,
    table: Mutex<HashMap<u64, PathBuf>>,
}

impl Inodes {
    /// A table holding the root, whose backing inode number is `root_ino`.
    pub fn new(root: PathBuf, root_ino: u64) -> Inodes {
        Inodes {
            root_ino,
            table: Mutex::new(HashMap::from([(ROOT, root)])),
        }
    }

    /// The backing path of inode `ino`.
    pub fn path(&self, ino: u64) -> Option<PathBuf> {
        self.table.lock().expect("inode table").get(&ino).cloned()
    }

    /// The inode number of `path`, whose backing inode number is `real`.
    /// A backing file whose own number is 1 (FUSE's root) gets the root's
    /// backing number instead, which no other file has.
    pub fn ino(&self, path: &Path, real: u64) -> u64 {
        let ino = match real {
            r if r == self.root_ino => ROOT,
            ROOT => self.root_ino,
            r => r,
        };
        let mut t = self.table.lock().expect("inode table");
        t.entry(ino).or_insert_with(|| path.to_path_buf());
        ino
    }
}
