//! The node-local copy of the cache, when the ld.so wrapper of this job
//! staged or checked one (`wrapper-objs/ldso/src/stager.rs`): the interposer maps
//! it instead of the shared cache, so that no process of the job opens the
//! shared cache twice. It never stages itself: the ld.so wrapper of the same
//! process has already done so (or found it could not) before this
//! library's constructor runs. Runs once, in the constructor.

use dlfm_cache::node_files::{path_key, NodeFile, Pointer, PointerKey};
use dlfm_runtime::fixed_path::FixedPath;
use dlfm_runtime::staging_policy;

use crate::sys;

/// Opens the node-local copy of the shared cache at `cache`, if the pointer
/// file says this job checked it and the copy is one this user may trust.
/// Returns it, open. `getenv` reads the environment.
pub fn open_copy(
    cache: &[u8],
    getenv: impl Fn(&[u8]) -> Option<&'static [u8]>,
) -> Option<sys::Regular> {
    let cfg = staging_policy::config_of(&getenv).ok()?;
    let mut shared = FixedPath::EMPTY;
    if !shared.push_absolute(cache, sys::getcwd) {
        return None;
    }
    // SAFETY: geteuid cannot fail and touches no memory.
    let euid = unsafe { libc::geteuid() };
    let jobs = staging_policy::job_keys(&getenv);
    let key = PointerKey {
        path: path_key(shared.as_bytes()),
        job: jobs.job?,
    };
    let mut path = FixedPath::EMPTY;
    if !staging_policy::node_path(&mut path, cfg.dir, euid, NodeFile::Pointer(key)) {
        return None;
    }
    let mut b = [0u8; Pointer::LEN + 1];
    let file = sys::open_regular(path.as_c_str(), TRUSTED_OPEN).ok()?;
    let n = sys::pread(&file.fd, &mut b, 0).ok()?;
    if !staging_policy::trusted(file.uid, file.mode, euid) {
        return None;
    }
    let pointer = Pointer::read(b.get(..n)?)?;
    if !jobs.accept(&pointer)
        || !staging_policy::node_path(&mut path, cfg.dir, euid, NodeFile::Copy(pointer.content))
    {
        return None;
    }
    let copy = sys::open_regular(path.as_c_str(), TRUSTED_OPEN).ok()?;
    (staging_policy::trusted(copy.uid, copy.mode, euid)
        && copy.size as u64 == pointer.content.file_len)
        .then_some(copy)
}

/// How node-local files are opened: never through a symbolic link, never
/// blocking.
const TRUSTED_OPEN: i32 = libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOFOLLOW;
