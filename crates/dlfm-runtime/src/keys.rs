//! Which calls are *lookups*: the path-keyed questions ld.so asks that dlfm
//! records in the pilot and answers in replay. Record and replay share these
//! filters so that whatever is recorded is exactly what can be replayed.
//!
//! A path is a lookup when absolute; a relative one only as the ld.so
//! wrapper joins it to the working directory of the moment
//! (`wrapper-objs/ldso/src/lookup.rs`). Only read-only opens, plain `stat`
//! (`newfstatat(AT_FDCWD, path, buf, 0)`) and `access(path, R_OK)`. The
//! wrapper reads the path out of the caller's memory; these functions judge
//! the call's other arguments and the path's bytes.

use linux_raw_sys::general as nr;

/// Whether `path` is absolute.
#[inline]
pub fn is_absolute(path: &[u8]) -> bool {
    path.first() == Some(&b'/')
}

/// `openat(dirfd, path, flags)` is a lookup: relative to the working
/// directory's descriptor (the path must still be absolute), read-only, and
/// neither creating, truncating, nor opening a directory, a path handle or
/// a temporary file.
#[inline]
pub fn open_is_lookup(dirfd: i32, flags: u32) -> bool {
    let refused = nr::O_CREAT | nr::O_TRUNC | nr::O_DIRECTORY | nr::O_PATH | nr::O_TMPFILE;
    dirfd == nr::AT_FDCWD && flags & nr::O_ACCMODE == nr::O_RDONLY && flags & refused == 0
}

/// `newfstatat(dirfd, path, buf, flags)` is a plain `stat` lookup.
#[inline]
pub fn stat_is_lookup(dirfd: i32, flags: u32) -> bool {
    dirfd == nr::AT_FDCWD && flags == 0
}

/// `newfstatat(fd, path, buf, flags)` is `fstat(fd)`: an empty path with
/// `AT_EMPTY_PATH`.
#[inline]
pub fn is_fstat(path_is_empty: bool, flags: u32) -> bool {
    path_is_empty && flags & nr::AT_EMPTY_PATH != 0
}

/// `access(path, mode)` is a lookup: `R_OK` only.
#[inline]
pub fn access_is_lookup(mode: u32) -> bool {
    mode == nr::R_OK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_read_only_opens_from_the_working_directory_are_lookups() {
        assert!(open_is_lookup(nr::AT_FDCWD, nr::O_RDONLY | nr::O_CLOEXEC));
        assert!(!open_is_lookup(3, nr::O_RDONLY));
        assert!(!open_is_lookup(nr::AT_FDCWD, nr::O_WRONLY));
        assert!(!open_is_lookup(nr::AT_FDCWD, nr::O_RDWR));
        for refused in [
            nr::O_CREAT,
            nr::O_TRUNC,
            nr::O_DIRECTORY,
            nr::O_PATH,
            nr::O_TMPFILE,
        ] {
            assert!(!open_is_lookup(nr::AT_FDCWD, nr::O_RDONLY | refused));
        }
    }

    #[test]
    fn stat_access_and_fstat() {
        assert!(stat_is_lookup(nr::AT_FDCWD, 0));
        assert!(!stat_is_lookup(nr::AT_FDCWD, nr::AT_SYMLINK_NOFOLLOW));
        assert!(!stat_is_lookup(5, 0));
        assert!(access_is_lookup(nr::R_OK));
        assert!(!access_is_lookup(nr::R_OK | nr::W_OK));
        assert!(is_fstat(true, nr::AT_EMPTY_PATH));
        assert!(!is_fstat(false, nr::AT_EMPTY_PATH));
        assert!(!is_fstat(true, 0));
        assert!(is_absolute(b"/lib") && !is_absolute(b"lib") && !is_absolute(b""));
    }
}
