//! The interposer's own descriptors (the journal, a trace file), kept
//! honest against a program that closes or replaces descriptors it did not
//! open (`os.closerange(3, ...)`, `close_range`, a `dup2` onto them): each
//! write first checks with `fstat` that the number still is that file
//! (device and inode). Once it is not, the descriptor is dropped for good,
//! so a number that now belongs to the program is never written.
//!
//! Thread- and fork-safe by construction: the identity is set once, by the
//! constructor (single-threaded, before the release store that publishes
//! the mode) or by the one thread that opens read-cache's miss journal
//! (before the release store that publishes it, `state`), and afterwards
//! only ever cleared, with atomics; a forked
//! child holds the same open file, so the check stays true there. What is
//! left is the instant between the check and the write, in which another
//! thread would have to close the number and open another file on it.

use core::sync::atomic::{AtomicI32, AtomicU64, Ordering};

use crate::sys;

/// A descriptor of ours and the identity of its file.
pub struct OwnFd {
    fd: AtomicI32,
    dev: AtomicU64,
    ino: AtomicU64,
}

impl OwnFd {
    /// No descriptor.
    pub const fn none() -> OwnFd {
        OwnFd {
            fd: AtomicI32::new(-1),
            dev: AtomicU64::new(0),
            ino: AtomicU64::new(0),
        }
    }

    /// Takes `fd` (just opened, before it is published); false, and `fd`
    /// closed, if it cannot be stat'ed.
    pub fn adopt(&self, fd: sys::OwnedFd) -> bool {
        let mut st = sys::zeroed_stat();
        if sys::fstat(fd.raw(), &mut st).is_err() {
            return false;
        }
        self.dev.store(st.st_dev, Ordering::Relaxed);
        self.ino.store(st.st_ino, Ordering::Relaxed);
        self.fd.store(fd.into_raw(), Ordering::Release);
        true
    }

    /// Whether there is a descriptor (not checked).
    pub fn is_set(&self) -> bool {
        self.fd.load(Ordering::Acquire) >= 0
    }

    /// Writes `bytes` with one `write` if the descriptor still is ours.
    pub fn write(&self, bytes: &[u8]) {
        let fd = self.fd.load(Ordering::Acquire);
        if fd < 0 {
            return;
        }
        let mut st = sys::zeroed_stat();
        let ours = sys::fstat(fd, &mut st).is_ok()
            && st.st_dev == self.dev.load(Ordering::Relaxed)
            && st.st_ino == self.ino.load(Ordering::Relaxed);
        if ours {
            // A journal or trace that cannot be written loses a line; the
            // program goes on.
            let _lost = sys::write(fd, bytes);
        } else {
            self.fd.store(-1, Ordering::Release);
        }
    }
}
