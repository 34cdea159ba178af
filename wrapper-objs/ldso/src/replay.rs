//! Replay (read-cache): answers recorded lookups from `dlcache.dat`.
//!
//! The cache file is opened once at ld.so's first file call and its metadata
//! (header, index, stats) mapped read-only. A recorded `open` returns a
//! virtual descriptor ([`dlfm_runtime::vfd`]); `fstat` and `lseek` on it are answered
//! from the metadata; `read` and `pread64` read the library's bytes from the
//! cache file (`pread64` on the cache descriptor: only the cache file is
//! touched, and no page of it stays mapped in the process); `mmap` maps the
//! same pages of the cache file (zero copy: every process on a node shares
//! them in the page cache); `close` frees it. A lookup the cache does not
//! hold goes to the kernel (a miss).

use dlfm_cache::layout::{IdKind, Outcome, HEADER_LEN, STAT_SIZE};
use dlfm_cache::read::{Cache, FileRef};
use dlfm_cache::stat::{self, KERNEL_STAT_SIZE};
use dlfm_runtime::elf;

use dlfm_runtime::fixed_path::FixedPath;
use dlfm_runtime::vfd::{self, Slot, VfdTable};

use crate::ident::Ids;
use crate::lookup;
use crate::off_reason::OffReason;
use crate::own_file::{OpenError, OwnFile};
use crate::preload::{NOT_FOR_THIS_MACHINE, PRELOAD_FILE};
use crate::sys::{self, errno, nr};

/// How replay handles one call.
pub enum Answer {
    /// Answered from the cache: return this to ld.so.
    Served(i64),
    /// A lookup the cache does not hold: the kernel must answer.
    Missed,
    /// Not a lookup of a recorded object: the kernel must answer.
    Pass,
}

/// The cache (its mapped metadata) and the virtual descriptors open on it.
pub struct Replayer {
    cache: Option<Cache<'static>>,
    data: OwnFile,
    vfds: VfdTable,
    fm: Result<Option<&'static [u8]>, &'static [u8]>,
}

/// Why `start` failed: the reason, and a detail for the trace line.
pub type StartError = (OffReason, &'static [u8]);

impl Replayer {
    /// Nothing mapped.
    pub const EMPTY: Replayer = Replayer {
        cache: None,
        data: OwnFile::EMPTY,
        vfds: VfdTable::EMPTY,
        fm: Ok(None),
    };

    /// Opens the cache at `path`, maps its metadata and checks it is for this
    /// program and ld.so.
    /// The cache must be owned by `euid` (this process's effective user) or
    /// by root, and writable by nobody else: replay trusts its bytes.
    pub fn start(&mut self, path: &FixedPath, ids: &Ids, euid: u32) -> Result<(), StartError> {
        let (fd, status) = match self.data.open(path, nr::O_RDONLY) {
            Ok(opened) => opened,
            Err(OpenError::Open) => return Err((OffReason::CacheOpen, b"")),
            Err(OpenError::NotRegular) => return Err((OffReason::CacheNotRegular, b"")),
        };
        let checked = if status.uid != euid && status.uid != 0 {
            Err((OffReason::CacheUntrusted, b"owned by another user" as &[u8]))
        } else if status.mode & (nr::S_IWGRP | nr::S_IWOTH) != 0 {
            Err((OffReason::CacheUntrusted, b"writable by others" as &[u8]))
        } else {
            map_and_check(fd, status.size, ids)
        };
        match checked {
            Ok(cache) => {
                self.cache = Some(cache);
                // Decided after the move: borrowing `cache` before it would
                // make the compiler copy it with a `memcpy` call.
                self.fm = self.cache.as_ref().map_or(Ok(None), |c| loadable_fm(c, fd));
                Ok(())
            }
            Err(e) => {
                self.data.close();
                Err(e)
            }
        }
    }

    /// The FMCaching interposer to preload (decided when replay started):
    /// the one the cache names, if the pilot loaded it and it is built for
    /// this machine; else None, or why not for the trace.
    pub fn loadable_fm_path(&self) -> Result<Option<&'static [u8]>, &'static [u8]> {
        self.fm
    }

    /// Whether the pilot found `/etc/ld.so.preload` (None: not recorded).
    pub fn preload_file_existed(&self) -> Option<bool> {
        match self.cache.as_ref()?.lookup(PRELOAD_FILE)?.access {
            Outcome::Ok(_) => Some(true),
            Outcome::Err(_) => Some(false),
            Outcome::NotRecorded => None,
        }
    }

    /// Decides how to handle system call `nr` with arguments `a`.
    pub fn answer(&mut self, nr: u64, a: &[u64; 6]) -> Answer {
        let Some(cache) = self.cache.as_ref() else {
            return Answer::Pass;
        };
        match nr as u32 {
            nr::__NR_openat => match lookup::open_key(a) {
                Some(path) => match cache.lookup(path).map(|e| e.open) {
                    Some(Outcome::Err(errno)) => Answer::Served(-i64::from(errno)),
                    Some(Outcome::Ok(file)) if cache.file(file).is_some() => {
                        // Once per library: is the cache's descriptor still ours?
                        if self.data.ensure().is_none() {
                            return Answer::Missed;
                        }
                        match self.vfds.open(file) {
                            Some(vfd) => Answer::Served(i64::from(vfd)),
                            None => Answer::Missed,
                        }
                    }
                    _ => Answer::Missed,
                },
                None => Answer::Pass,
            },
            nr::__NR_newfstatat => {
                if let Some(fd) = lookup::fstat_fd(a) {
                    match self.vfds.get(fd) {
                        Some(slot) => {
                            let stat = cache.file(slot.file).and_then(|f| cache.stat(f.stat_index));
                            Answer::Served(copy_stat(stat, a[2]))
                        }
                        None => Answer::Pass,
                    }
                } else if let Some(path) = lookup::stat_key(a) {
                    match cache.lookup(path).map(|e| e.stat) {
                        Some(Outcome::Err(errno)) => Answer::Served(-i64::from(errno)),
                        Some(Outcome::Ok(index)) => match cache.stat(index) {
                            Some(stat) => Answer::Served(copy_stat(Some(stat), a[2])),
                            None => Answer::Missed,
                        },
                        _ => Answer::Missed,
                    }
                } else {
                    Answer::Pass
                }
            }
            sys::ACCESS => match lookup::access_key(a) {
                Some((path, _)) => match cache.lookup(path).map(|e| e.access) {
                    Some(Outcome::Err(errno)) => Answer::Served(-i64::from(errno)),
                    Some(Outcome::Ok(_)) => Answer::Served(0),
                    _ => Answer::Missed,
                },
                None => Answer::Pass,
            },
            nr::__NR_read => self.on_vfd(a[0], |slot, file, data| {
                let n = data.with(|fd| read_at(fd, file, slot.pos, a[1], a[2]));
                if n > 0 {
                    slot.pos += n as u64;
                }
                n
            }),
            nr::__NR_pread64 => self.on_vfd(a[0], |_, file, data| {
                data.with(|fd| read_at(fd, file, a[3], a[1], a[2]))
            }),
            nr::__NR_lseek => self.on_vfd(a[0], |slot, file, _| {
                slot.seek(file.size, a[1] as i64, a[2] as u32)
            }),
            nr::__NR_close => match self.vfds.get(a[0] as i32 as i64) {
                Some(slot) => {
                    slot.used = false;
                    Answer::Served(0)
                }
                None => Answer::Pass,
            },
            nr::__NR_mmap => self.mmap(a),
            _ => Answer::Pass,
        }
    }

    /// Runs `f` on the slot and the cache's file behind virtual descriptor
    /// `fd`, with the descriptor the file's bytes are read through.
    fn on_vfd(
        &mut self,
        fd: u64,
        f: impl FnOnce(&mut Slot, &FileRef<'_>, &mut OwnFile) -> i64,
    ) -> Answer {
        let Replayer {
            cache, data, vfds, ..
        } = self;
        let Some(cache) = cache.as_ref() else {
            return Answer::Pass;
        };
        match vfds.get(fd as i32 as i64) {
            Some(slot) => match cache.file(slot.file) {
                Some(file) => Answer::Served(f(slot, &file, data)),
                None => Answer::Served(-i64::from(errno::EIO)),
            },
            None => Answer::Pass,
        }
    }

    /// `mmap` of a virtual descriptor maps the same bytes of the cache file.
    fn mmap(&mut self, a: &[u64; 6]) -> Answer {
        let flags = a[3] as u32;
        if flags & nr::MAP_ANONYMOUS != 0 {
            return Answer::Pass;
        }
        let Some(cache) = self.cache.as_ref() else {
            return Answer::Pass;
        };
        let Some(slot) = self.vfds.get(a[4] as i32 as i64) else {
            return Answer::Pass;
        };
        let offset = a[5];
        let Some(file) = cache.file(slot.file) else {
            return Answer::Served(-i64::from(errno::EIO));
        };
        let at = match vfd::map_at(file.data_off, offset) {
            Ok(at) => at,
            Err(e) => return Answer::Served(e),
        };
        // SAFETY: the same call ld.so asked for, on the cache file instead of
        // the library: a private mapping of bytes identical to the library's.
        Answer::Served(self.data.with(|fd| unsafe {
            sys::syscall6(
                nr::__NR_mmap as u64,
                [a[0], a[1], a[2], a[3], fd as u64, at],
            )
        }))
    }
}

/// Maps the metadata of the cache behind `fd` (`size` bytes long) and
/// checks it is for us.
fn map_and_check(fd: i32, size: u64, ids: &Ids) -> Result<Cache<'static>, StartError> {
    // The header says how long the metadata is; map that much (never more
    // than the file), and let the reader judge the rest.
    let mut header = [0u8; HEADER_LEN];
    // SAFETY: `header` is HEADER_LEN writable bytes.
    let got = unsafe { sys::pread(fd, header.as_mut_ptr(), HEADER_LEN, 0) };
    let meta_len = match Cache::meta_len(&header) {
        Some(m) if got == HEADER_LEN as i64 && m >= HEADER_LEN as u64 => m.min(size) as usize,
        _ => got.max(0) as usize,
    };
    let meta: &'static [u8] = if meta_len == 0 {
        &[]
    } else {
        let addr = sys::map_readonly(fd, meta_len);
        if sys::errno_of(addr).is_some() {
            return Err((OffReason::CacheMap, b"mmap failed"));
        }
        // SAFETY: a fresh read-only mapping of `meta_len` bytes, never
        // unmapped while replay uses it.
        unsafe { core::slice::from_raw_parts(addr as *const u8, meta_len) }
    };
    let checked = match Cache::parse(meta, size) {
        Err(e) => Err((OffReason::CacheInvalid, e.reason())),
        Ok(cache) if !cache.has_id(IdKind::Program, ids.program.as_bytes()) => {
            Err((OffReason::OtherProgram, b"" as &[u8]))
        }
        Ok(cache) if !cache.has_id(IdKind::Ldso, ids.ldso.as_bytes()) => {
            Err((OffReason::OtherLdso, b"" as &[u8]))
        }
        Ok(cache) => {
            // The checksum pass touched every page of the metadata; let go
            // of them so that only the pages lookups use stay resident. A
            // private read-only file mapping loses nothing by this.
            // SAFETY: the mapping made above.
            unsafe { sys::madvise(meta.as_ptr(), meta.len(), nr::MADV_DONTNEED) };
            return Ok(cache);
        }
    };
    if !meta.is_empty() {
        // SAFETY: the mapping made above; nothing refers to it any more.
        unsafe { sys::unmap(meta.as_ptr(), meta.len()) };
    }
    checked
}

/// The interposer `cache` names, if the pilot loaded it (its bytes are in
/// the cache, read through `fd` with no file-system lookup) and it is built
/// for this machine.
fn loadable_fm(cache: &Cache<'static>, fd: i32) -> Result<Option<&'static [u8]>, &'static [u8]> {
    let Some(fm) = cache.fm_path() else {
        return Ok(None);
    };
    let Some(file) = cache.lookup(fm).and_then(|e| match e.open {
        Outcome::Ok(i) => cache.file(i),
        _ => None,
    }) else {
        return Err(b"the pilot did not load the interposer");
    };
    let mut head = [0u8; elf::EHDR];
    let read = read_at(fd, &file, 0, head.as_mut_ptr() as u64, head.len() as u64);
    if read != head.len() as i64 || !elf::built_for_this_machine(&head) {
        return Err(NOT_FOR_THIS_MACHINE);
    }
    Ok(Some(fm))
}

/// Writes the recorded `stat` to ld.so's buffer at `dst`, in the kernel's
/// layout of this target.
fn copy_stat(stat: Option<&[u8]>, dst: u64) -> i64 {
    match stat.and_then(|s| <&[u8; STAT_SIZE]>::try_from(s).ok()) {
        Some(stored) => {
            // SAFETY: ld.so passes a buffer for a whole struct stat.
            let out = unsafe { core::slice::from_raw_parts_mut(dst as *mut u8, KERNEL_STAT_SIZE) };
            stat::load(stored, out);
            0
        }
        None => -i64::from(errno::EIO),
    }
}

/// Reads up to `count` bytes of `file` from position `pos` into ld.so's
/// buffer `dst`, from the cache file; returns the count read (0 at or past
/// the end, as `read` does) or `-errno`.
fn read_at(cache_fd: i32, file: &FileRef<'_>, pos: u64, dst: u64, count: u64) -> i64 {
    let n = vfd::read_len(file.size, pos, count);
    if n == 0 {
        return 0;
    }
    // SAFETY: ld.so passes a buffer of at least `count` writable bytes; `n`
    // is no more, and the offset lies inside the file's bytes in the cache.
    unsafe { sys::pread(cache_fd, dst as *mut u8, n as usize, file.data_off + pos) }
}
