//! Read-cache's record of what the cache missed: lookups a wide run makes
//! that the pilot never saw (a library chosen by the number of ranks, a
//! network transport a one-node pilot never loads). One process per node
//! records, local rank 0 (`dlfm_runtime::env::records_misses`), into its
//! miss journal `<cache>.misses/<nodename>.<pid>.journal`, in the pilot's
//! journal format, so that `dlfm.pre report` can list the misses and the
//! next `dlfm.pre read-cache` folds them into the cache. Every lookup ld.so
//! makes is one the next pack serves (`dlfm_runtime::scope`), so every
//! one it missed is noted.
//!
//! The journal is opened on the first miss (a run the cache serves fully
//! makes no call for it), only inside a directory `dlfm.pre read-cache` made
//! (never creating the directory), non-blocking and never through a
//! symbolic link; if that fails the process stops trying. A process notes
//! at most `env::MAX_NOTED_MISSES` misses. Nothing here
//! changes what ld.so gets: the call was made before it is recorded.

use crate::ident::Ids;
use crate::initial_stack::InitialStack;
use crate::record::Recorder;
use crate::sys;
use dlfm_runtime::env;
use dlfm_runtime::fixed_path::FixedPath;
use dlfm_runtime::trace_name::miss_journal_path;

/// Whether and where this process records misses.
pub struct Misses {
    /// This process records (decided at start-up).
    armed: bool,
    /// Misses noted so far.
    noted: u32,
    /// The journal is open (set on the first miss).
    open: bool,
    /// `<cache>.misses/<nodename>.<pid>.journal`.
    path: FixedPath,
}

impl Misses {
    /// Not recording (all zero, so that the state lives in `.bss`).
    pub const EMPTY: Misses = Misses {
        armed: false,
        noted: 0,
        open: false,
        path: FixedPath::EMPTY,
    };

    /// Decides at start-up whether this read-cache process records the
    /// misses of its node for the cache at `cache`.
    pub fn arm(&mut self, stack: &InitialStack, cache: &FixedPath) {
        let local = env::local_rank(|name| stack.getenv(name));
        self.armed = env::records_misses(local)
            && sys::with_nodename(|node| {
                miss_journal_path(&mut self.path, cache.as_bytes(), node, sys::getpid() as u32)
            }) == Some(true);
    }

    /// Records call `nr` with arguments `a`, which the cache missed and the
    /// kernel answered with `result`, into `record` (opening the node's miss
    /// journal first), if this process notes misses.
    pub fn note(
        &mut self,
        record: &mut Recorder,
        ids: &Ids,
        stack: Option<InitialStack>,
        call: (u64, &[u64; 6], i64),
        rel: &mut FixedPath,
    ) {
        if !self.armed || self.noted >= env::MAX_NOTED_MISSES {
            return;
        }
        self.noted += 1;
        if !self.open {
            match stack {
                Some(stack) if record.start_misses(&self.path, ids, &stack) => self.open = true,
                _ => {
                    self.armed = false;
                    return;
                }
            }
        }
        let (nr, a, result) = call;
        record.after(nr, a, result, rel);
    }
}
