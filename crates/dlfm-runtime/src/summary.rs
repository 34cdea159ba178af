//! The trace's summary line, the last a process writes (at exit):
//! `summary: MODE, served N, missed N, passed N` (`recorded` for `served`
//! in write-cache), then `, ASKED off: WHY` when the mode asked for is off.
//! The wrapper writes it with these pieces; `dlfm.pre report` and the tests
//! read it back with [`parse`].

/// What starts the line (after the `dlfm PID ` every trace line has).
pub const PREFIX: &[u8] = b"summary: ";
/// Calls answered from the cache (read-cache).
pub const SERVED: &[u8] = b", served ";
/// Calls recorded in the journal (write-cache).
pub const RECORDED: &[u8] = b", recorded ";
/// Lookups the cache did not hold.
pub const MISSED: &[u8] = b", missed ";
/// Calls passed to the kernel.
pub const PASSED: &[u8] = b", passed ";

/// The figures of one summary line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary<'a> {
    /// The mode the process ran in (`off`, `write-cache`, `read-cache`).
    pub mode: &'a [u8],
    /// Served (read-cache) or recorded (write-cache) calls.
    pub handled: u64,
    /// Missed lookups.
    pub missed: u64,
    /// Calls passed to the kernel.
    pub passed: u64,
    /// Whether the line says a mode was off (`... off: why`).
    pub off: bool,
}

/// The summary in the trace line `line`, if it is one.
#[inline]
pub fn parse(line: &[u8]) -> Option<Summary<'_>> {
    let at = line.windows(PREFIX.len()).position(|w| w == PREFIX)?;
    let rest = line.get(at + PREFIX.len()..)?;
    let mode_end = rest.iter().position(|&b| b == b',').unwrap_or(rest.len());
    let (mode, rest) = rest.split_at(mode_end);
    Some(Summary {
        mode,
        handled: number_after(rest, SERVED).or_else(|| number_after(rest, RECORDED))?,
        missed: number_after(rest, MISSED)?,
        passed: number_after(rest, PASSED)?,
        off: rest.windows(5).any(|w| w == b" off:"),
    })
}

/// The decimal number right after `key` in `text`.
#[inline]
fn number_after(text: &[u8], key: &[u8]) -> Option<u64> {
    let at = text.windows(key.len()).position(|w| w == key)? + key.len();
    let digits = text.get(at..)?;
    let n = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    if n == 0 {
        return None;
    }
    digits[..n].iter().try_fold(0u64, |v, &d| {
        v.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lines_the_wrapper_writes_read_back() {
        let s = parse(b"dlfm 12 summary: read-cache, served 155, missed 0, passed 5").unwrap();
        assert_eq!(
            s,
            Summary {
                mode: b"read-cache",
                handled: 155,
                missed: 0,
                passed: 5,
                off: false
            }
        );
        let s = parse(
            b"dlfm 9 summary: off, served 0, missed 0, passed 40, read-cache off: no cache file",
        )
        .unwrap();
        assert_eq!((s.mode, s.passed, s.off), (&b"off"[..], 40, true));
        let s = parse(b"dlfm 3 summary: write-cache, recorded 17, missed 0, passed 2").unwrap();
        assert_eq!((s.mode, s.handled), (&b"write-cache"[..], 17));
        assert_eq!(parse(b"dlfm 3 openat served /lib/libc.so.6 = 3"), None);
        assert_eq!(parse(b"dlfm 3 summary: read-cache, served x"), None);
    }
}
