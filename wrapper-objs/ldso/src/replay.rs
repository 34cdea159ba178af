//! Replay (read-cache): answers recorded lookups from `dlcache.dat`.
//!
//! The cache's metadata (header, index, stats) is opened once at ld.so's
//! first file call and mapped read-only: from the node's copy
//! (`dlfm_cache::node_files`: `<copy>/cache`) when staging made one, else
//! from the shared cache file. A recorded `open` returns a virtual
//! descriptor ([`dlfm_runtime::vfd`]); `fstat` and `lseek` on it are
//! answered from the metadata. With a node copy the library's bytes come
//! from its own node-local file, `<copy>/root/<its canonical path>`, opened
//! behind the virtual descriptor: `read`/`pread64` read it, `mmap` maps it,
//! so `/proc/self/maps` names a file ending with the library's own path and
//! the node's processes share its pages. Without one they come from the
//! cache file (`pread64` at the file's offset in it; `mmap` of the same
//! pages, zero copy). `close` frees it. A lookup the cache does not hold
//! goes to the kernel (a miss).

use dlfm_cache::layout::{self, IdKind, Outcome, HEADER_LEN, STAT_SIZE};
use dlfm_cache::node_files::ContentId;
use dlfm_cache::node_files::{TREE_CACHE, TREE_ROOT};
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
    /// The cache's file: the shared cache, or the node copy's metadata.
    data: OwnFile,
    vfds: VfdTable,
    fm: Result<Option<&'static [u8]>, &'static [u8]>,
    /// With a node copy, `<copy>/root`, under which each file lies at its
    /// canonical path; empty without one.
    root: FixedPath,
    /// A node-local file's path, being built.
    scratch: FixedPath,
    /// The node copy's metadata file, `<copy>/cache`.
    metadata: FixedPath,
    /// The kernel's page size (`AT_PAGESZ`), which mappings from the cache
    /// file must be aligned to (0 until `set_page_size`: the wrapper's state
    /// starts as zeros, `dlpatch --embed` carries no initialised data).
    page: u64,
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
        root: FixedPath::EMPTY,
        scratch: FixedPath::EMPTY,
        metadata: FixedPath::EMPTY,
        page: 0,
    };

    /// Starts replay from the node's copy at `copy` (a directory: its
    /// metadata in `cache`, its files under `root`); see [`Replayer::start`].
    pub fn start_copy(&mut self, copy: &FixedPath, ids: &Ids, euid: u32) -> Result<(), StartError> {
        if !(self.metadata.set(copy.as_bytes())
            && self.metadata.push(b"/")
            && self.metadata.push(TREE_CACHE.as_bytes())
            && self.root.set(copy.as_bytes())
            && self.root.push(b"/")
            && self.root.push(TREE_ROOT.as_bytes()))
        {
            return Err((OffReason::PathTooLong, b""));
        }
        // The path moves nowhere: `open_and_check` reads it through `self`.
        let r = self.open_and_check(None, ids, euid, true);
        if r.is_err() {
            self.root.truncate(0);
        }
        r
    }

    /// Opens the cache at `path`, maps its metadata and checks it is for this
    /// program and ld.so.
    /// The cache must be owned by `euid` (this process's effective user) or
    /// by root, and writable by nobody else: replay trusts its bytes.
    pub fn start(&mut self, path: &FixedPath, ids: &Ids, euid: u32) -> Result<(), StartError> {
        self.root.truncate(0);
        if self.page > layout::MAP_ALIGN {
            return Err((OffReason::PageTooLarge, b""));
        }
        self.open_and_check(Some(path), ids, euid, false)
    }

    /// Takes the kernel's page size (`AT_PAGESZ`; 0 or absent: 4 KiB).
    pub fn set_page_size(&mut self, page: Option<u64>) {
        self.page = page.filter(|&p| p != 0).unwrap_or(layout::PAGE);
    }

    /// [`Replayer::start`]'s work on `path` (None: the node copy's
    /// metadata file); `metadata_only`: the file holds the cache's metadata
    /// alone (a node copy's), so its length is the metadata's and the
    /// cache's is the header's.
    fn open_and_check(
        &mut self,
        path: Option<&FixedPath>,
        ids: &Ids,
        euid: u32,
        metadata_only: bool,
    ) -> Result<(), StartError> {
        let path = path.unwrap_or(&self.metadata);
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
            map_and_check(fd, status.size, ids, metadata_only)
        };
        match checked {
            Ok(cache) => {
                self.cache = Some(cache);
                // Decided after the move: borrowing `cache` before it would
                // make the compiler copy it with a `memcpy` call.
                self.fm = match self.cache.as_ref() {
                    Some(c) => loadable_fm(c, fd, &self.root, &mut self.scratch),
                    None => Ok(None),
                };
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

    /// Decides how to handle system call `nr` with arguments `a`; a
    /// relative path's key is joined to the working directory in `rel`.
    pub fn answer(&mut self, nr: u64, a: &[u64; 6], rel: &mut FixedPath) -> Answer {
        let Some(cache) = self.cache.as_ref() else {
            return Answer::Pass;
        };
        match nr as u32 {
            nr::__NR_openat => match lookup::open_key(a, Some(&mut *rel)) {
                Some(path) => match cache.lookup(path).map(|e| e.open) {
                    Some(Outcome::Err(errno)) => Answer::Served(-i64::from(errno)),
                    Some(Outcome::Ok(file)) => match cache.file(file) {
                        Some(f) if self.vfds.has_room() => {
                            let fd = if self.root.is_empty() {
                                // Once per library: is the cache's
                                // descriptor still ours?
                                if self.data.ensure().is_none() {
                                    return Answer::Missed;
                                }
                                -1
                            } else {
                                // The library's own node-local file; if it
                                // cannot be opened, the kernel opens the
                                // real one.
                                match open_node_file(&self.root, &mut self.scratch, f.real_path) {
                                    Some(fd) => fd,
                                    None => return Answer::Missed,
                                }
                            };
                            match self.vfds.open(file, fd) {
                                Some(vfd) => Answer::Served(i64::from(vfd)),
                                None => Answer::Missed,
                            }
                        }
                        _ => Answer::Missed,
                    },
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
                } else if let Some(path) = lookup::stat_key(a, Some(&mut *rel)) {
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
            sys::ACCESS => match lookup::access_key(a, Some(rel)) {
                Some((path, _)) => match cache.lookup(path).map(|e| e.access) {
                    Some(Outcome::Err(errno)) => Answer::Served(-i64::from(errno)),
                    Some(Outcome::Ok(_)) => Answer::Served(0),
                    _ => Answer::Missed,
                },
                None => Answer::Pass,
            },
            nr::__NR_read => self.on_vfd(a[0], |slot, file, data| {
                let n = read_slot(slot, data, file, slot.pos, a[1], a[2]);
                if n > 0 {
                    slot.pos += n as u64;
                }
                n
            }),
            nr::__NR_pread64 => self.on_vfd(a[0], |slot, file, data| {
                read_slot(slot, data, file, a[3], a[1], a[2])
            }),
            nr::__NR_lseek => self.on_vfd(a[0], |slot, file, _| {
                slot.seek(file.size, a[1] as i64, a[2] as u32)
            }),
            nr::__NR_close => match self.vfds.get(a[0] as i32 as i64) {
                Some(slot) => {
                    if slot.fd >= 0 {
                        sys::close(slot.fd);
                    }
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

    /// `mmap` of a virtual descriptor maps the library's node-local file, or
    /// the same bytes of the cache file.
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
        if slot.fd >= 0 {
            // SAFETY: the same call ld.so asked for, on the library's
            // node-local copy (the same bytes) instead of the library.
            return Answer::Served(unsafe {
                sys::syscall6(
                    nr::__NR_mmap as u64,
                    [a[0], a[1], a[2], a[3], slot.fd as u64, offset],
                )
            });
        }
        let Some(file) = cache.file(slot.file) else {
            return Answer::Served(-i64::from(errno::EIO));
        };
        let at = match vfd::map_at(file.data_off, offset, self.page.max(layout::PAGE)) {
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

/// Maps the metadata of the cache behind `fd` (`size` bytes long: the
/// whole cache, or with `metadata_only` its metadata alone, whose header
/// then gives the cache's length) and checks it is for us.
fn map_and_check(
    fd: i32,
    size: u64,
    ids: &Ids,
    metadata_only: bool,
) -> Result<Cache<'static>, StartError> {
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
    let file_len = if metadata_only {
        match ContentId::of_header(&header) {
            Some(id) if Cache::meta_len(&header) == Some(size) => id.file_len,
            _ => {
                return Err((
                    OffReason::CacheInvalid,
                    b"a node copy's metadata is incomplete",
                ))
            }
        }
    } else {
        size
    };
    let checked = match Cache::parse(meta, file_len) {
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
/// the cache, read through `fd`, or in its node-local file under `root` if
/// that is not empty: no lookup on the shared file system) and it is built
/// for this machine.
fn loadable_fm(
    cache: &Cache<'static>,
    fd: i32,
    root: &FixedPath,
    scratch: &mut FixedPath,
) -> Result<Option<&'static [u8]>, &'static [u8]> {
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
    let dst = head.as_mut_ptr() as u64;
    let read = if root.is_empty() {
        read_at(fd, &file, 0, dst, head.len() as u64)
    } else {
        match open_node_file(root, scratch, file.real_path) {
            Some(node) => {
                let n = read_file_at(node, &file, 0, dst, head.len() as u64);
                sys::close(node);
                n
            }
            None => -1,
        }
    };
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

/// [`read_at`] from the file's own node-local copy, open on `fd`.
fn read_file_at(fd: i32, file: &FileRef<'_>, pos: u64, dst: u64, count: u64) -> i64 {
    let n = vfd::read_len(file.size, pos, count);
    if n == 0 {
        return 0;
    }
    // SAFETY: as in read_at; the offset lies inside the file.
    unsafe { sys::pread(fd, dst as *mut u8, n as usize, pos) }
}

/// A read through virtual descriptor `slot`: from its node-local file, or
/// from the cache file through `data`.
fn read_slot(
    slot: &Slot,
    data: &mut OwnFile,
    file: &FileRef<'_>,
    pos: u64,
    dst: u64,
    count: u64,
) -> i64 {
    if slot.fd >= 0 {
        read_file_at(slot.fd, file, pos, dst, count)
    } else {
        data.with(|fd| read_at(fd, file, pos, dst, count))
    }
}

/// Opens the node-local copy of the file whose canonical path is `real`,
/// under the node copy's `root` (`scratch` is room for the path).
fn open_node_file(root: &FixedPath, scratch: &mut FixedPath, real: &[u8]) -> Option<i32> {
    if !(scratch.set(root.as_bytes()) && scratch.push(real)) {
        return None;
    }
    let flags = nr::O_RDONLY | nr::O_CLOEXEC | nr::O_NOFOLLOW;
    // SAFETY: a FixedPath is NUL-terminated.
    let fd = unsafe { sys::open(scratch.as_ptr(), flags, 0) };
    sys::errno_of(fd).is_none().then_some(fd as i32)
}
