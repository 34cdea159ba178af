//! DLCACHE_DBG: the trace directory `dlcache.dbg/` and one empty file
//! `dlcache.dbg.<nodename>.<coreid>` per node and core of the job, which each
//! process of the run finds and appends to.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use dlfm_cache::names::{core_letter, CORE_LETTERS, TRACE_DIR, TRACE_FILE_PREFIX};

/// Whether `DLCACHE_DBG` asks for traces ("on", "true", "yes" or "1").
pub fn requested() -> bool {
    let value = std::env::var_os(dlfm_runtime::env::TRACE);
    dlfm_runtime::env::trace_requested(value.as_ref().map(|v| v.as_bytes()))
}

/// Creates `dlcache.dbg/` with an empty trace file per node and core; returns
/// how many files exist afterwards and the node names.
pub fn create(workdir: &Path) -> Result<(usize, Vec<String>)> {
    let dir = workdir.join(TRACE_DIR);
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let nodes = job_nodes();
    let cores = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(CORE_LETTERS);
    let mut count = 0;
    for node in &nodes {
        for core in 0..cores {
            let letter = char::from(core_letter(core));
            let path = dir.join(format!("{TRACE_FILE_PREFIX}{node}.{letter}"));
            let mut f = fs::OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(&path)
                .with_context(|| format!("cannot create trace file {}", path.display()))?;
            f.flush()?;
            count += 1;
        }
    }
    Ok((count, nodes.into_iter().collect()))
}

/// The job's nodes: PBS_NODEFILE, else SLURM_JOB_NODELIST expanded by
/// `scontrol`, else this node.
fn job_nodes() -> BTreeSet<String> {
    let mut nodes = BTreeSet::new();
    if let Ok(file) = std::env::var("PBS_NODEFILE") {
        if let Ok(text) = fs::read_to_string(file) {
            nodes.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(String::from),
            );
        }
    }
    if nodes.is_empty() {
        if let Ok(list) = std::env::var("SLURM_JOB_NODELIST") {
            if let Ok(out) = Command::new("scontrol")
                .args(["show", "hostnames", &list])
                .output()
            {
                if out.status.success() {
                    let text = String::from_utf8_lossy(&out.stdout);
                    nodes.extend(
                        text.lines()
                            .map(str::trim)
                            .filter(|l| !l.is_empty())
                            .map(String::from),
                    );
                }
            }
        }
    }
    if nodes.is_empty() {
        nodes.insert(this_node());
    }
    nodes
}

/// This node's name as `uname(2)` gives it (the wrapper uses the same).
fn this_node() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_one_file_per_core_on_this_node() {
        let dir = tempfile::tempdir().unwrap();
        let (count, nodes) = create(dir.path()).unwrap();
        let cores = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(CORE_LETTERS);
        assert_eq!(nodes.len(), 1);
        assert_eq!(count, cores);
        let first = dir
            .path()
            .join(TRACE_DIR)
            .join(format!("dlcache.dbg.{}.a", nodes[0]));
        assert_eq!(fs::metadata(first).unwrap().len(), 0);
    }
}
