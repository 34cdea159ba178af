//! The no_std reader against caches laid out by a small writer kept here (the
//! real writer is `dlfm-pack`'s, tested in its own crate): round trips, each
//! rejection from one specific damage, and property tests that no bytes make
//! the reader panic or hand out a file outside the cache.

use dlfm_bytes::le_u64;
use dlfm_cache::layout::{
    header_at, seal, EntryRecord, FileRecord, Header, IdKind, Lookups, Outcome, Plain, ENTRY_LEN,
    FILE_LEN, HEADER_LEN, ID_LEN, PAGE, STAT_SIZE, U32, U64,
};
use dlfm_cache::read::{fnv1a64, Cache, CacheError};
use dlfm_cache::stat;
use proptest::prelude::*;

/// What a test cache holds.
#[derive(Clone, Default)]
struct Spec {
    /// (path, open, stat, access)
    entries: Vec<(Vec<u8>, Outcome, Outcome, Outcome)>,
    /// (path, stat index, contents)
    files: Vec<(Vec<u8>, u32, Vec<u8>)>,
    stats: Vec<[u8; STAT_SIZE]>,
    ids: Vec<(u8, Vec<u8>)>,
    width: u32,
}

fn stat(ino: u64, size: u64) -> [u8; STAT_SIZE] {
    let mut st = stat::blank();
    st.st_dev = 1;
    st.st_ino = ino;
    st.st_size = size as i64;
    stat::to_bytes(&st)
}

fn align(n: u64) -> u64 {
    n.div_ceil(PAGE) * PAGE
}

/// Lays out `spec` as the layout module says (entries sorted here).
fn build(spec: &Spec) -> Vec<u8> {
    let mut entries = spec.entries.clone();
    entries.sort_by(|a, b| (fnv1a64(&a.0), &a.0).cmp(&(fnv1a64(&b.0), &b.0)));
    let entries_off = HEADER_LEN;
    let files_off = entries_off + entries.len() * ENTRY_LEN;
    let stats_off = files_off + spec.files.len() * FILE_LEN;
    let ids_off = stats_off + spec.stats.len() * STAT_SIZE;
    let strings_off = ids_off + spec.ids.len() * ID_LEN;
    let mut strings = Vec::new();
    let mut meta = vec![0u8; HEADER_LEN];
    for (path, open, st, access) in &entries {
        let lookups = Lookups {
            open: *open,
            stat: *st,
            access: *access,
            ..Lookups::NONE
        };
        let rec = EntryRecord::new(
            fnv1a64(path),
            strings.len() as u32,
            path.len() as u32,
            &lookups,
        );
        meta.extend_from_slice(rec.as_bytes());
        strings.extend_from_slice(path);
    }
    let file_paths: Vec<u32> = spec
        .files
        .iter()
        .map(|(p, ..)| {
            let at = strings.len() as u32;
            strings.extend_from_slice(p);
            at
        })
        .collect();
    let meta_len = (strings_off + strings.len()) as u64;
    let mut data_off = align(meta_len);
    let mut placed = Vec::new();
    for ((path, st, data), at) in spec.files.iter().zip(&file_paths) {
        let rec = FileRecord {
            data_off: U64::new(data_off),
            size: U64::new(data.len() as u64),
            stat_index: U32::new(*st),
            path_off: U32::new(*at),
            path_len: U32::new(path.len() as u32),
            data_sum: U32::new(0),
            real_off: U32::new(*at),
            real_len: U32::new(path.len() as u32),
        };
        meta.extend_from_slice(rec.as_bytes());
        placed.push(data_off);
        data_off += align(data.len() as u64);
    }
    for s in &spec.stats {
        meta.extend_from_slice(s);
    }
    // Identities are laid out by hand so that tests can store kinds and
    // lengths the format forbids (IdRecord::new refuses them).
    for (kind, id) in &spec.ids {
        let mut rec = [0u8; ID_LEN];
        rec[0] = *kind;
        rec[1] = id.len() as u8;
        rec[8..8 + id.len().min(32)].copy_from_slice(&id[..id.len().min(32)]);
        meta.extend_from_slice(&rec);
    }
    meta.extend_from_slice(&strings);
    assert_eq!(meta.len() as u64, meta_len);
    let file_len = data_off.max(align(meta_len));
    let header = Header {
        file_len: U64::new(file_len),
        meta_len: U64::new(meta_len),
        entries_off: U64::new(entries_off as u64),
        entries_count: U32::new(entries.len() as u32),
        files_count: U32::new(spec.files.len() as u32),
        files_off: U64::new(files_off as u64),
        stats_off: U64::new(stats_off as u64),
        stats_count: U32::new(spec.stats.len() as u32),
        ids_count: U32::new(spec.ids.len() as u32),
        ids_off: U64::new(ids_off as u64),
        strings_off: U64::new(strings_off as u64),
        strings_len: U64::new(strings.len() as u64),
        width: U32::new(spec.width),
        lists_off: U64::new(strings_off as u64),
        ..Header::default()
    }
    .stamped();
    meta[..HEADER_LEN].copy_from_slice(header.as_bytes());
    seal(&mut meta);
    let mut out = meta;
    out.resize(file_len as usize, 0);
    for ((.., data), off) in spec.files.iter().zip(placed) {
        out[off as usize..off as usize + data.len()].copy_from_slice(data);
    }
    out
}

/// Two files (one 5000 bytes, one empty-ish), ENOENT probes, a stat'ed
/// directory, an access check and both identities.
fn sample() -> Spec {
    let a: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let b = b"second file".to_vec();
    let mut s = Spec {
        width: 24,
        stats: vec![stat(10, 5000), stat(11, 11), stat(2, 4096)],
        ids: vec![
            (IdKind::Program as u8, b"program-id".to_vec()),
            (IdKind::Ldso as u8, vec![7; 32]),
        ],
        ..Spec::default()
    };
    s.files = vec![
        (b"/lib/a.so".to_vec(), 0, a),
        (b"/lib/b.so".to_vec(), 1, b),
        (b"/lib/empty".to_vec(), 1, Vec::new()),
    ];
    let nr = Outcome::NotRecorded;
    s.entries = vec![
        (b"/lib/a.so".to_vec(), Outcome::Ok(0), Outcome::Ok(0), nr),
        (b"/usr/lib/a.so".to_vec(), Outcome::Ok(0), nr, nr),
        (b"/lib/b.so".to_vec(), Outcome::Ok(1), nr, Outcome::Ok(0)),
        (b"/lib/empty".to_vec(), Outcome::Ok(2), nr, nr),
        (b"/lib".to_vec(), nr, Outcome::Ok(2), nr),
        (b"/etc/ld.so.preload".to_vec(), nr, nr, Outcome::Err(2)),
        (b"/secret".to_vec(), Outcome::Err(13), Outcome::Err(13), nr),
    ];
    for i in 0..50 {
        let p = format!("/nope/{i}/libx.so").into_bytes();
        s.entries.push((p, Outcome::Err(2), nr, nr));
    }
    s
}

fn parse(b: &[u8]) -> Result<Cache<'_>, CacheError> {
    Cache::parse(b, b.len() as u64)
}

fn meta_len(b: &[u8]) -> usize {
    le_u64(b, header_at::META_LEN).unwrap() as usize
}

/// Applies `edit` to the sample and seals its metadata again, so only the
/// structural checks can catch the damage.
fn resealed(edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut b = build(&sample());
    edit(&mut b);
    let m = meta_len(&b).min(b.len());
    seal(&mut b[..m]);
    b
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn everything_written_reads_back() {
    let spec = sample();
    let bytes = build(&spec);
    let c = parse(&bytes).unwrap();
    assert_eq!((c.width(), c.entries(), c.files()), (24, 57, 3));
    for (path, open, st, access) in &spec.entries {
        let e = c.lookup(path).unwrap_or_else(|| panic!("{path:?} missing"));
        assert_eq!((e.open, e.stat, e.access), (*open, *st, *access));
    }
    for (i, (path, st, data)) in spec.files.iter().enumerate() {
        let f = c.file(i as u32).unwrap();
        assert_eq!(f.data_off % PAGE, 0);
        assert!(f.data_off >= align(meta_len(&bytes) as u64));
        assert_eq!(f.path, &path[..]);
        assert_eq!(f.stat_index, *st);
        let at = f.data_off as usize;
        assert_eq!(&bytes[at..at + f.size as usize], &data[..]);
        // Padding up to the next page is zeros.
        let end = align(f.data_off + f.size) as usize;
        assert!(bytes[at + data.len()..end].iter().all(|&x| x == 0));
    }
    assert!(c.file(3).is_none());
    for (i, s) in spec.stats.iter().enumerate() {
        assert_eq!(c.stat(i as u32), Some(&s[..]));
    }
    assert!(c.stat(3).is_none() && c.stat(u32::MAX).is_none());
    assert!(c.has_id(IdKind::Program, b"program-id"));
    assert!(c.has_id(IdKind::Ldso, &[7; 32]));
    assert!(!c.has_id(IdKind::Ldso, b"program-id"));
    assert!(!c.has_id(IdKind::Program, b"program-i"));
    assert!(!c.has_id(IdKind::Program, b""));
    for absent in [
        &b""[..],
        b"/",
        b"/lib/",
        b"/lib/a.s",
        b"/lib/a.so\0",
        b"/nope/50/libx.so",
    ] {
        assert!(c.lookup(absent).is_none(), "{absent:?}");
    }
}

#[test]
fn the_metadata_alone_is_enough_to_answer_lookups() {
    // The wrapper maps only [0, meta_len) and passes the file's length.
    let bytes = build(&sample());
    let m = meta_len(&bytes);
    let c = Cache::parse(&bytes[..m], bytes.len() as u64).unwrap();
    assert_eq!(c.lookup(b"/lib/b.so").unwrap().open, Outcome::Ok(1));
    let f = c.file(0).unwrap();
    assert!(f.data_off + f.size <= bytes.len() as u64);
    // Less than the metadata is not enough.
    assert_eq!(
        Cache::parse(&bytes[..m - 1], bytes.len() as u64).unwrap_err(),
        CacheError::OutOfBounds
    );
}

#[test]
fn an_empty_cache_parses_and_misses() {
    let bytes = build(&Spec::default());
    let c = parse(&bytes).unwrap();
    assert_eq!((c.entries(), c.files()), (0, 0));
    assert!(c.lookup(b"/lib").is_none());
    assert!(c.file(0).is_none() && c.stat(0).is_none());
    assert!(!c.has_id(IdKind::Program, b""));
}

#[test]
fn each_damage_is_named() {
    let good = build(&sample());
    let m = meta_len(&good);
    let check = |b: Vec<u8>, want: CacheError| {
        assert_eq!(parse(&b).map(|_| ()).unwrap_err(), want);
        assert!(!want.reason().is_empty());
    };
    let edit = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = good.clone();
        f(&mut b);
        b
    };
    check(edit(&|b| b.truncate(50)), CacheError::TooShort);
    check(Vec::new(), CacheError::TooShort);
    check(edit(&|b| b[0] = b'X'), CacheError::BadMagic);
    check(edit(&|b| b[8] = 9), CacheError::BadVersion);
    check(
        resealed(|b| put_u32(b, header_at::HEADER_LEN, 64)),
        CacheError::BadVersion,
    );
    check(
        edit(&|b| b.truncate(b.len() - 1)),
        CacheError::LengthMismatch,
    );
    check(edit(&|b| b.push(0)), CacheError::LengthMismatch);
    assert_eq!(
        Cache::parse(&good, good.len() as u64 + 1).map(|_| ()),
        Err(CacheError::LengthMismatch)
    );
    check(edit(&|b| b[m - 1] ^= 1), CacheError::BadChecksum);
    check(edit(&|b| b[33] ^= 1), CacheError::BadChecksum);

    // Out of bounds, resealed so the bounds checks (not the checksum) act.
    check(
        resealed(|b| put_u64(b, 40, m as u64)),
        CacheError::OutOfBounds,
    );
    check(
        resealed(|b| put_u64(b, header_at::ENTRIES_OFF, 8)),
        CacheError::OutOfBounds,
    );
    check(
        resealed(|b| put_u32(b, 48, u32::MAX)),
        CacheError::OutOfBounds,
    );
    check(
        resealed(|b| put_u64(b, 64, u64::MAX)),
        CacheError::OutOfBounds,
    );
    check(
        resealed(|b| put_u64(b, 96, 1 << 40)),
        CacheError::OutOfBounds,
    );
    check(
        resealed(|b| put_u64(b, header_at::META_LEN, 64)),
        CacheError::OutOfBounds,
    );
    let files_off = le_u64(&good, header_at::FILES_OFF).unwrap() as usize;
    let file_len = good.len() as u64;
    // A file past the end, a file inside the metadata, a misaligned file.
    check(
        resealed(|b| put_u64(b, files_off, file_len)),
        CacheError::OutOfBounds,
    );
    check(
        resealed(|b| put_u64(b, files_off, 0)),
        CacheError::OutOfBounds,
    );
    check(
        resealed(|b| put_u64(b, files_off, align(m as u64) + 8)),
        CacheError::OutOfBounds,
    );
    check(
        resealed(|b| put_u64(b, files_off + 8, u64::MAX)),
        CacheError::OutOfBounds,
    );
    // Two files sharing bytes: the second starts where the first does, or
    // on the first's last page.
    let first = le_u64(&good, files_off).unwrap();
    check(
        resealed(|b| put_u64(b, files_off + FILE_LEN, first)),
        CacheError::BadTable,
    );
    let first_size = le_u64(&good, files_off + 8).unwrap();
    assert!(first_size > 0, "the sample's first file has bytes");
    check(
        resealed(|b| {
            put_u64(
                b,
                files_off + FILE_LEN,
                first + (first_size - 1) / PAGE * PAGE,
            )
        }),
        CacheError::BadTable,
    );
    // An entry whose path leaves the string table.
    check(
        resealed(|b| put_u32(b, HEADER_LEN + 12, u32::MAX)),
        CacheError::OutOfBounds,
    );

    // Inconsistent tables.
    let first_two_swapped = resealed(|b| {
        let (x, y) = (HEADER_LEN, HEADER_LEN + ENTRY_LEN);
        let first: Vec<u8> = b[x..y].to_vec();
        b.copy_within(y..y + ENTRY_LEN, x);
        b[y..y + ENTRY_LEN].copy_from_slice(&first);
    });
    check(first_two_swapped, CacheError::BadTable);
    let entry =
        |field: usize, v: i32| resealed(move |b| put_u32(b, HEADER_LEN + 16 + field * 4, v as u32));
    check(entry(0, 3), CacheError::BadTable); // open: only 3 files
    check(entry(1, 3), CacheError::BadTable); // stat: only 3 stats
    check(entry(2, 1), CacheError::BadTable); // access succeeds with 0 only
    check(entry(0, -4096), CacheError::BadTable); // not an errno
    check(
        resealed(|b| put_u32(b, files_off + 16, 3)),
        CacheError::BadTable,
    );
    let ids_off = le_u64(&good, header_at::IDS_OFF).unwrap() as usize;
    check(resealed(|b| b[ids_off] = 3), CacheError::BadTable);
    check(resealed(|b| b[ids_off + 1] = 33), CacheError::BadTable);
}

#[test]
fn outcomes_the_format_cannot_hold_are_refused_not_misread() {
    for bad in [
        Outcome::Err(0),
        Outcome::Err(-5),
        Outcome::Err(i32::MIN),
        Outcome::Err(9999),
    ] {
        let mut s = sample();
        s.entries[0].1 = bad;
        assert_eq!(
            parse(&build(&s)).map(|_| ()),
            Err(CacheError::BadTable),
            "{bad:?}"
        );
    }
    let mut s = sample();
    s.entries[0].1 = Outcome::Ok(u32::MAX);
    assert_eq!(parse(&build(&s)).map(|_| ()), Err(CacheError::BadTable));
}

/// Everything a reader can be asked, on any bytes: must not panic, every
/// file it returns lies inside the file and every stat is STAT_SIZE bytes.
fn exercise(bytes: &[u8], file_len: u64, paths: &[Vec<u8>]) {
    let Ok(c) = Cache::parse(bytes, file_len) else {
        return;
    };
    for p in paths {
        if let Some(e) = c.lookup(p) {
            if let Outcome::Ok(i) = e.open {
                assert!(c.file(i).is_some(), "a parsed cache's open names a file");
            }
            if let Outcome::Ok(i) = e.stat {
                assert!(c.stat(i).is_some(), "a parsed cache's stat exists");
            }
        }
    }
    for i in (0..c.files().saturating_add(2).min(64)).chain([u32::MAX]) {
        if let Some(f) = c.file(i) {
            assert!(f.data_off.checked_add(f.size).unwrap() <= file_len);
            assert_eq!(f.data_off % PAGE, 0);
            assert!(c.stat(f.stat_index).is_some());
        }
        if let Some(s) = c.stat(i) {
            assert_eq!(s.len(), STAT_SIZE);
        }
    }
    let _ = c.has_id(IdKind::Ldso, &[7; 32]);
    let _ = c.has_id(IdKind::Program, b"program-id");
}

fn sample_bytes() -> &'static Vec<u8> {
    static S: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    S.get_or_init(|| build(&sample()))
}

fn sample_paths() -> Vec<Vec<u8>> {
    let mut p: Vec<Vec<u8>> = sample().entries.into_iter().map(|e| e.0).collect();
    p.push(b"/x".to_vec());
    p.push(Vec::new());
    p
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn random_bytes_never_crash_the_reader(
        bytes in proptest::collection::vec(any::<u8>(), 0..4096),
        path in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        exercise(&bytes, bytes.len() as u64, &[path]);
    }

    #[test]
    fn a_random_header_on_a_valid_body_never_crashes_the_reader(
        header in proptest::collection::vec(any::<u8>(), HEADER_LEN),
        reseal in any::<bool>(),
    ) {
        let mut b = sample_bytes().clone();
        b[..HEADER_LEN].copy_from_slice(&header);
        b[..8].copy_from_slice(b"DLFMCACH");
        b[8..12].copy_from_slice(&1u32.to_le_bytes());
        let len = b.len() as u64;
        if reseal {
            b[16..24].copy_from_slice(&len.to_le_bytes());
            let m = meta_len(&b).min(b.len());
            if m >= 40 {
                seal(&mut b[..m]);
            }
        }
        exercise(&b, len, &sample_paths());
    }

    #[test]
    fn mutated_caches_never_crash_the_reader(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        reseal in any::<bool>(),
        cut in any::<Option<usize>>(),
        extend in 0usize..64,
        meta_only in any::<bool>(),
        extra in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..24), 0..4),
    ) {
        let mut b = sample_bytes().clone();
        let m = meta_len(&b);
        for (at, v) in edits {
            b[at % m] = v;
        }
        if reseal {
            let m = meta_len(&b).min(b.len());
            if m >= 40 {
                seal(&mut b[..m]);
            }
        }
        if let Some(c) = cut {
            b.truncate(c % (b.len() + 1));
        }
        b.resize(b.len() + extend, 0xa5);
        let mut paths = sample_paths();
        paths.extend(extra);
        let file_len = b.len() as u64;
        exercise(&b, file_len, &paths);
        if meta_only {
            let m = le_u64(&b, header_at::META_LEN).map_or(0, |m| m as usize).min(b.len());
            exercise(&b[..m], file_len, &paths);
        }
    }

    #[test]
    fn any_set_of_paths_is_found_by_binary_search(
        paths in proptest::collection::btree_set(proptest::collection::vec(any::<u8>(), 0..12), 0..80),
        probes in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..12), 0..20),
    ) {
        let spec = Spec {
            entries: paths
                .iter()
                .enumerate()
                .map(|(i, p)| (p.clone(), Outcome::Err(1 + (i as i32 % 4000)), Outcome::NotRecorded, Outcome::Ok(0)))
                .collect(),
            ..Spec::default()
        };
        let bytes = build(&spec);
        let c = parse(&bytes).unwrap();
        for (p, open, ..) in &spec.entries {
            prop_assert_eq!(c.lookup(p).map(|e| e.open), Some(*open));
        }
        for p in probes {
            prop_assert_eq!(c.lookup(&p).is_some(), paths.contains(&p));
        }
    }
}
