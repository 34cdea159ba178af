//! Running the command: plain (dlfm replaces itself with it, so nothing of
//! dlfm stays), or as a child that dlfm waits for (to pack or learn after
//! it), passing on the signals a batch system or a user sends dlfm, and
//! ending with the child's status.

use std::ffi::OsString;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicI32, Ordering};

/// The child's pid while dlfm waits for it (0: none), for the handler.
static CHILD: AtomicI32 = AtomicI32::new(0);

/// Signals dlfm passes on to its child. SIGINT and SIGQUIT are ignored
/// instead, as `system(3)` does: a terminal sends them to the child too.
const FORWARDED: [libc::c_int; 5] = [
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGALRM,
];

extern "C" fn forward(sig: libc::c_int) {
    let pid = CHILD.load(Ordering::Acquire);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe and touches no memory.
        unsafe { libc::kill(pid, sig) };
    }
}

/// The command `words` with `vars` added to the environment.
fn command(words: &[OsString], vars: &[(&str, OsString)]) -> Command {
    let mut c = Command::new(&words[0]);
    c.args(&words[1..]);
    for (k, v) in vars {
        c.env(k, v);
    }
    c
}

/// Replaces dlfm with the command (`vars` added). Returns only if the
/// command cannot be started: the status a shell would give (127 not
/// found, 126 not executable), after saying why.
pub fn exec(words: &[OsString], vars: &[(&str, OsString)]) -> i32 {
    let e = command(words, vars).exec();
    eprintln!(
        "dlfm: cannot run {}: {e}",
        std::path::Path::new(&words[0]).display()
    );
    if e.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    }
}

/// Runs the command as a child (`vars` added) and waits for it.
pub fn spawn_and_wait(
    words: &[OsString],
    vars: &[(&str, OsString)],
) -> std::io::Result<ExitStatus> {
    let mut child = command(words, vars).spawn()?;
    CHILD.store(child.id() as i32, Ordering::Release);
    // SAFETY: the handler only loads an atomic and calls kill, both
    // async-signal-safe; ignoring SIGINT/SIGQUIT touches no memory.
    unsafe {
        for sig in FORWARDED {
            libc::signal(sig, forward as *const () as libc::sighandler_t);
        }
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGQUIT, libc::SIG_IGN);
    }
    let status = child.wait();
    CHILD.store(0, Ordering::Release);
    // SAFETY: as above: restoring default dispositions.
    unsafe {
        for sig in FORWARDED.iter().chain(&[libc::SIGINT, libc::SIGQUIT]) {
            libc::signal(*sig, libc::SIG_DFL);
        }
    }
    status
}

/// Ends dlfm the way the child ended: its exit code, or the same signal
/// (so that a shell or batch system sees "killed by SIGKILL" too).
pub fn end_like(status: ExitStatus) -> ! {
    if let Some(sig) = status.signal() {
        // SAFETY: no core file for dlfm itself (the child made its own),
        // then the default action for the signal, raised on ourselves.
        unsafe {
            let none = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::setrlimit(libc::RLIMIT_CORE, &none);
            libc::signal(sig, libc::SIG_DFL);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, sig);
            libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            libc::raise(sig);
        }
        std::process::exit(128 + sig);
    }
    std::process::exit(status.code().unwrap_or(1))
}
