//! The node's copy of a cache as a tree (`dlfm_cache::node_files`): the
//! cache's metadata in `<copy>/cache` and every stored file at
//! `<copy>/root/<its canonical path>`, so that a library mapped from it
//! shows in `/proc/self/maps` under a name ending with its own path, and the
//! node's processes share one copy of each file in the page cache.
//!
//! [`build`] writes a copy from a whole cache open on a descriptor (the
//! shared cache, or the node's broadcast `.dat`, whose pages it frees as it
//! goes); [`remove`] deletes one. Both run in the stager, holding the node's
//! lock, before ld.so goes on: raw system calls, no allocation, bounded
//! stack (the wrapper's rules).

use dlfm_cache::layout::HEADER_LEN;
use dlfm_cache::node_files::{TREE_CACHE, TREE_ROOT};
use dlfm_cache::read::Cache;
use dlfm_runtime::fixed_path::FixedPath;
use dlfm_runtime::scope::parent;

use crate::own_file::open_regular_mode;
use crate::stager::Skip;
use crate::sys::{self, errno, nr};

/// What [`build`] wrote.
pub struct Built {
    /// Bytes of file data copied (the metadata included).
    pub bytes: u64,
    /// Files written.
    pub files: u32,
}

/// Writes the copy of the cache open on `src` (`file_len` bytes, as its
/// header says) into the directory `dir` (made, or reused after a stager
/// that died). With `punch`, each range copied from `src` is freed in it
/// (`src` is node-local memory that the copy replaces). `scratch` is room
/// for paths. Fails without room (checked first against the space free),
/// on any write error, or if the cache does not parse.
pub fn build(
    dir: &FixedPath,
    scratch: &mut FixedPath,
    src: i32,
    file_len: u64,
    punch: bool,
    euid: u32,
) -> Result<Built, Skip> {
    let meta = map_meta(src, file_len)?;
    let r = build_from(dir, scratch, src, meta, file_len, punch, euid);
    // SAFETY: the mapping `map_meta` made; nothing refers to it after this.
    unsafe { sys::unmap(meta.as_ptr(), meta.len()) };
    r
}

fn build_from(
    dir: &FixedPath,
    scratch: &mut FixedPath,
    src: i32,
    meta: &'static [u8],
    file_len: u64,
    punch: bool,
    euid: u32,
) -> Result<Built, Skip> {
    let cache = Cache::parse(meta, file_len).map_err(|_| Skip::Shared)?;
    let mut need = meta.len() as u64;
    for i in 0..cache.files() {
        need = need.saturating_add(cache.file(i).map_or(0, |f| f.size));
    }
    make_dir(dir, 0o700, euid)?;
    let dir_fd = open_dir(dir).ok_or(Skip::Copy(errno::EACCES))?;
    let free = sys::free_bytes(dir_fd);
    sys::close(dir_fd);
    if free.is_some_and(|f| f < need) {
        return Err(Skip::NoSpace);
    }
    // The metadata.
    if !(scratch.set(dir.as_bytes()) && scratch.push(b"/") && scratch.push(TREE_CACHE.as_bytes())) {
        return Err(Skip::PathTooLong);
    }
    write_file(scratch, src, 0, meta.len() as u64, euid)?;
    // The files, each under its canonical path.
    if !(scratch.set(dir.as_bytes()) && scratch.push(b"/") && scratch.push(TREE_ROOT.as_bytes())) {
        return Err(Skip::PathTooLong);
    }
    let root_len = scratch.len();
    make_dir(scratch, 0o755, euid)?;
    let mut made: &[u8] = b"";
    let mut built = Built {
        bytes: meta.len() as u64,
        files: 0,
    };
    for i in 0..cache.files() {
        let f = cache.file(i).ok_or(Skip::Shared)?;
        // Its directories, unless the previous file's were the same.
        let dirs = parent(f.real_path).unwrap_or(b"/");
        if !dlfm_bytes::equal(dirs, made) {
            make_parents(scratch, root_len, f.real_path, euid)?;
            made = dirs;
        }
        scratch.truncate(root_len);
        if !scratch.push(f.real_path) {
            return Err(Skip::PathTooLong);
        }
        write_file(scratch, src, f.data_off, f.size, euid)?;
        if punch {
            // Best effort: the copy is right either way.
            let page = dlfm_cache::layout::PAGE;
            sys::punch_hole(src, f.data_off, f.size.div_ceil(page) * page);
        }
        built.bytes += f.size;
        built.files += 1;
    }
    Ok(built)
}

/// Maps the metadata of the cache open on `src` (its header says how
/// much).
fn map_meta(src: i32, file_len: u64) -> Result<&'static [u8], Skip> {
    let mut header = [0u8; HEADER_LEN];
    // SAFETY: `header` is HEADER_LEN writable bytes.
    let got = unsafe { sys::pread(src, header.as_mut_ptr(), HEADER_LEN, 0) };
    let meta_len = match Cache::meta_len(&header) {
        Some(m) if got == HEADER_LEN as i64 && m >= HEADER_LEN as u64 && m <= file_len => m,
        _ => return Err(Skip::Shared),
    };
    let addr = sys::map_readonly(src, meta_len as usize);
    if sys::errno_of(addr).is_some() {
        return Err(Skip::Shared);
    }
    // SAFETY: a fresh read-only mapping of `meta_len` bytes, unmapped by
    // `build` only after its last use.
    Ok(unsafe { core::slice::from_raw_parts(addr as *const u8, meta_len as usize) })
}

/// Makes the directories of `real` under the root (`path`'s first
/// `root_len` bytes), each 0755; an existing one must be a directory of
/// `euid`'s.
fn make_parents(path: &mut FixedPath, root_len: usize, real: &[u8], euid: u32) -> Result<(), Skip> {
    for (end, &b) in real.iter().enumerate().skip(1) {
        if b == b'/' {
            path.truncate(root_len);
            if !path.push(real.get(..end).unwrap_or(real)) {
                return Err(Skip::PathTooLong);
            }
            make_dir(path, 0o755, euid)?;
        }
    }
    Ok(())
}

/// Makes directory `path` with `mode`; one that exists must be a real
/// directory (not a link) owned by `euid`.
fn make_dir(path: &FixedPath, mode: u32, euid: u32) -> Result<(), Skip> {
    match sys::errno_of(sys::mkdir(path, mode)) {
        None => Ok(()),
        Some(errno::EEXIST) => {
            let fd = open_dir(path).ok_or(Skip::Copy(errno::ENOTDIR))?;
            let owner = sys::status(fd, false).map(|s| s.uid);
            sys::close(fd);
            if owner == Some(euid) {
                Ok(())
            } else {
                Err(Skip::Copy(errno::EPERM))
            }
        }
        Some(errno::ENOSPC) | Some(errno::EDQUOT) => Err(Skip::NoSpace),
        Some(e) => Err(Skip::Copy(e)),
    }
}

/// Opens directory `path` (never through a link) for reading.
fn open_dir(path: &FixedPath) -> Option<i32> {
    let flags = nr::O_RDONLY | nr::O_DIRECTORY | nr::O_NOFOLLOW | nr::O_CLOEXEC;
    // SAFETY: a FixedPath is NUL-terminated.
    let fd = unsafe { sys::open(path.as_ptr(), flags, 0) };
    sys::errno_of(fd).is_none().then_some(fd as i32)
}

/// Writes `len` bytes of `src` from `offset` to a new read-only file at
/// `path` (replacing a stale one of ours): room reserved first, copied in
/// the kernel.
fn write_file(path: &FixedPath, src: i32, offset: u64, len: u64, euid: u32) -> Result<(), Skip> {
    let flags = nr::O_WRONLY | nr::O_CREAT | nr::O_TRUNC | nr::O_NOFOLLOW;
    let (fd, st) = open_regular_mode(path, flags, 0o600).map_err(|_| Skip::Copy(errno::EACCES))?;
    let r = if st.uid != euid {
        Err(Skip::Copy(errno::EPERM))
    } else {
        copy_range(fd, src, offset, len).and_then(|()| {
            if sys::fchmod(fd, 0o444) == 0 {
                Ok(())
            } else {
                Err(Skip::Copy(errno::EPERM))
            }
        })
    };
    sys::close(fd);
    r
}

/// Copies `len` bytes of `input` from `offset` to `out` (at its start),
/// after reserving the room for them.
pub fn copy_range(out: i32, input: i32, offset: u64, len: u64) -> Result<(), Skip> {
    if len > 0 {
        match sys::errno_of(sys::reserve(out, len)) {
            Some(errno::ENOSPC) | Some(errno::EDQUOT) => return Err(Skip::NoSpace),
            // A file system without fallocate: find out while copying.
            _ => {}
        }
    }
    let end = offset.saturating_add(len);
    let mut at = offset;
    while at < end {
        let count = (end - at).min(1 << 30);
        let r = sys::sendfile(out, input, &mut at, count);
        match sys::errno_of(r) {
            None if r > 0 => {}
            None => return Err(Skip::Copy(errno::EIO)),
            Some(errno::EINTR) => {}
            Some(errno::ENOSPC) | Some(errno::EDQUOT) => return Err(Skip::NoSpace),
            Some(e) => return Err(Skip::Copy(e)),
        }
    }
    Ok(())
}

/// How deep [`remove`] goes (a copy's depth is its deepest path's).
const MAX_DEPTH: u32 = 64;

/// Room for a directory's entries (`getdents64`), in the stager's state.
pub type ListBuf = [u8; 1024];

/// Deletes the directory `path` and everything in it (never following a
/// link), as far as it can; what it cannot delete stays for
/// `dlfm.pre clean`. `buf` is room for directory entries.
pub fn remove(path: &FixedPath, buf: &mut ListBuf) {
    let Some(fd) = open_dir(path) else {
        return;
    };
    clear(fd, MAX_DEPTH, buf);
    sys::close(fd);
    // SAFETY: a FixedPath is NUL-terminated.
    unsafe { sys::unlink_in(sys::AT_FDCWD, path.as_ptr(), nr::AT_REMOVEDIR) };
}

/// Deletes everything in the directory open on `dir`, one entry per
/// listing from the start (so that `buf` serves every level of the
/// recursion), until none is left or one cannot be deleted.
fn clear(dir: i32, depth: u32, buf: &mut ListBuf) {
    if depth == 0 {
        return;
    }
    loop {
        // SAFETY: lseek takes no pointer.
        unsafe { sys::syscall3(nr::__NR_lseek, dir as u64, 0, u64::from(nr::SEEK_SET)) };
        let mut target = None;
        'list: loop {
            let n = sys::getdents(dir, buf);
            if n <= 0 {
                break;
            }
            let mut at = 0usize;
            while at + 19 < n as usize {
                let reclen = usize::from(dlfm_bytes::le_u16(buf, at + 16).unwrap_or(0));
                if reclen == 0 || at + reclen > n as usize {
                    break 'list;
                }
                let name = |i: usize| buf.get(at + 19 + i).copied().unwrap_or(0);
                let dot = name(0) == b'.' && (name(1) == 0 || (name(1) == b'.' && name(2) == 0));
                if !dot {
                    target = Some((at, buf.get(at + 18).copied().unwrap_or(0)));
                    break 'list;
                }
                at += reclen;
            }
        }
        let Some((at, kind)) = target else {
            return;
        };
        if !delete(dir, at, kind, depth, buf) {
            return;
        }
    }
}

/// The name a directory being removed is renamed to in its parent, so
/// that it can be removed after its contents without keeping its name.
const REMOVING: &core::ffi::CStr = c".dlfm-removing";

/// Deletes the entry whose record starts `at` bytes into `buf` (its name
/// NUL-terminated at `at + 19`) in `dir`, a directory's contents first;
/// whether it went.
fn delete(dir: i32, at: usize, kind: u8, depth: u32, buf: &mut ListBuf) -> bool {
    let Some(name) = buf.get(at + 19..) else {
        return false;
    };
    let name = name.as_ptr();
    if u32::from(kind) != nr::DT_DIR {
        // SAFETY: getdents64 NUL-terminates each name inside its record.
        return sys::errno_of(unsafe { sys::unlink_in(dir, name, 0) }).is_none();
    }
    // The recursion lists into `buf`: move the directory to a fixed name
    // first, then empty and remove it by that name.
    // SAFETY: as above; REMOVING is NUL-terminated.
    if sys::errno_of(unsafe { sys::rename_in(dir, name, REMOVING.as_ptr().cast::<u8>()) }).is_some()
    {
        return false;
    }
    let removing = REMOVING.as_ptr().cast::<u8>();
    let flags = nr::O_RDONLY | nr::O_DIRECTORY | nr::O_NOFOLLOW | nr::O_CLOEXEC;
    // SAFETY: REMOVING is NUL-terminated.
    let sub = unsafe { sys::open_in(dir, removing, flags) };
    if sys::errno_of(sub).is_none() {
        clear(sub as i32, depth - 1, buf);
        sys::close(sub as i32);
    }
    // SAFETY: as above.
    sys::errno_of(unsafe { sys::unlink_in(dir, removing, nr::AT_REMOVEDIR) }).is_none()
}
