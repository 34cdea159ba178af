//! Directory listings: `opendir` of a directory whose listing the cache
//! holds returns a stream of this library's own, and `readdir` on it gives
//! the recorded entries; any other stream is libc's.
//!
//! Streams come from a fixed pool (no allocation). A slot is claimed with a
//! compare-and-swap, so threads opening directories at once never share
//! one; after that only the stream's user touches it (POSIX leaves
//! concurrent `readdir` on one stream to the program). The stream's address
//! is the slot's, so every function that takes a `DIR *` checks first
//! whether it is one of ours. After `fork` the child has its own copy of
//! the pool, in the same state, as it has of libc's streams.

use core::cell::UnsafeCell;
use core::ffi::{c_char, c_int, c_long};
use core::sync::atomic::{AtomicBool, Ordering};

use dlfm_cache::journal::{stored_open_flags, Record};
use dlfm_cache::layout::Outcome;
use dlfm_cache::read::Listing;
use dlfm_runtime::fixed_path::FixedPath;

use crate::calls::{absolute, errno, fail};
use crate::real::Next;
use crate::record;
use crate::replay::{self, Answer};
use crate::stored_stat;
use crate::{state, sys};

/// Streams of ours open at once; past that `opendir` goes to libc.
const SLOTS: usize = 32;

/// What a stream of ours holds.
struct Stream {
    listing: Option<Listing<'static>>,
    /// Byte offset of the next entry in the listing.
    at: usize,
    /// Entries returned so far (`telldir`).
    pos: u32,
    /// A real descriptor on the directory, opened on first `dirfd`.
    fd: i32,
    path: FixedPath,
    entry: libc::dirent64,
}

struct Slot {
    used: AtomicBool,
    stream: UnsafeCell<Stream>,
}

// SAFETY: a slot's stream is written only by the thread that claimed the
// slot (compare-and-swap on `used`) and by whoever that thread hands the
// stream to, as with libc's own `DIR`.
unsafe impl Sync for Slot {}

/// All zeros (`claim` sets every field before use), so the pool lies in
/// `.bss`: pages the kernel maps in only when a stream is used, not 140 KB
/// of `.data` in every process.
static POOL: [Slot; SLOTS] = [const {
    Slot {
        used: AtomicBool::new(false),
        stream: UnsafeCell::new(Stream {
            listing: None,
            at: 0,
            pos: 0,
            fd: 0,
            path: FixedPath::EMPTY,
            // SAFETY: all-zero bytes are a valid dirent64.
            entry: unsafe { core::mem::zeroed() },
        }),
    }
}; SLOTS];

/// The stream behind `dirp`, if it is one of ours.
fn ours(dirp: *mut libc::DIR) -> Option<&'static mut Stream> {
    let slot = POOL
        .iter()
        .find(|s| core::ptr::eq(s.stream.get() as *const u8, dirp as *const u8))?;
    if !slot.used.load(Ordering::Acquire) {
        return None;
    }
    // SAFETY: the caller holds the stream (see `Slot`'s Sync).
    Some(unsafe { &mut *slot.stream.get() })
}

/// Claims a slot for `listing` of `path`.
fn claim(listing: Listing<'static>, path: &[u8]) -> Option<*mut libc::DIR> {
    let slot = POOL.iter().find(|s| {
        s.used
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    })?;
    // SAFETY: the slot was just claimed by this thread.
    let st = unsafe { &mut *slot.stream.get() };
    st.listing = Some(listing);
    st.at = 0;
    st.pos = 0;
    st.fd = -1;
    if !st.path.set(path) {
        slot.used.store(false, Ordering::Release);
        return None;
    }
    Some(slot.stream.get() as *mut libc::DIR)
}

/// Gives the slot of `stream` back.
fn release(dirp: *mut libc::DIR) {
    if let Some(slot) = POOL
        .iter()
        .find(|s| core::ptr::eq(s.stream.get() as *const u8, dirp as *const u8))
    {
        slot.used.store(false, Ordering::Release);
    }
}

type OpenDir = unsafe extern "C" fn(*const c_char) -> *mut libc::DIR;
type DirOnly = unsafe extern "C" fn(*mut libc::DIR) -> c_int;
type ReadDir = unsafe extern "C" fn(*mut libc::DIR) -> *mut libc::dirent64;
type ReadDirR =
    unsafe extern "C" fn(*mut libc::DIR, *mut libc::dirent64, *mut *mut libc::dirent64) -> c_int;
type DirVoid = unsafe extern "C" fn(*mut libc::DIR);
type TellDir = unsafe extern "C" fn(*mut libc::DIR) -> c_long;
type SeekDir = unsafe extern "C" fn(*mut libc::DIR, c_long);

// SAFETY: `OpenDir` is `opendir`'s C type.
static OPENDIR: Next<OpenDir> = unsafe { Next::new(c"opendir") };
// SAFETY: `ReadDir` is `readdir`'s C type.
static READDIR: Next<ReadDir> = unsafe { Next::new(c"readdir") };
// SAFETY: `ReadDir` is `readdir64`'s C type.
static READDIR64: Next<ReadDir> = unsafe { Next::new(c"readdir64") };
// SAFETY: `ReadDirR` is `readdir_r`'s C type.
static READDIR_R: Next<ReadDirR> = unsafe { Next::new(c"readdir_r") };
// SAFETY: `ReadDirR` is `readdir64_r`'s C type.
static READDIR64_R: Next<ReadDirR> = unsafe { Next::new(c"readdir64_r") };
// SAFETY: `DirOnly` is `closedir`'s C type.
static CLOSEDIR: Next<DirOnly> = unsafe { Next::new(c"closedir") };
// SAFETY: `DirOnly` is `dirfd`'s C type.
static DIRFD: Next<DirOnly> = unsafe { Next::new(c"dirfd") };
// SAFETY: `DirVoid` is `rewinddir`'s C type.
static REWINDDIR: Next<DirVoid> = unsafe { Next::new(c"rewinddir") };
// SAFETY: `TellDir` is `telldir`'s C type.
static TELLDIR: Next<TellDir> = unsafe { Next::new(c"telldir") };
// SAFETY: `SeekDir` is `seekdir`'s C type.
static SEEKDIR: Next<SeekDir> = unsafe { Next::new(c"seekdir") };

/// `opendir(3)`: a stream of ours for a cached listing.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn opendir(path: *const c_char) -> *mut libc::DIR {
    let key = absolute(path);
    if let (Some(p), Some((cache, _))) = (key, state::cache()) {
        match cache.lookup(p).map(|e| e.list) {
            Some(Outcome::Ok(i)) => {
                if let Some(d) = cache.listing(i).and_then(|l| claim(l, p)) {
                    replay::traced(b"opendir", p, Some(Answer::Ok(0)));
                    return d;
                }
            }
            Some(Outcome::Err(e)) => {
                replay::traced(b"opendir", p, Some(Answer::Err(e)));
                fail(e);
                return core::ptr::null_mut();
            }
            _ => {}
        }
        replay::traced(b"opendir", p, None);
    }
    let dir = OPENDIR.call(|real| {
        // SAFETY: the next definition; the program's own call, unchanged.
        unsafe { real(path) }
    });
    // Listings are recorded in the pilot only: replay leaves a directory
    // that holds data to the file system by design, so noting it as a miss
    // would only cost the fstat below, every run.
    if let (Some(p), Some(j)) = (key, state::pilot_sink()) {
        let saved = errno();
        let fd = if dir.is_null() {
            -1
        } else {
            // SAFETY: a stream libc's opendir returned.
            unsafe { libc::dirfd(dir) }
        };
        let mut st = sys::zeroed_stat();
        let have = fd >= 0 && sys::fstat(fd, &mut st).is_ok();
        record::append(
            j,
            &Record::Open {
                flags: stored_open_flags(
                    (libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) as u32,
                ),
                result: if dir.is_null() { -saved } else { fd },
                stat: have.then(|| stored_stat::store(&st)).as_ref(),
                path: p,
            },
        );
        fail(saved);
    }
    dir
}

/// The next recorded entry of `st`, in its `dirent64`.
fn next_entry(st: &mut Stream) -> *mut libc::dirent64 {
    let Some((e, next_at)) = st.listing.and_then(|l| l.entry_at(st.at)) else {
        return core::ptr::null_mut();
    };
    st.at = next_at;
    st.pos += 1;
    let ent = &mut st.entry;
    ent.d_ino = e.ino;
    ent.d_off = i64::from(st.pos);
    ent.d_reclen = core::mem::size_of::<libc::dirent64>() as u16;
    ent.d_type = e.d_type;
    // SAFETY: c_char and u8 have one size; the array is initialised.
    let name = unsafe {
        core::slice::from_raw_parts_mut(ent.d_name.as_mut_ptr().cast::<u8>(), ent.d_name.len())
    };
    let room = name.len() - 1;
    let n = dlfm_bytes::copy(&mut name[..room], e.name);
    name[n] = 0;
    ent
}

/// `readdir` through the next `f` for libc's streams.
fn readdir_like(f: &Next<ReadDir>, dirp: *mut libc::DIR) -> *mut libc::dirent64 {
    if let Some(st) = ours(dirp) {
        return next_entry(st);
    }
    // Without libc's readdir: the end of the listing (null, errno kept).
    match f.get() {
        // SAFETY: the next definition; the program's own call, unchanged.
        Some(real) => unsafe { real(dirp) },
        None => core::ptr::null_mut(),
    }
}

/// `readdir(3)`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn readdir(dirp: *mut libc::DIR) -> *mut libc::dirent64 {
    readdir_like(&READDIR, dirp)
}

/// `readdir64`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn readdir64(dirp: *mut libc::DIR) -> *mut libc::dirent64 {
    readdir_like(&READDIR64, dirp)
}

/// `readdir_r` through the next `f` for libc's streams.
fn readdir_r_like(
    f: &Next<ReadDirR>,
    dirp: *mut libc::DIR,
    entry: *mut libc::dirent64,
    result: *mut *mut libc::dirent64,
) -> c_int {
    if let Some(st) = ours(dirp) {
        let e = next_entry(st);
        // SAFETY: the caller passes a dirent64 buffer and a result slot.
        unsafe {
            if e.is_null() {
                *result = core::ptr::null_mut();
            } else {
                core::ptr::copy_nonoverlapping(e, entry, 1);
                *result = entry;
            }
        }
        return 0;
    }
    // Without libc's readdir_r: ENOSYS, its way of failing.
    match f.get() {
        // SAFETY: the next definition; the program's own call, unchanged.
        Some(real) => unsafe { real(dirp, entry, result) },
        None => libc::ENOSYS,
    }
}

/// `readdir_r(3)`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn readdir_r(
    dirp: *mut libc::DIR,
    entry: *mut libc::dirent64,
    result: *mut *mut libc::dirent64,
) -> c_int {
    readdir_r_like(&READDIR_R, dirp, entry, result)
}

/// `readdir64_r`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn readdir64_r(
    dirp: *mut libc::DIR,
    entry: *mut libc::dirent64,
    result: *mut *mut libc::dirent64,
) -> c_int {
    readdir_r_like(&READDIR64_R, dirp, entry, result)
}

/// `closedir(3)`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn closedir(dirp: *mut libc::DIR) -> c_int {
    if let Some(st) = ours(dirp) {
        if st.fd >= 0 {
            sys::close(st.fd);
        }
        release(dirp);
        return 0;
    }
    CLOSEDIR.call(|real| {
        // SAFETY: the next definition; the program's own call, unchanged.
        unsafe { real(dirp) }
    })
}

/// `dirfd(3)`: for a stream of ours, a real descriptor on the directory,
/// opened the first time it is asked for.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn dirfd(dirp: *mut libc::DIR) -> c_int {
    if let Some(st) = ours(dirp) {
        if st.fd < 0 {
            let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
            match sys::open(st.path.as_c_str(), flags, 0) {
                Ok(fd) => st.fd = fd.into_raw(),
                Err(e) => return fail(e.0),
            }
        }
        return st.fd;
    }
    DIRFD.call(|real| {
        // SAFETY: the next definition; the program's own call, unchanged.
        unsafe { real(dirp) }
    })
}

/// `rewinddir(3)`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn rewinddir(dirp: *mut libc::DIR) {
    if let Some(st) = ours(dirp) {
        st.at = 0;
        st.pos = 0;
        return;
    }
    if let Some(real) = REWINDDIR.get() {
        // SAFETY: the next definition; the program's own call, unchanged.
        unsafe { real(dirp) }
    }
}

/// `telldir(3)`: for a stream of ours, how many entries were read.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn telldir(dirp: *mut libc::DIR) -> c_long {
    if let Some(st) = ours(dirp) {
        return c_long::from(st.pos);
    }
    TELLDIR.call(|real| {
        // SAFETY: the next definition; the program's own call, unchanged.
        unsafe { real(dirp) }
    })
}

/// `seekdir(3)`: for a stream of ours, back to entry `loc`.
///
/// # Safety
/// As libc's.
#[no_mangle]
pub unsafe extern "C" fn seekdir(dirp: *mut libc::DIR, loc: c_long) {
    if let Some(st) = ours(dirp) {
        st.at = 0;
        st.pos = 0;
        while c_long::from(st.pos) < loc && !next_entry(st).is_null() {}
        return;
    }
    if let Some(real) = SEEKDIR.get() {
        // SAFETY: the next definition; the program's own call, unchanged.
        unsafe { real(dirp, loc) }
    }
}
