//! One mapping of the cache's index per process: the ld.so wrapper maps the
//! node copy's metadata file (`<copy>/cache`) before the program starts and
//! keeps that mapping for the process's life once the cache parsed; the
//! interposer finds it in `/proc/self/maps` (same device and inode, offset
//! 0, read-only and private) and reads the index through it instead of
//! mapping the file a second time. A second mapping would fault in its own
//! copy of every index page the program's lookups touch: about 700 KiB of
//! resident memory per process for a scientific Python stack.
//!
//! Runs once, in the constructor (single-threaded, before `main`). Anything
//! unexpected (no such mapping, `/proc` not mounted, a line too long) finds
//! nothing, and the caller maps the file itself as before.

use dlfm_runtime::proc_maps::parse_line;

use crate::sys::{self, OwnedFd};

/// The process's read-only private mapping of the first `len` bytes of the
/// file open on `fd`, if it has one (the ld.so wrapper's): `len` bytes
/// from its start.
pub fn find(fd: &OwnedFd, len: usize) -> Option<&'static [u8]> {
    let mut st = sys::zeroed_stat();
    sys::fstat(fd.raw(), &mut st).ok()?;
    let (major, minor) = (libc::major(st.st_dev), libc::minor(st.st_dev));
    let maps = sys::open(c"/proc/self/maps", libc::O_RDONLY | libc::O_CLOEXEC, 0).ok()?;
    let page = sys::page_size();
    let mut buf = [0u8; 4096];
    let mut have = 0;
    loop {
        let n = sys::read(&maps, buf.get_mut(have..)?).ok()?;
        if n == 0 {
            return None;
        }
        have += n;
        let mut used = 0;
        while let Some(nl) = buf.get(used..have)?.iter().position(|&b| b == b'\n') {
            let line = buf.get(used..used + nl)?;
            used += nl + 1;
            let Some(m) = parse_line(line) else { continue };
            let span = m.end.checked_sub(m.start)?;
            if m.read_only_private
                && m.offset == 0
                && (m.major, m.minor, m.inode) == (major, minor, st.st_ino)
                && span >= len
                && span < len + page
            {
                // SAFETY: the kernel lists [start, end) as mapped readable
                // in this process; the ld.so wrapper never unmaps its
                // mapping of the index while replay uses it, and `len` lies
                // inside it.
                return Some(unsafe { core::slice::from_raw_parts(m.start as *const u8, len) });
            }
        }
        if used == 0 && have == buf.len() {
            // A line longer than the buffer (a path of thousands of
            // bytes): give up rather than misread it.
            return None;
        }
        buf.copy_within(used..have, 0);
        have -= used;
    }
}
