//! Bytecode the pilot itself wrote. Python compiles a module whose
//! `__pycache__/NAME.cpython-XY.pyc` is missing or stale (its source was
//! edited) and writes that file. So a first pilot on a tree without
//! bytecode probes each `.pyc` (ENOENT) and leaves it behind, and a pilot
//! after an edit opens the old `.pyc` and replaces it. The stale checks
//! would refuse those as "appeared" or "changed since the pilot", making
//! such pilots fail to pack, and a replay of the old answer would make every
//! rank compile again and write to the shared file system. So the pack
//! takes each `.pyc` the program looked up in as it is now (its stat and
//! bytes). That is safe: Python checks a `.pyc` against its source's
//! (recorded) stat before using it, and compiles, as it would without dlfm,
//! when they disagree.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use dlfm_cache::stat::StatView;

use crate::disk::stat_of;

use crate::merge::{Merged, OpenFact, PathFacts, StatFact, ENOENT};

/// Whether `path` names a `.pyc` inside a `__pycache__` directory.
fn is_cached_bytecode(path: &[u8]) -> bool {
    let mut parts = path.rsplit(|&b| b == b'/');
    let name = parts.next().unwrap_or_default();
    name.ends_with(b".pyc") && parts.next() == Some(&b"__pycache__"[..])
}

/// Whether only the program looked the path up, opening it (or finding it
/// missing) as a file, with any stat it made found or missing.
fn opened_as_file(f: &PathFacts) -> bool {
    let opened = matches!(f.open, Some(OpenFact::Err(ENOENT) | OpenFact::File(_)));
    let stat =
        |s: &Option<StatFact>| matches!(s, None | Some(StatFact::Err(ENOENT) | StatFact::Ok(_)));
    !f.by_ldso && opened && stat(&f.stat) && stat(&f.lstat) && f.listed.is_none()
}

/// Makes each `__pycache__/*.pyc` the pilot's program opened or found
/// missing, and that is now a regular file, an opened file with its
/// present stat. Returns how many differed from what the pilot saw (written
/// or rewritten since it looked).
pub fn take_in_present_bytecode(merged: &mut Merged) -> usize {
    let mut taken = 0;
    for (path, facts) in merged.paths.iter_mut() {
        if !is_cached_bytecode(path) || !opened_as_file(facts) {
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
        if let Some(OpenFact::File(then)) = &facts.open {
            if StatView(then).same_file_content(&StatView(&st)) {
                continue;
            }
        }
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
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn only_pycache_bytecode_is_taken_in() {
        assert!(is_cached_bytecode(b"/t/pkg/__pycache__/m.cpython-311.pyc"));
        assert!(!is_cached_bytecode(b"/t/pkg/m.pyc"));
        assert!(!is_cached_bytecode(b"/t/pkg/__pycache__/m.py"));
        assert!(!is_cached_bytecode(b"__pycache__"));
    }

    #[test]
    fn a_pyc_written_or_rewritten_since_its_lookup_is_taken_as_it_is_now() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("pkg/__pycache__");
        std::fs::create_dir_all(&cache).unwrap();
        let written = cache.join("m.cpython-311.pyc");
        let rewritten = cache.join("r.cpython-311.pyc");
        let same = cache.join("s.cpython-311.pyc");
        let absent = cache.join("gone.cpython-311.pyc");
        let data = dir.path().join("pkg/__pycache__/notes.txt");
        for p in [&written, &data, &rewritten, &same] {
            std::fs::write(p, b"bytes").unwrap();
        }
        let opened = |p: &Path| PathFacts {
            open: Some(OpenFact::File(stat_of(&std::fs::metadata(p).unwrap()))),
            ..PathFacts::default()
        };
        let (old_r, old_s) = (opened(&rewritten), opened(&same));
        // Python replaces a stale .pyc with a new file.
        std::fs::remove_file(&rewritten).unwrap();
        std::fs::write(&rewritten, b"new bytes").unwrap();
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
        merged
            .paths
            .insert(rewritten.as_os_str().as_bytes().to_vec(), old_r);
        merged
            .paths
            .insert(same.as_os_str().as_bytes().to_vec(), old_s);
        assert_eq!(take_in_present_bytecode(&mut merged), 2);
        let now = merged.paths[rewritten.as_os_str().as_bytes()].open;
        assert!(
            matches!(now, Some(OpenFact::File(st)) if StatView(&st).size() == 9),
            "{now:?}"
        );
        let facts = &merged.paths[written.as_os_str().as_bytes()];
        let Some(OpenFact::File(st)) = facts.open else {
            panic!("not taken in: {facts:?}");
        };
        let view = StatView(&st);
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
