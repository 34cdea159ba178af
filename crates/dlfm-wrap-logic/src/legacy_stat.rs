//! glibc before 2.33 asks for file status with `stat`, `fstat` and `lstat`;
//! later builds, and the cache, know only `newfstatat`. The wrapper turns the
//! older calls into the `newfstatat` the kernel treats the same way, so that
//! record, replay and pass-through see one kind of status call.

use linux_raw_sys::general::{
    __NR_fstat, __NR_lstat, __NR_newfstatat, __NR_stat, AT_EMPTY_PATH, AT_FDCWD,
    AT_SYMLINK_NOFOLLOW,
};

/// `nr` with arguments `a` as a `newfstatat` if it is `stat`, `fstat` or
/// `lstat`; any other call unchanged. `empty` is the address of an empty
/// NUL-terminated string (the path of `fstat`'s `AT_EMPTY_PATH` form).
#[inline]
pub fn as_newfstatat(nr: u64, a: [u64; 6], empty: u64) -> (u64, [u64; 6]) {
    let at = u64::from(__NR_newfstatat);
    let cwd = AT_FDCWD as i64 as u64;
    if nr == u64::from(__NR_stat) {
        (at, [cwd, a[0], a[1], 0, 0, 0])
    } else if nr == u64::from(__NR_lstat) {
        (at, [cwd, a[0], a[1], u64::from(AT_SYMLINK_NOFOLLOW), 0, 0])
    } else if nr == u64::from(__NR_fstat) {
        (at, [a[0], empty, a[1], u64::from(AT_EMPTY_PATH), 0, 0])
    } else {
        (nr, a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_older_status_calls_become_newfstatat() {
        let at = u64::from(__NR_newfstatat);
        let cwd = AT_FDCWD as i64 as u64;
        let a = [0x1000, 0x2000, 7, 8, 9, 10];
        assert_eq!(
            as_newfstatat(__NR_stat.into(), a, 0x99),
            (at, [cwd, 0x1000, 0x2000, 0, 0, 0])
        );
        assert_eq!(
            as_newfstatat(__NR_lstat.into(), a, 0x99),
            (at, [cwd, 0x1000, 0x2000, AT_SYMLINK_NOFOLLOW.into(), 0, 0])
        );
        assert_eq!(
            as_newfstatat(__NR_fstat.into(), [3, 0x2000, 0, 0, 0, 0], 0x99),
            (at, [3, 0x99, 0x2000, AT_EMPTY_PATH.into(), 0, 0])
        );
        assert_eq!(as_newfstatat(257, a, 0x99), (257, a));
    }
}
