//! The wrapper's whole state: one zero-initialised static in `.bss`, filled in
//! at run time, so it needs no relocation.
//!
//! ld.so makes its file calls with `dl_load_lock` held (or, at start-up,
//! before any thread exists), so calls into the wrapper never overlap: that is
//! what makes the single `&mut` handed out by [`get`] sound.

use core::cell::UnsafeCell;

use crate::ident::Ids;
use crate::initial_stack::InitialStack;
use crate::misses::Misses;
use crate::off_reason::OffReason;
use crate::preload::Preload;
use crate::record::Recorder;
use crate::replay::Replayer;
use crate::stager::Stager;
use crate::trace::Trace;
use dlfm_runtime::env::Mode;
use dlfm_runtime::fixed_path::FixedPath;
use dlfm_runtime::line::Line;

/// Counts of calls by how they were handled, for the summary line.
#[derive(Clone, Copy)]
pub struct Counts {
    /// Answered from the cache (read-cache) or recorded (write-cache).
    pub served: u64,
    /// Lookups the cache did not hold: passed to the kernel.
    pub missed: u64,
    /// Calls that are not lookups of recorded objects: passed to the kernel.
    pub passed: u64,
}

/// Everything the wrapper keeps between calls.
pub struct State {
    /// Set on the first call, once the environment has been read.
    pub ready: bool,
    /// What this process does with ld.so's calls.
    pub mode: Mode,
    /// The mode `DLFM_OP` asked for, before any fallback.
    pub asked: Mode,
    /// Why `mode` fell back to `Off`, if it did.
    pub off_reason: OffReason,
    /// The initial stack, once read.
    pub stack: Option<InitialStack>,
    /// The cache file's path.
    pub cache_path: FixedPath,
    /// The journal's path (`<cache>.journal`).
    pub journal_path: FixedPath,
    /// `DLFM_CACHE=<absolute path>`, when the environment's entry was
    /// relative and now points here (see `config::absolute_cache_for_children`).
    pub env_entry: FixedPath,
    /// The identities of this program and of ld.so.
    pub ids: Ids,
    /// Replay state (read-cache).
    pub replay: Replayer,
    /// Node-local staging of the cache (read-cache).
    pub stage: Stager,
    /// Recording state (write-cache; in read-cache, the miss journal's).
    pub record: Recorder,
    /// Whether this read-cache process records its node's misses.
    pub misses: Misses,
    /// The trace file, when DLCACHE_DBG found one.
    pub trace: Trace,
    /// FMCaching's injection of its interposer.
    pub preload: Preload,
    /// Call counts for the summary line.
    pub counts: Counts,
    /// Scratch buffer for trace lines.
    pub line: Line,
    /// A relative lookup's path joined to the working directory (see
    /// `lookup`).
    pub relative: FixedPath,
}

struct Global(UnsafeCell<State>);

// SAFETY: see the module doc: calls into the wrapper are serialised by ld.so.
unsafe impl Sync for Global {}

static GLOBAL: Global = Global(UnsafeCell::new(State {
    ready: false,
    mode: Mode::Off,
    asked: Mode::Off,
    off_reason: OffReason::None,
    stack: None,
    cache_path: FixedPath::EMPTY,
    journal_path: FixedPath::EMPTY,
    env_entry: FixedPath::EMPTY,
    ids: Ids::EMPTY,
    replay: Replayer::EMPTY,
    stage: Stager::EMPTY,
    record: Recorder::EMPTY,
    misses: Misses::EMPTY,
    trace: Trace::EMPTY,
    preload: Preload::EMPTY,
    counts: Counts {
        served: 0,
        missed: 0,
        passed: 0,
    },
    line: Line::EMPTY,
    relative: FixedPath::EMPTY,
}));

/// The wrapper's state.
///
/// # Safety
/// Only one call into the wrapper may run at a time (see the module doc), and
/// the reference must not outlive that call.
pub unsafe fn get() -> &'static mut State {
    // SAFETY: exclusive by the caller's guarantee.
    unsafe { &mut *GLOBAL.0.get() }
}
