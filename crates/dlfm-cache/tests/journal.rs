//! The journal encoder: every kind lays out as documented, a record that does
//! not fit is refused, and no input makes it panic or write a record whose
//! header disagrees with its bytes. (Round trips through the decoder are
//! property-tested beside it in `journal.rs`; torn-record and cut-anywhere
//! scans in `dlfm-pack`.)

use dlfm_cache::journal::{
    encode, record_sum, Origin, Record, HEADER_LEN, ID_ROOM, KIND_ACCESS, KIND_OPEN, KIND_PROCESS,
    KIND_STAT, MAGIC, MAX_RECORD,
};
use dlfm_cache::layout::STAT_SIZE;
use proptest::prelude::*;

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn encoded(rec: &Record<'_>) -> Vec<u8> {
    let mut buf = vec![0xeeu8; MAX_RECORD];
    let n = encode(rec, Origin::Ldso, &mut buf).expect("fits");
    buf.truncate(n);
    buf
}

/// Checks the header against the bytes; returns (kind, payload).
fn split(rec: &[u8]) -> (u16, &[u8]) {
    assert_eq!(u32_at(rec, 0), MAGIC);
    assert_eq!(&rec[..4], b"DLJR");
    assert_eq!(u32_at(rec, 4) as usize, rec.len());
    assert_eq!(&rec[10..12], &[0, 0], "recorded by ld.so");
    let payload = &rec[HEADER_LEN..];
    let kind = u16::from_le_bytes([rec[8], rec[9]]);
    assert_eq!(u32_at(rec, 12), record_sum(kind, 0, payload));
    (kind, payload)
}

fn stat() -> [u8; STAT_SIZE] {
    core::array::from_fn(|i| i as u8)
}

#[test]
fn process_records_keep_both_identities_in_their_rooms() {
    let r = encoded(&Record::Process {
        pid: 4242,
        program_id: b"prog",
        ldso_id: &[9; 40],
        exe: b"./app",
    });
    let (kind, p) = split(&r);
    assert_eq!(kind, KIND_PROCESS);
    assert_eq!(u32_at(p, 0), 4242);
    assert_eq!(
        &p[4..8],
        &[4, ID_ROOM as u8, 0, 0],
        "a long id is cut to its room"
    );
    assert_eq!(&p[8..12], b"prog");
    assert!(p[12..40].iter().all(|&b| b == 0));
    assert_eq!(&p[40..72], &[9; 32]);
    assert_eq!(&p[72..], b"./app");
}

#[test]
fn open_records_with_and_without_a_stat() {
    let st = stat();
    let r = encoded(&Record::Open {
        flags: 0o2000000,
        result: 3,
        stat: Some(&st),
        path: b"/lib/libc.so.6",
    });
    let (kind, p) = split(&r);
    assert_eq!(kind, KIND_OPEN);
    assert_eq!(
        (
            u32_at(p, 0),
            u32_at(p, 4) as i32,
            u32_at(p, 8),
            u32_at(p, 12)
        ),
        (0o2000000, 3, 1, 0)
    );
    assert_eq!(&p[16..16 + STAT_SIZE], &st[..]);
    assert_eq!(&p[16 + STAT_SIZE..], b"/lib/libc.so.6");

    let r = encoded(&Record::Open {
        flags: 0,
        result: -2,
        stat: None,
        path: b"/nope",
    });
    let (_, p) = split(&r);
    assert_eq!((u32_at(p, 4) as i32, u32_at(p, 8)), (-2, 0));
    assert!(p[16..16 + STAT_SIZE].iter().all(|&b| b == 0));
    assert_eq!(&p[16 + STAT_SIZE..], b"/nope");
}

#[test]
fn stat_and_access_records() {
    let st = stat();
    let r = encoded(&Record::Stat {
        flags: 0x100,
        result: 0,
        stat: &st,
        path: b"/lib",
    });
    let (kind, p) = split(&r);
    assert_eq!((kind, u32_at(p, 0), u32_at(p, 4)), (KIND_STAT, 0x100, 0));
    assert_eq!(&p[8..8 + STAT_SIZE], &st[..]);
    assert_eq!(&p[8 + STAT_SIZE..], b"/lib");

    let r = encoded(&Record::Access {
        mode: 4,
        result: -13,
        path: b"/etc/ld.so.preload",
    });
    let (kind, p) = split(&r);
    assert_eq!(
        (kind, u32_at(p, 0), u32_at(p, 4) as i32),
        (KIND_ACCESS, 4, -13)
    );
    assert_eq!(&p[8..], b"/etc/ld.so.preload");
}

#[test]
fn a_record_that_does_not_fit_is_refused() {
    let rec = Record::Access {
        mode: 4,
        result: 0,
        path: b"/some/path",
    };
    let n = encoded(&rec).len();
    for size in 0..n {
        let mut buf = vec![0u8; size];
        assert_eq!(
            encode(&rec, Origin::Ldso, &mut buf),
            None,
            "buffer of {size}"
        );
    }
    assert_eq!(encode(&rec, Origin::Ldso, &mut vec![0u8; n]), Some(n));
    // Longer than MAX_RECORD: refused even with room to spare.
    let long = vec![b'a'; MAX_RECORD];
    let mut big = vec![0u8; 2 * MAX_RECORD];
    let too_long = Record::Access {
        mode: 4,
        result: 0,
        path: &long,
    };
    assert_eq!(encode(&too_long, Origin::Ldso, &mut big), None);
    let just_fits = Record::Access {
        mode: 4,
        result: 0,
        path: &long[..MAX_RECORD - HEADER_LEN - 8],
    };
    assert_eq!(encode(&just_fits, Origin::Ldso, &mut big), Some(MAX_RECORD));
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn encoding_never_panics_and_the_header_matches(
        kind in 0u8..4,
        a in any::<u32>(),
        b in any::<i32>(),
        has_stat in any::<bool>(),
        id1 in bytes(48),
        id2 in bytes(48),
        path in bytes(300),
        long in any::<bool>(),
        size in 0usize..10_000,
    ) {
        let st = stat();
        let path = if long { path.repeat(40) } else { path };
        let rec = match kind {
            0 => Record::Process { pid: a, program_id: &id1, ldso_id: &id2, exe: &path },
            1 => Record::Open { flags: a, result: b, stat: has_stat.then_some(&st), path: &path },
            2 => Record::Stat { flags: a, result: b, stat: &st, path: &path },
            _ => Record::Access { mode: a, result: b, path: &path },
        };
        let mut buf = vec![0u8; size];
        match encode(&rec, Origin::Ldso, &mut buf) {
            Some(n) => {
                prop_assert!(n <= size && n <= MAX_RECORD);
                let (k, payload) = split(&buf[..n]);
                prop_assert_eq!(k, u16::from(kind) + 1);
                prop_assert!(payload.ends_with(&path));
            }
            None => {
                // It would not fit: check with a buffer of any size.
                let mut huge = vec![0u8; 2 * MAX_RECORD + 16_000];
                match encode(&rec, Origin::Ldso, &mut huge) {
                    Some(n) => prop_assert!(n > size),
                    None => prop_assert!(path.len() + HEADER_LEN > MAX_RECORD - 200),
                }
            }
        }
    }
}
