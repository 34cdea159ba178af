//! Counts of the requests that reached the simulated server, by type.

use std::sync::atomic::{AtomicU64, Ordering};

/// Request types counted.
pub const KINDS: [&str; 9] = [
    "lookup", "getattr", "open", "read", "readdir", "readlink", "release", "access", "other",
];

/// Live counters, shared by the service threads.
#[derive(Default)]
pub struct Counters {
    by_kind: [AtomicU64; KINDS.len()],
}

/// A snapshot of the counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Count per entry of `KINDS`.
    pub by_kind: [u64; KINDS.len()],
}

impl Counters {
    /// Counts one request of `kind` (one of `KINDS`).
    pub fn hit(&self, kind: &str) {
        let i = KINDS
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(KINDS.len() - 1);
        self.by_kind[i].fetch_add(1, Ordering::Relaxed);
    }

    /// The counts now.
    pub fn snapshot(&self) -> Counts {
        Counts {
            by_kind: std::array::from_fn(|i| self.by_kind[i].load(Ordering::Relaxed)),
        }
    }

    /// Zeroes every counter.
    pub fn reset(&self) {
        for c in &self.by_kind {
            c.store(0, Ordering::Relaxed);
        }
    }
}

impl Counts {
    /// The count of `kind`.
    pub fn get(&self, kind: &str) -> u64 {
        KINDS
            .iter()
            .position(|k| *k == kind)
            .map_or(0, |i| self.by_kind[i])
    }

    /// Every request.
    pub fn total(&self) -> u64 {
        self.by_kind.iter().sum()
    }

    /// Metadata requests (all but reads).
    pub fn metadata(&self) -> u64 {
        self.total() - self.get("read")
    }

    /// One `kind count` line per type, then the total.
    pub fn report(&self) -> String {
        let mut s: String = KINDS
            .iter()
            .zip(self.by_kind)
            .map(|(k, n)| format!("{k} {n}\n"))
            .collect();
        s.push_str(&format!("total {}\n", self.total()));
        s
    }
}
