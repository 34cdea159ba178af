//! The cache and journal formats: round trips through the writer and the
//! no_std reader, every rejection, and property tests that random or mutated
//! bytes never make the reader or the decoder panic or read out of bounds.

use std::path::{Path, PathBuf};

use dlfm_bytes::le_u64;
use dlfm_cache::journal::{encode, Origin, Record, MAX_RECORD};
use dlfm_cache::layout::{header_at, seal};
use dlfm_cache::layout::{IdKind, Outcome, PAGE, STAT_SIZE};
use dlfm_cache::read::{Cache, CacheError};
use dlfm_cache::stat::StatView;
use dlfm_pack::scan::scan;
use dlfm_pack::writer::CacheWriter;
use proptest::prelude::*;

fn stat(dev: u64, ino: u64, size: u64) -> [u8; STAT_SIZE] {
    let mut st = dlfm_cache::stat::blank();
    st.st_dev = dev;
    st.st_ino = ino;
    st.st_mode = 0o100644;
    st.st_size = size as i64;
    dlfm_cache::stat::to_bytes(&st)
}

/// A cache with two files (one under two paths), ENOENT probes, a stat'ed
/// directory and an access check; returns its bytes and the files' contents.
fn sample_cache(dir: &Path) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let a: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let b = b"second file".to_vec();
    let (pa, pb) = (dir.join("a.so"), dir.join("b.so"));
    std::fs::write(&pa, &a).unwrap();
    std::fs::write(&pb, &b).unwrap();
    let mut cb = CacheWriter::new(24);
    cb.add_id(IdKind::Program, b"program-id");
    cb.add_id(IdKind::Ldso, b"ldso-id");
    let sa = cb.add_stat(stat(1, 10, a.len() as u64));
    let sb = cb.add_stat(stat(1, 11, b.len() as u64));
    let fa = cb.add_file(b"/lib/a.so", sa, a.len() as u64, pa.clone());
    let fa2 = cb.add_file(b"/usr/lib/a.so", sa, a.len() as u64, pa);
    assert_eq!(fa, fa2, "the same inode is stored once");
    let fb = cb.add_file(b"/lib/b.so", sb, b.len() as u64, pb);
    cb.set_open(b"/lib/a.so", Outcome::Ok(fa));
    cb.set_open(b"/usr/lib/a.so", Outcome::Ok(fa));
    cb.set_open(b"/lib/b.so", Outcome::Ok(fb));
    for i in 0..50 {
        cb.set_open(format!("/nope/{i}/libx.so").as_bytes(), Outcome::Err(2));
    }
    let sd = cb.add_stat(stat(1, 2, 4096));
    cb.set_stat(b"/lib", Outcome::Ok(sd));
    cb.set_stat(b"/nope/0", Outcome::Err(2));
    cb.set_access(b"/etc/ld.so.preload", Outcome::Err(2));
    let out = dir.join("cache.dat");
    let summary = cb.write_with(&out, |_| {}, &mut |_, _| {}).unwrap();
    assert_eq!(summary.files, 2);
    (std::fs::read(out).unwrap(), a, b)
}

#[test]
fn a_cache_reads_back_what_was_written() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, a, b) = sample_cache(dir.path());
    let c = Cache::parse(&bytes, bytes.len() as u64).unwrap();
    assert_eq!(c.width(), 24);
    assert!(c.has_id(IdKind::Program, b"program-id") && c.has_id(IdKind::Ldso, b"ldso-id"));
    assert!(!c.has_id(IdKind::Program, b"ldso-id") && !c.has_id(IdKind::Program, b"other"));
    for (path, content) in [
        (&b"/lib/a.so"[..], &a),
        (b"/usr/lib/a.so", &a),
        (b"/lib/b.so", &b),
    ] {
        let e = c.lookup(path).unwrap();
        let Outcome::Ok(i) = e.open else {
            panic!("{e:?}")
        };
        let f = c.file(i).unwrap();
        assert_eq!(f.data_off % PAGE, 0);
        assert_eq!(
            &bytes[f.data_off as usize..(f.data_off + f.size) as usize],
            &content[..]
        );
        let st: &[u8; STAT_SIZE] = c.stat(f.stat_index).unwrap().try_into().unwrap();
        assert_eq!(StatView(st).size(), content.len() as u64);
    }
    assert_eq!(c.lookup(b"/nope/7/libx.so").unwrap().open, Outcome::Err(2));
    assert_eq!(c.lookup(b"/lib").unwrap().stat, Outcome::Ok(2));
    assert_eq!(c.lookup(b"/lib").unwrap().open, Outcome::NotRecorded);
    assert_eq!(
        c.lookup(b"/etc/ld.so.preload").unwrap().access,
        Outcome::Err(2)
    );
    assert!(c.lookup(b"/not/recorded").is_none());
    assert!(c.lookup(b"").is_none());
}

#[test]
fn each_damage_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, ..) = sample_cache(dir.path());
    let meta = le_u64(&bytes, header_at::META_LEN).unwrap() as usize;
    let check = |edit: &dyn Fn(&mut Vec<u8>), want: CacheError| {
        let mut b = bytes.clone();
        edit(&mut b);
        assert_eq!(Cache::parse(&b, b.len() as u64).unwrap_err(), want);
    };
    check(&|b| b.truncate(50), CacheError::TooShort);
    check(&|b| b[0] = b'X', CacheError::BadMagic);
    check(&|b| b[8] = 9, CacheError::BadVersion);
    check(&|b| b.truncate(b.len() - 1), CacheError::LengthMismatch);
    check(&|b| b.push(0), CacheError::LengthMismatch);
    check(&|b| b[meta - 1] ^= 1, CacheError::BadChecksum);
    // A table offset past the metadata, resealed so the bounds check (not
    // the checksum) must catch it.
    check(
        &|b| {
            b[40..48].copy_from_slice(&(meta as u64).to_le_bytes());
            seal(&mut b[..meta]);
        },
        CacheError::OutOfBounds,
    );
}

fn records() -> Vec<Vec<u8>> {
    let st = stat(3, 4, 5);
    let recs = [
        Record::Process {
            pid: 42,
            program_id: b"prog",
            ldso_id: b"ld",
            exe: b"./app",
        },
        Record::Open {
            flags: 0o2000000,
            result: 3,
            stat: Some(&st),
            path: b"/lib/libc.so.6",
        },
        Record::Open {
            flags: 0,
            result: -2,
            stat: None,
            path: b"/nope/libc.so.6",
        },
        Record::Stat {
            flags: 0,
            result: 0,
            stat: &st,
            path: b"/lib",
        },
        Record::Access {
            mode: 4,
            result: -2,
            path: b"/etc/ld.so.preload",
        },
    ];
    recs.iter()
        .map(|r| {
            let mut buf = vec![0u8; MAX_RECORD];
            let n = encode(r, Origin::Ldso, &mut buf).unwrap();
            buf.truncate(n);
            buf
        })
        .collect()
}

#[test]
fn journal_records_round_trip() {
    let all: Vec<u8> = records().concat();
    let d = scan(&all);
    assert!(d.damaged.is_empty());
    assert_eq!(d.records.len(), 5);
    assert_eq!(
        d.records[0],
        (
            Record::Process {
                pid: 42,
                program_id: b"prog",
                ldso_id: b"ld",
                exe: b"./app"
            },
            Origin::Ldso
        )
    );
    assert!(
        matches!(&d.records[1].0, Record::Open { result: 3, stat: Some(s), path, .. } if StatView(s).ino() == 4 && *path == b"/lib/libc.so.6")
    );
    assert!(matches!(
        &d.records[2].0,
        Record::Open {
            result: -2,
            stat: None,
            ..
        }
    ));
    let mut small = [0u8; 20];
    assert!(encode(
        &Record::Access {
            mode: 4,
            result: 0,
            path: b"/too/long/for/this"
        },
        Origin::Ldso,
        &mut small
    )
    .is_none());
}

#[test]
fn a_torn_record_is_skipped_and_reported() {
    let r = records();
    let mut j = r[1].clone();
    j.extend_from_slice(&r[3][..r[3].len() / 2]);
    j.extend_from_slice(&r[4]);
    let d = scan(&j);
    assert_eq!(d.records.len(), 2);
    assert_eq!(d.damaged.len(), 1);
    assert_eq!(d.damaged[0].offset, r[1].len());
    assert_eq!(d.damaged[0].skipped_bytes, r[3].len() / 2);
}

#[test]
fn a_journal_cut_anywhere_keeps_every_complete_record() {
    let r = records();
    let all = r.concat();
    for cut in 0..=all.len() {
        let complete = r
            .iter()
            .scan(0, |end, x| {
                *end += x.len();
                Some(*end)
            })
            .filter(|&end| end <= cut)
            .count();
        assert_eq!(scan(&all[..cut]).records.len(), complete, "cut at {cut}");
    }
}

/// Everything a reader can be asked, on any bytes: must not panic, and any
/// file it returns lies inside the buffer.
fn exercise(bytes: &[u8], paths: &[Vec<u8>]) {
    if let Ok(c) = Cache::parse(bytes, bytes.len() as u64) {
        for p in paths {
            let _ = c.lookup(p);
        }
        for i in 0..c.files().saturating_add(2).min(64) {
            if let Some(f) = c.file(i) {
                assert!(f.data_off + f.size <= bytes.len() as u64);
            }
            let _ = c.stat(i);
        }
        let _ = c.has_id(IdKind::Ldso, b"ldso-id");
    }
}

fn sample_bytes() -> &'static (Vec<u8>, Vec<Vec<u8>>) {
    static S: std::sync::OnceLock<(Vec<u8>, Vec<Vec<u8>>)> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let (bytes, ..) = sample_cache(dir.path());
        let paths = vec![
            b"/lib/a.so".to_vec(),
            b"/lib".to_vec(),
            b"/nope/3/libx.so".to_vec(),
            b"/x".to_vec(),
        ];
        (bytes, paths)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_crash_the_reader(bytes in proptest::collection::vec(any::<u8>(), 0..4096), path in proptest::collection::vec(any::<u8>(), 0..64)) {
        exercise(&bytes, &[path]);
        let _ = scan(&bytes);
    }

    #[test]
    fn mutated_caches_never_crash_the_reader(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8), reseal in any::<bool>(), cut in any::<Option<usize>>()) {
        let (orig, paths) = sample_bytes();
        let mut b = orig.clone();
        let meta = le_u64(&b, header_at::META_LEN).unwrap() as usize;
        for (at, v) in edits {
            let at = at % meta;
            b[at] = v;
        }
        if reseal {
            let m = (le_u64(&b, header_at::META_LEN).unwrap() as usize).min(b.len());
            seal(&mut b[..m]);
        }
        if let Some(c) = cut {
            b.truncate(c % (b.len() + 1));
        }
        exercise(&b, paths);
    }

    #[test]
    fn mutated_journals_never_crash_the_decoder(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..16)) {
        let mut j = records().concat();
        for (at, v) in edits {
            let at = at % j.len();
            j[at] = v;
        }
        let d = scan(&j);
        prop_assert!(d.records.len() <= 5);
    }
}

#[test]
fn sources_that_changed_length_while_packing_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("x.so");
    std::fs::write(&src, b"12345").unwrap();
    let mut cb = CacheWriter::new(1);
    let s = cb.add_stat(stat(1, 1, 10));
    let f = cb.add_file(b"/x.so", s, 10, PathBuf::from(&src));
    cb.set_open(b"/x.so", Outcome::Ok(f));
    let out = dir.path().join("c.dat");
    let err = cb.write_with(&out, |_| {}, &mut |_, _| {}).unwrap_err();
    assert!(err.to_string().contains("changed while packing"), "{err}");
    assert!(!out.exists());
}

/// A file ld.so opened lies at a `MAP_ALIGN` (64 KiB) boundary, so that its
/// mappings from the cache file are valid under 4, 16 and 64 KiB pages;
/// the program's own files keep 4 KiB alignment (the cache stays small).
#[test]
fn loader_files_are_aligned_for_every_page_size() {
    use dlfm_cache::layout::MAP_ALIGN;
    let dir = tempfile::tempdir().unwrap();
    let mut cb = CacheWriter::new(4);
    let mut files = Vec::new();
    for (i, mapped) in [false, true, false, true].into_iter().enumerate() {
        let src = dir.path().join(format!("f{i}"));
        std::fs::write(&src, vec![i as u8; 5000]).unwrap();
        let s = cb.add_stat(stat(1, 100 + i as u64, 5000));
        let path = format!("/lib/f{i}");
        let f = cb.add_file(path.as_bytes(), s, 5000, src);
        if mapped {
            cb.mark_mapped(f);
        }
        cb.set_open(path.as_bytes(), Outcome::Ok(f));
        files.push((f, mapped));
    }
    let out = dir.path().join("cache.dat");
    cb.write_with(&out, |_| {}, &mut |_, _| {}).unwrap();
    let bytes = std::fs::read(&out).unwrap();
    let c = Cache::parse(&bytes, bytes.len() as u64).unwrap();
    for (f, mapped) in files {
        let file = c.file(f).unwrap();
        let data = &bytes[file.data_off as usize..][..5000];
        assert!(data.iter().all(|&b| b == f as u8), "file {f}'s bytes");
        if mapped {
            assert_eq!(file.data_off % MAP_ALIGN, 0, "file {f}");
            for page in [4096u64, 16384, 65536] {
                let at = dlfm_runtime::vfd::map_at(file.data_off, page, page).unwrap();
                assert_eq!(at % page, 0, "file {f}, page {page}");
            }
        } else {
            assert_eq!(file.data_off % PAGE, 0, "file {f}");
        }
    }
    // The program's file after the first loader file is not pushed to the
    // next 64 KiB boundary.
    assert_ne!(c.file(2).unwrap().data_off % MAP_ALIGN, 0);
}
