//! The two job-script steps: `write-cache` before the pilot, `read-cache
//! WIDTH` before the large run.

use dlfm_cli::progress::ProgressLine;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use dlfm_cli::human;

use serde::Serialize;

use crate::lustre::{self, Striping};
use crate::misses;
use crate::node_storage::{self, Staged};
use crate::trace_files;

/// What `write-cache` did, for `--json`.
#[derive(Serialize)]
pub struct WriteSummary {
    /// The journal started.
    pub journal: String,
    /// The FMCaching interposers the pilot's processes choose from (each
    /// preloads the one built for its machine; empty: FMCaching off).
    pub fm: Vec<String>,
}

/// What `read-cache` did: computed once, rendered as text by
/// [`say_read`] and as JSON by `--json`.
#[derive(Serialize)]
pub struct ReadSummary {
    /// The cache written.
    pub cache: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// The width given.
    pub width: u32,
    /// The programs (and their ld.so) it serves.
    pub programs: Vec<Program>,
    /// Paths in the index.
    pub paths: usize,
    /// Failed opens recorded (ENOENT probes and others).
    pub failed_opens: usize,
    /// Stats recorded.
    pub stats: usize,
    /// `access` checks recorded.
    pub accesses: usize,
    /// Files opened (before de-duplication by inode).
    pub opened_files: usize,
    /// Files stored.
    pub files: usize,
    /// Their bytes.
    pub data_bytes: u64,
    /// Recording processes.
    pub processes: usize,
    /// Journal records.
    pub records: usize,
    /// Damaged stretches of the journal skipped: (offset, bytes).
    pub damage: Vec<(usize, usize)>,
    /// Damaged journal bytes skipped.
    pub damaged_bytes: u64,
    /// The FMCaching interposer replay preloads (None: DLCaching only).
    pub fm: Option<String>,
    /// The program's own lookups cached, by kind (FMCaching).
    pub fm_cached: Vec<(String, usize)>,
    /// Installed packages' manifests read, by kind (pip RECORD, dpkg, ...).
    pub manifests: Vec<(String, usize)>,
    /// Paths the program looked up that were left to the file system.
    pub fm_left: usize,
    /// The directories with the most paths left out, with their counts.
    pub fm_left_largest: Vec<(String, usize)>,
    /// Directory listings cached.
    pub listings: usize,
    /// Directory listings left to the file system (they hold files that
    /// are neither code nor an installed package's).
    pub listings_left: usize,
    /// Bytecode files taken in as they are now.
    pub bytecode_taken: usize,
    /// Statuses of directories above served paths taken from the disk
    /// (the pilot had not looked at them).
    pub ancestors_from_disk: usize,
    /// Paths left out because the pilot's processes disagreed.
    pub conflicts: usize,
    /// Opened objects that are not regular files (left to the file system).
    pub not_regular: usize,
    /// Lustre striping: what was done.
    pub striping: String,
    /// Miss journals of the last wide run folded in.
    pub folded: misses::Folded,
    /// Where the run notes what the cache misses.
    pub misses_dir: String,
    /// Node-local staging.
    pub staging: Staged,
    /// Trace files made for DLCACHE_DBG: (count, nodes).
    pub traces: Option<(usize, Vec<String>)>,
}

/// A program the cache serves.
#[derive(Serialize)]
pub struct Program {
    /// The name it was run as.
    pub exe: String,
    /// Its identity (hex).
    pub id: String,
    /// ld.so's identity (hex; empty when the loader was run explicitly).
    pub ldso_id: String,
}

/// What `check` found, for `--json` (a failed check is an error instead).
#[derive(Serialize)]
pub struct CheckSummary {
    /// The cache checked.
    pub cache: String,
    /// Files checked.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Directory listings checked.
    pub listings: usize,
    /// Files only looked up (their status is served) checked.
    pub looked_up: usize,
}

/// The journal that goes with `cache`.
fn journal_of(cache: &Path) -> PathBuf {
    let mut name = cache.as_os_str().to_os_string();
    name.push(dlfm_cache::names::JOURNAL_SUFFIX);
    PathBuf::from(name)
}

/// Refuses a path that exists but is not a regular file (a directory, a
/// FIFO, a device): writing or reading it would fail half way or block.
fn must_be_file_or_absent(path: &Path, what: &str) -> Result<()> {
    match fs::metadata(path) {
        Ok(m) if !m.is_file() => bail!(
            "{what} {} is {}, not a regular file: name a file with --cache or DLFM_CACHE",
            path.display(),
            kind_of(&m)
        ),
        _ => Ok(()),
    }
}

/// What a non-regular file is, for messages.
fn kind_of(m: &fs::Metadata) -> &'static str {
    let t = m.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

/// Starts a writable journal for the pilot, whose one record names the
/// FMCaching interposers `fm` (one per machine; none: DLCaching only);
/// creates trace files when DLCACHE_DBG asks for them.
pub fn write_cache(cache: &Path, fm: Vec<PathBuf>) -> Result<WriteSummary> {
    let journal = journal_of(cache);
    must_be_file_or_absent(cache, "the cache")?;
    must_be_file_or_absent(&journal, "the journal")?;
    let mut fm_paths = Vec::new();
    let mut fm_abs = Vec::new();
    for p in fm {
        let abs = std::path::absolute(&p).unwrap_or(p);
        if !abs.is_file() {
            bail!(
                "the FMCaching interposer {} does not exist: build it (cargo build --release) \
                 or pass --no-fm to record ld.so's lookups only",
                abs.display()
            );
        }
        if abs.as_os_str().as_bytes().contains(&0) {
            bail!(
                "the FMCaching interposer's path {} holds a NUL byte",
                abs.display()
            );
        }
        if !fm_paths.is_empty() {
            fm_paths.push(0);
        }
        fm_paths.extend_from_slice(abs.as_os_str().as_bytes());
        fm_abs.push(abs);
    }
    let mut setup = vec![0u8; dlfm_cache::journal::MAX_RECORD];
    let n = dlfm_cache::journal::encode(
        &dlfm_cache::journal::Record::Setup {
            fm_paths: &fm_paths,
        },
        dlfm_cache::journal::Origin::Ldso,
        &mut setup,
    )
    .context("the FMCaching interposers' paths are too long")?;
    setup.truncate(n);
    fs::write(&journal, &setup)
        .with_context(|| format!("cannot create the journal {}", journal.display()))?;
    fs::set_permissions(&journal, fs::Permissions::from_mode(0o644))
        .with_context(|| format!("cannot make {} writable", journal.display()))?;
    say!("dlfm.pre write-cache: journal {} ready", journal.display());
    match fm_abs.as_slice() {
        [] => say!("  fmcaching    off (--no-fm): ld.so's lookups only"),
        [p] => say!(
            "  fmcaching    on: the recording process preloads {} and records the program's own lookups",
            p.display()
        ),
        all => {
            let named: Vec<String> = all
                .iter()
                .map(|p| {
                    let m = dlfm_cli::install::machine_of(p).unwrap_or("another machine");
                    format!("{m}: {}", p.display())
                })
                .collect();
            say!(
                "  fmcaching    on: each recording process preloads the interposer built for its machine ({}) and records the program's own lookups",
                named.join(", ")
            )
        }
    }
    if cache.is_relative() {
        say!(
            "  note         the recording process passes DLFM_CACHE to its children as an absolute \
             path; with DLFM_CACHE unset, a child that changes directory before it execs does not \
             find the journal (export DLFM_CACHE={} to be sure)",
            std::path::absolute(cache).unwrap_or_else(|_| cache.to_path_buf()).display()
        );
    }
    say_traces(&debug_traces()?);
    say!("next: run the pilot with DLFM_OP=write-cache (rank 0 records), then `dlfm.pre read-cache WIDTH`");
    Ok(WriteSummary {
        journal: journal.display().to_string(),
        fm: fm_abs.iter().map(|p| p.display().to_string()).collect(),
    })
}

/// Packs the journal into the cache, read-only and striped for `width`;
/// folds the last wide run's misses in first, then stages the cache unless
/// `stage` is false.
pub fn read_cache(
    cache: &Path,
    width: u32,
    scope: &dlfm_pack::scope::Scope,
    stage: bool,
) -> Result<ReadSummary> {
    let journal = journal_of(cache);
    must_be_file_or_absent(cache, "the cache")?;
    must_be_file_or_absent(&journal, "the journal")?;
    let folded = misses::fold(cache, &journal, scope)?;
    let mut striping = Striping::Skipped;
    let mut line = ProgressLine::new("dlfm.pre read-cache: stored");
    let report = dlfm_pack::pack(
        &journal,
        cache,
        width,
        scope,
        |empty| striping = lustre::stripe(empty, width),
        &mut |done, total| line.update(done, total),
    )?;
    fs::set_permissions(cache, fs::Permissions::from_mode(0o444))
        .with_context(|| format!("cannot make {} read-only", cache.display()))?;
    let misses_dir = misses::prepare_dir(cache)?;
    let staging = if stage {
        node_storage::stage(cache)?
    } else {
        Staged::Skipped {
            reason: "--no-stage".into(),
        }
    };
    let traces = debug_traces()?;
    let w = &report.written;
    Ok(ReadSummary {
        cache: cache.display().to_string(),
        bytes: w.file_len,
        width,
        programs: report
            .pairs
            .iter()
            .map(|r| Program {
                exe: r.exe.clone(),
                id: hex(&r.program_id),
                ldso_id: hex(&r.ldso_id),
            })
            .collect(),
        paths: w.entries,
        failed_opens: report.failed_opens,
        stats: report.stats,
        accesses: report.accesses,
        opened_files: report.opened_files,
        files: w.files,
        data_bytes: w.data_bytes,
        processes: report.processes,
        records: report.records,
        damage: report
            .damage
            .iter()
            .map(|d| (d.offset, d.skipped_bytes))
            .collect(),
        damaged_bytes: report.damage.iter().map(|d| d.skipped_bytes as u64).sum(),
        fm: report.fm_path.clone(),
        fm_cached: report
            .scope
            .counts()
            .iter()
            .map(|(c, n)| (c.name().to_string(), *n))
            .collect(),
        manifests: report
            .manifests
            .iter()
            .map(|(k, n)| (k.to_string(), *n))
            .collect(),
        fm_left: report.scope.left_out.values().sum(),
        fm_left_largest: report.scope.largest_left_out(5),
        listings: report.listings,
        listings_left: report.listings_left,
        bytecode_taken: report.bytecode_taken,
        ancestors_from_disk: report.ancestors_from_disk,
        conflicts: report.conflicts,
        not_regular: report.not_regular,
        striping: match striping {
            Striping::Skipped => "skipped: `lfs` not found (not a Lustre client)".to_string(),
            Striping::Set(c) if c < 0 => "striped over all targets".to_string(),
            Striping::Set(c) => format!("striped over {c} targets"),
            Striping::Failed(e) => format!("not set: lfs setstripe failed: {e}"),
        },
        folded,
        misses_dir: misses_dir.display().to_string(),
        staging,
        traces,
    })
}

/// Prints `s` for a person.
pub fn say_read(s: &ReadSummary) {
    say!(
        "dlfm.pre read-cache: wrote {} ({}) for width {}",
        s.cache,
        human(s.bytes),
        s.width
    );
    for p in &s.programs {
        // Run explicitly (`./ld.so PROG`), ld.so is the program the kernel
        // started and has no identity of its own apart from the program's.
        let ldso = if p.ldso_id.is_empty() {
            "none: the loader was run explicitly".to_string()
        } else {
            format!("ld.so id {}", p.ldso_id)
        };
        say!("  program      {} (id {}, {ldso})", p.exe, p.id);
    }
    say!(
        "  lookups      {} paths: {} failed opens (ENOENT probes), {} stat, {} access, {} files opened",
        s.paths, s.failed_opens, s.stats, s.accesses, s.opened_files
    );
    say!(
        "  files        {} stored ({} of data, page aligned)",
        s.files,
        human(s.data_bytes)
    );
    say!(
        "  journal      {} records from {} recording process(es)",
        s.records,
        s.processes
    );
    for (offset, bytes) in &s.damage {
        say!(
            "  warning      skipped {bytes} damaged journal bytes at offset {offset} (a pilot process died while writing?)"
        );
    }
    match &s.fm {
        None => say!("  fmcaching    off: the pilot recorded ld.so's lookups only"),
        Some(fm) => say_fm(s, fm),
    }
    if s.conflicts > 0 {
        say!(
            "  warning      {} path(s) gave different results during the pilot; left to the file system",
            s.conflicts
        );
    }
    if s.not_regular > 0 {
        say!(
            "  note         {} opened object(s) are not regular files; left to the file system",
            s.not_regular
        );
    }
    say!("  lustre       striping {}", s.striping);
    say!("  permissions  read-only (0444)");
    if !s.folded.nodes.is_empty() {
        say!(
            "  misses       folded in {} lookup(s) the last wide run missed, from {} node(s): {}",
            s.folded.lookups,
            s.folded.nodes.len(),
            s.folded.nodes.join(", ")
        );
    }
    say!(
        "  misses       the run records what the cache misses in {}/ (one journal per noting process; dlfm.pre report)",
        s.misses_dir
    );
    say_staged(&s.staging);
    say_traces(&s.traces);
    say!("next: run the program with DLFM_OP=read-cache");
}

/// The FMCaching lines of the read-cache summary.
fn say_fm(s: &ReadSummary, fm: &str) {
    let cached: Vec<String> = s
        .fm_cached
        .iter()
        .map(|(c, n)| format!("{n} {c}"))
        .collect();
    say!(
        "  fmcaching    replay preloads {fm}; the program's own lookups cached: {}",
        if cached.is_empty() {
            "none".to_string()
        } else {
            cached.join(", ")
        }
    );
    if !s.manifests.is_empty() {
        let read: Vec<String> = s
            .manifests
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        say!(
            "  fmcaching    installed packages: files named by {} manifest(s) ({}) are served as package data",
            s.manifests.iter().map(|(_, n)| n).sum::<usize>(),
            read.join(", ")
        );
    }
    if s.ancestors_from_disk > 0 {
        say!(
            "  fmcaching    directories above served paths: {} status(es) the pilot did not take were taken from the disk now",
            s.ancestors_from_disk
        );
    }
    if s.bytecode_taken > 0 {
        say!(
            "  fmcaching    bytecode: {} __pycache__ file(s) the pilot's python wrote or rewrote after looking them up, taken in as they are now",
            s.bytecode_taken
        );
    }
    if s.listings + s.listings_left > 0 {
        say!(
            "  fmcaching    directory listings: {} cached (code and installed files only), {} left to the file system (they hold other files too)",
            s.listings, s.listings_left
        );
    }
    if s.fm_left > 0 {
        let largest: Vec<String> = s
            .fm_left_largest
            .iter()
            .map(|(d, n)| format!("{d} ({n})"))
            .collect();
        say!(
            "  fmcaching    left to the file system (neither code nor an installed package's): {} path(s); largest groups: {}",
            s.fm_left,
            largest.join(", ")
        );
    }
}

/// The `staging` line of a summary.
pub fn say_staged(staged: &Staged) {
    match staged {
        Staged::Broadcast { copy, job, nodes } => say!(
            "  staging      sbcast to {} node(s) of job {job}: {copy} (every step of this job uses it)",
            nodes.map_or("every".to_string(), |n| n.to_string())
        ),
        Staged::Present { copy, job } => say!(
            "  staging      already broadcast for job {job}: {copy}"
        ),
        Staged::Skipped { reason } => say!("  staging      broadcast skipped: {reason}"),
    }
}

/// A cache that no longer matches the disk (or is damaged): each problem,
/// one line each. Its message tells the user what to do.
#[derive(Debug)]
pub struct Stale {
    /// What changed or is damaged, one line each.
    pub problems: Vec<String>,
}

impl std::fmt::Display for Stale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = &self.problems;
        match p.len() {
            0 | 1 => write!(f, "{}", p.first().map_or("", String::as_str))?,
            n => write!(f, "{} (and {} more: {})", p[0], n - 1, p[1..].join("; "))?,
        }
        f.write_str(": run the pilot again, then dlfm.pre read-cache")
    }
}

impl std::error::Error for Stale {}

/// Checks the cache against the disk, and against its checksums unless
/// `sums` is [`dlfm_pack::Sums::Skip`]; refuses (a [`Stale`] naming the
/// files) if anything changed.
pub fn check(cache: &Path, sums: dlfm_pack::Sums) -> Result<CheckSummary> {
    must_be_file_or_absent(cache, "the cache")?;
    let mut line = ProgressLine::new("dlfm.pre check: read back");
    let report = dlfm_pack::check(cache, sums, &mut |done, total| line.update(done, total))?;
    let mut problems: Vec<String> = report
        .damaged
        .iter()
        .map(|p| format!("{p} is damaged in the cache (checksum mismatch)"))
        .collect();
    problems.extend(report.changed.iter().cloned());
    if !problems.is_empty() {
        return Err(Stale { problems }.into());
    }
    say!(
        "dlfm.pre check: {} is good: {} files ({}) {}unchanged on disk, {} more files looked up unchanged, {} directory listings unchanged",
        cache.display(),
        report.files,
        human(report.data_bytes),
        if sums == dlfm_pack::Sums::Verify { "intact and " } else { "" },
        report.looked_up,
        report.listings
    );
    Ok(CheckSummary {
        cache: cache.display().to_string(),
        files: report.files,
        bytes: report.data_bytes,
        listings: report.listings,
        looked_up: report.looked_up,
    })
}

/// Creates the DLCACHE_DBG trace files if asked for: how many there are
/// and for which nodes.
fn debug_traces() -> Result<Option<(usize, Vec<String>)>> {
    if !trace_files::requested() {
        return Ok(None);
    }
    Ok(Some(trace_files::create(Path::new("."))?))
}

/// The `traces` line of a summary.
fn say_traces(traces: &Option<(usize, Vec<String>)>) {
    if let Some((count, nodes)) = traces {
        say!(
            "  traces       {count} empty trace files in {}/ for node(s) {}",
            dlfm_cache::names::TRACE_DIR,
            nodes.join(", ")
        );
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
