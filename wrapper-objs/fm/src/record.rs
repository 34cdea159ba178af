//! Recording the program's lookups: after the real call, one journal
//! record (origin: the program), appended with one `write` on the
//! `O_APPEND` journal so that threads and processes never interleave inside
//! a record.

use dlfm_cache::journal::{encode, Origin, Record, MAX_RECORD};
use dlfm_cache::layout::STAT_SIZE;

use crate::own_fd::OwnFd;
use crate::trace::{self, Handling};

/// Appends `rec` to the journal and traces it.
pub fn append(journal: &OwnFd, rec: &Record<'_>) {
    let mut buf = [0u8; MAX_RECORD];
    if let Some(n) = encode(rec, Origin::Program, &mut buf) {
        journal.write(&buf[..n]);
    }
    let (call, result, path): (&[u8], i32, &[u8]) = match *rec {
        Record::Open { result, path, .. } => (b"open", result, path),
        Record::Stat {
            flags: 0,
            result,
            path,
            ..
        } => (b"stat", result, path),
        Record::Stat { result, path, .. } => (b"lstat", result, path),
        Record::Access { result, path, .. } => (b"access", result, path),
        Record::Process { .. } | Record::Setup { .. } => return,
    };
    trace::lookup(call, Handling::Recorded, path, Some(i64::from(result)));
}

/// The bytes of a `struct stat`.
pub fn stat_bytes(st: &libc::stat) -> &[u8; STAT_SIZE] {
    // SAFETY: `libc::stat` is STAT_SIZE bytes of plain integers (asserted
    // in `replay`), all initialised.
    unsafe { &*(st as *const libc::stat as *const [u8; STAT_SIZE]) }
}
