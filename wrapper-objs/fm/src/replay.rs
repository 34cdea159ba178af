//! Answers from the cache: what `stat`, `lstat`, `access` and `open` of a
//! recorded path gave in the pilot. `None` means a miss: the caller asks
//! libc. Each answer and each miss is traced (DLCACHE_DBG).

use dlfm_cache::layout::Outcome;
use dlfm_cache::read::Cache;

use dlfm_runtime::fixed_path::FixedPath;

use crate::served;
use crate::state;
use crate::stored_stat;
use crate::sys;
use crate::trace::{self, Handling};

/// A recorded answer: a value, or an errno to set with -1.
pub enum Answer {
    /// Succeeded with this value (0, or a descriptor).
    Ok(i32),
    /// Failed with this errno.
    Err(i32),
}

/// Which stat a lookup asks for.
#[derive(Clone, Copy)]
pub enum Follow {
    /// `stat`: through symbolic links.
    Yes,
    /// `lstat`: the link itself.
    No,
}

/// `stat(path)` or `lstat(path)` into `out`.
pub fn stat(
    cache: &Cache<'_>,
    path: &[u8],
    follow: Follow,
    out: *mut libc::stat,
) -> Option<Answer> {
    let answer = || {
        let e = cache.lookup(path)?;
        let outcome = match follow {
            Follow::Yes => e.stat,
            Follow::No => e.lstat,
        };
        match outcome {
            Outcome::Err(errno) => Some(Answer::Err(errno)),
            Outcome::Ok(i) => stored_stat::load(cache.stat(i)?, out).then_some(Answer::Ok(0)),
            Outcome::NotRecorded => None,
        }
    };
    let call: &[u8] = match follow {
        Follow::Yes => b"stat",
        Follow::No => b"lstat",
    };
    traced(call, path, answer())
}

/// Traces how a lookup of `path` by `call` was answered, and passes the
/// answer on.
pub fn traced(call: &[u8], path: &[u8], answer: Option<Answer>) -> Option<Answer> {
    let (how, result) = match answer {
        Some(Answer::Ok(v)) => (Handling::Served, Some(i64::from(v))),
        Some(Answer::Err(e)) => (Handling::Served, Some(-i64::from(e))),
        None => (Handling::Missed, None),
    };
    trace::lookup(call, how, path, result);
    answer
}

/// `readlink(path)`, as far as the recorded `lstat` tells: the error it
/// gave, or EINVAL for what is not a symbolic link (a link's target is not
/// recorded: a miss).
pub fn readlink(cache: &Cache<'_>, path: &[u8]) -> Option<Answer> {
    let answer = || match cache.lookup(path)?.lstat {
        Outcome::Err(errno) => Some(Answer::Err(errno)),
        Outcome::Ok(i) => {
            let st = cache.stat(i)?;
            let view = dlfm_cache::stat::StatView(st.try_into().ok()?);
            let link = view.mode() & libc::S_IFMT == libc::S_IFLNK;
            (!link).then_some(Answer::Err(libc::EINVAL))
        }
        Outcome::NotRecorded => None,
    };
    traced(b"readlink", path, answer())
}

/// `access(path, R_OK)`.
pub fn access(cache: &Cache<'_>, path: &[u8]) -> Option<Answer> {
    let answer = || match cache.lookup(path)?.access {
        Outcome::Err(errno) => Some(Answer::Err(errno)),
        Outcome::Ok(_) => Some(Answer::Ok(0)),
        Outcome::NotRecorded => None,
    };
    traced(b"access", path, answer())
}

/// `access(path, F_OK)`: the recorded `stat`'s outcome (0 or its errno),
/// else a successful open (it followed the path to a file), else an open
/// that failed for a missing name.
pub fn exists(cache: &Cache<'_>, path: &[u8]) -> Option<Answer> {
    let answer = || {
        let e = cache.lookup(path)?;
        match (e.stat, e.open) {
            (Outcome::Err(errno), _) => Some(Answer::Err(errno)),
            (Outcome::Ok(_), _) | (_, Outcome::Ok(_)) => Some(Answer::Ok(0)),
            (_, Outcome::Err(errno)) if errno == libc::ENOENT || errno == libc::ENOTDIR => {
                Some(Answer::Err(errno))
            }
            _ => None,
        }
    };
    traced(b"access", path, answer())
}

/// `open(path, O_RDONLY | extra)`, with close-on-exec if `cloexec`: the
/// file's node-local copy, opened (shared by the node's processes in the
/// page cache; `/proc/self/fd/N` ends with the file's own path), or without
/// a node copy a memfd holding the file's bytes.
pub fn open(cache: &Cache<'_>, bytes: &[u8], path: &[u8], cloexec: bool) -> Option<Answer> {
    traced(b"open", path, served_open(cache, bytes, path, cloexec))
}

/// The memfd for `open`, or its recorded error; `None` for a miss.
fn served_open(cache: &Cache<'_>, bytes: &[u8], path: &[u8], cloexec: bool) -> Option<Answer> {
    let file = match cache.lookup(path)?.open {
        Outcome::Err(errno) => return Some(Answer::Err(errno)),
        Outcome::Ok(i) => cache.file(i)?,
        Outcome::NotRecorded => return None,
    };
    let cloexec_flag = if cloexec { libc::O_CLOEXEC } else { 0 };
    if let Some(root) = state::node_root() {
        let mut node = FixedPath::EMPTY;
        if !(node.set(root.as_bytes()) && node.push(file.real_path)) {
            return None;
        }
        let fd = sys::open(node.as_c_str(), libc::O_RDONLY | cloexec_flag, 0).ok()?;
        return register(fd, file.stat_index);
    }
    let start = usize::try_from(file.data_off).ok()?;
    let data = bytes.get(start..start.checked_add(usize::try_from(file.size).ok()?)?)?;
    let flags = if cloexec { libc::MFD_CLOEXEC } else { 0 };
    let fd = sys::memfd(c"dlfm", flags).ok()?;
    sys::write_all(&fd, data).ok()?;
    sys::forget_pages(data);
    register(fd, file.stat_index)
}

/// Hands `fd` to the program as a served file whose recorded stat is
/// `stat_index` (`fstat` on it answers that), if the table has room for it.
fn register(fd: sys::OwnedFd, stat_index: u32) -> Option<Answer> {
    let mut real = sys::zeroed_stat();
    if usize::try_from(fd.raw()).is_ok_and(|i| i < served::MAX_FD)
        && sys::fstat(fd.raw(), &mut real).is_ok()
    {
        let fd = fd.into_raw();
        served::insert(fd, real.st_ino, real.st_dev, stat_index);
        return Some(Answer::Ok(fd));
    }
    None
}

/// `fstat(fd)` into `out` when `fd` is a descriptor replay served (the
/// kernel's answer for it is in `real`).
pub fn fstat(cache: &Cache<'_>, fd: i32, real: &libc::stat, out: *mut libc::stat) -> bool {
    served::stat_of(fd, real)
        .and_then(|i| cache.stat(i))
        .is_some_and(|st| stored_stat::load(st, out))
}
