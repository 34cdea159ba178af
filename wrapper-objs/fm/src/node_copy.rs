//! The node-local copy of the cache, when the ld.so wrapper of this job
//! staged or checked one (`wrapper-objs/ldso/src/stager.rs`): the interposer maps
//! it instead of the shared cache, so that no process of the job opens the
//! shared cache twice. It never stages itself: the ld.so wrapper of the same
//! process has already done so (or found it could not) before this
//! library's constructor runs. Runs once, in the constructor.

use dlfm_cache::layout::HEADER_LEN;
use dlfm_cache::node_files::{
    path_key, ContentId, NodeFile, Pointer, PointerKey, TREE_CACHE, TREE_ROOT,
};
use dlfm_runtime::fixed_path::FixedPath;
use dlfm_runtime::staging_policy;

use crate::sys;

/// Opens the node-local copy of the shared cache at `cache`, if the pointer
/// file says this job checked it and the copy is one this user may trust:
/// returns its metadata file (`<copy>/cache`), open, and puts the copy's
/// root (`<copy>/root`, under which each file lies at its canonical path)
/// in `root`. `getenv` reads the environment.
pub fn open_copy(
    cache: &[u8],
    getenv: impl Fn(&[u8]) -> Option<&'static [u8]>,
    root: &mut FixedPath,
) -> Option<sys::Regular> {
    let cfg = staging_policy::config_of(&getenv).ok()?;
    let mut shared = FixedPath::EMPTY;
    if !shared.push_absolute(cache, sys::getcwd) {
        return None;
    }
    // SAFETY: geteuid cannot fail and touches no memory.
    let euid = unsafe { libc::geteuid() };
    let jobs = staging_policy::job_keys(&getenv);
    let content = match jobs.job {
        Some(job) => {
            let key = PointerKey {
                path: path_key(shared.as_bytes()),
                job,
            };
            let pointer = read_pointer(cfg.dir, euid, key)?;
            if !jobs.accept(&pointer) {
                return None;
            }
            pointer.content
        }
        // No job: no pointer is believed. The ld.so wrapper of this process
        // checked the shared cache's header a moment ago; so does this,
        // once, to name the copy of that content.
        None => shared_content(&shared, euid)?,
    };
    let mut path = FixedPath::EMPTY;
    if !staging_policy::node_path(&mut path, cfg.dir, euid, NodeFile::Tree(content)) {
        return None;
    }
    // The copy: a directory (never a link) of this user's that nobody else
    // may write (the ld.so wrapper made it, or checked it, before).
    let dir_flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    let dir = sys::open(path.as_c_str(), dir_flags, 0).ok()?;
    let mut st = sys::zeroed_stat();
    sys::fstat(dir.raw(), &mut st).ok()?;
    if !staging_policy::trusted(st.st_uid, st.st_mode, euid) {
        return None;
    }
    let copy_len = path.len();
    if !(root.set(path.as_bytes()) && root.push(b"/") && root.push(TREE_ROOT.as_bytes())) {
        return None;
    }
    path.truncate(copy_len);
    if !(path.push(b"/") && path.push(TREE_CACHE.as_bytes())) {
        return None;
    }
    let meta = sys::open_regular(path.as_c_str(), TRUSTED_OPEN).ok()?;
    let mut h = [0u8; HEADER_LEN];
    let n = sys::pread(&meta.fd, &mut h, 0).ok()?;
    (staging_policy::trusted(meta.uid, meta.mode, euid)
        && ContentId::of_header(h.get(..n)?) == Some(content))
    .then_some(meta)
}

/// How node-local files are opened: never through a symbolic link, never
/// blocking.
const TRUSTED_OPEN: i32 = libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOFOLLOW;

/// The pointer `key` names, if it is a valid one only its owner may write.
fn read_pointer(dir: &[u8], euid: u32, key: PointerKey) -> Option<Pointer> {
    let mut path = FixedPath::EMPTY;
    if !staging_policy::node_path(&mut path, dir, euid, NodeFile::Pointer(key)) {
        return None;
    }
    let mut b = [0u8; Pointer::LEN + 1];
    let file = sys::open_regular(path.as_c_str(), TRUSTED_OPEN).ok()?;
    let n = sys::pread(&file.fd, &mut b, 0).ok()?;
    if !staging_policy::trusted(file.uid, file.mode, euid) {
        return None;
    }
    Pointer::read(b.get(..n)?)
}

/// The content id in the header of the shared cache at `shared`, if it is
/// a cache replay may trust.
fn shared_content(shared: &FixedPath, euid: u32) -> Option<ContentId> {
    let file = sys::open_regular(shared.as_c_str(), TRUSTED_OPEN).ok()?;
    if !staging_policy::trusted(file.uid, file.mode, euid) {
        return None;
    }
    let mut h = [0u8; HEADER_LEN];
    let n = sys::pread(&file.fd, &mut h, 0).ok()?;
    ContentId::of_header(h.get(..n)?)
}
