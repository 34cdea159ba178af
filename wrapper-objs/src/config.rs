//! What the user asked for, read from the environment: `DLFM_OP`,
//! `DLFM_CACHE`, `DLCACHE_DBG`, and the MPI rank variables that decide which
//! process records in a pilot run.

use crate::initial_stack::InitialStack;
use crate::sys;

/// Longest path the wrapper handles (the kernel's PATH_MAX, NUL included).
pub const PATH_MAX: usize = 4096;

/// What the wrapper does with ld.so's file calls in this process.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// Pass every call to the kernel (no `DLFM_OP`, an unknown value, a
    /// pilot rank other than 0, or replay turned off).
    Off = 0,
    /// `DLFM_OP=write-cache` on the recording process: call, then journal.
    Record = 1,
    /// `DLFM_OP=read-cache`: answer recorded lookups from the cache.
    Replay = 2,
}

/// The mode `DLFM_OP` asks for in this process. In a pilot only rank 0 (or
/// the only process, when no rank variable is set) records.
pub fn mode(stack: &InitialStack) -> Mode {
    match stack.getenv(b"DLFM_OP") {
        Some(v) if dlfm_bytes::equal(v, b"read-cache") => Mode::Replay,
        Some(v) if dlfm_bytes::equal(v, b"write-cache") => {
            if is_rank_zero(stack) {
                Mode::Record
            } else {
                Mode::Off
            }
        }
        _ => Mode::Off,
    }
}

/// Whether this process is rank 0, or no rank variable is set at all. The
/// variables are consulted in this order: PMI_RANK, PMIX_RANK,
/// OMPI_COMM_WORLD_RANK, SLURM_PROCID, ALPS_APP_PE. (Straight-line code, not
/// a table: a table of string slices would need relocations.)
fn is_rank_zero(stack: &InitialStack) -> bool {
    let rank = stack
        .getenv(b"PMI_RANK")
        .or_else(|| stack.getenv(b"PMIX_RANK"))
        .or_else(|| stack.getenv(b"OMPI_COMM_WORLD_RANK"))
        .or_else(|| stack.getenv(b"SLURM_PROCID"))
        .or_else(|| stack.getenv(b"ALPS_APP_PE"));
    match rank {
        Some(v) => dlfm_bytes::equal(v, b"0"),
        None => true,
    }
}

/// Whether `DLCACHE_DBG` asks for trace files ("on", "true", "yes" or "1",
/// as in the original DLFM manual).
pub fn trace_requested(stack: &InitialStack) -> bool {
    match stack.getenv(b"DLCACHE_DBG") {
        Some(v) => {
            dlfm_bytes::equal(v, b"on")
                || dlfm_bytes::equal(v, b"true")
                || dlfm_bytes::equal(v, b"yes")
                || dlfm_bytes::equal(v, b"1")
        }
        None => false,
    }
}

/// A NUL-terminated path held in a fixed buffer.
pub struct PathBuf {
    bytes: [u8; PATH_MAX],
    len: usize,
}

impl PathBuf {
    /// The empty path (all zero, so it lives in `.bss`).
    pub const EMPTY: PathBuf = PathBuf {
        bytes: [0; PATH_MAX],
        len: 0,
    };

    /// Replaces the contents with `part`; false (path left empty) if it
    /// does not fit.
    pub fn set(&mut self, part: &[u8]) -> bool {
        self.len = 0;
        self.push(part)
    }

    /// Appends `part`; false (path left empty) if the result does not fit.
    pub fn push(&mut self, part: &[u8]) -> bool {
        let end = self.len + part.len();
        // Keep one byte for the NUL.
        match self.bytes.get_mut(self.len..end) {
            Some(dst) if end < PATH_MAX => {
                dlfm_bytes::copy(dst, part);
                self.len = end;
                if let Some(nul) = self.bytes.get_mut(end) {
                    *nul = 0;
                }
                true
            }
            _ => {
                self.len = 0;
                self.bytes[0] = 0;
                false
            }
        }
    }

    /// Appends `path` made absolute: as it is if it starts with `/`, else
    /// after the working directory and a `/`. False (path left empty) if the
    /// working directory cannot be read or the result does not fit.
    pub fn push_absolute(&mut self, path: &[u8]) -> bool {
        if path.first() != Some(&b'/') && !(self.push_cwd() && self.push(b"/")) {
            return false;
        }
        self.push(path)
    }

    /// Appends the working directory; false (path left empty) if it cannot
    /// be read or does not fit.
    fn push_cwd(&mut self) -> bool {
        let Some(free) = self.bytes.get_mut(self.len..) else {
            return false;
        };
        // getcwd returns the length written, NUL included.
        match sys::getcwd(free) {
            Some(n) if n > 0 => {
                self.len += n - 1;
                true
            }
            _ => {
                self.len = 0;
                self.bytes[0] = 0;
                false
            }
        }
    }

    /// The path without its NUL.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or(&[])
    }

    /// A pointer to the NUL-terminated path, for system calls.
    pub fn as_ptr(&self) -> *const u8 {
        self.bytes.as_ptr()
    }
}

/// Fills `cache` with `DLFM_CACHE` (default `dlcache.dat`) and `journal`
/// with the same path plus `.journal`. False if either is too long.
pub fn cache_paths(stack: &InitialStack, cache: &mut PathBuf, journal: &mut PathBuf) -> bool {
    let name = match stack.getenv(b"DLFM_CACHE") {
        Some(v) if !v.is_empty() => v,
        _ => b"dlcache.dat",
    };
    cache.set(name) && journal.set(name) && journal.push(b".journal")
}

/// Makes a relative `DLFM_CACHE` absolute for the processes this one starts:
/// the environment's entry is pointed at `entry`, which holds
/// `DLFM_CACHE=<working directory>/<value>`. A child that changes directory
/// before it execs then still finds the pilot's journal (or the cache)
/// instead of missing it. The program sees the same file under an absolute
/// name. Nothing changes if the value is absolute, the variable is unset, or
/// the new entry does not fit.
pub fn absolute_cache_for_children(stack: &InitialStack, entry: &mut PathBuf) {
    let Some((slot, value)) = stack.env_slot(b"DLFM_CACHE") else {
        return;
    };
    if value.is_empty() || value.first() == Some(&b'/') {
        return;
    }
    if !(entry.set(b"DLFM_CACHE=") && entry.push_absolute(value)) {
        return;
    }
    // SAFETY: `slot` is the environment's pointer to this variable on the
    // initial stack (writable, like all of the stack); `entry` lives in the
    // wrapper's static state for the life of the process.
    unsafe { slot.write(entry.as_ptr()) };
}
