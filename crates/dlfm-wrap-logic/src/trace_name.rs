//! The name of a process's DLCACHE_DBG trace file,
//! `dlcache.dbg/dlcache.dbg.<nodename>.<core letter>` relative to the working
//! directory: one naming for the ld.so wrapper and the FMCaching
//! interposer, which append to the same file.

use dlfm_cache::names::{core_letter, TRACE_DIR, TRACE_FILE_PREFIX};

use crate::fixed_path::FixedPath;

/// Puts the trace file's name for node `node` (up to its first NUL) and
/// core `cpu` into `path`; false if it does not fit.
#[inline]
pub fn trace_path(path: &mut FixedPath, node: &[u8], cpu: usize) -> bool {
    let len = node.iter().position(|&b| b == 0).unwrap_or(node.len());
    path.set(TRACE_DIR.as_bytes())
        && path.push(b"/")
        && path.push(TRACE_FILE_PREFIX.as_bytes())
        && path.push(node.get(..len).unwrap_or(&[]))
        && path.push(b".")
        && path.push(&[core_letter(cpu)])
}
