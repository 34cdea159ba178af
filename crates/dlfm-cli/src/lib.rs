//! What dlfm's command-line tools (`dlfm`, `dlpatch`, `dlfm.pre`) share:
//! where an installed dlfm's pieces lie ([`install`]), their man pages
//! written from the clap definitions ([`man`]), and the SIGPIPE convention
//! ([`reset_sigpipe`]), byte counts for people ([`human`]), and the
//! progress line of long work ([`progress`]).

pub mod install;
pub mod man;
pub mod progress;

/// A byte count for people: `512 B`, `1.5 KiB`, `580.0 MiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Restores the default SIGPIPE action (Rust ignores it), so that output
/// piped into `head` ends the tool quietly instead of with a panic.
pub fn reset_sigpipe() {
    // SAFETY: setting a signal's disposition to the default touches no memory.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}
