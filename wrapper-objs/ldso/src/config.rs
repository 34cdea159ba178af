//! What the user asked for, read from the initial stack's environment
//! through the runtime contract (`dlfm_runtime::env`): `DLFM_OP` and the
//! rank, `DLFM_CACHE`, `DLCACHE_DBG`.

use dlfm_cache::names::JOURNAL_SUFFIX;
use dlfm_runtime::env::{self, Mode};
use dlfm_runtime::fixed_path::FixedPath;

use crate::initial_stack::InitialStack;
use crate::sys;

/// The mode `DLFM_OP` asks for in this process (see `env::mode`).
pub fn mode(stack: &InitialStack) -> Mode {
    env::mode_of(|name| stack.getenv(name))
}

/// Whether `DLCACHE_DBG` asks for trace files.
pub fn trace_requested(stack: &InitialStack) -> bool {
    env::trace_of(|name| stack.getenv(name))
}

/// Fills `cache` with `DLFM_CACHE` (default `dlcache.dat`) and `journal`
/// with the same path plus `.journal`. False if either is too long.
pub fn cache_paths(stack: &InitialStack, cache: &mut FixedPath, journal: &mut FixedPath) -> bool {
    let name = env::cache_of(|name| stack.getenv(name));
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
    let Some((slot, value)) = stack.env_slot(env::CACHE.as_bytes()) else {
        return;
    };
    if value.is_empty() || value.first() == Some(&b'/') {
        return;
    }
    if !(entry.set(env::CACHE.as_bytes())
        && entry.push(b"=")
        && entry.push_absolute(value, sys::getcwd))
    {
        return;
    }
    // SAFETY: `slot` is the environment's pointer to this variable on the
    // initial stack (writable, like all of the stack); `entry` lives in the
    // wrapper's static state for the life of the process.
    unsafe { slot.write(entry.as_ptr()) };
}
