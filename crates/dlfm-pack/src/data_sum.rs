//! The checksum of a stored file's bytes (the file record's `data_sum`,
//! FNV-1a 32), computed while the bytes stream past, so that neither the
//! writer nor `dlfm.pre check` holds a whole library in memory.

use std::io::{self, Read, Write};

use dlfm_cache::hash::{fnv1a32_continue, FNV32_OFFSET};

/// Copies everything `src` yields into `dst`; returns how many bytes, and
/// their FNV-1a 32.
pub fn copy_and_sum(src: &mut impl Read, dst: &mut impl Write) -> io::Result<(u64, u32)> {
    let mut buf = vec![0u8; 1 << 20];
    let (mut copied, mut sum) = (0u64, FNV32_OFFSET);
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => return Ok((copied, sum)),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        dst.write_all(&buf[..n])?;
        sum = fnv1a32_continue(sum, &buf[..n]);
        copied += n as u64;
    }
}
