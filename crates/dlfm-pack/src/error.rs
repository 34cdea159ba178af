//! Why packing or checking a cache failed: each variant's message is the
//! line `dlfm.pre` prints (with the underlying I/O error after a colon).

use std::io;
use std::path::PathBuf;

/// A refusal of `pack` or `check`.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// The journal could not be read.
    #[error("cannot read the journal {}: run `dlfm.pre write-cache` and the pilot (DLFM_OP=write-cache) first", .path.display())]
    ReadJournal {
        /// The journal.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The journal holds no recording.
    #[error("the journal {} holds no recording: was the pilot run with DLFM_OP=write-cache, linked with libdlfm_wrap.a and started through the ld.so that dlpatch wrote?", .0.display())]
    EmptyJournal(PathBuf),
    /// ld.so opened no file in the pilot: its opens were not intercepted.
    #[error("the pilot's ld.so opened no file through the wrapper ({processes} process(es) recorded, not even libc): its library opens were not intercepted (a loader whose open call dlpatch does not patch?); nothing packed. `dlpatch --embed --dry-run --ldso LDSO` lists the calls it patches")]
    NoFileOpened {
        /// Recording processes in the journal.
        processes: usize,
    },
    /// Recorded files changed since the pilot: the first, and how many more.
    #[error("{first}{}: rerun the pilot to record {} again", more_files(*.more), if *.more == 0 { "it" } else { "them" })]
    Changed {
        /// The first change, phrased by `pack::disk_change`.
        first: String,
        /// How many more files changed.
        more: usize,
    },
    /// Writing the cache failed.
    #[error("cannot write the cache {}", .path.display())]
    Write {
        /// The cache.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The cache could not be opened.
    #[error("cannot open the cache {}", .path.display())]
    Open {
        /// The cache.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The cache is shorter than a header.
    #[error("{} is too short to be a dlfm cache", .0.display())]
    TooShort(PathBuf),
    /// The cache's metadata is refused by the reader.
    #[error("{} is not a usable cache: {reason}", .path.display())]
    Unusable {
        /// The cache.
        path: PathBuf,
        /// The reader's reason.
        reason: String,
    },
    /// Reading the cache failed half way.
    #[error("cannot read the cache {}", .path.display())]
    Read {
        /// The cache.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// " (and N more changed files)" when there are more.
fn more_files(more: usize) -> String {
    match more {
        0 => String::new(),
        n => format!(" (and {n} more changed files)"),
    }
}
