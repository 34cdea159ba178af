//! The entry point the patched ld.so calls, and the one-time start-up that
//! reads the environment and opens the cache or the journal.

use linux_raw_sys::auxvec::{AT_EUID, AT_PAGESZ};

use dlfm_cache::journal::interposers;
use dlfm_runtime::elf;
use dlfm_runtime::env::Mode;
use dlfm_runtime::fixed_path::FixedPath;
use dlfm_runtime::legacy_calls;

use crate::config;
use crate::ident::Ids;
use crate::initial_stack::InitialStack;
use crate::off_reason::OffReason;
use crate::preload::{Preloaded, Stage, NOT_FOR_THIS_MACHINE, PRELOAD_FILE, PRELOAD_FILE_C};
use crate::replay::{Answer, StartError};
use crate::report::{self, Handling};
use crate::state::{self, State};
use crate::sys::{self, nr};

/// The empty path of `fstat` made `newfstatat(fd, "", buf, AT_EMPTY_PATH)`.
static EMPTY: [u8; 1] = [0];

/// Called by the patched ld.so in place of system call `nr` with the six
/// argument registers at `args`; `stack_end` is ld.so's `__libc_stack_end`.
/// Returns what the kernel would: a value or `-errno`.
///
/// # Safety
/// Only the trampolines that `dlpatch` writes may call this: `args` points at
/// six readable u64, the arguments are those ld.so gave the system call, and
/// calls are serialised (see `state`).
#[no_mangle]
pub unsafe extern "C" fn dlfm_entry(nr: u64, args: *const u64, stack_end: *const u64) -> i64 {
    // SAFETY: the trampoline passes six saved argument registers.
    let a = unsafe { core::ptr::read(args as *const [u64; 6]) };
    let (nr, a) = legacy_calls::as_at_call(nr, a, EMPTY.as_ptr() as u64);
    // SAFETY: calls are serialised by ld.so (see `state`).
    let st = unsafe { state::get() };
    if !st.ready {
        // SAFETY: `stack_end` is ld.so's __libc_stack_end.
        unsafe { start(st, stack_end) };
    }
    if let Preloaded::Served(r) = preload(st, nr, &a) {
        count_and_trace(st, nr, &a, Handling::Served, r);
        return r;
    }
    match st.mode {
        Mode::Off => {
            // SAFETY: ld.so's own call, unchanged.
            let r = unsafe { sys::syscall6(nr, a) };
            count_and_trace(st, nr, &a, Handling::Passed, r);
            r
        }
        Mode::Record => {
            // SAFETY: ld.so's own call, unchanged.
            let r = unsafe { sys::syscall6(nr, a) };
            let outcome = if st.record.after(nr, &a, r, &mut st.relative) {
                Handling::Recorded
            } else {
                Handling::Passed
            };
            count_and_trace(st, nr, &a, outcome, r);
            r
        }
        Mode::Replay => {
            let (outcome, r) = match st.replay.answer(nr, &a, &mut st.relative) {
                Answer::Served(r) => (Handling::Served, r),
                Answer::Missed => {
                    // SAFETY: ld.so's own call, unchanged.
                    let r = unsafe { sys::syscall6(nr, a) };
                    st.misses.note(
                        &mut st.record,
                        &st.ids,
                        st.stack,
                        (nr, &a, r),
                        &mut st.relative,
                    );
                    (Handling::Missed, r)
                }
                // SAFETY: ld.so's own call, unchanged.
                Answer::Pass => (Handling::Passed, unsafe { sys::syscall6(nr, a) }),
            };
            count_and_trace(st, nr, &a, outcome, r);
            r
        }
    }
}

/// FMCaching's injection (see `preload`): answers ld.so's read of
/// `/etc/ld.so.preload` while it is under way.
fn preload(st: &mut State, nr: u64, a: &[u64; 6]) -> Preloaded {
    let State {
        preload,
        replay,
        record,
        mode,
        ..
    } = st;
    let answered = preload.answer(nr, a, || match mode {
        Mode::Replay => replay
            .preload_file_existed()
            .unwrap_or_else(|| real_preload_file_access() == 0),
        _ => {
            // The pilot records what the real file gave, so that replay
            // knows it without asking the file system.
            let r = real_preload_file_access();
            record.access(PRELOAD_FILE, sys::nr::R_OK, r);
            r == 0
        }
    });
    if preload.stage == Stage::RealFileExists {
        preload.stage = Stage::Done;
        report::note(
            st,
            b"fmcaching off: /etc/ld.so.preload exists; the system's preloads are left alone",
            b"",
        );
    }
    answered
}

/// Whether the file at `path` (the interposer, in the pilot) is a library
/// for this machine: an ld.so of another machine's library would print an
/// error and go on without it. One open and read of its ELF header.
fn loadable_here(path: &FixedPath) -> bool {
    let flags = nr::O_RDONLY | nr::O_CLOEXEC | nr::O_NONBLOCK;
    // SAFETY: a NUL-terminated path.
    let fd = unsafe { sys::open(path.as_ptr(), flags, 0) };
    if sys::errno_of(fd).is_some() {
        return false;
    }
    let mut head = [0u8; elf::EHDR];
    // SAFETY: `head` is EHDR writable bytes.
    let n = unsafe { sys::pread(fd as i32, head.as_mut_ptr(), head.len(), 0) };
    sys::close(fd as i32);
    n == head.len() as i64 && elf::built_for_this_machine(&head)
}

/// `access("/etc/ld.so.preload", R_OK)`, ld.so's own test: 0 or -errno.
fn real_preload_file_access() -> i64 {
    // SAFETY: a NUL-terminated path.
    unsafe { sys::access(PRELOAD_FILE_C.as_ptr().cast(), sys::nr::R_OK) }
}

fn count_and_trace(st: &mut State, nr: u64, a: &[u64; 6], outcome: Handling, r: i64) {
    match outcome {
        Handling::Served | Handling::Recorded => st.counts.served += 1,
        Handling::Missed => st.counts.missed += 1,
        Handling::Passed => st.counts.passed += 1,
    }
    report::call(st, nr, a, outcome, r);
}

/// Reads the environment once and sets the mode; on any failure the mode
/// stays `Off` and the trace says why.
///
/// # Safety
/// `stack_end` must be ld.so's `__libc_stack_end`.
unsafe fn start(st: &mut State, stack_end: *const u64) {
    st.ready = true;
    // SAFETY: forwarded from the caller.
    let Some(stack) = (unsafe { InitialStack::read(stack_end) }) else {
        return;
    };
    // A setuid, setgid or capability-raised program runs for a user other
    // than the one who set the environment: like ld.so with LD_LIBRARY_PATH,
    // ignore DLFM_* and DLCACHE_DBG entirely (no cache, journal or trace
    // file is opened), so that the process behaves as without DLFM_OP.
    if stack.secure() {
        return;
    }
    st.stack = Some(stack);
    st.asked = config::mode(&stack);
    if config::trace_requested(&stack) {
        // The journal path buffer is free until `cache_paths` fills it.
        st.trace.open(&mut st.journal_path);
    }
    if st.asked == Mode::Off {
        return;
    }
    if !config::cache_paths(&stack, &mut st.cache_path, &mut st.journal_path) {
        turn_off(st, (OffReason::PathTooLong, b""));
        return;
    }
    st.ids = Ids::read(&stack);
    let started = match st.asked {
        Mode::Record => st.record.start(&st.journal_path, &st.ids, &stack),
        Mode::Replay => {
            let euid = stack.aux(AT_EUID).map_or(u32::MAX, |u| u as u32);
            start_replay(st, &stack, euid)
        }
        Mode::Off => Ok(()),
    };
    match started {
        Ok(()) => {
            let fm = match st.asked {
                Mode::Record => {
                    // The first interposer built for this machine.
                    let mut named = false;
                    for fm in interposers(st.record.setup().unwrap_or_default()) {
                        named = true;
                        st.preload.arm(fm);
                        if st.preload.stage == Stage::Armed && loadable_here(&st.preload.fm_path) {
                            break;
                        }
                        st.preload.stage = Stage::Off;
                    }
                    if named && st.preload.stage == Stage::Off {
                        Err(NOT_FOR_THIS_MACHINE)
                    } else {
                        Ok(())
                    }
                }
                Mode::Replay => {
                    st.misses.arm(&stack, &st.cache_path);
                    st.replay.loadable_fm_path().map(|fm| {
                        if let Some(fm) = fm {
                            st.preload.arm(fm);
                        }
                    })
                }
                Mode::Off => Ok(()),
            };
            if let Err(why) = fm {
                report::note(st, b"fmcaching off: ", why);
            }
            st.mode = st.asked;
            report::started(st);
            config::absolute_cache_for_children(&stack, &mut st.env_entry);
        }
        Err(e) => turn_off(st, e),
    }
}

/// Starts replay from the node-local copy of the cache (see `stager`), or
/// from the shared cache when there is none or replay refuses it.
fn start_replay(st: &mut State, stack: &InitialStack, euid: u32) -> Result<(), StartError> {
    st.replay.set_page_size(stack.aux(AT_PAGESZ));
    match st.stage.stage(stack, &st.cache_path, euid) {
        Ok(how) => match st.replay.start_copy(&st.stage.copy, &st.ids, euid) {
            Ok(()) => {
                report::staged(st, how);
                return Ok(());
            }
            Err((reason, _)) => report::copy_refused(st, reason),
        },
        Err(skip) => report::stage_skipped(st, skip),
    }
    st.replay.start(&st.cache_path, &st.ids, euid)
}

/// Falls back to passing every call to the kernel, and traces why.
fn turn_off(st: &mut State, (reason, detail): (OffReason, &'static [u8])) {
    st.mode = Mode::Off;
    st.off_reason = reason;
    let what = if st.asked == Mode::Record {
        b"write-cache off: " as &[u8]
    } else {
        b"read-cache off: "
    };
    report::off(st, what, reason, detail);
}

/// Writes the trace's summary line when the program exits (run by libc from
/// `.fini_array`, long after relocation, so the one relocation this table
/// entry needs is harmless).
extern "C" fn summary_at_exit() {
    // SAFETY: exit runs after ld.so's start-up; no call into the wrapper is
    // in progress on this thread.
    let st = unsafe { state::get() };
    if st.ready {
        report::summary(st);
    }
}

#[used]
#[link_section = ".fini_array"]
static SUMMARY_AT_EXIT: extern "C" fn() = summary_at_exit;
