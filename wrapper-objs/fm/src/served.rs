//! The descriptors replay handed out: each is a memfd holding a cached
//! file's bytes, and `fstat` on it must give the file's recorded stat.
//!
//! A table indexed by descriptor number, of atomics only (no lock: any
//! thread, or a signal handler, may call `fstat`). An entry holds the
//! memfd's inode (0: free) and the recorded stat's index. It is only a
//! hint: before answering, `fstat` checks that the descriptor is still that
//! memfd (its inode and device), so an entry left behind by a descriptor
//! closed behind our back (`close_range`, `dup2` over it) is never
//! believed. After `fork` the child has the same descriptors and the same
//! table.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Descriptors above this are not served (the open goes to libc).
pub const MAX_FD: usize = 4096;

struct Entry {
    ino: AtomicU64,
    dev: AtomicU64,
    stat: AtomicU32,
}

static TABLE: [Entry; MAX_FD] = [const {
    Entry {
        ino: AtomicU64::new(0),
        dev: AtomicU64::new(0),
        stat: AtomicU32::new(0),
    }
}; MAX_FD];

/// Remembers that `fd` (the memfd with `ino` on `dev`) serves stat `stat`.
pub fn insert(fd: i32, ino: u64, dev: u64, stat: u32) {
    if let Some(e) = usize::try_from(fd).ok().and_then(|i| TABLE.get(i)) {
        e.ino.store(0, Ordering::Release);
        e.stat.store(stat, Ordering::Relaxed);
        e.dev.store(dev, Ordering::Relaxed);
        e.ino.store(ino, Ordering::Release);
    }
}

/// Forgets `fd`.
pub fn remove(fd: i32) {
    if let Some(e) = usize::try_from(fd).ok().and_then(|i| TABLE.get(i)) {
        e.ino.store(0, Ordering::Release);
    }
}

/// The stat index `fd` serves, if the table says so and `real` (the
/// kernel's fstat of `fd`) shows it is still the same memfd.
pub fn stat_of(fd: i32, real: &libc::stat) -> Option<u32> {
    let e = usize::try_from(fd).ok().and_then(|i| TABLE.get(i))?;
    let ino = e.ino.load(Ordering::Acquire);
    let (stat, dev) = (
        e.stat.load(Ordering::Relaxed),
        e.dev.load(Ordering::Relaxed),
    );
    // A concurrent insert may have changed the entry: read the inode again.
    let same = ino != 0 && e.ino.load(Ordering::Acquire) == ino;
    (same && real.st_ino == ino && real.st_dev == dev).then_some(stat)
}

/// Copies `from`'s entry to `to` (after `dup`, `dup2`, `F_DUPFD`).
pub fn copy(from: i32, to: i32) {
    let Some(e) = usize::try_from(from).ok().and_then(|i| TABLE.get(i)) else {
        return;
    };
    let ino = e.ino.load(Ordering::Acquire);
    if ino == 0 {
        remove(to);
        return;
    }
    insert(
        to,
        ino,
        e.dev.load(Ordering::Relaxed),
        e.stat.load(Ordering::Relaxed),
    );
}
