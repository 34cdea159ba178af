//! The simulated metadata server that one or more mounts (nodes) share: a
//! bounded number of service slots that every mount's requests queue for,
//! and the counts of all their requests. Each mount is one node's client
//! (its own kernel cache); the queue is the one server's.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::counters::{Counters, Counts};

/// A server: cheap to clone (every clone is the same server).
#[derive(Clone)]
pub struct Server {
    slots: Arc<Slots>,
    counters: Arc<Counters>,
}

/// Free service slots, and the waiters for one.
struct Slots {
    free: Mutex<usize>,
    freed: Condvar,
}

impl Server {
    /// A server with `threads` service slots (at least one).
    pub fn new(threads: usize) -> Server {
        Server {
            slots: Arc::new(Slots {
                free: Mutex::new(threads.max(1)),
                freed: Condvar::new(),
            }),
            counters: Arc::new(Counters::default()),
        }
    }

    /// One request of `kind` (of `counters::KINDS`): counted, then served
    /// in `time` of a service slot.
    pub(crate) fn request(&self, kind: &str, time: Duration) {
        self.counters.hit(kind);
        self.serve(time);
    }

    /// Takes `time` of a service slot: waits for a free one (requests
    /// queue), holds it for `time`, gives it back.
    fn serve(&self, time: Duration) {
        if time.is_zero() {
            return;
        }
        let mut free = lock(&self.slots.free);
        while *free == 0 {
            free = self
                .slots
                .freed
                .wait(free)
                .unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        drop(free);
        std::thread::sleep(time);
        *lock(&self.slots.free) += 1;
        self.slots.freed.notify_one();
    }

    /// The requests every mount of this server counted so far.
    pub fn counts(&self) -> Counts {
        self.counters.snapshot()
    }

    /// Sets every count back to zero.
    pub fn reset(&self) {
        self.counters.reset();
    }
}

/// The slot count, even if a service thread panicked holding it.
fn lock(m: &Mutex<usize>) -> MutexGuard<'_, usize> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
