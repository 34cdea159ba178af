//! Bytecode the pilot itself wrote. Python compiles a module whose
//! `__pycache__/NAME.cpython-XY.pyc` is missing and writes that file, so a
//! first pilot on a tree without bytecode probes each `.pyc` (ENOENT) and
//! leaves it behind. Refusing those as "appeared since the pilot" would make
//! every first pilot fail to pack, and a replay answering ENOENT would make
//! every rank compile again and write to the shared file system. So the
//! pack takes each such file in as if the pilot had opened it, with its
//! stat and bytes as they are now. That is safe: Python checks a `.pyc`
//! against its source's (recorded) stat before using it, and compiles, as
//! it would without dlfm, when they disagree.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use dlfm_cache::layout::STAT_SIZE;
use dlfm_cache::stat::{blank, to_bytes};

use crate::merge::{Merged, OpenFact, PathFacts, StatFact};

/// `ENOENT`.
const ENOENT: i32 = 2;

/// Whether `path` names a `.pyc` inside a `__pycache__` directory.
fn is_cached_bytecode(path: &[u8]) -> bool {
    let mut parts = path.rsplit(|&b| b == b'/');
    let name = parts.next().unwrap_or_default();
    name.ends_with(b".pyc") && parts.next() == Some(&b"__pycache__"[..])
}

/// Whether the program's lookups of the path all found nothing.
fn only_missing(f: &PathFacts) -> bool {
    let open_missing = matches!(f.open, Some(OpenFact::Err(ENOENT)));
    let stat_ok = matches!(f.stat, None | Some(StatFact::Err(ENOENT)));
    let lstat_ok = matches!(f.lstat, None | Some(StatFact::Err(ENOENT)));
    !f.by_ldso && open_missing && stat_ok && lstat_ok && f.listed.is_none()
}

/// The kernel's `struct stat` bytes for a file, from its metadata.
fn stat_of(m: &std::fs::Metadata) -> [u8; STAT_SIZE] {
    let mut st = blank();
    st.st_dev = m.dev();
    st.st_ino = m.ino();
    st.st_nlink = m.nlink();
    st.st_mode = m.mode();
    st.st_uid = m.uid();
    st.st_gid = m.gid();
    st.st_rdev = m.rdev();
    st.st_size = m.size() as _;
    st.st_blksize = m.blksize() as _;
    st.st_blocks = m.blocks() as _;
    st.st_atime = m.atime() as _;
    st.st_atime_nsec = m.atime_nsec() as _;
    st.st_mtime = m.mtime() as _;
    st.st_mtime_nsec = m.mtime_nsec() as _;
    st.st_ctime = m.ctime() as _;
    st.st_ctime_nsec = m.ctime_nsec() as _;
    to_bytes(&st)
}

/// Turns each `__pycache__/*.pyc` the pilot's program found missing and
/// that is now a regular file into an opened file with its present stat.
/// Returns how many it took in.
pub fn take_in_written_bytecode(merged: &mut Merged) -> usize {
    let mut taken = 0;
    for (path, facts) in merged.paths.iter_mut() {
        if !is_cached_bytecode(path) || !only_missing(facts) {
            continue;
        }
        let os_path = Path::new(std::ffi::OsStr::from_bytes(path));
        let Ok(meta) = std::fs::symlink_metadata(os_path) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let st = stat_of(&meta);
        facts.open = Some(OpenFact::File(st));
        if facts.stat.is_some() {
            facts.stat = Some(StatFact::Ok(st));
        }
        if facts.lstat.is_some() {
            facts.lstat = Some(StatFact::Ok(st));
        }
        taken += 1;
    }
    taken
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pycache_bytecode_is_taken_in() {
        assert!(is_cached_bytecode(b"/t/pkg/__pycache__/m.cpython-311.pyc"));
        assert!(!is_cached_bytecode(b"/t/pkg/m.pyc"));
        assert!(!is_cached_bytecode(b"/t/pkg/__pycache__/m.py"));
        assert!(!is_cached_bytecode(b"__pycache__"));
    }

    #[test]
    fn a_pyc_written_after_its_probe_becomes_an_opened_file() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("pkg/__pycache__");
        std::fs::create_dir_all(&cache).unwrap();
        let written = cache.join("m.cpython-311.pyc");
        let absent = cache.join("gone.cpython-311.pyc");
        let data = dir.path().join("pkg/__pycache__/notes.txt");
        for p in [&written, &data] {
            std::fs::write(p, b"bytes").unwrap();
        }
        let mut merged = Merged::default();
        for p in [&written, &absent, &data] {
            merged.paths.insert(
                p.as_os_str().as_bytes().to_vec(),
                PathFacts {
                    open: Some(OpenFact::Err(ENOENT)),
                    ..PathFacts::default()
                },
            );
        }
        assert_eq!(take_in_written_bytecode(&mut merged), 1);
        let facts = &merged.paths[written.as_os_str().as_bytes()];
        let Some(OpenFact::File(st)) = facts.open else {
            panic!("not taken in: {facts:?}");
        };
        let view = dlfm_cache::stat::StatView(&st);
        let meta = std::fs::metadata(&written).unwrap();
        assert!(view.is_regular());
        assert_eq!((view.ino(), view.size()), (meta.ino(), 5));
        assert_eq!(view.mtime(), (meta.mtime(), meta.mtime_nsec()));
        for p in [&absent, &data] {
            assert!(matches!(
                merged.paths[p.as_os_str().as_bytes()].open,
                Some(OpenFact::Err(ENOENT))
            ));
        }
    }
}
