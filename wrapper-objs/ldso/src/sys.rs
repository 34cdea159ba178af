//! Raw Linux system calls: the only way the wrapper talks to the kernel.
//! Each returns the kernel's raw result: a value, or `-errno`. What differs
//! between architectures (the instruction, and `access`, which aarch64 only
//! has as `faccessat`) is in `sys/x86_64.rs` and `sys/aarch64.rs`.

use core::mem::MaybeUninit;
pub use linux_raw_sys::errno;
pub use linux_raw_sys::general as nr;

use dlfm_runtime::fixed_path::FixedPath;

#[cfg(target_arch = "aarch64")]
#[path = "sys/aarch64.rs"]
mod arch;
#[cfg(target_arch = "x86_64")]
#[path = "sys/x86_64.rs"]
mod arch;
pub use arch::{access, access_args, syscall6, trap, ACCESS, ACCESS_NAME};

/// The errno a raw result stands for, if it is an error: the kernel returns
/// `-errno` in `-4095..0` (`MAX_ERRNO`); anything else is a value (an mmap
/// address may look negative). The one place raw results are decoded.
#[inline(always)]
pub fn errno_of(r: i64) -> Option<u32> {
    (-4095..0).contains(&r).then_some(r.unsigned_abs() as u32)
}

/// Shorthand for calls with fewer arguments (the rest are zero).
///
/// # Safety
/// As for [`syscall6`].
#[inline(always)]
pub unsafe fn syscall3(n: u32, a0: u64, a1: u64, a2: u64) -> i64 {
    // SAFETY: forwarded; unused argument registers are ignored by the kernel.
    unsafe { syscall6(n as u64, [a0, a1, a2, 0, 0, 0]) }
}

/// `openat(AT_FDCWD, path, flags, mode)`.
///
/// # Safety
/// `path` must point at a NUL-terminated string.
pub unsafe fn open(path: *const u8, flags: u32, mode: u32) -> i64 {
    // SAFETY: forwarded from the caller.
    unsafe {
        syscall6(
            nr::__NR_openat as u64,
            [
                AT_FDCWD as u64,
                path as u64,
                flags as u64,
                mode as u64,
                0,
                0,
            ],
        )
    }
}

/// `write(fd, bytes)`.
pub fn write(fd: i32, bytes: &[u8]) -> i64 {
    // SAFETY: the slice is readable for its length.
    unsafe {
        syscall3(
            nr::__NR_write,
            fd as u64,
            bytes.as_ptr() as u64,
            bytes.len() as u64,
        )
    }
}

/// `close(fd)`.
pub fn close(fd: i32) -> i64 {
    // SAFETY: close takes no pointer.
    unsafe { syscall3(nr::__NR_close, fd as u64, 0, 0) }
}

/// `fstat(fd)` into `buf` (the kernel's `struct stat` of this target,
/// `dlfm_cache::stat::KERNEL_STAT_SIZE` bytes), which may be uninitialised.
///
/// # Safety
/// `buf` must be writable for `KERNEL_STAT_SIZE` bytes.
pub unsafe fn fstat(fd: i32, buf: *mut u8) -> i64 {
    // SAFETY: `buf` is writable for the size of the kernel's struct stat
    // (caller's guarantee); the empty path is a NUL-terminated literal.
    unsafe {
        syscall6(
            nr::__NR_newfstatat as u64,
            [
                fd as u64,
                c"".as_ptr() as u64,
                buf as u64,
                AT_EMPTY_PATH as u64,
                0,
                0,
            ],
        )
    }
}

/// What the wrapper needs to know of a file it holds open.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// The device and inode: the file's identity.
    pub identity: (u64, u64),
    /// `st_mode` (type and permissions).
    pub mode: u32,
    /// The owner.
    pub uid: u32,
    /// The length in bytes.
    pub size: u64,
}

/// The status of the file open on `fd`, or `None` if `fd` is not open.
/// With `cached`, `statx` is asked with `AT_STATX_DONT_SYNC`, so that a
/// network file system answers from what its client has instead of asking
/// its server (enough for the identity, which never changes). Falls back to
/// `fstat` on a kernel without `statx`; the identity is then encoded
/// differently, but always the same way within one kernel.
pub fn status(fd: i32, cached: bool) -> Option<Status> {
    let mut x = MaybeUninit::<nr::statx>::uninit();
    let sync = if cached {
        nr::AT_STATX_DONT_SYNC
    } else {
        nr::AT_STATX_SYNC_AS_STAT
    };
    let mask = nr::STATX_TYPE | nr::STATX_MODE | nr::STATX_UID | nr::STATX_INO | nr::STATX_SIZE;
    // SAFETY: `x` is writable for the size of the kernel's struct statx; the
    // empty path is a NUL-terminated literal.
    let r = unsafe {
        syscall6(
            nr::__NR_statx as u64,
            [
                fd as u64,
                c"".as_ptr() as u64,
                (AT_EMPTY_PATH | sync) as u64,
                mask as u64,
                x.as_mut_ptr() as u64,
                0,
            ],
        )
    };
    if r == 0 {
        // SAFETY: a successful statx filled the struct.
        let x = unsafe { x.assume_init_ref() };
        return Some(Status {
            identity: (
                (u64::from(x.stx_dev_major) << 32) | u64::from(x.stx_dev_minor),
                x.stx_ino,
            ),
            mode: u32::from(x.stx_mode),
            uid: x.stx_uid,
            size: x.stx_size,
        });
    }
    if r != -i64::from(errno::ENOSYS) {
        return None;
    }
    let mut st = MaybeUninit::<nr::stat>::uninit();
    // SAFETY: `st` is writable for the size of the kernel's struct stat.
    if errno_of(unsafe { fstat(fd, st.as_mut_ptr() as *mut u8) }).is_some() {
        return None;
    }
    // SAFETY: a successful fstat filled the whole struct.
    let st = unsafe { st.assume_init_ref() };
    Some(Status {
        identity: (st.st_dev, st.st_ino),
        mode: st.st_mode,
        uid: st.st_uid,
        size: u64::try_from(st.st_size).unwrap_or(0),
    })
}

/// `mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0)`: a read-only view of a file.
pub fn map_readonly(fd: i32, len: usize) -> i64 {
    // SAFETY: a fresh mapping at an address of the kernel's choosing cannot
    // disturb existing memory.
    unsafe {
        syscall6(
            nr::__NR_mmap as u64,
            [
                0,
                len as u64,
                nr::PROT_READ as u64,
                nr::MAP_PRIVATE as u64,
                fd as u64,
                0,
            ],
        )
    }
}

/// `munmap(addr, len)` of a mapping this wrapper made.
///
/// # Safety
/// `[addr, addr + len)` must be a mapping nothing else uses.
pub unsafe fn unmap(addr: *const u8, len: usize) -> i64 {
    // SAFETY: forwarded from the caller.
    unsafe { syscall3(nr::__NR_munmap, addr as u64, len as u64, 0) }
}

/// `pread64(fd, buf, len, offset)`.
///
/// # Safety
/// `buf` must be writable for `len` bytes.
pub unsafe fn pread(fd: i32, buf: *mut u8, len: usize, offset: u64) -> i64 {
    // SAFETY: forwarded from the caller.
    unsafe {
        syscall6(
            nr::__NR_pread64 as u64,
            [fd as u64, buf as u64, len as u64, offset, 0, 0],
        )
    }
}

/// `madvise(addr, len, advice)`; advice only, so callers ignore the result.
///
/// # Safety
/// `[addr, addr + len)` must lie in a mapping this wrapper owns, and for
/// MADV_DONTNEED one whose contents can be dropped (private, never written).
pub unsafe fn madvise(addr: *const u8, len: usize, advice: u32) -> i64 {
    // SAFETY: forwarded from the caller.
    unsafe { syscall3(nr::__NR_madvise, addr as u64, len as u64, advice as u64) }
}

/// `getcwd` into `buf`: the length written, NUL included, or `None`.
pub fn getcwd(buf: &mut [u8]) -> Option<usize> {
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`.
    let r = unsafe {
        syscall3(
            nr::__NR_getcwd,
            buf.as_mut_ptr() as u64,
            buf.len() as u64,
            0,
        )
    };
    usize::try_from(r).ok()
}

/// `getpid()`.
pub fn getpid() -> i64 {
    // SAFETY: no arguments.
    unsafe { syscall3(nr::__NR_getpid, 0, 0, 0) }
}

/// `uname()` into the kernel's `struct new_utsname` at `buf`,
/// which may be uninitialised.
/// # Safety
/// `buf` must be writable for a whole `new_utsname`.
unsafe fn uname(buf: *mut linux_raw_sys::system::new_utsname) -> i64 {
    // SAFETY: the kernel writes the struct or fails with EFAULT; it never
    // touches memory the caller does not own when `buf` is a whole struct.
    unsafe { syscall3(nr::__NR_uname, buf as u64, 0, 0) }
}

/// Runs `f` on this machine's node name (uname's nodename field, NUL
/// padded); `None` if uname fails.
pub fn with_nodename<R>(f: impl FnOnce(&[u8]) -> R) -> Option<R> {
    let mut raw = MaybeUninit::<linux_raw_sys::system::new_utsname>::uninit();
    // SAFETY: `raw` is writable for a whole struct new_utsname.
    if errno_of(unsafe { uname(raw.as_mut_ptr()) }).is_some() {
        return None;
    }
    // SAFETY: a successful uname filled the whole struct (borrowed, not
    // moved, so no 390-byte copy is made).
    let uts = unsafe { &*raw.as_ptr() };
    // SAFETY: `c_char` and `u8` have the same size and alignment; the array
    // is initialised.
    let node: &[u8] = unsafe {
        core::slice::from_raw_parts(uts.nodename.as_ptr().cast::<u8>(), uts.nodename.len())
    };
    Some(f(node))
}

/// The CPU this thread runs on (`getcpu`), or `None` if the call fails.
pub fn current_cpu() -> Option<u32> {
    let mut cpu: u32 = 0;
    // SAFETY: `cpu` is a writable u32; node and cache pointers are NULL.
    let r = unsafe { syscall3(nr::__NR_getcpu, &mut cpu as *mut u32 as u64, 0, 0) };
    errno_of(r).is_none().then_some(cpu)
}

/// Moves descriptor `fd` near the top of the process's descriptor limit,
/// close-on-exec, so the wrapper's own files (cache, journal, trace) do not
/// take the low numbers the program would otherwise get. Returns the new
/// descriptor, or `fd` itself when it cannot be moved.
pub fn move_high(fd: i32) -> i32 {
    // Leave a few descriptors free below the limit for the program.
    const HEADROOM: u64 = 16;
    let mut limit = [0u64; 2];
    // SAFETY: prlimit64(0, RLIMIT_NOFILE, NULL, &old) writes two u64.
    let r = unsafe {
        syscall6(
            nr::__NR_prlimit64 as u64,
            [
                0,
                nr::RLIMIT_NOFILE as u64,
                0,
                limit.as_mut_ptr() as u64,
                0,
                0,
            ],
        )
    };
    if errno_of(r).is_some() || limit[0] <= HEADROOM * 2 {
        return fd;
    }
    let want = (limit[0] - HEADROOM).min(i32::MAX as u64);
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) takes no pointer.
    let high = unsafe { syscall3(nr::__NR_fcntl, fd as u64, nr::F_DUPFD_CLOEXEC as u64, want) };
    if errno_of(high).is_some() {
        return fd;
    }
    close(fd);
    high as i32
}

/// `flock(fd, op)`.
pub fn flock(fd: i32, op: u32) -> i64 {
    // SAFETY: flock takes no pointer.
    unsafe { syscall3(nr::__NR_flock, fd as u64, u64::from(op), 0) }
}

/// `fallocate(fd, 0, 0, len)`: reserves the file's blocks (on tmpfs, its
/// memory) so that a full file system fails here rather than half way.
pub fn reserve(fd: i32, len: u64) -> i64 {
    // SAFETY: fallocate takes no pointer.
    unsafe { syscall6(nr::__NR_fallocate as u64, [fd as u64, 0, 0, len, 0, 0]) }
}

/// `sendfile(out, in, &offset, count)`: copies in the kernel from `input`
/// at `*offset` (which it advances) to `out`.
pub fn sendfile(out: i32, input: i32, offset: &mut u64, count: u64) -> i64 {
    // SAFETY: `offset` is a writable u64 (the kernel's loff_t).
    unsafe {
        syscall6(
            nr::__NR_sendfile as u64,
            [
                out as u64,
                input as u64,
                offset as *mut u64 as u64,
                count,
                0,
                0,
            ],
        )
    }
}

/// `fchmod(fd, mode)`.
pub fn fchmod(fd: i32, mode: u32) -> i64 {
    // SAFETY: fchmod takes no pointer.
    unsafe { syscall3(nr::__NR_fchmod, fd as u64, u64::from(mode), 0) }
}

/// `renameat2(AT_FDCWD, from, AT_FDCWD, to, 0)`: atomic replacement.
pub fn rename(from: &FixedPath, to: &FixedPath) -> i64 {
    // SAFETY: a FixedPath is always NUL-terminated.
    unsafe {
        syscall6(
            nr::__NR_renameat2 as u64,
            [
                AT_FDCWD as u64,
                from.as_ptr() as u64,
                AT_FDCWD as u64,
                to.as_ptr() as u64,
                0,
                0,
            ],
        )
    }
}

/// `unlinkat(AT_FDCWD, path, 0)`.
pub fn unlink(path: &FixedPath) -> i64 {
    // SAFETY: a FixedPath is always NUL-terminated.
    unsafe { syscall3(nr::__NR_unlinkat, AT_FDCWD as u64, path.as_ptr() as u64, 0) }
}

/// `mkdirat(AT_FDCWD, path, mode)`.
pub fn mkdir(path: &FixedPath, mode: u32) -> i64 {
    // SAFETY: a FixedPath is always NUL-terminated.
    unsafe {
        syscall3(
            nr::__NR_mkdirat,
            AT_FDCWD as u64,
            path.as_ptr() as u64,
            u64::from(mode),
        )
    }
}

/// `getdents64(fd, buf)`: the directory's next entries into `buf`; the
/// bytes filled (0 at the end) or -errno.
pub fn getdents(fd: i32, buf: &mut [u8]) -> i64 {
    // SAFETY: `buf` is writable for its length.
    unsafe {
        syscall3(
            nr::__NR_getdents64,
            fd as u64,
            buf.as_mut_ptr() as u64,
            buf.len() as u64,
        )
    }
}

/// `unlinkat(dir, name, flags)` of the NUL-terminated `name` in the
/// directory open on `dir` (`AT_REMOVEDIR` for a directory).
///
/// # Safety
/// `name` must point at a NUL-terminated string.
pub unsafe fn unlink_in(dir: i32, name: *const u8, flags: u32) -> i64 {
    // SAFETY: forwarded from the caller.
    unsafe { syscall3(nr::__NR_unlinkat, dir as u64, name as u64, u64::from(flags)) }
}

/// `renameat2(dir, from, dir, to, 0)` of NUL-terminated names in the
/// directory open on `dir`.
///
/// # Safety
/// `from` and `to` must point at NUL-terminated strings.
pub unsafe fn rename_in(dir: i32, from: *const u8, to: *const u8) -> i64 {
    // SAFETY: forwarded from the caller.
    unsafe {
        syscall6(
            nr::__NR_renameat2 as u64,
            [dir as u64, from as u64, dir as u64, to as u64, 0, 0],
        )
    }
}

/// `openat(dir, name, flags)` of the NUL-terminated `name` in the directory
/// open on `dir`.
///
/// # Safety
/// `name` must point at a NUL-terminated string.
pub unsafe fn open_in(dir: i32, name: *const u8, flags: u32) -> i64 {
    // SAFETY: forwarded from the caller.
    unsafe {
        syscall6(
            nr::__NR_openat as u64,
            [dir as u64, name as u64, u64::from(flags), 0, 0, 0],
        )
    }
}

/// `fallocate(fd, PUNCH_HOLE | KEEP_SIZE, offset, len)`: frees the file's
/// blocks (on tmpfs, its memory) in that range; the size stays.
pub fn punch_hole(fd: i32, offset: u64, len: u64) -> i64 {
    let mode = nr::FALLOC_FL_PUNCH_HOLE | nr::FALLOC_FL_KEEP_SIZE;
    // SAFETY: fallocate takes no pointer.
    unsafe {
        syscall6(
            nr::__NR_fallocate as u64,
            [fd as u64, u64::from(mode), offset, len, 0, 0],
        )
    }
}

/// The bytes free to an unprivileged user on the file system holding the
/// file open on `fd` (`fstatfs`), if they can be known.
pub fn free_bytes(fd: i32) -> Option<u64> {
    let mut st = MaybeUninit::<nr::statfs>::uninit();
    // SAFETY: the kernel writes one struct statfs into `st`.
    let r = unsafe { syscall3(nr::__NR_fstatfs, fd as u64, st.as_mut_ptr() as u64, 0) };
    if errno_of(r).is_some() {
        return None;
    }
    // SAFETY: a successful fstatfs filled the struct.
    let st = unsafe { st.assume_init_ref() };
    Some((st.f_bavail as u64).saturating_mul(st.f_bsize as u64))
}

/// Milliseconds on the monotonic clock (0 if it cannot be read).
pub fn now_ms() -> u64 {
    let mut ts = [0i64; 2];
    // SAFETY: the kernel writes one struct timespec (two i64) into `ts`.
    let r = unsafe {
        syscall3(
            nr::__NR_clock_gettime,
            nr::CLOCK_MONOTONIC as u64,
            ts.as_mut_ptr() as u64,
            0,
        )
    };
    if errno_of(r).is_some() {
        return 0;
    }
    (ts[0] as u64).wrapping_mul(1000) + (ts[1] as u64) / 1_000_000
}

/// Sleeps `ms` milliseconds (less if a signal interrupts it).
pub fn sleep_ms(ms: u64) {
    let ts = [(ms / 1000) as i64, ((ms % 1000) * 1_000_000) as i64];
    // SAFETY: `ts` is one readable struct timespec; no remainder is asked.
    unsafe { syscall3(nr::__NR_nanosleep, ts.as_ptr() as u64, 0, 0) };
}

/// `AT_FDCWD` as the kernel expects it in a 64-bit register.
pub const AT_FDCWD: i32 = nr::AT_FDCWD;
/// `AT_EMPTY_PATH`: `newfstatat(fd, "", ..)` is `fstat(fd)`.
pub const AT_EMPTY_PATH: u32 = nr::AT_EMPTY_PATH;
