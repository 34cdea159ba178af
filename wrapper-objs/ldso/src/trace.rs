//! DLCACHE_DBG trace files: `dlcache.dbg/dlcache.dbg.<nodename>.<coreid>` in
//! the working directory, created beforehand by `dlfm.pre`. A process that
//! finds its file appends one line per call and a summary line at exit.
//!
//! The core id is a letter as in the original DLFM; the name is
//! `dlfm_runtime::trace_name`'s, shared with the FMCaching interposer.

use crate::own_file::OwnFile;
use crate::sys;
use dlfm_runtime::fixed_path::FixedPath;
use dlfm_runtime::line::Line;
use dlfm_runtime::trace_name::trace_path;

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
        let cpu = sys::current_cpu().unwrap_or(0) as usize;
        if sys::with_nodename(|node| trace_path(path, node, cpu)) != Some(true) {
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
