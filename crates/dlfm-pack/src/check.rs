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
use crate::disk::disk_change;
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

/// Checks the cache at `path` (see the module doc).
pub fn check(path: &Path, sums: Sums) -> Result<CheckReport, PackError> {
    let m = Metadata::read(path)?;
    let file = &m.file;
    let read_err = |source| PackError::Read {
        path: path.to_path_buf(),
        source,
    };
    let cache = m.parse(path)?;
    let mut report = CheckReport::default();
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
        }
        let stat = cache
            .stat(f.stat_index)
            .and_then(|s| <&[u8; STAT_SIZE]>::try_from(s).ok());
        if let Some(stat) = stat {
            compared.insert(f.path);
            if let Some(change) = disk_change(f.path, &StatView(stat), "the pilot") {
                report.changed.push(change);
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
                if let Some(change) = disk_change(dir, &StatView(stat), "the pilot") {
                    report.changed.push(change);
                }
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
    Ok(report)
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
