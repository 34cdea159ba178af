//! What this process does, decided once by the constructor before `main`
//! (single-threaded then) and published with a release store; every call
//! reads it with an acquire load. Nothing here changes afterwards, so the
//! reads need no lock.

use core::cell::UnsafeCell;
use core::ffi::CStr;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicU32, AtomicU8, Ordering};

use dlfm_cache::names::JOURNAL_SUFFIX;
use dlfm_cache::node_files::ContentId;
use dlfm_cache::read::Cache;
use dlfm_runtime::env::{self, Mode};
use dlfm_runtime::fixed_path::FixedPath;
use dlfm_runtime::scope::{self, Maker, Rules};
use dlfm_runtime::trace_name::miss_journal_path;

use crate::own_fd::OwnFd;
use crate::{node_copy, shared_index, sys, trace};

/// The process's mode (`Mode as u8`): `Off` until `init` decides (and
/// when FMCaching is off: every call goes to libc).
static MODE: AtomicU8 = AtomicU8::new(Mode::Off as u8);
static JOURNAL: OwnFd = OwnFd::none();

/// The validated cache and the whole file's bytes, written once by `init`
/// before `MODE` is set to REPLAY.
struct Published(UnsafeCell<MaybeUninit<(Cache<'static>, &'static [u8])>>);

// SAFETY: written only by `init`, before MODE is published with a release
// store and while the process is single-threaded; read only after an
// acquire load of MODE saw REPLAY. Never written again.
unsafe impl Sync for Published {}

static CACHE: Published = Published(UnsafeCell::new(MaybeUninit::uninit()));

/// Where the journal of `JOURNAL_STATE` lies, written once by `init` (a
/// replay process that notes its node's misses) before MODE is published.
struct JournalPath(UnsafeCell<FixedPath>);

// SAFETY: written only by `init`, single-threaded, before MODE is published
// with a release store; read only after an acquire load of JOURNAL_STATE
// saw ARMED. Never written again.
unsafe impl Sync for JournalPath {}

static MISS_PATH: JournalPath = JournalPath(UnsafeCell::new(FixedPath::EMPTY));

/// The node copy's root (`<copy>/root`, under which each stored file lies
/// at its canonical path), written once by `init` before MODE is
/// published; empty when replay reads the shared cache.
struct NodeRoot(UnsafeCell<FixedPath>);

// SAFETY: written only by `init`, single-threaded, before MODE is published
// with a release store; read only after an acquire load of MODE saw
// REPLAY. Never written again.
unsafe impl Sync for NodeRoot {}

static NODE_ROOT: NodeRoot = NodeRoot(UnsafeCell::new(FixedPath::EMPTY));

/// The node copy's root when replaying from one.
pub fn node_root() -> Option<&'static FixedPath> {
    if mode() != Mode::Replay {
        return None;
    }
    // SAFETY: MODE is REPLAY only after `init` wrote NODE_ROOT (see NodeRoot).
    let root = unsafe { &*NODE_ROOT.0.get() };
    (!root.is_empty()).then_some(root)
}

/// The replay's miss journal: not noted by this process.
const NOT_ARMED: u8 = 0;
/// To be opened on the first miss.
const ARMED: u8 = 1;
/// Being opened by one thread (the others skip their record meanwhile),
/// or it could not be.
const CLOSED: u8 = 2;
/// Open in `JOURNAL`.
const OPEN: u8 = 3;

/// The miss journal's state; moves only forward (ARMED, then CLOSED, then
/// possibly OPEN), with atomics: thread-safe, and a child forked at any
/// moment inherits a state that is true for it (at worst CLOSED: it notes
/// nothing).
static JOURNAL_STATE: AtomicU8 = AtomicU8::new(NOT_ARMED);

/// The mode `init` published (acquire: what it wrote before is visible).
fn mode() -> Mode {
    Mode::from_u8(MODE.load(Ordering::Acquire))
}

/// Where a lookup made by the program goes after the real call.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    /// The pilot's journal (the recording process records every lookup; the
    /// pack decides what it keeps).
    Pilot,
    /// This process's miss journal (replay: a lookup the cache missed and
    /// the next pack would serve).
    Misses,
}

/// Where a lookup of `path` that the cache could not answer is recorded:
/// every one into the pilot's journal when recording; in replay, for the
/// process that notes its node's misses
/// (`dlfm_runtime::env::records_misses`), only one the next pack would
/// serve (`dlfm_runtime::scope`, with the cache's patterns and listings), so that
/// nothing is noted that would be missed again every run. A directory is
/// never worth noting; `record::append` drops one when the result shows it.
pub fn sink_for(path: &[u8]) -> Option<Sink> {
    match mode() {
        Mode::Record => Some(Sink::Pilot),
        Mode::Replay if JOURNAL_STATE.load(Ordering::Acquire) != NOT_ARMED => {
            let (cache, _) = cache()?;
            let rules = Rules::new(cache.scope_patterns())?;
            scope::worth_noting(Maker::Program, path, false, &rules, Some(&cache))
                .then_some(Sink::Misses)
        }
        _ => None,
    }
}

/// The journal a sink writes to: the pilot's, or this process's miss
/// journal `<cache>.misses/<node>.<pid>.journal`, opened by the first
/// thread that needs it.
pub fn journal_of(sink: Sink) -> Option<&'static OwnFd> {
    match sink {
        Sink::Pilot => (mode() == Mode::Record).then_some(&JOURNAL),
        Sink::Misses => miss_journal(),
    }
}

/// The pilot's journal when recording, never the miss journal (for what
/// only the pilot records: directory listings).
pub fn pilot_sink() -> Option<Sink> {
    (mode() == Mode::Record).then_some(Sink::Pilot)
}

/// Misses noted (or about to be) by this process.
static NOTED: AtomicU32 = AtomicU32::new(0);

/// The miss journal, opened by the first thread that needs it; `None`
/// once `env::MAX_NOTED_MISSES` misses were noted.
fn miss_journal() -> Option<&'static OwnFd> {
    let state = JOURNAL_STATE.load(Ordering::Acquire);
    if state == NOT_ARMED || NOTED.fetch_add(1, Ordering::Relaxed) >= env::MAX_NOTED_MISSES {
        return None;
    }
    match state {
        OPEN => Some(&JOURNAL),
        ARMED => {
            JOURNAL_STATE
                .compare_exchange(ARMED, CLOSED, Ordering::AcqRel, Ordering::Acquire)
                .ok()?;
            // SAFETY: written by `init` before it armed the state (see
            // JournalPath); never written again.
            let path = unsafe { &*MISS_PATH.0.get() };
            // Only in the directory dlfm.pre read-cache made; never through
            // a symbolic link; never blocking.
            let flags = libc::O_WRONLY
                | libc::O_APPEND
                | libc::O_CREAT
                | libc::O_NOFOLLOW
                | libc::O_NONBLOCK
                | libc::O_CLOEXEC;
            let file = sys::open_regular_mode(path.as_c_str(), flags, 0o644).ok()?;
            JOURNAL.adopt(file.fd).then(|| {
                JOURNAL_STATE.store(OPEN, Ordering::Release);
                &JOURNAL
            })
        }
        _ => None,
    }
}

/// The cache and the file's bytes, when replaying.
pub fn cache() -> Option<(Cache<'static>, &'static [u8])> {
    if mode() != Mode::Replay {
        return None;
    }
    // SAFETY: MODE is REPLAY only after `init` wrote CACHE (see Published).
    Some(unsafe { (*CACHE.0.get()).assume_init() })
}

/// The value of environment variable `name`, if set.
fn getenv(name: &CStr) -> Option<&'static [u8]> {
    // SAFETY: `name` is NUL-terminated; the constructor runs before any
    // thread could change the environment.
    let p = unsafe { libc::getenv(name.as_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: getenv returns a NUL-terminated string that lives as long as
    // the environment entry (the process, for what the job set).
    Some(unsafe { CStr::from_ptr(p) }.to_bytes())
}

/// [`getenv`] for a name given as bytes (at most 31).
fn getenv_bytes(name: &[u8]) -> Option<&'static [u8]> {
    let mut buf = [0u8; 32];
    let n = dlfm_bytes::copy(&mut buf[..31], name);
    CStr::from_bytes_until_nul(&buf[..=n]).ok().and_then(getenv)
}

/// Decides the mode from the environment and opens the journal or maps the
/// cache, and the trace file when `DLCACHE_DBG` asks. Anything unexpected
/// leaves FMCaching off; so does a setuid or setgid program (as the ld.so
/// wrapper, it ignores the environment then).
pub fn init() {
    // SAFETY: getauxval only reads the auxiliary vector.
    if unsafe { libc::getauxval(libc::AT_SECURE) } != 0 {
        return;
    }
    let mode = env::mode_of(getenv_bytes);
    let mut cache = FixedPath::EMPTY;
    if !cache.set(env::cache_of(getenv_bytes)) {
        return;
    }
    match mode {
        Mode::Record => {
            if !cache.push(JOURNAL_SUFFIX.as_bytes()) {
                return;
            }
            let flags = libc::O_WRONLY | libc::O_APPEND | libc::O_CLOEXEC | libc::O_NONBLOCK;
            if let Ok(file) = sys::open_regular(cache.as_c_str(), flags) {
                if JOURNAL.adopt(file.fd) {
                    open_trace();
                    MODE.store(Mode::Record as u8, Ordering::Release);
                }
            }
        }
        Mode::Replay => {
            // The node-local copy this job's ld.so wrappers use, else the
            // shared cache.
            let flags = libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK;
            // SAFETY: single-threaded, before MODE is published (see
            // NodeRoot).
            let root = unsafe { &mut *NODE_ROOT.0.get() };
            let copy = node_copy::open_copy(cache.as_bytes(), getenv_bytes, root);
            if copy.is_none() {
                root.truncate(0);
            }
            let Some(file) = copy.or_else(|| sys::open_regular(cache.as_c_str(), flags).ok())
            else {
                return;
            };
            let size = file.size;
            // A node copy's metadata file: the ld.so wrapper's mapping of
            // it, if it has one. Otherwise a mapping of ours, which stays;
            // the descriptor is closed when `file` goes.
            let wrappers = if root.is_empty() {
                None
            } else {
                shared_index::find(&file.fd, size)
            };
            let Some(bytes) = wrappers.or_else(|| sys::map_whole(&file.fd, size).ok()) else {
                return;
            };
            // A node copy's metadata file holds the metadata alone: the
            // cache's length is its header's.
            let file_len = match ContentId::of_header(bytes) {
                Some(id) if !root.is_empty() => id.file_len,
                _ => size as u64,
            };
            let parsed = Cache::parse(bytes, file_len);
            if wrappers.is_some() {
                // The checksum pass touched every page: let go of them, as
                // the wrapper did after its own, so that only the pages
                // lookups use stay resident.
                sys::forget_pages(bytes);
            }
            match parsed {
                Ok(c) if c.fm_path().is_some() => {
                    // SAFETY: single-threaded, before MODE is published.
                    unsafe { (*CACHE.0.get()).write((c, bytes)) };
                    if env::records_misses(env::local_rank(getenv_bytes)) {
                        // SAFETY: single-threaded, before JOURNAL_STATE and
                        // MODE are published (see JournalPath).
                        let path = unsafe { &mut *MISS_PATH.0.get() };
                        // SAFETY: getpid cannot fail and touches no memory.
                        let pid = unsafe { libc::getpid() } as u32;
                        let named = sys::with_nodename(|node| {
                            miss_journal_path(path, cache.as_bytes(), node, pid)
                        });
                        if named == Some(true) {
                            JOURNAL_STATE.store(ARMED, Ordering::Release);
                        }
                    }
                    open_trace();
                    MODE.store(Mode::Replay as u8, Ordering::Release);
                }
                _ if wrappers.is_some() => {}
                _ => sys::unmap(bytes),
            }
        }
        Mode::Off => {}
    }
}

/// Opens the trace file if `DLCACHE_DBG` asks for one.
fn open_trace() {
    if env::trace_of(getenv_bytes) {
        trace::open();
    }
}
