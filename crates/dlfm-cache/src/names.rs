//! The names of dlfm's files, for the wrapper (which opens them) and for
//! `dlfm.pre` (which creates them): one spelling each.

/// The cache file when `DLFM_CACHE` is not set.
pub const DEFAULT_CACHE: &str = "dlcache.dat";
/// Appended to the cache's path to name the pilot's journal.
pub const JOURNAL_SUFFIX: &str = ".journal";
/// Appended to the cache's path to name the directory of read-cache's
/// miss journals, one per noting process (`<nodename>.<pid>` +
/// `MISS_JOURNAL_EXT`).
pub const MISSES_SUFFIX: &str = ".misses";
/// A miss journal's name after the node's name and the process's pid.
pub const MISS_JOURNAL_EXT: &str = ".journal";
/// The trace directory (`DLCACHE_DBG`), relative to the working directory.
pub const TRACE_DIR: &str = "dlcache.dbg";
/// A trace file's name before `<nodename>.<core letter>`.
pub const TRACE_FILE_PREFIX: &str = "dlcache.dbg.";
/// Cores that have a letter of their own: a-z, then A-Z; cores past the
/// last wrap around.
pub const CORE_LETTERS: usize = 52;

/// The letter naming core `cpu` in a trace file's name, as in the original
/// DLFM: `a`-`z` for cores 0-25, `A`-`Z` for 26-51, then again from `a`.
#[inline]
pub fn core_letter(cpu: usize) -> u8 {
    let n = cpu % CORE_LETTERS;
    if n < 26 {
        b'a' + n as u8
    } else {
        b'A' + (n - 26) as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_letters_follow_the_manual() {
        assert_eq!(core_letter(0), b'a');
        assert_eq!(core_letter(25), b'z');
        assert_eq!(core_letter(26), b'A');
        assert_eq!(core_letter(51), b'Z');
        assert_eq!(core_letter(52), b'a');
    }
}
