//! The interposer's own system calls, through libc's `syscall` (which this
//! library does not define, so the call cannot come back here). Each
//! preserves `errno` (the program must see only what its own call did) and
//! reports failure one way: `Err(Errno)`. Paths come in as `&CStr`; a
//! descriptor this library opens comes back as an [`OwnedFd`], closed when
//! dropped, so no path forgets to close it. Calls on any descriptor (the
//! program's too) take its number: a wrong one only gives `EBADF`.

use core::ffi::{c_long, CStr};

/// An errno value: why a call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub i32);

/// A call's result.
pub type Result<T> = core::result::Result<T, Errno>;

/// Runs `f` and puts `errno` back as it was.
fn keeping_errno<T>(f: impl FnOnce() -> T) -> T {
    // SAFETY: __errno_location returns this thread's errno slot.
    let slot = unsafe { libc::__errno_location() };
    // SAFETY: the slot is valid for the thread's life.
    let saved = unsafe { *slot };
    let r = f();
    // SAFETY: as above.
    unsafe { *slot = saved };
    r
}

/// A raw system call with up to four arguments: the result or the errno.
///
/// # Safety
/// The arguments must be valid for `nr` (pointers to memory the caller
/// owns, sized as the call requires).
unsafe fn call(nr: c_long, a: [c_long; 4]) -> Result<c_long> {
    keeping_errno(|| {
        // SAFETY: the caller vouches for the arguments.
        let r = unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3]) };
        if r >= 0 {
            Ok(r)
        } else {
            // SAFETY: this thread's errno slot, just set by syscall().
            Err(Errno(unsafe { *libc::__errno_location() }))
        }
    })
}

/// A descriptor this library opened; closed when dropped.
pub struct OwnedFd(i32);

impl OwnedFd {
    /// Its number, while it is owned.
    pub fn raw(&self) -> i32 {
        self.0
    }

    /// Gives the descriptor up (to a table that closes it itself).
    pub fn into_raw(self) -> i32 {
        let fd = self.0;
        core::mem::forget(self);
        fd
    }
}

impl Drop for OwnedFd {
    fn drop(&mut self) {
        close(self.0);
    }
}

/// A `struct stat` of zeros, for a call to fill.
pub fn zeroed_stat() -> libc::stat {
    // SAFETY: `struct stat` is plain integers, for which zero is valid.
    unsafe { core::mem::zeroed() }
}

/// `fstat(fd)` into `st` (any descriptor).
pub fn fstat(fd: i32, st: &mut libc::stat) -> Result<()> {
    // SAFETY: `st` is a whole, writable struct stat.
    unsafe {
        call(
            libc::SYS_fstat,
            [fd as c_long, st as *mut libc::stat as c_long, 0, 0],
        )
    }
    .map(drop)
}

/// `lstat(path)` into `st`.
pub fn lstat(path: &CStr, st: &mut libc::stat) -> Result<()> {
    stat_at(path, st, libc::AT_SYMLINK_NOFOLLOW)
}

/// `stat(path)` into `st`.
pub fn stat(path: &CStr, st: &mut libc::stat) -> Result<()> {
    stat_at(path, st, 0)
}

/// `fstatat(AT_FDCWD, path, st, flags)`.
fn stat_at(path: &CStr, st: &mut libc::stat, flags: i32) -> Result<()> {
    // SAFETY: `path` is NUL-terminated and `st` a whole struct stat.
    unsafe {
        call(
            libc::SYS_newfstatat,
            [
                libc::AT_FDCWD as c_long,
                path.as_ptr() as c_long,
                st as *mut libc::stat as c_long,
                flags as c_long,
            ],
        )
    }
    .map(drop)
}

/// `openat(AT_FDCWD, path, flags, mode)`.
pub fn open(path: &CStr, flags: i32, mode: u32) -> Result<OwnedFd> {
    // SAFETY: `path` is NUL-terminated.
    unsafe {
        call(
            libc::SYS_openat,
            [
                libc::AT_FDCWD as c_long,
                path.as_ptr() as c_long,
                flags as c_long,
                mode as c_long,
            ],
        )
    }
    .map(|fd| OwnedFd(fd as i32))
}

/// A regular file this library opened.
pub struct Regular {
    /// The descriptor.
    pub fd: OwnedFd,
    /// The size in bytes.
    pub size: usize,
    /// The owner.
    pub uid: u32,
    /// `st_mode`.
    pub mode: u32,
}

/// Opens `path` with `flags`; keeps it only if it is a regular file
/// (`ENXIO` otherwise: not a file dlfm uses).
pub fn open_regular(path: &CStr, flags: i32) -> Result<Regular> {
    open_regular_mode(path, flags, 0)
}

/// [`open_regular`] with the `mode` a file created by `O_CREAT` gets.
pub fn open_regular_mode(path: &CStr, flags: i32, mode: u32) -> Result<Regular> {
    let fd = open(path, flags, mode)?;
    let mut st = zeroed_stat();
    fstat(fd.raw(), &mut st)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(Errno(libc::ENXIO));
    }
    Ok(Regular {
        fd,
        size: st.st_size as usize,
        uid: st.st_uid,
        mode: st.st_mode,
    })
}

/// Runs `f` on this machine's node name (uname's nodename field, NUL
/// padded); `None` if uname fails.
pub fn with_nodename<R>(f: impl FnOnce(&[u8]) -> R) -> Option<R> {
    // SAFETY: all-zero bytes are a valid `utsname`.
    let mut uts: libc::utsname = unsafe { core::mem::zeroed() };
    // SAFETY: `uts` is a whole, writable struct utsname.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return None;
    }
    // SAFETY: `c_char` and `u8` have one size and alignment; the array is
    // initialised.
    let node: &[u8] = unsafe {
        core::slice::from_raw_parts(uts.nodename.as_ptr().cast::<u8>(), uts.nodename.len())
    };
    Some(f(node))
}

/// `pread64(fd, buf, offset)`: the count read.
pub fn pread(fd: &OwnedFd, buf: &mut [u8], offset: u64) -> Result<usize> {
    read_by(libc::SYS_pread64, fd, buf, offset)
}

/// `read(fd, buf)`: the count read.
pub fn read(fd: &OwnedFd, buf: &mut [u8]) -> Result<usize> {
    read_by(libc::SYS_read, fd, buf, 0)
}

/// `read` or `pread64` (`nr`) into `buf` (`offset` only for the latter).
fn read_by(nr: c_long, fd: &OwnedFd, buf: &mut [u8], offset: u64) -> Result<usize> {
    // SAFETY: `buf` is writable for its length.
    unsafe {
        call(
            nr,
            [
                fd.raw() as c_long,
                buf.as_mut_ptr() as c_long,
                buf.len() as c_long,
                offset as c_long,
            ],
        )
    }
    .map(|n| n as usize)
}

/// The kernel's page size (4, 16 or 64 KiB on aarch64).
pub fn page_size() -> usize {
    // SAFETY: getauxval reads the aux vector libc saved at start-up.
    match unsafe { libc::getauxval(libc::AT_PAGESZ) } as usize {
        0 => dlfm_cache::layout::PAGE as usize,
        p => p,
    }
}

/// `getcwd` into `buf`: the length written, NUL included (the form
/// `FixedPath::push_absolute` asks for).
pub fn getcwd(buf: &mut [u8]) -> Option<usize> {
    // SAFETY: `buf` is writable for its length.
    unsafe {
        call(
            libc::SYS_getcwd,
            [buf.as_mut_ptr() as c_long, buf.len() as c_long, 0, 0],
        )
    }
    .ok()
    .map(|n| n as usize)
}

/// `close(fd)`, for a descriptor this library holds by number (an
/// [`OwnedFd`] given up to a table).
pub fn close(fd: i32) {
    // SAFETY: no memory is passed.
    let _closed_or_already_gone = unsafe { call(libc::SYS_close, [fd as c_long, 0, 0, 0]) };
}

/// A private read-only mapping of the whole file behind `fd`.
pub fn map_whole(fd: &OwnedFd, len: usize) -> Result<&'static [u8]> {
    if len == 0 {
        return Err(Errno(libc::EINVAL));
    }
    let addr = keeping_errno(|| {
        // SAFETY: a fresh mapping; no memory of ours is touched.
        unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                fd.raw(),
                0,
            )
        }
    });
    if addr == libc::MAP_FAILED {
        return Err(Errno(libc::ENOMEM));
    }
    // SAFETY: the mapping is `len` readable bytes, never unmapped while in use.
    Ok(unsafe { core::slice::from_raw_parts(addr as *const u8, len) })
}

/// Unmaps a mapping `map_whole` made.
pub fn unmap(bytes: &'static [u8]) {
    // SAFETY: a whole mapping of ours, no longer used.
    let _unmapped = unsafe {
        call(
            libc::SYS_munmap,
            [bytes.as_ptr() as c_long, bytes.len() as c_long, 0, 0],
        )
    };
}

/// Lets go of this process's mapping of the pages holding `bytes`
/// (`MADV_DONTNEED`): the pages stay in the page cache, shared with every
/// process on the node, and a later read maps them again. Keeps the cache
/// pages a served open copied from out of the process's resident set.
pub fn forget_pages(bytes: &[u8]) {
    // madvise takes only a start on one of the kernel's pages.
    let page = page_size();
    let start = bytes.as_ptr() as usize & !(page - 1);
    let end = (bytes.as_ptr() as usize + bytes.len() + page - 1) & !(page - 1);
    // SAFETY: advice on pages of a private read-only file mapping, which
    // are read back from the file on the next access.
    let _advised = unsafe {
        call(
            libc::SYS_madvise,
            [
                start as c_long,
                (end - start) as c_long,
                libc::MADV_DONTNEED as c_long,
                0,
            ],
        )
    };
}

/// A new memfd named `name` with `flags`.
pub fn memfd(name: &CStr, flags: u32) -> Result<OwnedFd> {
    // SAFETY: `name` is NUL-terminated.
    unsafe {
        call(
            libc::SYS_memfd_create,
            [name.as_ptr() as c_long, flags as c_long, 0, 0],
        )
    }
    .map(|fd| OwnedFd(fd as i32))
}

/// Writes all of `bytes` to `fd` at offset 0 onwards (`pwrite`, so the
/// descriptor's position stays 0).
pub fn write_all(fd: &OwnedFd, bytes: &[u8]) -> Result<()> {
    let mut done = 0usize;
    while let Some(rest) = bytes.get(done..).filter(|r| !r.is_empty()) {
        // SAFETY: `rest` is readable for its length.
        let n = unsafe {
            call(
                libc::SYS_pwrite64,
                [
                    fd.raw() as c_long,
                    rest.as_ptr() as c_long,
                    rest.len() as c_long,
                    done as c_long,
                ],
            )
        }?;
        if n == 0 {
            return Err(Errno(libc::ENOSPC));
        }
        done += n as usize;
    }
    Ok(())
}

/// `write(fd, bytes)` once (journal records: one write each, O_APPEND), on
/// a descriptor this library holds.
pub fn write(fd: i32, bytes: &[u8]) -> Result<usize> {
    // SAFETY: `bytes` is readable for its length.
    unsafe {
        call(
            libc::SYS_write,
            [
                fd as c_long,
                bytes.as_ptr() as c_long,
                bytes.len() as c_long,
                0,
            ],
        )
    }
    .map(|n| n as usize)
}
