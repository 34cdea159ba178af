//! Lines of `/proc/self/maps`, read by the FMCaching interposer to find the
//! ld.so wrapper's mapping of the cache's index
//! (`wrapper-objs/fm/src/shared_index.rs`). No std, no allocation.

/// A mapping `/proc/self/maps` lists: its address range, whether it is
/// read-only and private (`r--p`), its file offset, device and inode.
#[derive(Debug, PartialEq, Eq)]
pub struct Mapping {
    /// First address.
    pub start: usize,
    /// The address after the last.
    pub end: usize,
    /// `r--p`: readable only, private.
    pub read_only_private: bool,
    /// Offset in the file.
    pub offset: u64,
    /// The file's device, major number.
    pub major: u32,
    /// Its minor number.
    pub minor: u32,
    /// The file's inode (0 for an anonymous mapping).
    pub inode: u64,
}

/// Parses one line of `/proc/self/maps` (without its newline):
/// `start-end perms offset major:minor inode [path]`, numbers in hex but
/// the inode (decimal).
pub fn parse_line(line: &[u8]) -> Option<Mapping> {
    let mut fields = line.split(|&b| b == b' ').filter(|f| !f.is_empty());
    let range = fields.next()?;
    let perms = fields.next()?;
    let offset = fields.next()?;
    let dev = fields.next()?;
    let inode = fields.next()?;
    let dash = range.iter().position(|&b| b == b'-')?;
    let colon = dev.iter().position(|&b| b == b':')?;
    Some(Mapping {
        start: number(range.get(..dash)?, 16)? as usize,
        end: number(range.get(dash + 1..)?, 16)? as usize,
        read_only_private: perms == b"r--p",
        offset: number(offset, 16)?,
        major: u32::try_from(number(dev.get(..colon)?, 16)?).ok()?,
        minor: u32::try_from(number(dev.get(colon + 1..)?, 16)?).ok()?,
        inode: number(inode, 10)?,
    })
}

/// `digits` in `radix` (16 or 10), if they are all digits and fit.
fn number(digits: &[u8], radix: u32) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &b in digits {
        let d = (b as char).to_digit(radix)?;
        n = n.checked_mul(u64::from(radix))?.checked_add(u64::from(d))?;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_proc_self_maps_are_read() {
        let line = b"7f00746df000-7f0074796000 r--p 00000000 00:1b 43525                      /dev/shm/dlfm-0-x.d/cache";
        assert_eq!(
            parse_line(line),
            Some(Mapping {
                start: 0x7f00746df000,
                end: 0x7f0074796000,
                read_only_private: true,
                offset: 0,
                major: 0,
                minor: 0x1b,
                inode: 43525,
            })
        );
        let anon = parse_line(b"7ffd1000-7ffd2000 rw-p 00000000 00:00 0 ").unwrap();
        assert!(!anon.read_only_private);
        assert_eq!(anon.inode, 0);
        let shared = parse_line(b"1000-2000 r--s 00001000 fd:01 12 /x").unwrap();
        assert!(!shared.read_only_private);
        assert_eq!(
            (shared.offset, shared.major, shared.minor),
            (0x1000, 0xfd, 1)
        );
        for bad in [
            &b""[..],
            b"1000 r--p 0 00:1b 1 /x",
            b"1000-2000 r--p 0 001b 1 /x",
            b"1000-2000 r--p 0 00:1b",
            b"1000-zz r--p 0 00:1b 1 /x",
            b"1000-2000 r--p 0 00:1b 99999999999999999999999 /x",
        ] {
            assert_eq!(parse_line(bad), None, "{:?}", core::str::from_utf8(bad));
        }
    }
}
