//! Read-cache's record of what the cache missed: lookups a wide run makes
//! that the pilot never saw (a library chosen by the number of ranks, a
//! network transport a one-node pilot never loads). One process per node
//! records, local rank 0 (`dlfm_wrap_logic::env::records_misses`), into the
//! node's miss journal `<cache>.misses/<nodename>.journal`, in the pilot's
//! journal format, so that `dlfm.pre report` can list the misses and the
//! next `dlfm.pre read-cache` folds them into the cache.
//!
//! The journal is opened on the first miss (a run the cache serves fully
//! makes no call for it), a process notes at most `MAX_NOTED` misses, only inside a directory `dlfm.pre read-cache`
//! made (never creating the directory), non-blocking and never through a
//! symbolic link; if that fails the process stops trying. Nothing here
//! changes what ld.so gets: the call was made before it is recorded.

use crate::initial_stack::InitialStack;
use crate::state::State;
use crate::sys;
use dlfm_wrap_logic::env;
use dlfm_wrap_logic::fixed_path::FixedPath;
use dlfm_wrap_logic::trace_name::miss_journal_path;

/// Misses one process notes at most (about 1 MiB of records).
const MAX_NOTED: u32 = 10_000;

/// Whether and where this process records misses.
pub struct Misses {
    /// This process records (decided at start-up).
    armed: bool,
    /// Misses noted so far.
    noted: u32,
    /// The journal is open (set on the first miss).
    open: bool,
    /// `<cache>.misses/<nodename>.journal`.
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
            && sys::with_nodename(|node| miss_journal_path(&mut self.path, cache.as_bytes(), node))
                == Some(true);
    }
}

/// Records call `nr` with arguments `a`, which the cache missed and the
/// kernel answered with `result`, if this process records misses.
pub fn missed(st: &mut State, nr: u64, a: &[u64; 6], result: i64) {
    if !st.misses.armed || st.misses.noted >= MAX_NOTED {
        return;
    }
    st.misses.noted += 1;
    if !st.misses.open {
        let Some(stack) = st.stack else {
            st.misses.armed = false;
            return;
        };
        if !st.record.start_misses(&st.misses.path, &st.ids, &stack) {
            st.misses.armed = false;
            return;
        }
        st.misses.open = true;
    }
    st.record.after(nr, a, result);
}
