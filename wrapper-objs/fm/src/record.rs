//! Recording the program's lookups: after the real call, one journal
//! record (origin: the program), appended with one `write` on the
//! `O_APPEND` journal so that threads and processes never interleave inside
//! a record.

use dlfm_cache::journal::{encode, Origin, Record, MAX_RECORD};
use dlfm_cache::layout::STAT_SIZE;

use crate::sys;

/// Appends `rec` to the journal `fd`.
pub fn append(fd: i32, rec: &Record<'_>) {
    let mut buf = [0u8; MAX_RECORD];
    if let Some(n) = encode(rec, Origin::Program, &mut buf) {
        sys::write(fd, &buf[..n]);
    }
}

/// The bytes of a `struct stat`.
pub fn stat_bytes(st: &libc::stat) -> &[u8; STAT_SIZE] {
    // SAFETY: `libc::stat` is STAT_SIZE bytes of plain integers (asserted
    // in `replay`), all initialised.
    unsafe { &*(st as *const libc::stat as *const [u8; STAT_SIZE]) }
}
