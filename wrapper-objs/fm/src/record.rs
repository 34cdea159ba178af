//! Recording the program's lookups: after the real call, one journal
//! record (origin: the program), appended with one `write` on the
//! `O_APPEND` journal so that threads and processes never interleave inside
//! a record. In replay the same records go to the miss journal, for the
//! lookups `state::sink_for` finds worth noting.

use dlfm_cache::journal::{encode, Origin, Record, MAX_RECORD};

use crate::state::{self, Sink};
use crate::trace::{self, Handling};

/// Appends `rec` to `sink`'s journal and traces it. A miss whose result
/// shows a directory is not noted: the next pack serves the directories
/// above served paths by itself (`dlfm_runtime::scope`).
pub fn append(sink: Sink, rec: &Record<'_>) {
    if sink == Sink::Misses && rec.found_directory() {
        return;
    }
    let Some(journal) = state::journal_of(sink) else {
        return;
    };
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
