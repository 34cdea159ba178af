//! The inode table: FUSE inode numbers for the backing paths seen so far.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Paths by inode number (1 is the root) and back.
pub struct Inodes {
    table: Mutex<(Vec<PathBuf>, HashMap<PathBuf, u64>)>,
}

impl Inodes {
    /// A table holding the root.
    pub fn new(root: PathBuf) -> Inodes {
        let mut by_path = HashMap::new();
        by_path.insert(root.clone(), 1);
        Inodes {
            table: Mutex::new((vec![root], by_path)),
        }
    }

    /// The backing path of inode `ino`.
    pub fn path(&self, ino: u64) -> Option<PathBuf> {
        let t = self.table.lock().expect("inode table");
        t.0.get(ino.checked_sub(1)? as usize).cloned()
    }

    /// The inode number of `path`, assigning one the first time.
    pub fn ino(&self, path: &Path) -> u64 {
        let mut t = self.table.lock().expect("inode table");
        if let Some(&i) = t.1.get(path) {
            return i;
        }
        t.0.push(path.to_path_buf());
        let i = t.0.len() as u64;
        t.1.insert(path.to_path_buf(), i);
        i
    }
}
