//! The cache reader as the wrapper uses it, on any bytes and on the same
//! bytes *repaired* (file length, file records and checksum made to fit, so
//! that mutations reach the table checks and the lookups behind the
//! checksum): parse (with the true length and a wrong one), then every
//! question replay asks: lookups (of paths the input names and of fixed
//! ones), files, stats, listings and identities. Nothing may panic, and
//! whatever a parsed cache hands out lies inside the file.
#![no_main]

use dlfm_cache::layout::{
    header_at, seal, FileRecord, IdKind, Outcome, Plain, FILE_LEN, HEADER_LEN, PAGE, STAT_SIZE,
    U64,
};
use dlfm_cache::read::Cache;
use libfuzzer_sys::fuzz_target;

/// `bytes` with the header's file length set to the length, every file
/// record that does not fit made an empty file at the start of the data,
/// and the metadata resealed; None if there is no header.
fn repaired(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut b = bytes.to_vec();
    if b.len() < HEADER_LEN {
        return None;
    }
    let u64_at = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    let u32_at = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    let meta = u64_at(&b, header_at::META_LEN).clamp(HEADER_LEN as u64, b.len() as u64);
    let data_start = meta.div_ceil(PAGE) * PAGE;
    if (b.len() as u64) < data_start {
        b.resize(data_start as usize, 0);
    }
    let len = b.len() as u64;
    b[header_at::META_LEN..header_at::META_LEN + 8].copy_from_slice(&meta.to_le_bytes());
    b[header_at::FILE_LEN..header_at::FILE_LEN + 8].copy_from_slice(&len.to_le_bytes());
    let (files_off, count) = (
        u64_at(&b, header_at::FILES_OFF),
        u32_at(&b, header_at::FILES_COUNT),
    );
    for i in 0..u64::from(count.min(4096)) {
        let Some(at) = files_off.checked_add(i * FILE_LEN as u64) else {
            break;
        };
        let Some(rec) = b.get_mut(at as usize..(at as usize).saturating_add(FILE_LEN)) else {
            break;
        };
        if at + FILE_LEN as u64 > meta {
            break;
        }
        let Some(f) = FileRecord::from_bytes(rec) else {
            break;
        };
        let (data_off, size) = (f.data_off.get(), f.size.get());
        let fits = data_off % PAGE == 0
            && data_off >= data_start
            && data_off.checked_add(size).is_some_and(|end| end <= len);
        if !fits {
            let mut f = *f;
            f.data_off = U64::new(data_start);
            f.size = U64::new(0);
            rec.copy_from_slice(f.as_bytes());
        }
    }
    seal(&mut b[..meta as usize]);
    Some(b)
}

fuzz_target!(|bytes: &[u8]| {
    exercise(bytes);
    if let Some(r) = repaired(bytes) {
        exercise(&r);
    }
});

fn exercise(bytes: &[u8]) {
    let len = bytes.len() as u64;
    let _ = Cache::parse(bytes, len + 1);
    let Ok(c) = Cache::parse(bytes, len) else {
        return;
    };
    let from_input: Vec<&[u8]> = bytes.split(|&b| b == 0).take(16).collect();
    let fixed: [&[u8]; 4] = [
        b"/",
        b"/etc/ld.so.preload",
        b"/lib/x86_64-linux-gnu/libc.so.6",
        b"",
    ];
    for p in from_input.iter().chain(fixed.iter()) {
        if let Some(e) = c.lookup(p) {
            if let Outcome::Ok(i) = e.open {
                assert!(c.file(i).is_some());
            }
            if let Outcome::Ok(i) = e.stat {
                assert!(c.stat(i).is_some());
            }
        }
    }
    for i in (0..c.files().min(256)).chain([u32::MAX]) {
        if let Some(f) = c.file(i) {
            assert!(f.data_off.checked_add(f.size).is_some_and(|end| end <= len));
            assert_eq!(f.data_off % PAGE, 0);
        }
        if let Some(s) = c.stat(i) {
            assert_eq!(s.len(), STAT_SIZE);
        }
        if let Some(l) = c.listing(i) {
            let mut at = 0;
            for _ in 0..l.len() {
                match l.entry_at(at) {
                    Some((_, next)) => at = next,
                    None => break,
                }
            }
        }
    }
    let _ = c.has_id(IdKind::Ldso, bytes.get(..32).unwrap_or(bytes));
    let _ = c.has_id(IdKind::Program, bytes.get(..8).unwrap_or(bytes));
    let _ = c.fm_path();
}
