//! What the user asked for, read from the environment: `DLFM_OP`,
//! `DLFM_CACHE`, `DLCACHE_DBG`, and the MPI rank variables that decide which
//! process records in a pilot run.

use dlfm_cache::names::{DEFAULT_CACHE, JOURNAL_SUFFIX};
use dlfm_wrap_logic::env::{self, Mode};
use dlfm_wrap_logic::fixed_path::FixedPath;

use crate::initial_stack::InitialStack;
use crate::sys;

/// The mode `DLFM_OP` asks for in this process (see `env::mode`).
pub fn mode(stack: &InitialStack) -> Mode {
    env::mode(
        stack.getenv(b"DLFM_OP"),
        env::rank(|name| stack.getenv(name)),
    )
}

/// Whether `DLCACHE_DBG` asks for trace files.
pub fn trace_requested(stack: &InitialStack) -> bool {
    env::trace_requested(stack.getenv(b"DLCACHE_DBG"))
}

/// Fills `cache` with `DLFM_CACHE` (default `dlcache.dat`) and `journal`
/// with the same path plus `.journal`. False if either is too long.
pub fn cache_paths(stack: &InitialStack, cache: &mut FixedPath, journal: &mut FixedPath) -> bool {
    let name = match stack.getenv(b"DLFM_CACHE") {
        Some(v) if !v.is_empty() => v,
        _ => DEFAULT_CACHE.as_bytes(),
    };
    cache.set(name) && journal.set(name) && journal.push(JOURNAL_SUFFIX.as_bytes())
}

/// Makes a relative `DLFM_CACHE` absolute for the processes this one starts:
/// the environment's entry is pointed at `entry`, which holds
/// `DLFM_CACHE=<working directory>/<value>`. A child that changes directory
/// before it execs then still finds the pilot's journal (or the cache)
/// instead of missing it. The program sees the same file under an absolute
/// name. Nothing changes if the value is absolute, the variable is unset, or
/// the new entry does not fit.
pub fn absolute_cache_for_children(stack: &InitialStack, entry: &mut FixedPath) {
    let Some((slot, value)) = stack.env_slot(b"DLFM_CACHE") else {
        return;
    };
    if value.is_empty() || value.first() == Some(&b'/') {
        return;
    }
    if !(entry.set(b"DLFM_CACHE=") && entry.push_absolute(value, sys::getcwd)) {
        return;
    }
    // SAFETY: `slot` is the environment's pointer to this variable on the
    // initial stack (writable, like all of the stack); `entry` lives in the
    // wrapper's static state for the life of the process.
    unsafe { slot.write(entry.as_ptr()) };
}
