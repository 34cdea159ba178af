//! `dlfm.pre check`: is a packed cache still right? Once per job, in one
//! process, O(files): every stored file's bytes must match the checksum
//! written when it was packed (a damaged cache), and every file on disk must
//! still have the inode, size and modification time it had in the pilot (a
//! library rebuilt after packing, which replay would otherwise serve in its
//! old form).

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
    /// Bytes of file data checksummed.
    pub data_bytes: u64,
    /// Stored files whose bytes no longer match their checksum.
    pub damaged: Vec<String>,
    /// Directory listings compared with the disk.
    pub listings: usize,
    /// Files that changed on disk since the pilot, and directories whose
    /// entries changed since packing.
    pub changed: Vec<String>,
}

/// Checks the cache at `path` (see the module doc).
pub fn check(path: &Path) -> Result<CheckReport, PackError> {
    let m = Metadata::read(path)?;
    let file = &m.file;
    let read_err = |source| PackError::Read {
        path: path.to_path_buf(),
        source,
    };
    let cache = m.parse(path)?;
    let mut report = CheckReport::default();
    for i in 0..cache.files() {
        let Some(f) = cache.file(i) else {
            return Err(PackError::Unusable {
                path: path.to_path_buf(),
                reason: format!("file record {i} is out of range"),
            });
        };
        report.files += 1;
        report.data_bytes += f.size;
        let mut stored = file;
        stored.seek(SeekFrom::Start(f.data_off)).map_err(read_err)?;
        let (read, sum) =
            copy_and_sum(&mut stored.take(f.size), &mut io::sink()).map_err(read_err)?;
        if read != f.size || sum != f.data_sum {
            report
                .damaged
                .push(String::from_utf8_lossy(f.path).into_owned());
        }
        let stat = cache
            .stat(f.stat_index)
            .and_then(|s| <&[u8; STAT_SIZE]>::try_from(s).ok());
        if let Some(stat) = stat {
            if let Some(change) = disk_change(f.path, &StatView(stat), "the pilot") {
                report.changed.push(change);
            }
        }
    }
    // Directory listings (FMCaching): the same names as when packed.
    for i in 0..cache.entries() {
        let Some((dir, entry)) = cache.entry_at(i) else {
            continue;
        };
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
