//! FMCaching's way in: ld.so's own read of `/etc/ld.so.preload`, answered
//! with a file that names the FMCaching interposer (`libdlfm_fm.so`), so
//! that ld.so loads it into the program like any preloaded library. No
//! environment variable and no file on disk is needed, and nothing changes
//! for a process in which FMCaching is off.
//!
//! ld.so (glibc 2.36 `rtld.c`) asks `access("/etc/ld.so.preload", R_OK)`;
//! only when that succeeds does it read the file whole (`open`, `fstat`,
//! `mmap`, `close`) and load each name it lists. Where the real file exists
//! this module stays out of the way (FMCaching is off for the process and
//! the trace says so): the system's preloads keep working as they are.
//!
//! The synthetic file is one descriptor, [`PRELOAD_FD`], above the replay
//! table's virtual descriptors (so above any real descriptor; see
//! `dlfm_runtime::vfd`); it answers `fstat`, `mmap` (an anonymous
//! mapping holding the content) and `close`, which is all ld.so does with it.

use dlfm_runtime::fixed_path::FixedPath;
use dlfm_runtime::keys;
use dlfm_runtime::vfd::{VFD_BASE, VFD_SLOTS};

use crate::lookup;
use crate::sys::{self, nr};

/// The file ld.so reads its preload list from, NUL-terminated.
pub const PRELOAD_FILE_C: &core::ffi::CStr = c"/etc/ld.so.preload";
/// The same, without its NUL.
pub const PRELOAD_FILE: &[u8] = PRELOAD_FILE_C.to_bytes();
/// Why FMCaching is off when the interposer cannot load into this process
/// (the pilot read its ELF header; replay read the cached one).
pub const NOT_FOR_THIS_MACHINE: &[u8] = b"the interposer is not built for this machine";
/// The synthetic file's descriptor.
pub const PRELOAD_FD: i32 = VFD_BASE + VFD_SLOTS as i32;

/// Where FMCaching's injection stands in this process.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// No interposer to preload (DLCaching only, or not started).
    Off,
    /// An interposer is named; ld.so has not asked yet.
    Armed,
    /// `access` was answered: the open comes next.
    Answered,
    /// The synthetic file is open.
    Open,
    /// ld.so read the list; nothing more to do.
    Done,
    /// The real `/etc/ld.so.preload` exists: left alone, FMCaching off.
    RealFileExists,
}

/// The interposer's path and the injection's progress.
pub struct Preload {
    /// The interposer ld.so is told to load.
    pub fm_path: FixedPath,
    /// Where the injection stands.
    pub stage: Stage,
}

/// What `answer` did with a call.
pub enum Preloaded {
    /// Not a call of the injection: handle it as usual.
    No,
    /// Answered with this result.
    Served(i64),
}

impl Preload {
    /// Nothing to preload.
    pub const EMPTY: Preload = Preload {
        fm_path: FixedPath::EMPTY,
        stage: Stage::Off,
    };

    /// Names the interposer to preload (an empty path leaves it off).
    pub fn arm(&mut self, fm_path: &[u8]) {
        if !fm_path.is_empty() && self.fm_path.set(fm_path) {
            self.stage = Stage::Armed;
        }
    }

    /// Answers ld.so's preload-file calls while the injection is under way.
    /// `real_file_exists` says whether `/etc/ld.so.preload` exists (asked
    /// only when ld.so asks for it: replay answers it from the cache, record
    /// from the kernel).
    pub fn answer(
        &mut self,
        nr: u64,
        a: &[u64; 6],
        real_file_exists: impl FnOnce() -> bool,
    ) -> Preloaded {
        match (self.stage, nr as u32) {
            (Stage::Armed, sys::ACCESS)
                if is_preload_file(lookup::access_key(a, None).map(|(path, _)| path)) =>
            {
                if real_file_exists() {
                    self.stage = Stage::RealFileExists;
                    return Preloaded::No;
                }
                self.stage = Stage::Answered;
                Preloaded::Served(0)
            }
            (Stage::Answered, nr::__NR_openat) if is_preload_file(lookup::open_key(a, None)) => {
                self.stage = Stage::Open;
                Preloaded::Served(i64::from(PRELOAD_FD))
            }
            (Stage::Open, _) => self.on_open_file(nr, a),
            _ => Preloaded::No,
        }
    }

    /// Calls on the synthetic file's descriptor.
    fn on_open_file(&mut self, nr: u64, a: &[u64; 6]) -> Preloaded {
        let ours = |fd: u64| fd as i32 == PRELOAD_FD;
        match nr as u32 {
            nr::__NR_newfstatat if ours(a[0]) && lookup::fstat_fd(a).is_some() => {
                // SAFETY: ld.so passes a buffer for a whole struct stat.
                let st = unsafe { &mut *(a[2] as *mut nr::stat) };
                // SAFETY: all-zero bytes are a valid `stat` (integers only).
                *st = unsafe { core::mem::zeroed() };
                st.st_mode = nr::S_IFREG | 0o444;
                st.st_nlink = 1;
                st.st_size = self.content_len() as i64;
                st.st_blksize = 4096;
                Preloaded::Served(0)
            }
            nr::__NR_mmap if ours(a[4]) && a[3] as u32 & nr::MAP_ANONYMOUS == 0 => {
                Preloaded::Served(self.map(a[1], a[2]))
            }
            nr::__NR_close if ours(a[0]) => {
                self.stage = Stage::Done;
                Preloaded::Served(0)
            }
            _ => Preloaded::No,
        }
    }

    /// The list: the interposer's path and a newline.
    fn content_len(&self) -> usize {
        self.fm_path.as_bytes().len() + 1
    }

    /// Copies the list into `dst` (at most `dst.len()` bytes).
    fn copy_content(&self, dst: &mut [u8]) -> usize {
        let path = self.fm_path.as_bytes();
        let n = dlfm_bytes::copy(dst, path);
        match dst.get_mut(n) {
            Some(b) if n == path.len() => {
                *b = b'\n';
                n + 1
            }
            _ => n,
        }
    }

    /// `mmap(NULL, len, prot, MAP_PRIVATE, PRELOAD_FD, 0)`: an anonymous
    /// mapping holding the list, then given the protection asked for.
    fn map(&self, len: u64, prot: u64) -> i64 {
        // SAFETY: a fresh private anonymous mapping; no memory of ours is
        // touched by the call.
        let addr = unsafe {
            sys::syscall6(
                u64::from(nr::__NR_mmap),
                [
                    0,
                    len,
                    u64::from(nr::PROT_READ | nr::PROT_WRITE),
                    u64::from(nr::MAP_PRIVATE | nr::MAP_ANONYMOUS),
                    u64::MAX,
                    0,
                ],
            )
        };
        if sys::errno_of(addr).is_some() {
            return addr;
        }
        // SAFETY: the mapping just made is `len` writable bytes.
        let dst = unsafe { core::slice::from_raw_parts_mut(addr as *mut u8, len as usize) };
        self.copy_content(dst);
        // SAFETY: changes only the protection of the mapping made above.
        unsafe { sys::syscall3(nr::__NR_mprotect, addr as u64, len, prot) };
        addr
    }
}

/// Whether a lookup's key is the preload file.
fn is_preload_file(key: Option<&[u8]>) -> bool {
    key.is_some_and(|p| keys::is_absolute(p) && dlfm_bytes::equal(p, PRELOAD_FILE))
}
