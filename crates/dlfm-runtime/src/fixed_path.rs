//! A NUL-terminated path in a fixed buffer: what the wrapper keeps for the
//! cache, the journal and a trace file, without allocation.

/// Longest path handled (the kernel's PATH_MAX, NUL included).
pub const PATH_MAX: usize = 4096;

/// A NUL-terminated path held in a fixed buffer of PATH_MAX bytes.
pub struct FixedPath {
    bytes: [u8; PATH_MAX],
    len: usize,
}

impl FixedPath {
    /// The empty path (all zero, so it lives in `.bss`).
    pub const EMPTY: FixedPath = FixedPath {
        bytes: [0; PATH_MAX],
        len: 0,
    };

    /// Replaces the contents with `part`; false (path left empty) if it
    /// does not fit.
    #[inline]
    pub fn set(&mut self, part: &[u8]) -> bool {
        self.len = 0;
        self.push(part)
    }

    /// Appends `part`; false (path left empty) if the result does not fit.
    #[inline]
    pub fn push(&mut self, part: &[u8]) -> bool {
        let end = self.len.saturating_add(part.len());
        // Keep one byte for the NUL.
        match self.bytes.get_mut(self.len..end) {
            Some(dst) if end < PATH_MAX => {
                dlfm_bytes::copy(dst, part);
                self.len = end;
                if let Some(nul) = self.bytes.get_mut(end) {
                    *nul = 0;
                }
                true
            }
            _ => {
                self.clear();
                false
            }
        }
    }

    /// Appends `path` made absolute: as it is if it starts with `/`, else
    /// after the working directory and a `/`. `getcwd` writes the working
    /// directory, NUL included, into the buffer it is given and returns the
    /// length written. False (path left empty) if it fails or the result
    /// does not fit.
    #[inline]
    pub fn push_absolute(
        &mut self,
        path: &[u8],
        getcwd: impl FnOnce(&mut [u8]) -> Option<usize>,
    ) -> bool {
        if path.first() != Some(&b'/') && !(self.push_cwd(getcwd) && self.push(b"/")) {
            return false;
        }
        self.push(path)
    }

    /// Appends the working directory as `getcwd` gives it.
    #[inline]
    fn push_cwd(&mut self, getcwd: impl FnOnce(&mut [u8]) -> Option<usize>) -> bool {
        let Some(free) = self.bytes.get_mut(self.len..) else {
            return false;
        };
        let room = free.len();
        match getcwd(free) {
            Some(n) if n > 0 && n <= room => {
                self.len += n - 1;
                true
            }
            _ => {
                self.clear();
                false
            }
        }
    }

    /// Empties the path.
    #[inline]
    fn clear(&mut self) {
        self.len = 0;
        self.bytes[0] = 0;
    }

    /// Cuts the path to its first `len` bytes (no change if it is shorter).
    #[inline]
    pub fn truncate(&mut self, len: usize) {
        if len < self.len {
            self.len = len;
            if let Some(nul) = self.bytes.get_mut(len) {
                *nul = 0;
            }
        }
    }

    /// The path's length in bytes (without its NUL).
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the path is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The path without its NUL.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or(&[])
    }

    /// The path as a C string (empty if none was set). For the interposer:
    /// it scans with core's `memchr`, which the ld.so wrapper may not call
    /// (that side uses [`FixedPath::as_ptr`]).
    #[inline]
    pub fn as_c_str(&self) -> &core::ffi::CStr {
        core::ffi::CStr::from_bytes_until_nul(&self.bytes).unwrap_or_default()
    }

    /// A pointer to the NUL-terminated path, for system calls.
    #[inline]
    pub fn as_ptr(&self) -> *const u8 {
        self.bytes.as_ptr()
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::boxed::Box;

    use super::*;

    fn cwd(dir: &'static [u8]) -> impl FnOnce(&mut [u8]) -> Option<usize> {
        move |buf: &mut [u8]| {
            let n = dir.len() + 1;
            let dst = buf.get_mut(..n)?;
            dst[..dir.len()].copy_from_slice(dir);
            dst[dir.len()] = 0;
            Some(n)
        }
    }

    #[test]
    fn paths_are_nul_terminated_and_never_overflow() {
        let mut p = Box::new(FixedPath::EMPTY);
        assert!(p.set(b"/a") && p.push(b"/b"));
        assert_eq!(p.as_bytes(), b"/a/b");
        // SAFETY: as_ptr points at the buffer, NUL-terminated after len.
        assert_eq!(unsafe { *p.as_ptr().add(4) }, 0);
        assert!(!p.push(&[b'x'; PATH_MAX]));
        assert_eq!(p.as_bytes(), b"", "a path that does not fit is emptied");
        assert!(p.set(&[b'y'; PATH_MAX - 1]));
        assert!(!p.push(b"z"), "the NUL needs its byte");
    }

    #[test]
    fn relative_paths_are_made_absolute() {
        let mut p = Box::new(FixedPath::EMPTY);
        assert!(p.push_absolute(b"c.dat", cwd(b"/work")));
        assert_eq!(p.as_bytes(), b"/work/c.dat");
        assert!(p.set(b"DLFM_CACHE="));
        assert!(p.push_absolute(b"/abs", |_| panic!("not needed")));
        assert_eq!(p.as_bytes(), b"DLFM_CACHE=/abs");
        assert!(!p.push_absolute(b"x", |_| None));
        assert_eq!(p.as_bytes(), b"");
    }
}
