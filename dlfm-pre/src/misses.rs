//! What the wide run's caches missed: the miss journals that one process per
//! node writes in read-cache (`<cache>.misses/<nodename>.<pid>.journal`, in
//! the pilot's journal format; the wrapper's `misses` module and the
//! interposer's `state`), `dlfm.pre report` over them and the DLCACHE_DBG
//! trace summaries, and the folding of the misses into the pilot's journal by
//! the next `read-cache`. Both keep only what `dlfm_runtime::scope` says
//! the next pack serves, the rule the noting side applied already.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use dlfm_cache::journal::{encode, Origin, Record, MAX_RECORD};
use dlfm_cache::names::{MISSES_SUFFIX, MISS_JOURNAL_EXT, TRACE_DIR};
use dlfm_cache::read::Cache;
use dlfm_pack::scope::Scope;
use dlfm_runtime::scope::{self, Maker, Rules};
use dlfm_runtime::summary;

/// `<cache>.misses`.
fn misses_dir(cache: &Path) -> PathBuf {
    let mut name = cache.as_os_str().to_os_string();
    name.push(MISSES_SUFFIX);
    PathBuf::from(name)
}

/// One miss journal: the node and process that wrote it.
struct MissJournal {
    node: String,
    /// The file's name without its extension: `<node>.<pid>`, which names
    /// the process.
    process: String,
    path: PathBuf,
}

/// The miss journals in `dir` (regular files only), in name order.
fn journals(dir: &Path) -> Result<Vec<MissJournal>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(process) = name.strip_suffix(MISS_JOURNAL_EXT) else {
            continue;
        };
        // `<node>.<pid>`; a node name may hold dots too.
        let node = match process.rsplit_once('.') {
            Some((node, pid)) if pid.bytes().all(|b| b.is_ascii_digit()) => node,
            _ => process,
        };
        if e.file_type().is_ok_and(|t| t.is_file()) {
            out.push(MissJournal {
                node: node.to_string(),
                process: process.to_string(),
                path: e.path(),
            });
        }
    }
    out.sort_by(|a, b| a.process.cmp(&b.process));
    Ok(out)
}

/// Makes `<cache>.misses/` (writable by its owner only), where read-cache
/// processes record what the cache missed.
pub fn prepare_dir(cache: &Path) -> Result<PathBuf> {
    let dir = misses_dir(cache);
    match fs::symlink_metadata(&dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => bail!(
            "{} exists and is not a directory: remove it (read-cache records the run's misses there)",
            dir.display()
        ),
        Err(_) => {
            fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
                .with_context(|| format!("cannot set the mode of {}", dir.display()))?;
        }
    }
    Ok(dir)
}

/// What folding found, for the read-cache summary.
#[derive(Serialize, Default)]
pub struct Folded {
    /// The nodes whose miss journals were folded in.
    pub nodes: Vec<String>,
    /// Lookups they held (open, stat and access records).
    pub lookups: usize,
}

/// Appends what every miss journal of `cache` notes (see [`noted`]) to the
/// pilot's `journal` and removes it: the next pack includes the misses, with
/// the pilot's stale checks, and later packs keep them.
pub fn fold(cache: &Path, journal: &Path, scope: &Scope) -> Result<Folded> {
    let mut folded = Folded::default();
    let found = journals(&misses_dir(cache))?;
    if found.is_empty() {
        return Ok(folded);
    }
    let mut out = fs::OpenOptions::new()
        .append(true)
        .open(journal)
        .with_context(|| format!("cannot append to the journal {}", journal.display()))?;
    let rules = scope.rules();
    let used = dlfm_pack::metadata::Metadata::read(cache).ok();
    let used = used.as_ref().and_then(|m| m.parse(cache).ok());
    for MissJournal { node, path, .. } in found {
        let bytes = fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let records = dlfm_pack::scan::scan(&bytes).records;
        let keep = noted(&records, &rules, used.as_ref());
        let mut kept = Vec::new();
        let mut buf = vec![0u8; MAX_RECORD];
        let mut lookups = 0;
        for ((r, origin), _) in records.iter().zip(&keep).filter(|(_, k)| **k) {
            if let Some(n) = encode(r, *origin, &mut buf) {
                kept.extend_from_slice(&buf[..n]);
                lookups += usize::from(lookup(r).is_some());
            }
        }
        out.write_all(&kept)
            .with_context(|| format!("cannot append to the journal {}", journal.display()))?;
        fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
        if lookups > 0 {
            folded.lookups += lookups;
            if !folded.nodes.contains(&node) {
                folded.nodes.push(node);
            }
        }
    }
    out.sync_all()
        .with_context(|| format!("cannot write the journal {}", journal.display()))?;
    Ok(folded)
}

/// Which of `records` the next pack serves, by `dlfm_runtime::scope`'s
/// rule with `rules` and the cache the replay `used` (if it can be read):
/// every `Process` record, every lookup ld.so made, and of the program's
/// own lookups those of code and its metadata (by name or `--include`) and
/// of files in directories that cache lists, never a directory. The noting
/// side applied the same rule; this keeps journals of older versions, and a
/// changed `--include`, right.
fn noted(
    records: &[(Record<'_>, Origin)],
    rules: &Rules<'_>,
    used: Option<&Cache<'_>>,
) -> Vec<bool> {
    records
        .iter()
        .map(|(r, o)| match lookup(r) {
            None => matches!(r, Record::Process { .. }),
            Some((_, p, _)) => {
                let maker = match o {
                    Origin::Ldso => Maker::Ldso,
                    Origin::Program => Maker::Program,
                };
                scope::worth_noting(maker, p, r.found_directory(), rules, used)
            }
        })
        .collect()
}

/// The path and the result (0, a descriptor, or -errno) of a lookup record.
fn lookup<'a>(r: &Record<'a>) -> Option<(&'static str, &'a [u8], i32)> {
    match *r {
        Record::Open { path, result, .. } => Some(("open", path, result)),
        Record::Stat { path, result, .. } => Some(("stat", path, result)),
        Record::Access { path, result, .. } => Some(("access", path, result)),
        Record::Process { .. } | Record::Setup { .. } => None,
    }
}

/// One missed path.
#[derive(Serialize)]
pub struct MissedPath {
    /// The path.
    pub path: String,
    /// What was asked: open, stat or access.
    pub calls: Vec<String>,
    /// Whether it was found (else every lookup failed, mostly ENOENT).
    pub found: bool,
    /// The nodes that missed it.
    pub nodes: Vec<String>,
    /// How many processes noted it (each writes its own miss journal).
    pub processes: usize,
}

/// Missed paths of one directory.
#[derive(Serialize)]
pub struct MissedDir {
    /// The directory.
    pub dir: String,
    /// Its missed paths.
    pub paths: Vec<MissedPath>,
}

/// What `dlfm.pre report` found.
#[derive(Serialize)]
pub struct Report {
    /// The cache the report is about.
    pub cache: String,
    /// Nodes whose miss journal notes a lookup.
    pub nodes: Vec<String>,
    /// Processes that noted misses (one miss journal each; one per node and
    /// program, mostly).
    pub recording_processes: usize,
    /// Missed lookups recorded (a path asked twice counts twice).
    pub missed_lookups: usize,
    /// Missed paths, grouped by directory.
    pub dirs: Vec<MissedDir>,
    /// From the DLCACHE_DBG trace summaries, when there are any.
    pub traced: Option<Traced>,
}

/// Sums of the trace files' summary lines.
#[derive(Serialize, Default)]
pub struct Traced {
    /// Processes with a read-cache summary.
    pub processes: usize,
    /// Calls served from the cache.
    pub served: u64,
    /// Lookups the cache missed.
    pub missed: u64,
    /// Calls passed to the kernel.
    pub passed: u64,
}

/// What the miss journals say about one path.
#[derive(Default)]
struct Seen {
    calls: BTreeSet<&'static str>,
    found: bool,
    nodes: BTreeSet<String>,
    processes: BTreeSet<String>,
}

/// Reads the miss journals (and the trace files, if any) of `cache`.
pub fn report(cache: &Path) -> Result<Report> {
    let dir = misses_dir(cache);
    if !dir.is_dir() {
        bail!(
            "{} does not exist: no read-cache run of this cache has been prepared (dlfm.pre read-cache makes it)",
            dir.display()
        );
    }
    let mut nodes = Vec::new();
    let mut processes = 0;
    let mut lookups = 0;
    let mut paths: BTreeMap<Vec<u8>, Seen> = BTreeMap::new();
    let used = dlfm_pack::metadata::Metadata::read(cache).ok();
    let used = used.as_ref().and_then(|m| m.parse(cache).ok());
    let rules = used
        .as_ref()
        .and_then(|c| Rules::new(c.scope_patterns()))
        .unwrap_or(Rules::NONE);
    for j in journals(&dir)? {
        let bytes =
            fs::read(&j.path).with_context(|| format!("cannot read {}", j.path.display()))?;
        let records = dlfm_pack::scan::scan(&bytes).records;
        let keep = noted(&records, &rules, used.as_ref());
        let mut any = false;
        for ((r, _), _) in records.iter().zip(&keep).filter(|(_, k)| **k) {
            if let Some((call, p, result)) = lookup(r) {
                lookups += 1;
                any = true;
                let e = paths.entry(p.to_vec()).or_default();
                e.calls.insert(call);
                e.found |= result >= 0;
                e.nodes.insert(j.node.clone());
                e.processes.insert(j.process.clone());
            }
        }
        if any {
            processes += 1;
            if !nodes.contains(&j.node) {
                nodes.push(j.node);
            }
        }
    }
    let mut dirs: BTreeMap<String, Vec<MissedPath>> = BTreeMap::new();
    for (p, seen) in paths {
        let path = Path::new(std::ffi::OsStr::from_bytes(&p));
        let parent = path
            .parent()
            .map_or_else(|| "/".into(), |d| d.display().to_string());
        dirs.entry(parent).or_default().push(MissedPath {
            path: path.display().to_string(),
            calls: seen.calls.into_iter().map(String::from).collect(),
            found: seen.found,
            nodes: seen.nodes.into_iter().collect(),
            processes: seen.processes.len(),
        });
    }
    Ok(Report {
        cache: cache.display().to_string(),
        nodes,
        recording_processes: processes,
        missed_lookups: lookups,
        dirs: dirs
            .into_iter()
            .map(|(dir, paths)| MissedDir { dir, paths })
            .collect(),
        traced: traced()?,
    })
}

/// Sums the read-cache summary lines of the trace files in the working
/// directory's `dlcache.dbg/`, if it exists.
fn traced() -> Result<Option<Traced>> {
    let Ok(entries) = fs::read_dir(TRACE_DIR) else {
        return Ok(None);
    };
    let mut t = Traced::default();
    for e in entries.flatten() {
        let text = fs::read_to_string(e.path()).unwrap_or_default();
        for line in text.lines() {
            let Some(s) = summary::parse(line.as_bytes()).filter(|s| s.mode == b"read-cache")
            else {
                continue;
            };
            t.processes += 1;
            t.served += s.handled;
            t.missed += s.missed;
            t.passed += s.passed;
        }
    }
    Ok((t.processes > 0).then_some(t))
}

/// Prints `r` for a person.
pub fn say_report(r: &Report) {
    if let Some(t) = &r.traced {
        say!(
            "  traced       {} process(es): {} calls served, {} missed, {} passed to the kernel",
            t.processes,
            t.served,
            t.missed,
            t.passed
        );
    }
    if r.nodes.is_empty() {
        say!(
            "  misses       none recorded: every lookup of the last run was served (or no run yet)"
        );
        return;
    }
    let npaths: usize = r.dirs.iter().map(|d| d.paths.len()).sum();
    say!(
        "  misses       {} lookup(s) of {npaths} path(s), recorded on {} node(s) ({}) by {} process(es)",
        r.missed_lookups,
        r.nodes.len(),
        r.nodes.join(", "),
        r.recording_processes
    );
    for d in &r.dirs {
        let found = d.paths.iter().filter(|p| p.found).count();
        let nodes: BTreeSet<&str> = d
            .paths
            .iter()
            .flat_map(|p| p.nodes.iter().map(String::as_str))
            .collect();
        say!(
            "  {}/  {} path(s) ({found} found, {} not found), missed on {} node(s)",
            d.dir,
            d.paths.len(),
            d.paths.len() - found,
            nodes.len()
        );
        for p in d.paths.iter().filter(|p| p.found).take(10) {
            say!(
                "      {} ({}; noted by {} process(es))",
                p.path,
                p.calls.join(", "),
                p.processes
            );
        }
    }
    say!("next: run dlfm.pre read-cache WIDTH again: it folds these misses into the cache");
}
