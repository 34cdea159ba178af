//! DLCACHE_DBG trace files: `dlcache.dbg/dlcache.dbg.<nodename>.<coreid>` in
//! the working directory, created beforehand by `dlfm.pre`. A process that
//! finds its file appends one line per call and a summary line at exit.
//!
//! The core id is a letter as in the original DLFM; the name is
//! `dlfm_wrap_logic::trace_name`'s, shared with the FMCaching interposer.

use linux_raw_sys::system::new_utsname;

use crate::own_file::OwnFile;
use crate::sys;
use dlfm_wrap_logic::fixed_path::FixedPath;
use dlfm_wrap_logic::line::Line;
use dlfm_wrap_logic::trace_name::trace_path;

/// The trace file, if this process has one.
pub struct Trace {
    /// Whether lines are written.
    pub on: bool,
    /// The open trace file (meaningful only when `on`).
    file: OwnFile,
}

impl Trace {
    /// No trace file.
    pub const EMPTY: Trace = Trace {
        on: false,
        file: OwnFile::EMPTY,
    };

    /// Opens this process's trace file if `dlfm.pre` created it.
    pub fn open(&mut self, path: &mut FixedPath) {
        let mut raw = core::mem::MaybeUninit::<new_utsname>::uninit();
        // SAFETY: `raw` is writable for a whole struct new_utsname.
        if sys::errno_of(unsafe { sys::uname(raw.as_mut_ptr()) }).is_some() {
            return;
        }
        // SAFETY: a successful uname filled the whole struct (borrowed, not
        // moved, so no 390-byte copy is made).
        let uts = unsafe { &*raw.as_ptr() };
        // SAFETY: `c_char` and `u8` have the same size and alignment; the
        // array is initialised.
        let node: &[u8] = unsafe {
            core::slice::from_raw_parts(uts.nodename.as_ptr() as *const u8, uts.nodename.len())
        };
        let cpu = sys::current_cpu().unwrap_or(0) as usize;
        let ok = trace_path(path, node, cpu);
        if !ok {
            return;
        }
        // Only a regular file dlfm.pre made: never a symlink, never a FIFO.
        let flags = sys::nr::O_WRONLY | sys::nr::O_APPEND | sys::nr::O_NOFOLLOW;
        self.on = self.file.open(path, flags).is_ok();
    }

    /// Writes `line` (a newline is added).
    pub fn write(&mut self, line: &mut Line) {
        if !self.on {
            return;
        }
        line.bytes(b"\n");
        if let Some(fd) = self.file.ensure() {
            sys::write(fd, line.as_bytes());
        }
    }
}
