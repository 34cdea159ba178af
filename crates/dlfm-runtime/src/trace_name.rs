//! The names of the files the wrapper writes per node: a process's miss
//! journal, `<cache>.misses/<nodename>.<pid>.journal` (read-cache's record
//! of what the cache missed), and a process's DLCACHE_DBG trace file,
//! `dlcache.dbg/dlcache.dbg.<nodename>.<core letter>` relative to the working
//! directory: one naming for the ld.so wrapper and the FMCaching
//! interposer, which append to the same file.

use dlfm_cache::names::{
    core_letter, MISSES_SUFFIX, MISS_JOURNAL_EXT, TRACE_DIR, TRACE_FILE_PREFIX,
};

use crate::fixed_path::FixedPath;
use crate::line::decimal;

/// The node's name in a `uname` nodename field: up to its first NUL.
#[inline]
fn node_name(node: &[u8]) -> &[u8] {
    let len = node.iter().position(|&b| b == 0).unwrap_or(node.len());
    node.get(..len).unwrap_or(&[])
}

/// Puts the miss journal's name for process `pid` on node `node` (up to its
/// first NUL) and the cache at `cache` into `path`:
/// `<cache>.misses/<node>.<pid>.journal` (one file per noting process, so
/// that `dlfm.pre report` can count the processes that missed a path);
/// false if it does not fit or the node has no name.
#[inline]
// `<[u8]>::contains` calls core's out-of-line memchr: a call into core,
// which the wrapper may not make (see `wrapper-objs/ldso/src/lib.rs`).
#[allow(clippy::manual_contains)]
pub fn miss_journal_path(path: &mut FixedPath, cache: &[u8], node: &[u8], pid: u32) -> bool {
    let node = node_name(node);
    let mut digits = [0u8; 20];
    !node.is_empty()
        && !node.iter().any(|&b| b == b'/')
        && path.set(cache)
        && path.push(MISSES_SUFFIX.as_bytes())
        && path.push(b"/")
        && path.push(node)
        && path.push(b".")
        && path.push(decimal(u64::from(pid), &mut digits))
        && path.push(MISS_JOURNAL_EXT.as_bytes())
}

/// Puts the trace file's name for node `node` (up to its first NUL) and
/// core `cpu` into `path`; false if it does not fit.
#[inline]
pub fn trace_path(path: &mut FixedPath, node: &[u8], cpu: usize) -> bool {
    path.set(TRACE_DIR.as_bytes())
        && path.push(b"/")
        && path.push(TRACE_FILE_PREFIX.as_bytes())
        && path.push(node_name(node))
        && path.push(b".")
        && path.push(&[core_letter(cpu)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_miss_journal_is_named_by_cache_and_node() {
        let mut p = FixedPath::EMPTY;
        assert!(miss_journal_path(
            &mut p,
            b"/pfs/dlcache.dat",
            b"nid001\0\0\0",
            4711
        ));
        assert_eq!(p.as_bytes(), b"/pfs/dlcache.dat.misses/nid001.4711.journal");
        assert!(!miss_journal_path(&mut p, b"/pfs/dlcache.dat", b"\0\0", 1));
        assert!(!miss_journal_path(&mut p, b"/pfs/dlcache.dat", b"a/b\0", 1));
    }
}
