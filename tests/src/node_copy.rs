//! Checking a node-local copy of a cache (`dlfm_cache::node_files`): a
//! directory with the cache's metadata in `cache` and each stored file at
//! `root/<its canonical path>`.

use std::collections::BTreeSet;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use dlfm_cache::read::Cache;

/// Panics unless `copy` holds exactly the cache at `cache` (metadata and
/// every stored file's bytes, read-only, and nothing else under `root`).
pub fn assert_copy_of(copy: &Path, cache: &Path) {
    let whole = std::fs::read(cache).expect("the cache");
    let meta_len = Cache::meta_len(&whole).expect("a cache header") as usize;
    let meta = std::fs::read(copy.join("cache")).expect("the copy's metadata");
    assert!(
        meta == whole[..meta_len],
        "{}: metadata differs",
        copy.display()
    );
    let c = Cache::parse(&whole, whole.len() as u64).expect("the cache parses");
    let mut expected = BTreeSet::new();
    for i in 0..c.files() {
        let f = c.file(i).unwrap();
        let at = copy
            .join("root")
            .join(Path::new(std::ffi::OsStr::from_bytes(&f.real_path[1..])));
        let bytes = std::fs::read(&at).unwrap_or_else(|e| panic!("{}: {e}", at.display()));
        let start = f.data_off as usize;
        assert!(
            bytes == whole[start..start + f.size as usize],
            "{}: bytes differ",
            at.display()
        );
        let mode = std::fs::metadata(&at).unwrap().permissions().mode();
        assert_eq!(mode & 0o222, 0, "{}: writable", at.display());
        expected.insert(at);
    }
    let mut found = BTreeSet::new();
    files_under(&copy.join("root"), &mut found);
    assert_eq!(found, expected, "{}: other files", copy.display());
}

fn files_under(dir: &Path, out: &mut BTreeSet<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            files_under(&e.path(), out);
        } else {
            out.insert(e.path());
        }
    }
}
