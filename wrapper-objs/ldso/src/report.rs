//! The lines a trace file receives: one per call, one when recording or
//! replay starts or is turned off, and a summary at exit (see `trace` for
//! the file itself).

use dlfm_runtime::env::Mode;
use dlfm_runtime::fixed_path::PATH_MAX;
use dlfm_runtime::summary;

use crate::off_reason::OffReason;
use crate::preload::Stage;
use crate::stager::{How, Skip};
use crate::state::State;
use crate::sys;
use dlfm_runtime::line::Line;

/// How a call was handled, as the trace line says it.
#[derive(Clone, Copy)]
pub enum Handling {
    /// Answered from the cache without a file-system call.
    Served,
    /// A lookup the cache does not hold: passed to the kernel.
    Missed,
    /// Not a lookup of a recorded object: passed to the kernel.
    Passed,
    /// Passed to the kernel and written to the journal.
    Recorded,
}

/// Starts a trace line with the process id.
fn start(line: &mut Line) -> &mut Line {
    line.clear().bytes(b"dlfm ").int(sys::getpid()).bytes(b" ")
}

/// Traces one call: `dlfm <pid> <call> <outcome> <path or fd N> = <result>`.
pub fn call(st: &mut State, nr: u64, args: &[u64; 6], outcome: Handling, result: i64) {
    if !st.trace.on {
        return;
    }
    let line = start(&mut st.line);
    line.bytes(call_name(nr)).bytes(b" ").bytes(match outcome {
        Handling::Served => b"served" as &[u8],
        Handling::Missed => b"missed",
        Handling::Passed => b"passed",
        Handling::Recorded => b"recorded",
    });
    match path_arg(nr, args) {
        Some(p) => {
            // SAFETY: ld.so passes NUL-terminated paths to these calls.
            match unsafe { dlfm_bytes::c_strlen(p, PATH_MAX) } {
                Some(n) => {
                    // SAFETY: `n` bytes before the NUL are readable.
                    let path = unsafe { core::slice::from_raw_parts(p, n) };
                    line.bytes(b" ").bytes(path)
                }
                None => line.bytes(b" <long path>"),
            }
        }
        None => line.bytes(b" fd ").int(fd_arg(nr, args)),
    };
    line.bytes(b" = ").int(result);
    st.trace.write(&mut st.line);
}

/// Traces that recording or replay started, and on which file.
pub fn started(st: &mut State) {
    if !st.trace.on {
        return;
    }
    let (what, path) = if st.mode == Mode::Record {
        (b"write-cache: journal " as &[u8], &st.journal_path)
    } else {
        (b"read-cache: cache " as &[u8], &st.cache_path)
    };
    start(&mut st.line).bytes(what).bytes(path.as_bytes());
    st.trace.write(&mut st.line);
    if st.preload.stage == Stage::Armed {
        start(&mut st.line)
            .bytes(b"fmcaching: ld.so preloads ")
            .bytes(st.preload.fm_path.as_bytes());
        st.trace.write(&mut st.line);
    }
}

/// Traces why recording or replay was turned off:
/// `<what><reason> (<detail>): <cache or journal path>`.
pub fn off(st: &mut State, what: &[u8], reason: OffReason, detail: &[u8]) {
    if !st.trace.on {
        return;
    }
    let path = if st.asked == Mode::Record {
        &st.journal_path
    } else {
        &st.cache_path
    };
    let line = start(&mut st.line);
    line.bytes(what).bytes(reason.text());
    if !detail.is_empty() {
        line.bytes(b" (").bytes(detail).bytes(b")");
    }
    line.bytes(b": ").bytes(path.as_bytes());
    st.trace.write(&mut st.line);
}

/// Traces which node-local copy replay uses, and how it was had.
pub fn staged(st: &mut State, how: How) {
    if !st.trace.on {
        return;
    }
    let line = start(&mut st.line);
    line.bytes(b"read-cache: node-local copy ")
        .bytes(st.stage.copy.as_bytes());
    match how {
        How::Pointed => line.bytes(b" (checked by this job before)"),
        How::Waited(ms) => line
            .bytes(b" (made or checked by another process of this node; waited ")
            .uint(ms)
            .bytes(b" ms)"),
        How::Checked => line.bytes(b" (checked against the shared cache)"),
        How::Staged(bytes, ms) => line
            .bytes(b" (staged here: ")
            .uint(bytes)
            .bytes(b" bytes in ")
            .uint(ms)
            .bytes(b" ms)"),
        How::Unpacked(bytes, ms) => line
            .bytes(b" (unpacked here from the node's broadcast copy: ")
            .uint(bytes)
            .bytes(b" bytes in ")
            .uint(ms)
            .bytes(b" ms)"),
    };
    st.trace.write(&mut st.line);
}

/// Traces why there is no node-local copy.
pub fn stage_skipped(st: &mut State, skip: Skip) {
    if !st.trace.on {
        return;
    }
    let line = start(&mut st.line);
    line.bytes(b"read-cache: staging skipped: ")
        .bytes(skip.text());
    if let Skip::Copy(e) = skip {
        line.bytes(b" (errno ").uint(u64::from(e)).bytes(b")");
    }
    line.bytes(b"; using the shared cache");
    st.trace.write(&mut st.line);
}

/// Traces that replay refused the node-local copy.
pub fn copy_refused(st: &mut State, reason: OffReason) {
    if !st.trace.on {
        return;
    }
    start(&mut st.line)
        .bytes(b"read-cache: node-local copy ")
        .bytes(st.stage.copy.as_bytes())
        .bytes(b" refused: ")
        .bytes(reason.text())
        .bytes(b"; using the shared cache");
    st.trace.write(&mut st.line);
}

/// Traces a free-form line: `what` then `detail`.
pub fn note(st: &mut State, what: &[u8], detail: &[u8]) {
    if !st.trace.on {
        return;
    }
    start(&mut st.line).bytes(what).bytes(detail);
    st.trace.write(&mut st.line);
}

/// Traces the summary line: mode, counts and why replay is off, if it is.
pub fn summary(st: &mut State) {
    if !st.trace.on {
        return;
    }
    let c = st.counts;
    let line = start(&mut st.line);
    line.bytes(summary::PREFIX).bytes(mode_name(st.mode));
    if st.mode == Mode::Record {
        line.bytes(summary::RECORDED).uint(c.served);
    } else {
        line.bytes(summary::SERVED).uint(c.served);
    }
    line.bytes(summary::MISSED)
        .uint(c.missed)
        .bytes(summary::PASSED)
        .uint(c.passed);
    if st.off_reason != OffReason::None {
        line.bytes(b", ")
            .bytes(mode_name(st.asked))
            .bytes(b" off: ")
            .bytes(st.off_reason.text());
    }
    st.trace.write(&mut st.line);
}

/// The path argument of a path-taking call, if `nr` is one.
pub fn path_arg(nr: u64, args: &[u64; 6]) -> Option<*const u8> {
    let p = if nr == u64::from(sys::nr::__NR_openat) || nr == u64::from(sys::nr::__NR_newfstatat) {
        args[1]
    } else if nr == u64::from(sys::ACCESS) {
        sys::access_args(args)?.0
    } else {
        return None;
    };
    // fstat is newfstatat(fd, "", AT_EMPTY_PATH): report the descriptor.
    // SAFETY: a non-null path argument points at a NUL-terminated string.
    if p == 0 || unsafe { *(p as *const u8) } == 0 {
        None
    } else {
        Some(p as *const u8)
    }
}

/// The descriptor argument of a call without a path: the fifth for `mmap`,
/// the first for the others.
fn fd_arg(nr: u64, args: &[u64; 6]) -> i64 {
    let fd = if nr == u64::from(sys::nr::__NR_mmap) {
        args[4]
    } else {
        args[0]
    };
    i64::from(fd as i32)
}

fn call_name(nr: u64) -> &'static [u8] {
    use sys::nr;
    match nr as u32 {
        nr::__NR_openat => b"openat",
        nr::__NR_read => b"read",
        nr::__NR_pread64 => b"pread64",
        nr::__NR_newfstatat => b"newfstatat",
        nr::__NR_mmap => b"mmap",
        nr::__NR_close => b"close",
        sys::ACCESS => sys::ACCESS_NAME,
        nr::__NR_lseek => b"lseek",
        _ => b"syscall",
    }
}

fn mode_name(mode: Mode) -> &'static [u8] {
    match mode {
        Mode::Off => b"off",
        Mode::Record => b"write-cache",
        Mode::Replay => b"read-cache",
    }
}
