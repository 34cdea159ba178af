//! `dlfm.pre check`: is a packed cache still right? Once per job, in one
//! process, O(files): every file the cache stores or answers a status of
//! must still have the inode, size and modification time it had in the
//! pilot (a library rebuilt after
//! packing, which replay would otherwise serve in its old form), every
//! cached listing the same names; and, unless [`Sums::Skip`], every stored
//! file's bytes must match the checksum written when it was packed (a
//! damaged cache: this reads the whole cache once).

use std::collections::BTreeSet;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use dlfm_cache::layout::{Outcome, STAT_SIZE};
use dlfm_cache::stat::StatView;

use crate::data_sum::copy_and_sum;
use crate::disk::{disk_change, Prober};
use crate::error::PackError;
use crate::listing::names_now;
use crate::metadata::Metadata;

/// What `check` looked at.
#[derive(Debug, Default)]
pub struct CheckReport {
    /// Files stored in the cache.
    pub files: usize,
    /// Bytes of file data stored (read back with [`Sums::Verify`]).
    pub data_bytes: u64,
    /// Stored files whose bytes no longer match their checksum.
    pub damaged: Vec<String>,
    /// Directory listings compared with the disk.
    pub listings: usize,
    /// Files only looked up (stat, lstat: Python's source files beside
    /// their bytecode) compared with the disk.
    pub looked_up: usize,
    /// Files that changed on disk since the pilot, and directories whose
    /// entries changed since packing.
    pub changed: Vec<String>,
}

/// Whether `check` reads the stored bytes back against their checksums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sums {
    /// Read every stored byte (a damaged cache is found).
    Verify,
    /// Metadata only: the disk and the cache's index, no stored byte read
    /// (what `dlfm run` does before each job).
    Skip,
}

/// Checks the cache at `path` (see the module doc); `progress` hears the
/// stored bytes read back so far and in all ([`Sums::Verify`]).
pub fn check(
    path: &Path,
    sums: Sums,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<CheckReport, PackError> {
    let m = Metadata::read(path)?;
    let file = &m.file;
    let read_err = |source| PackError::Read {
        path: path.to_path_buf(),
        source,
    };
    let cache = m.parse(path)?;
    let mut report = CheckReport::default();
    let stored: u64 = (0..cache.files())
        .filter_map(|i| cache.file(i))
        .map(|f| f.size)
        .sum();
    // What to compare with the disk: (path, recorded status), each path once.
    let mut compare: Vec<(&[u8], &[u8; STAT_SIZE])> = Vec::new();
    let mut compared: BTreeSet<&[u8]> = BTreeSet::new();
    for i in 0..cache.files() {
        let Some(f) = cache.file(i) else {
            return Err(PackError::Unusable {
                path: path.to_path_buf(),
                reason: format!("file record {i} is out of range"),
            });
        };
        report.files += 1;
        report.data_bytes += f.size;
        if sums == Sums::Verify {
            verify_sum(file, &f, &mut report).map_err(read_err)?;
            progress(report.data_bytes, stored);
        }
        let stat = cache
            .stat(f.stat_index)
            .and_then(|s| <&[u8; STAT_SIZE]>::try_from(s).ok());
        if let Some(stat) = stat {
            if compared.insert(f.path) {
                compare.push((f.path, stat));
            }
        }
    }
    for i in 0..cache.entries() {
        let Some((dir, entry)) = cache.entry_at(i) else {
            continue;
        };
        // A regular file the pilot only looked up: its recorded status is
        // what replay answers (Python compares a source's size and time
        // with its bytecode's header), so it must still be the disk's.
        for found in [entry.stat, entry.lstat] {
            let Outcome::Ok(index) = found else {
                continue;
            };
            let Some(stat) = cache
                .stat(index)
                .and_then(|s| <&[u8; STAT_SIZE]>::try_from(s).ok())
            else {
                continue;
            };
            if StatView(stat).is_regular() && compared.insert(dir) {
                report.looked_up += 1;
                compare.push((dir, stat));
            }
        }
        // Directory listings (FMCaching): the same names as when packed.
        let Some(listing) = (match entry.list {
            Outcome::Ok(l) => cache.listing(l),
            _ => None,
        }) else {
            continue;
        };
        report.listings += 1;
        let mut packed = BTreeSet::new();
        let mut at = 0;
        while let Some((e, next)) = listing.entry_at(at) {
            if e.name != b"." && e.name != b".." {
                packed.insert(e.name.to_vec());
            }
            at = next;
        }
        let name = String::from_utf8_lossy(dir);
        match names_now(dir) {
            Ok(now) if now == packed => {}
            Ok(now) => {
                let added = now.difference(&packed).count();
                let removed = packed.difference(&now).count();
                report.changed.push(format!(
                    "{name}'s entries changed since packing ({added} added, {removed} removed)"
                ));
            }
            Err(e) => report
                .changed
                .push(format!("{name} cannot be listed now ({e})")),
        }
    }
    report.changed.extend(changes(compare));
    Ok(report)
}

/// Threads that look files up at once: a parallel file system's metadata
/// servers answer many requests at a time, so the check's latency is about
/// its requests divided by this (the requests themselves stay O(files)).
const PROBERS: usize = 8;

/// How each of `compare` differs on disk from its recorded status, in path
/// order; looked up by [`PROBERS`] threads, each over a run of paths (so
/// that files of one directory mostly share one opened directory).
fn changes(mut compare: Vec<(&[u8], &[u8; STAT_SIZE])>) -> Vec<String> {
    compare.sort_unstable_by_key(|(p, _)| *p);
    let chunk = compare.len().div_ceil(PROBERS).max(64);
    std::thread::scope(|scope| {
        let workers: Vec<_> = compare
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    let mut prober = Prober::new();
                    part.iter()
                        .filter_map(|(path, stat)| {
                            disk_change(&mut prober, path, &StatView(stat), "the pilot")
                        })
                        .collect::<Vec<String>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

/// Reads file `f`'s stored bytes and compares their checksum; a mismatch
/// goes to `report.damaged`.
fn verify_sum(
    mut stored: &std::fs::File,
    f: &dlfm_cache::read::FileRef<'_>,
    report: &mut CheckReport,
) -> io::Result<()> {
    stored.seek(SeekFrom::Start(f.data_off))?;
    let (read, sum) = copy_and_sum(&mut stored.take(f.size), &mut io::sink())?;
    if read != f.size || sum != f.data_sum {
        report
            .damaged
            .push(String::from_utf8_lossy(f.path).into_owned());
    }
    Ok(())
}
