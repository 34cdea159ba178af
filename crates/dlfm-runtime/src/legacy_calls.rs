//! Older loaders' calls as the `*at` calls the cache knows. glibc before
//! 2.33 on x86_64 asks for file status with `stat`, `fstat` and `lstat`, and
//! aarch64's loaders use `fstat`; glibc before 2.26 on x86_64 opens
//! libraries with `open` (RHEL 7's 2.17). The wrapper turns them into the
//! `newfstatat` and `openat` the kernel treats the same way, so that record,
//! replay and pass-through see one kind of status call and one kind of
//! open. (aarch64 has no `open`, `stat` or `lstat` system call.)

use linux_raw_sys::general::{__NR_fstat, __NR_newfstatat, AT_EMPTY_PATH};
#[cfg(target_arch = "x86_64")]
use linux_raw_sys::general::{
    __NR_lstat, __NR_open, __NR_openat, __NR_stat, AT_FDCWD, AT_SYMLINK_NOFOLLOW,
};

/// `nr` with arguments `a` as `newfstatat` if it is `stat`, `fstat` or
/// `lstat`, as `openat` if it is `open`; any other call unchanged. `empty`
/// is the address of an empty NUL-terminated string (the path of `fstat`'s
/// `AT_EMPTY_PATH` form).
#[inline]
pub fn as_at_call(nr: u64, a: [u64; 6], empty: u64) -> (u64, [u64; 6]) {
    let at = u64::from(__NR_newfstatat);
    if nr == u64::from(__NR_fstat) {
        return (at, [a[0], empty, a[1], u64::from(AT_EMPTY_PATH), 0, 0]);
    }
    path_call(nr, a).unwrap_or((nr, a))
}

/// `stat(path, buf)` and `lstat(path, buf)` as `newfstatat`,
/// `open(path, flags, mode)` as `openat`, relative to the working directory.
#[cfg(target_arch = "x86_64")]
#[inline]
fn path_call(nr: u64, a: [u64; 6]) -> Option<(u64, [u64; 6])> {
    let cwd = AT_FDCWD as i64 as u64;
    let at = u64::from(__NR_newfstatat);
    if nr == u64::from(__NR_stat) {
        Some((at, [cwd, a[0], a[1], 0, 0, 0]))
    } else if nr == u64::from(__NR_lstat) {
        Some((at, [cwd, a[0], a[1], u64::from(AT_SYMLINK_NOFOLLOW), 0, 0]))
    } else if nr == u64::from(__NR_open) {
        Some((u64::from(__NR_openat), [cwd, a[0], a[1], a[2], 0, 0]))
    } else {
        None
    }
}

/// No `open`, `stat` or `lstat` system call exists here.
#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn path_call(_: u64, _: [u64; 6]) -> Option<(u64, [u64; 6])> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fstat_becomes_newfstatat() {
        let at = u64::from(__NR_newfstatat);
        assert_eq!(
            as_at_call(__NR_fstat.into(), [3, 0x2000, 0, 0, 0, 0], 0x99),
            (at, [3, 0x99, 0x2000, AT_EMPTY_PATH.into(), 0, 0])
        );
        let a = [0x1000, 0x2000, 7, 8, 9, 10];
        assert_eq!(as_at_call(at, a, 0x99), (at, a));
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_older_status_calls_become_newfstatat() {
        let at = u64::from(__NR_newfstatat);
        let cwd = AT_FDCWD as i64 as u64;
        let a = [0x1000, 0x2000, 7, 8, 9, 10];
        assert_eq!(
            as_at_call(__NR_stat.into(), a, 0x99),
            (at, [cwd, 0x1000, 0x2000, 0, 0, 0])
        );
        assert_eq!(
            as_at_call(__NR_lstat.into(), a, 0x99),
            (at, [cwd, 0x1000, 0x2000, AT_SYMLINK_NOFOLLOW.into(), 0, 0])
        );
        assert_eq!(as_at_call(257, a, 0x99), (257, a));
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn open_becomes_openat_in_the_working_directory() {
        let cwd = AT_FDCWD as i64 as u64;
        let a = [0x1000, 0o2000000, 0o644, 8, 9, 10];
        assert_eq!(
            as_at_call(__NR_open.into(), a, 0x99),
            (__NR_openat.into(), [cwd, 0x1000, 0o2000000, 0o644, 0, 0])
        );
    }
}
