//! A progress line for long work (packing, checking a cache of several
//! GiB): nothing for the first two seconds, then at most one line every two
//! seconds on stderr, `<what> 1.2 GiB of 3.2 GiB (37%)`, so that a
//! terminal and a job's log both show that work goes on.

use std::time::{Duration, Instant};

use crate::human;

/// How long work runs before the first line, and between lines.
const EVERY: Duration = Duration::from_secs(2);

/// One piece of long work's progress line.
pub struct ProgressLine {
    what: &'static str,
    last: Instant,
}

impl ProgressLine {
    /// Starts timing `what` (the line's first words).
    pub fn new(what: &'static str) -> ProgressLine {
        ProgressLine {
            what,
            last: Instant::now(),
        }
    }

    /// Says that `done` of `total` bytes are done, if it is time to.
    pub fn update(&mut self, done: u64, total: u64) {
        if self.last.elapsed() < EVERY || done >= total {
            return;
        }
        self.last = Instant::now();
        let share = done.saturating_mul(100).checked_div(total).unwrap_or(100);
        eprintln!(
            "{} {} of {} ({share}%)",
            self.what,
            human(done),
            human(total)
        );
    }
}
