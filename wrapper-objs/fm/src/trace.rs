//! DLCACHE_DBG lines for the program's own lookups, appended to the
//! process's trace file (the one the ld.so wrapper writes,
//! `dlfm_runtime::trace_name`) when `DLCACHE_DBG` asks for traces,
//! FMCaching is on and `dlfm.pre` created the file:
//!
//! `dlfm <pid> fm <call> <served|missed|recorded> <path> = <result>`
//!
//! (the result is the value returned, or -errno; a miss has none, the real
//! call follows). Each line is built on the
//! caller's stack and written with one `write` on the `O_APPEND` file, so
//! lines of threads and processes never interleave.

use dlfm_runtime::fixed_path::FixedPath;
use dlfm_runtime::line::Line;
use dlfm_runtime::trace_name::trace_path;

use crate::own_fd::OwnFd;
use crate::sys;

static FILE: OwnFd = OwnFd::none();

/// How a lookup was handled.
#[derive(Clone, Copy)]
pub enum Handling {
    /// Answered from the cache.
    Served,
    /// Replay's cache does not hold it: passed to libc.
    Missed,
    /// Passed to libc and journaled (the pilot).
    Recorded,
}

/// Opens this process's trace file (constructor only, single-threaded).
pub fn open() {
    // SAFETY: sched_getcpu takes nothing and only reads this thread's CPU.
    let cpu = usize::try_from(unsafe { libc::sched_getcpu() }).unwrap_or(0);
    let mut path = FixedPath::EMPTY;
    if sys::with_nodename(|node| trace_path(&mut path, node, cpu)) != Some(true) {
        return;
    }
    // Only the regular file dlfm.pre made: never a symlink, never a FIFO.
    let flags = libc::O_WRONLY | libc::O_APPEND | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    if let Ok(file) = sys::open_regular(path.as_c_str(), flags | libc::O_NONBLOCK) {
        FILE.adopt(file.fd);
    }
}

/// Traces one lookup of `path` by `call` that gave `result` (unknown yet
/// for a miss: the real call follows).
pub fn lookup(call: &[u8], how: Handling, path: &[u8], result: Option<i64>) {
    if !FILE.is_set() {
        return;
    }
    let mut line = Line::EMPTY;
    // SAFETY: getpid cannot fail and touches no memory.
    let pid = unsafe { libc::getpid() };
    line.bytes(b"dlfm ")
        .int(i64::from(pid))
        .bytes(b" fm ")
        .bytes(call)
        .bytes(match how {
            Handling::Served => b" served ",
            Handling::Missed => b" missed ",
            Handling::Recorded => b" recorded ",
        })
        .bytes(path);
    if let Some(r) = result {
        line.bytes(b" = ").int(r);
    }
    FILE.write(line.bytes(b"\n").as_bytes());
}
