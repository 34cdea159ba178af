//! The interposer's own system calls, through libc's `syscall` (which this
//! library does not define, so the call cannot come back here). Each
//! preserves `errno`: the program must see only what its own call did.

use core::ffi::c_long;

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

/// A raw system call with up to four arguments: the result, or `None` on
/// failure.
fn call(nr: c_long, a: [c_long; 4]) -> Option<c_long> {
    keeping_errno(|| {
        // SAFETY: the callers pass arguments valid for `nr` (pointers to
        // memory they own, sized as the call requires).
        let r = unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3]) };
        (r >= 0).then_some(r)
    })
}

/// A `struct stat` of zeros, for a call to fill.
pub fn zeroed_stat() -> libc::stat {
    // SAFETY: `struct stat` is plain integers, for which zero is valid.
    unsafe { core::mem::zeroed() }
}

/// `fstat(fd)` into `st`.
pub fn fstat(fd: i32, st: &mut libc::stat) -> bool {
    call(
        libc::SYS_fstat,
        [fd as c_long, st as *mut libc::stat as c_long, 0, 0],
    )
    .is_some()
}

/// A regular file this library opened.
pub struct Regular {
    /// The descriptor.
    pub fd: i32,
    /// The size in bytes.
    pub size: usize,
    /// The owner.
    pub uid: u32,
    /// `st_mode`.
    pub mode: u32,
}

/// Opens `path` (NUL-terminated) with `flags`; keeps it only if it is a
/// regular file.
pub fn open_regular(path: *const u8, flags: i32) -> Option<Regular> {
    open_regular_mode(path, flags, 0)
}

/// [`open_regular`] with the `mode` a file created by `O_CREAT` gets.
pub fn open_regular_mode(path: *const u8, flags: i32, mode: u32) -> Option<Regular> {
    let fd = call(
        libc::SYS_openat,
        [
            libc::AT_FDCWD as c_long,
            path as c_long,
            flags as c_long,
            mode as c_long,
        ],
    )? as i32;
    let mut st = zeroed_stat();
    if fstat(fd, &mut st) && st.st_mode & libc::S_IFMT == libc::S_IFREG {
        return Some(Regular {
            fd,
            size: st.st_size as usize,
            uid: st.st_uid,
            mode: st.st_mode,
        });
    }
    close(fd);
    None
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
        core::slice::from_raw_parts(uts.nodename.as_ptr() as *const u8, uts.nodename.len())
    };
    Some(f(node))
}

/// `pread64(fd, buf, offset)`: the count read.
pub fn pread(fd: i32, buf: &mut [u8], offset: u64) -> Option<usize> {
    call(
        libc::SYS_pread64,
        [
            fd as c_long,
            buf.as_mut_ptr() as c_long,
            buf.len() as c_long,
            offset as c_long,
        ],
    )
    .map(|n| n as usize)
}

/// `getcwd` into `buf`: the length written, NUL included.
pub fn getcwd(buf: &mut [u8]) -> Option<usize> {
    call(
        libc::SYS_getcwd,
        [buf.as_mut_ptr() as c_long, buf.len() as c_long, 0, 0],
    )
    .map(|n| n as usize)
}

/// `close(fd)`.
pub fn close(fd: i32) {
    call(libc::SYS_close, [fd as c_long, 0, 0, 0]);
}

/// A private read-only mapping of the whole file behind `fd`.
pub fn map_whole(fd: i32, len: usize) -> Option<&'static [u8]> {
    if len == 0 {
        return None;
    }
    let addr = keeping_errno(|| {
        // SAFETY: a fresh mapping; no memory of ours is touched.
        unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                fd,
                0,
            )
        }
    });
    if addr == libc::MAP_FAILED {
        return None;
    }
    // SAFETY: the mapping is `len` readable bytes, never unmapped while in use.
    Some(unsafe { core::slice::from_raw_parts(addr as *const u8, len) })
}

/// Unmaps a mapping `map_whole` made.
pub fn unmap(bytes: &'static [u8]) {
    call(
        libc::SYS_munmap,
        [bytes.as_ptr() as c_long, bytes.len() as c_long, 0, 0],
    );
}

/// Lets go of this process's mapping of the pages holding `bytes`
/// (`MADV_DONTNEED`): the pages stay in the page cache, shared with every
/// process on the node, and a later read maps them again. Keeps the cache
/// pages a served open copied from out of the process's resident set.
pub fn forget_pages(bytes: &[u8]) {
    const PAGE: usize = dlfm_cache::layout::PAGE as usize;
    let start = bytes.as_ptr() as usize & !(PAGE - 1);
    let end = (bytes.as_ptr() as usize + bytes.len() + PAGE - 1) & !(PAGE - 1);
    call(
        libc::SYS_madvise,
        [
            start as c_long,
            (end - start) as c_long,
            libc::MADV_DONTNEED as c_long,
            0,
        ],
    );
}

/// A new memfd named `name` (NUL-terminated) with `flags`.
pub fn memfd(name: &core::ffi::CStr, flags: u32) -> Option<i32> {
    call(
        libc::SYS_memfd_create,
        [name.as_ptr() as c_long, flags as c_long, 0, 0],
    )
    .map(|fd| fd as i32)
}

/// Writes all of `bytes` to `fd` at offset 0 onwards (`pwrite`, so the
/// descriptor's position stays 0).
pub fn write_all(fd: i32, bytes: &[u8]) -> bool {
    let mut done = 0usize;
    while let Some(rest) = bytes.get(done..).filter(|r| !r.is_empty()) {
        match call(
            libc::SYS_pwrite64,
            [
                fd as c_long,
                rest.as_ptr() as c_long,
                rest.len() as c_long,
                done as c_long,
            ],
        ) {
            Some(n) if n > 0 => done += n as usize,
            _ => return false,
        }
    }
    true
}

/// `write(fd, bytes)` once (journal records: one write each, O_APPEND).
pub fn write(fd: i32, bytes: &[u8]) {
    call(
        libc::SYS_write,
        [
            fd as c_long,
            bytes.as_ptr() as c_long,
            bytes.len() as c_long,
            0,
        ],
    );
}

/// `lstat(path)` (NUL-terminated) into `st`: 0 or -errno.
pub fn lstat(path: *const u8, st: &mut libc::stat) -> i32 {
    keeping_errno(|| {
        // SAFETY: `path` is NUL-terminated and `st` a whole struct stat.
        let r = unsafe {
            libc::syscall(
                libc::SYS_newfstatat,
                libc::AT_FDCWD as c_long,
                path as c_long,
                st as *mut libc::stat as c_long,
                libc::AT_SYMLINK_NOFOLLOW as c_long,
            )
        };
        if r == 0 {
            0
        } else {
            // SAFETY: this thread's errno slot, just set by syscall().
            -unsafe { *libc::__errno_location() }
        }
    })
}

/// Opens the directory `path` (NUL-terminated) with `flags`: the
/// descriptor, or the errno.
pub fn open_dir(path: *const u8, flags: i32) -> Result<i32, i32> {
    keeping_errno(|| {
        // SAFETY: `path` is NUL-terminated.
        let r = unsafe {
            libc::syscall(
                libc::SYS_openat,
                libc::AT_FDCWD as c_long,
                path as c_long,
                flags as c_long,
                0 as c_long,
            )
        };
        if r >= 0 {
            Ok(r as i32)
        } else {
            // SAFETY: this thread's errno slot, just set by syscall().
            Err(unsafe { *libc::__errno_location() })
        }
    })
}
