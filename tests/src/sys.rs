//! The system calls the harness makes itself instead of running a helper
//! command (`kill`, `mount`, `umount`): a minimal machine has none of those
//! programs, and a teardown must work, or say why, without them.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Sends `signal` to process `pid` (a negative pid: its process group).
pub fn kill(pid: i32, signal: i32) -> io::Result<()> {
    // SAFETY: kill(2) takes two integers and touches no memory of ours.
    if unsafe { libc::kill(pid, signal) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn c_path(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in a path"))
}

/// `mount(source, target, fstype, flags, data)`.
pub fn mount(
    source: &str,
    target: &Path,
    fstype: &str,
    flags: libc::c_ulong,
    data: &str,
) -> io::Result<()> {
    let source = CString::new(source)?;
    let fstype = CString::new(fstype)?;
    let data = CString::new(data)?;
    let target = c_path(target)?;
    // SAFETY: every pointer is a NUL-terminated string that lives across
    // the call.
    let r = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            flags,
            data.as_ptr().cast(),
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Detaches the mount at `target` (`umount -l`).
pub fn unmount(target: &Path) -> io::Result<()> {
    let target = c_path(target)?;
    // SAFETY: a NUL-terminated path that lives across the call.
    if unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// For a teardown: reports a failed step on stderr and goes on (a `Drop`
/// must never panic).
pub fn or_report(what: &str, r: io::Result<()>) {
    if let Err(e) = r {
        eprintln!("teardown: {what}: {e}");
    }
}
