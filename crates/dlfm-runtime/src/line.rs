//! A fixed buffer for building one trace line, without formatting machinery.

use core::mem::MaybeUninit;

/// Longest trace line; longer content is cut.
const LINE_MAX: usize = 4096 + 256;

/// One line being built. Only the first `len` bytes are ever read.
pub struct Line {
    buf: MaybeUninit<[u8; LINE_MAX]>,
    len: usize,
}

impl Line {
    /// An empty line.
    pub const EMPTY: Line = Line {
        buf: MaybeUninit::uninit(),
        len: 0,
    };

    /// Starts a new line.
    #[inline]
    pub fn clear(&mut self) -> &mut Self {
        self.len = 0;
        self
    }

    /// Appends bytes, cutting what does not fit.
    #[inline]
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        let room = LINE_MAX - self.len;
        let n = if b.len() < room { b.len() } else { room };
        // SAFETY: `len + n <= LINE_MAX`, so the destination lies in `buf`;
        // writing initialises those bytes.
        let dst = unsafe {
            core::slice::from_raw_parts_mut((self.buf.as_mut_ptr() as *mut u8).add(self.len), n)
        };
        if let Some(src) = b.get(..n) {
            dlfm_bytes::copy(dst, src);
            self.len += n;
        }
        self
    }

    /// Appends a signed decimal number.
    #[inline]
    pub fn int(&mut self, v: i64) -> &mut Self {
        if v < 0 {
            self.bytes(b"-");
        }
        self.uint(v.unsigned_abs())
    }

    /// Appends an unsigned decimal number.
    #[inline]
    pub fn uint(&mut self, v: u64) -> &mut Self {
        let mut digits = [0u8; 20];
        self.bytes(decimal(v, &mut digits))
    }

    /// The line so far.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        // SAFETY: the first `len` bytes were written by `bytes`.
        unsafe { core::slice::from_raw_parts(self.buf.as_ptr() as *const u8, self.len) }
    }
}

/// `v` in decimal, written into the end of `digits`.
#[inline]
pub fn decimal(mut v: u64, digits: &mut [u8; 20]) -> &[u8] {
    let mut i = digits.len();
    loop {
        i -= 1;
        if let Some(d) = digits.get_mut(i) {
            *d = b'0' + (v % 10) as u8;
        }
        v /= 10;
        if v == 0 || i == 0 {
            break;
        }
    }
    digits.get(i..).unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_numbers_and_cuts_long_lines() {
        let mut l = Line::EMPTY;
        l.clear()
            .bytes(b"dlfm ")
            .int(-42)
            .bytes(b" ")
            .uint(0)
            .bytes(b" ")
            .uint(u64::MAX);
        assert_eq!(l.as_bytes(), b"dlfm -42 0 18446744073709551615");
        let long = [b'x'; LINE_MAX + 10];
        assert_eq!(
            l.clear().bytes(&long).bytes(b"y").as_bytes().len(),
            LINE_MAX
        );
    }
}
