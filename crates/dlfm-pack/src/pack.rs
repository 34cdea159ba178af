//! Packing: journal → merged facts → stale-library check → `dlcache.dat`.

use std::collections::BTreeSet;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use dlfm_cache::layout::{IdKind, Outcome};
use dlfm_cache::stat::StatView;

use crate::bytecode::take_in_present_bytecode;
use crate::disk::{disk_change, stat_of, Prober};
use crate::error::PackError;
use crate::installed::{Installed, DPKG_INFO};
use crate::listing::Listings;
use crate::merge::{merge, Merged, OpenFact, PathFacts, RecordedPair, StatFact, ENOENT};
use crate::scan::{scan, Damage};
use crate::scope::{Class, Decision, Scope};
use crate::writer::{CacheWriter, Summary};

/// What `pack` did, for the summary `dlfm.pre` prints.
#[derive(Debug)]
pub struct PackReport {
    /// The cache file written.
    pub cache: PathBuf,
    /// What the writer wrote.
    pub written: Summary,
    /// Programs (and their ld.so) the cache serves.
    pub pairs: Vec<RecordedPair>,
    /// Processes that recorded.
    pub processes: usize,
    /// Journal records read.
    pub records: usize,
    /// Damaged stretches of the journal that were skipped.
    pub damage: Vec<Damage>,
    /// Paths whose `open` failed (ENOENT probes, mostly).
    pub failed_opens: usize,
    /// Files opened and packed (before de-duplication by inode).
    pub opened_files: usize,
    /// Paths stat'ed (directories of the search path, mostly).
    pub stats: usize,
    /// `access` checks.
    pub accesses: usize,
    /// Paths left out because the pilot saw different results for them.
    pub conflicts: usize,
    /// Opened objects that are not regular files (left to the file system).
    pub not_regular: usize,
    /// Directory listings cached (code and installed files only).
    pub listings: usize,
    /// Directories the program listed that hold other files too: left to the file
    /// system.
    pub listings_left: usize,
    /// `__pycache__/*.pyc` files written or rewritten since the pilot
    /// looked them up, taken in as they are now (`crate::bytecode`).
    pub bytecode_taken: usize,
    /// Directories above served paths whose status the pilot had not
    /// recorded (a `stat` or an `lstat`), taken from the disk when packing.
    pub ancestors_from_disk: usize,
    /// The FMCaching interposer replay preloads (None: DLCaching only).
    pub fm_path: Option<String>,
    /// What the FMCaching scope took in and left out of the program's own
    /// lookups.
    pub scope: Decision,
    /// Installed packages' manifests read (kind, how many).
    pub manifests: Vec<(&'static str, usize)>,
}

/// Packs the journal at `journal` into the cache at `cache` for `width`
/// processes. `prepare` runs on the new, still empty cache file before any
/// data is written (Lustre striping must be set on an empty file);
/// `progress` hears the bytes of file data stored so far and in all.
pub fn pack(
    journal: &Path,
    cache: &Path,
    width: u32,
    scope: &Scope,
    prepare: impl FnOnce(&Path),
    progress: &mut dyn FnMut(u64, u64),
) -> Result<PackReport, PackError> {
    let bytes = std::fs::read(journal).map_err(|source| PackError::ReadJournal {
        path: journal.to_path_buf(),
        source,
    })?;
    let scanned = scan(&bytes);
    let mut merged = merge(&scanned.records);
    let bytecode_taken = take_in_present_bytecode(&mut merged);
    if merged.processes == 0 || merged.paths.is_empty() {
        return Err(PackError::EmptyJournal(journal.to_path_buf()));
    }
    // Every dynamically linked program's ld.so opens libc: a pilot whose
    // ld.so opened nothing was not intercepted, and its cache would serve
    // nothing.
    let ldso_opened = |f: &PathFacts| f.by_ldso && matches!(f.open, Some(OpenFact::File(_)));
    if !merged.paths.values().any(ldso_opened) {
        return Err(PackError::NoFileOpened {
            processes: merged.processes,
        });
    }
    let program_only = || merged.paths.iter().filter(|(_, f)| !f.by_ldso);
    let installed = Installed::gather(
        program_only().map(|(p, _)| p.as_slice()),
        Path::new(DPKG_INFO),
    );
    let mut decision = scope.decide(
        program_only().map(|(p, f)| (p.as_slice(), is_directory(f))),
        merged
            .paths
            .iter()
            .filter(|(_, f)| f.by_ldso)
            .map(|(p, _)| p.as_slice()),
        &installed,
    );
    let mut listings = Listings::default();
    serve_absent(&mut merged, &mut decision, scope, &installed, &mut listings);
    list_package_data_dirs(&mut merged, &decision, scope, &installed, &mut listings);
    let ancestors_from_disk = serve_ancestors(&mut merged, &mut decision);
    let cached =
        |path: &[u8], facts: &PathFacts| facts.by_ldso || decision.admitted.contains_key(path);
    check_unchanged(&merged, &cached)?;
    let mut report = PackReport {
        cache: cache.to_path_buf(),
        written: Summary::default(),
        pairs: merged.pairs.clone(),
        processes: merged.processes,
        records: merged.records,
        damage: scanned.damaged,
        failed_opens: 0,
        opened_files: 0,
        stats: 0,
        accesses: 0,
        conflicts: merged.conflicts.len(),
        not_regular: 0,
        listings: 0,
        listings_left: 0,
        bytecode_taken,
        ancestors_from_disk,
        fm_path: merged
            .fm_path
            .as_deref()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
        scope: Decision::default(),
        manifests: installed
            .manifests()
            .iter()
            .map(|(k, n)| (k.name(), *n))
            .collect(),
    };
    let writer = collect(
        &merged,
        width,
        scope,
        &installed,
        &mut listings,
        &cached,
        &mut report,
    );
    report.scope = decision;
    report.written = writer
        .write_with(cache, prepare, progress)
        .map_err(|source| PackError::Write {
            path: cache.to_path_buf(),
            source,
        })?;
    Ok(report)
}

/// Whether the pilot saw a directory at the path.
fn is_directory(f: &PathFacts) -> bool {
    let dir = |st: &[u8; dlfm_cache::layout::STAT_SIZE]| StatView(st).is_dir();
    matches!(&f.stat, Some(StatFact::Ok(st)) if dir(st))
        || matches!(&f.lstat, Some(StatFact::Ok(st)) if dir(st))
        || matches!(&f.open, Some(OpenFact::File(st)) if dir(st))
        || matches!(&f.listed, Some(OpenFact::File(st)) if dir(st))
}

/// Serves the names the program found missing (every lookup of it failed
/// with ENOENT) in a directory of an installed package: the nearest
/// existing directory above the name must directly hold a file a manifest
/// names, and every regular file in it must be one the scope takes, so its
/// listing is cached too (added here when the pilot did not list it).
/// `dlfm.pre check` then compares that listing with the disk, and the pack
/// refuses a name that exists now: a name that appears later is never
/// hidden. A job's own directory holds no package's file, so what a job
/// looks for before writing it stays with the file system.
fn serve_absent(
    merged: &mut Merged,
    decision: &mut Decision,
    scope: &Scope,
    installed: &Installed,
    listings: &mut Listings,
) {
    let rules = scope.rules();
    let missing_only = |f: &PathFacts| {
        let err = |e: &Option<StatFact>| matches!(e, None | Some(StatFact::Err(ENOENT)));
        let open_err = |e: &Option<OpenFact>| matches!(e, None | Some(OpenFact::Err(ENOENT)));
        !f.by_ldso
            && err(&f.stat)
            && err(&f.lstat)
            && open_err(&f.open)
            && open_err(&f.listed)
            && matches!(f.access, None | Some(ENOENT))
            && (f.stat.is_some()
                || f.lstat.is_some()
                || f.open.is_some()
                || f.listed.is_some()
                || f.access.is_some())
    };
    let candidates: Vec<Vec<u8>> = merged
        .paths
        .iter()
        .filter(|(p, f)| {
            missing_only(f) && !decision.admitted.contains_key(*p) && !rules.excludes(p)
        })
        .map(|(p, _)| p.clone())
        .collect();
    // Directory -> its status when it is one whose missing names are served.
    let mut verdicts: std::collections::HashMap<Vec<u8>, Option<std::fs::Metadata>> =
        std::collections::HashMap::new();
    for p in candidates {
        let mut at = p.as_slice();
        let dir = loop {
            let Some(dir) = dlfm_runtime::scope::parent(at) else {
                break None;
            };
            match std::fs::symlink_metadata(Path::new(std::ffi::OsStr::from_bytes(dir))) {
                Ok(m) => break Some((dir.to_vec(), m)),
                Err(_) => at = dir,
            }
        };
        let Some((dir, meta)) = dir else { continue };
        let verdict = verdicts.entry(dir.clone()).or_insert_with(|| {
            let of_a_package = meta.is_dir()
                && !rules.excludes(&dir)
                && installed.holds_owned(&dir)
                && listings.cacheable(&dir, scope, installed);
            of_a_package.then_some(meta)
        });
        let Some(meta) = verdict else { continue };
        let listed = &mut merged.paths.entry(dir.clone()).or_default().listed;
        if listed.is_none() {
            *listed = Some(OpenFact::File(stat_of(meta)));
        }
        decision.admitted.insert(p.clone(), Class::Absent);
        decision.serve_ancestors_of(&p);
        if let Some(n) = decision
            .left_out
            .get_mut(dlfm_runtime::scope::parent(&p).unwrap_or(b"/"))
        {
            *n = n.saturating_sub(1);
        }
    }
    decision.left_out.retain(|_, n| *n > 0);
}

/// Lists in the cache the directory of each package-data file it serves
/// (when every regular file there is one the scope takes), though the pilot
/// only opened files there by name (matplotlib's fonts): a replay that
/// misses another file there then notes it (`dlfm_runtime::scope::
/// in_listed_directory`) and the next pack serves it. `dlfm.pre check`
/// compares such a listing with the disk as any other.
fn list_package_data_dirs(
    merged: &mut Merged,
    decision: &Decision,
    scope: &Scope,
    installed: &Installed,
    listings: &mut Listings,
) {
    let rules = scope.rules();
    let dirs: BTreeSet<&[u8]> = decision
        .admitted
        .iter()
        .filter(|(_, c)| **c == Class::PackageData)
        .filter_map(|(p, _)| dlfm_runtime::scope::parent(p))
        .collect();
    for dir in dirs {
        if rules.excludes(dir) || merged.paths.get(dir).is_some_and(|f| f.listed.is_some()) {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(Path::new(std::ffi::OsStr::from_bytes(dir)))
        else {
            continue;
        };
        if meta.is_dir() && listings.cacheable(dir, scope, installed) {
            merged.paths.entry(dir.to_vec()).or_default().listed =
                Some(OpenFact::File(stat_of(&meta)));
        }
    }
}

/// Serves every directory above a served path for `stat` and `lstat`
/// (`dlfm_runtime::scope`): where the pilot recorded neither, or only one
/// of them, the other is taken from the disk now (a directory's status is as
/// true now as when the pilot ran; its times are not compared). A path the
/// pilot saw as something else than a directory, or that is gone, is left
/// to the file system. Returns how many statuses came from the disk.
fn serve_ancestors(merged: &mut Merged, decision: &mut Decision) -> usize {
    let mut from_disk = 0;
    for dir in &decision.ancestors {
        let os = Path::new(std::ffi::OsStr::from_bytes(dir));
        let facts = merged.paths.get(dir);
        if facts.is_some_and(|f| f.stat.is_some() && f.lstat.is_some()) {
            // Both recorded: admitted by `decide` if the pilot saw a directory.
            continue;
        }
        if facts.is_some_and(|f| {
            (f.stat.is_some() || f.lstat.is_some() || f.open.is_some()) && !is_directory(f)
        }) {
            continue;
        }
        let (Ok(stat), Ok(lstat)) = (std::fs::metadata(os), std::fs::symlink_metadata(os)) else {
            continue;
        };
        if !stat.is_dir() {
            continue;
        }
        let facts = merged.paths.entry(dir.clone()).or_default();
        for (slot, now) in [(&mut facts.stat, &stat), (&mut facts.lstat, &lstat)] {
            if slot.is_none() {
                *slot = Some(StatFact::Ok(stat_of(now)));
                from_disk += 1;
            }
        }
        decision
            .admitted
            .entry(dir.clone())
            .or_insert(Class::Directory);
    }
    from_disk
}

/// Refuses a cache whose files changed since the pilot: each cached regular
/// file (opened, or stat'ed by the program: importlib compares a `.pyc`
/// with its source's stat) must still have the inode, size and
/// modification time it had then.
fn check_unchanged(
    merged: &Merged,
    cached: &impl Fn(&[u8], &PathFacts) -> bool,
) -> Result<(), PackError> {
    let mut changed = Vec::new();
    let mut prober = Prober::new();
    for (path, facts) in &merged.paths {
        if !cached(path, facts) {
            continue;
        }
        let recorded = [
            match &facts.open {
                Some(OpenFact::File(st)) => Some(st),
                _ => None,
            },
            match &facts.stat {
                Some(StatFact::Ok(st)) => Some(st),
                _ => None,
            },
            match &facts.lstat {
                Some(StatFact::Ok(st)) => Some(st),
                _ => None,
            },
        ];
        let Some(then) = recorded
            .into_iter()
            .flatten()
            .map(StatView)
            .find(StatView::is_regular)
        else {
            continue;
        };
        if let Some(change) = disk_change(&mut prober, path, &then, "the pilot") {
            changed.push(change);
        }
    }
    // A name the program found missing must still be missing: a `.pyc`
    // written since, or a module added, would otherwise stay invisible.
    for (path, facts) in &merged.paths {
        let missing = matches!(facts.open, Some(OpenFact::Err(ENOENT)))
            || matches!(facts.stat, Some(StatFact::Err(ENOENT)))
            || matches!(facts.lstat, Some(StatFact::Err(ENOENT)));
        if facts.by_ldso || !missing || !cached(path, facts) {
            continue;
        }
        let os_path = Path::new(std::ffi::OsStr::from_bytes(path));
        if std::fs::symlink_metadata(os_path).is_ok() {
            changed.push(format!(
                "{} exists now but was missing in the pilot",
                os_path.display()
            ));
        }
    }
    let more = changed.len().saturating_sub(1);
    match changed.into_iter().next() {
        None => Ok(()),
        Some(first) => Err(PackError::Changed { first, more }),
    }
}

/// Lays the merged facts out for the cache writer.
fn collect(
    merged: &Merged,
    width: u32,
    scope: &Scope,
    installed: &Installed,
    listings: &mut Listings,
    cached: &impl Fn(&[u8], &PathFacts) -> bool,
    report: &mut PackReport,
) -> CacheWriter {
    let mut b = CacheWriter::new(width);
    b.set_scope_patterns(scope.encoded());
    if let Some(fm) = &merged.fm_path {
        b.set_fm_path(fm);
    }
    for r in &merged.pairs {
        b.add_id(IdKind::Program, &r.program_id);
        b.add_id(IdKind::Ldso, &r.ldso_id);
    }
    for (path, facts) in &merged.paths {
        if !cached(path, facts) {
            continue;
        }
        match &facts.open {
            Some(OpenFact::Err(errno)) => {
                report.failed_opens += 1;
                b.set_open(path, Outcome::Err(*errno));
            }
            Some(OpenFact::File(st)) if StatView(st).is_regular() => {
                report.opened_files += 1;
                let stat = b.add_stat(*st);
                let source = canonical(path);
                let file = b.add_file(path, stat, StatView(st).size(), source);
                if facts.by_ldso {
                    b.mark_mapped(file);
                }
                b.set_open(path, Outcome::Ok(file));
            }
            Some(OpenFact::File(_)) => report.not_regular += 1,
            None => {}
        }
        match &facts.stat {
            Some(StatFact::Err(errno)) => {
                report.stats += 1;
                b.set_stat(path, Outcome::Err(*errno));
            }
            Some(StatFact::Ok(st)) => {
                report.stats += 1;
                let stat = b.add_stat(*st);
                b.set_stat(path, Outcome::Ok(stat));
            }
            None => {}
        }
        match &facts.listed {
            Some(OpenFact::Err(errno)) => b.set_list(path, Outcome::Err(*errno)),
            Some(OpenFact::File(_)) => match listings.take(path, scope, installed) {
                Some(l) => {
                    report.listings += 1;
                    let i = b.add_listing(l.data, l.count);
                    b.set_list(path, Outcome::Ok(i));
                }
                // Not a directory of code only, or gone: listed by the
                // file system.
                _ => report.listings_left += 1,
            },
            None => {}
        }
        match &facts.lstat {
            Some(StatFact::Err(errno)) => b.set_lstat(path, Outcome::Err(*errno)),
            Some(StatFact::Ok(st)) => {
                let stat = b.add_stat(*st);
                b.set_lstat(path, Outcome::Ok(stat));
            }
            None => {}
        }
        if let Some(errno) = facts.access {
            report.accesses += 1;
            b.set_access(
                path,
                if errno == 0 {
                    Outcome::Ok(0)
                } else {
                    Outcome::Err(errno)
                },
            );
        }
    }
    b
}

/// The canonical path of the file at `path` (links, `.` and `..` resolved,
/// as the kernel names it in `/proc/self/maps`); `path` itself if it cannot
/// be resolved now (then it must already be canonical to be packed).
fn canonical(path: &[u8]) -> PathBuf {
    let p = Path::new(std::ffi::OsStr::from_bytes(path));
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}
