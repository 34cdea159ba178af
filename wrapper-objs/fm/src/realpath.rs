//! `realpath`, `__realpath_chk` (what `_FORTIFY_SOURCE` programs such as
//! Debian's python3 call) and `canonicalize_file_name`: glibc resolves a
//! path with `readlink` calls inside libc, which no interposer reaches, so
//! they are answered here as a whole.
//!
//! Replay answers an absolute path when every component the walk reaches
//! has a recorded `lstat` that is not a symbolic link (a link's target is
//! not recorded): then the canonical path is the path with `.`, `..` and
//! repeated slashes resolved by name, each `..` applied after its
//! directory was found to be one. Anything else (a link on the way, a
//! component not recorded or missing, a relative path) is libc's. The pilot
//! records the `lstat` of each component it walks (stopping at a link), so
//! that the pack can serve them; the program's call is made first and its
//! result and errno are what it gets (the interposer's own system calls
//! leave errno alone).

use core::ffi::c_char;

use dlfm_cache::layout::Outcome;
use dlfm_cache::read::Cache;
use dlfm_runtime::fixed_path::{FixedPath, PATH_MAX};
use dlfm_runtime::name_walk::{walk, Step};

use crate::calls::{absolute, own_status, record_stat};
use crate::real::Next;
use crate::replay::{traced, Answer, Follow};
use crate::state::{self, Sink};

type Realpath = unsafe extern "C" fn(*const c_char, *mut c_char) -> *mut c_char;
type RealpathChk = unsafe extern "C" fn(*const c_char, *mut c_char, usize) -> *mut c_char;
type Canonicalize = unsafe extern "C" fn(*const c_char) -> *mut c_char;

// SAFETY: `Realpath` is `realpath`'s C type.
static REALPATH: Next<Realpath> = unsafe { Next::new(c"realpath") };
// SAFETY: `RealpathChk` is `__realpath_chk`'s C type.
static REALPATH_CHK: Next<RealpathChk> = unsafe { Next::new(c"__realpath_chk") };
// SAFETY: `Canonicalize` is `canonicalize_file_name`'s C type.
static CANONICALIZE: Next<Canonicalize> = unsafe { Next::new(c"canonicalize_file_name") };

/// What the cache's recorded `lstat` of `p` says it is.
fn recorded(cache: &Cache<'_>, p: &[u8]) -> Step {
    let Some(Outcome::Ok(i)) = cache.lookup(p).map(|e| e.lstat) else {
        return Step::Stop;
    };
    let Some(view) = cache
        .stat(i)
        .and_then(|st| st.try_into().ok())
        .map(dlfm_cache::stat::StatView)
    else {
        return Step::Stop;
    };
    step_of(view.mode())
}

/// What a walk makes of a component of mode `mode`: a link stops it.
fn step_of(mode: u32) -> Step {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => Step::Directory,
        libc::S_IFLNK => Step::Stop,
        _ => Step::Other,
    }
}

/// The canonical path of `path` from the cache, into `out`.
fn resolve(cache: &Cache<'_>, path: &[u8], out: &mut FixedPath) -> bool {
    let found = walk(path, out, |p| recorded(cache, p));
    let answer = found.then_some(Answer::Ok(0));
    traced(b"realpath", path, answer).is_some()
}

/// In the pilot: records the `lstat` of each component of `path` the walk
/// reaches (up to and including a link, which stops it).
fn record_walk(path: &[u8], journal: Sink) {
    let mut out = FixedPath::EMPTY;
    walk(path, &mut out, |p| {
        let mut c = FixedPath::EMPTY;
        if !c.set(p) {
            return Step::Stop;
        }
        let (result, st) = own_status(c.as_c_str(), Follow::No);
        record_stat(journal, p, Follow::No, result, &st);
        if result != 0 {
            return Step::Stop;
        }
        step_of(st.st_mode)
    });
}

/// Answers or records a `realpath(path, resolved)`; `call` makes the real
/// call. `resolved` null: the answer is `malloc`ed, as libc's is.
fn realpath_like(
    path: *const c_char,
    resolved: *mut c_char,
    call: impl FnOnce() -> *mut c_char,
) -> *mut c_char {
    let key = absolute(path);
    if let (Some(p), Some((cache, _))) = (key, state::cache()) {
        let mut out = FixedPath::EMPTY;
        if resolve(&cache, p, &mut out) {
            if let Some(given) = give(&out, resolved) {
                return given;
            }
        }
    }
    let r = call();
    if let Some(p) = key.filter(|&p| state::sink_for(p) == Some(Sink::Pilot)) {
        record_walk(p, Sink::Pilot);
    }
    r
}

/// Copies `out` (NUL included) into `resolved`, or into memory from
/// `malloc` when it is null; `None` if that fails (libc then answers).
fn give(out: &FixedPath, resolved: *mut c_char) -> Option<*mut c_char> {
    let bytes = out.as_c_str().to_bytes_with_nul();
    let dst = if resolved.is_null() {
        // SAFETY: plain allocation; the caller frees it, as libc's.
        let m = unsafe { libc::malloc(bytes.len()) }.cast::<c_char>();
        if m.is_null() {
            return None;
        }
        m
    } else {
        resolved
    };
    // SAFETY: `resolved` holds PATH_MAX bytes (realpath's contract; the
    // fortified entry checks it first) and `bytes` is at most PATH_MAX
    // long; a `malloc`ed `dst` holds exactly `bytes`.
    unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr().cast::<c_char>(), dst, bytes.len()) };
    Some(dst)
}

/// `realpath(3)`.
///
/// # Safety
/// As libc's: `path` NUL-terminated, `resolved` null or PATH_MAX bytes.
#[no_mangle]
pub unsafe extern "C" fn realpath(path: *const c_char, resolved: *mut c_char) -> *mut c_char {
    realpath_like(path, resolved, || {
        REALPATH.call(|real| {
            // SAFETY: the next definition; the program's own call, unchanged.
            unsafe { real(path, resolved) }
        })
    })
}

/// `__realpath_chk`: `realpath` with the size of `resolved`; one smaller
/// than PATH_MAX is libc's to refuse.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn __realpath_chk(
    path: *const c_char,
    resolved: *mut c_char,
    resolved_len: usize,
) -> *mut c_char {
    let call = || {
        REALPATH_CHK.call(|real| {
            // SAFETY: the next definition; the program's own call, unchanged.
            unsafe { real(path, resolved, resolved_len) }
        })
    };
    if resolved_len < PATH_MAX {
        return call();
    }
    realpath_like(path, resolved, call)
}

/// `canonicalize_file_name(3)`: `realpath(path, NULL)`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn canonicalize_file_name(path: *const c_char) -> *mut c_char {
    realpath_like(path, core::ptr::null_mut(), || {
        CANONICALIZE.call(|real| {
            // SAFETY: the next definition; the program's own call, unchanged.
            unsafe { real(path) }
        })
    })
}
