//! Turns journal records into one set of facts per path. Facts recorded more
//! than once must agree (the same errno, the same file); a path whose facts
//! disagree (a file created or replaced while the pilot ran) is left out of
//! the cache, so replay passes it to the file system.

use std::collections::BTreeMap;

use dlfm_cache::journal::{interposers, Origin, Record, OPEN_DIRECTORY};
use dlfm_cache::layout::STAT_SIZE;
use dlfm_cache::stat::StatView;

/// "No such file or directory": the errno of a probe that found nothing.
pub const ENOENT: i32 = 2;

/// What `open` of a path gave.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum OpenFact {
    /// Failed with this errno (positive).
    Err(i32),
    /// Opened a file whose fstat was this.
    File([u8; STAT_SIZE]),
}

/// What `stat` of a path gave.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum StatFact {
    /// Failed with this errno (positive).
    Err(i32),
    /// Succeeded with this stat.
    Ok([u8; STAT_SIZE]),
}

/// Everything recorded about one path.
#[derive(Clone, Default, Debug)]
pub struct PathFacts {
    /// `open(path, O_RDONLY)`.
    pub open: Option<OpenFact>,
    /// `stat(path)`.
    pub stat: Option<StatFact>,
    /// `access(path, R_OK)`: 0 or a positive errno.
    pub access: Option<i32>,
    /// `lstat(path)` (the program's, through libc).
    pub lstat: Option<StatFact>,
    /// `opendir(path)` (the program's): the directory's stat, or an errno.
    pub listed: Option<OpenFact>,
    /// Whether ld.so looked it up (else only the program did, and the
    /// FMCaching scope decides whether it is cached).
    pub by_ldso: bool,
}

/// One (program, ld.so) pair that recorded into the journal.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RecordedPair {
    /// The executable's identity (build-id or header hash).
    pub program_id: Vec<u8>,
    /// ld.so's identity.
    pub ldso_id: Vec<u8>,
    /// The name the program was run as.
    pub exe: String,
}

/// The journal, merged.
#[derive(Default, Debug)]
pub struct Merged {
    /// Facts per path (absolute paths, as ld.so gave them).
    pub paths: BTreeMap<Vec<u8>, PathFacts>,
    /// Paths dropped because their facts disagreed.
    pub conflicts: Vec<Vec<u8>>,
    /// Distinct (program, ld.so) pairs that recorded.
    pub pairs: Vec<RecordedPair>,
    /// How many processes recorded (Process records).
    pub processes: usize,
    /// Records read.
    pub records: usize,
    /// The FMCaching interposer the pilot loaded: of those it was set up
    /// with (one per machine), the first one ld.so opened, else the first.
    pub fm_path: Option<Vec<u8>>,
}

/// Merges `records` (in journal order).
pub fn merge(records: &[(Record<'_>, Origin)]) -> Merged {
    let mut m = Merged {
        records: records.len(),
        ..Merged::default()
    };
    let mut conflicted = std::collections::BTreeSet::new();
    let mut fm_paths: &[u8] = &[];
    for (rec, origin) in records {
        if let Some(path) = lookup_path(rec) {
            m.paths.entry(path.to_vec()).or_default().by_ldso |= *origin == Origin::Ldso;
        }
        let ok = match rec {
            Record::Setup { fm_paths: p } => {
                fm_paths = p;
                continue;
            }
            Record::Process {
                program_id,
                ldso_id,
                exe,
                ..
            } => {
                m.processes += 1;
                let r = RecordedPair {
                    program_id: program_id.to_vec(),
                    ldso_id: ldso_id.to_vec(),
                    exe: String::from_utf8_lossy(exe).into_owned(),
                };
                if !m
                    .pairs
                    .iter()
                    .any(|x| x.program_id == r.program_id && x.ldso_id == r.ldso_id)
                {
                    m.pairs.push(r);
                }
                continue;
            }
            Record::Open {
                flags,
                result,
                stat,
                path,
            } if flags & OPEN_DIRECTORY != 0 => {
                let fact = match (*result, stat) {
                    (r, _) if r < 0 => OpenFact::Err(-r),
                    (_, Some(st)) => OpenFact::File(**st),
                    (_, None) => continue,
                };
                let facts = m.paths.entry(path.to_vec()).or_default();
                agree(&mut facts.listed, fact, same_directory)
            }
            Record::Open {
                result, stat, path, ..
            } => {
                let fact = match (*result, stat) {
                    (r, _) if r < 0 => Some(OpenFact::Err(-r)),
                    (_, Some(st)) => Some(OpenFact::File(**st)),
                    // Opened, but its stat could not be taken: cannot be
                    // checked for staleness, so it is not cached.
                    (_, None) => None,
                };
                let facts = m.paths.entry(path.to_vec()).or_default();
                match fact {
                    Some(f) => agree(&mut facts.open, f, same_open),
                    None => false,
                }
            }
            Record::Stat {
                flags,
                result,
                stat,
                path,
            } => {
                let fact = if *result < 0 {
                    StatFact::Err(-*result)
                } else {
                    StatFact::Ok(**stat)
                };
                let facts = m.paths.entry(path.to_vec()).or_default();
                match *flags {
                    0 => agree(&mut facts.stat, fact, same_stat),
                    AT_SYMLINK_NOFOLLOW => agree(&mut facts.lstat, fact, same_stat),
                    // No other form is recorded.
                    _ => true,
                }
            }
            Record::Access { result, path, .. } => {
                let facts = m.paths.entry(path.to_vec()).or_default();
                agree(&mut facts.access, result.saturating_neg().max(0), |a, b| {
                    a == b
                })
            }
        };
        if let (false, Some(path)) = (ok, lookup_path(rec)) {
            conflicted.insert(path.to_vec());
        }
    }
    for path in &conflicted {
        m.paths.remove(path);
    }
    m.conflicts = conflicted.into_iter().collect();
    let opened = |p: &&[u8]| {
        m.paths
            .get(*p)
            .is_some_and(|f| f.by_ldso && matches!(f.open, Some(OpenFact::File(_))))
    };
    m.fm_path = interposers(fm_paths)
        .find(opened)
        .or_else(|| interposers(fm_paths).next())
        .map(<[u8]>::to_vec);
    m
}

/// Two `opendir`s agree when they failed alike or found the same directory
/// (its times change as the pilot runs; its entries are read at packing).
fn same_directory(a: &OpenFact, b: &OpenFact) -> bool {
    match (a, b) {
        (OpenFact::Err(x), OpenFact::Err(y)) => x == y,
        (OpenFact::File(x), OpenFact::File(y)) => StatView(x).same_object(&StatView(y)),
        _ => false,
    }
}

/// `newfstatat`'s flag for `lstat`.
const AT_SYMLINK_NOFOLLOW: u32 = 0x100;

/// The path a lookup record is about.
fn lookup_path<'a>(rec: &Record<'a>) -> Option<&'a [u8]> {
    match rec {
        Record::Open { path, .. } | Record::Stat { path, .. } | Record::Access { path, .. } => {
            Some(path)
        }
        Record::Process { .. } | Record::Setup { .. } => None,
    }
}

/// Stores `new` in `slot`, or checks it agrees with what is there.
fn agree<T: Copy>(slot: &mut Option<T>, new: T, same: impl Fn(&T, &T) -> bool) -> bool {
    match slot {
        None => {
            *slot = Some(new);
            true
        }
        Some(old) => same(old, &new),
    }
}

fn same_open(a: &OpenFact, b: &OpenFact) -> bool {
    match (a, b) {
        (OpenFact::Err(x), OpenFact::Err(y)) => x == y,
        (OpenFact::File(x), OpenFact::File(y)) => StatView(x).same_file_content(&StatView(y)),
        _ => false,
    }
}

fn same_stat(a: &StatFact, b: &StatFact) -> bool {
    match (a, b) {
        (StatFact::Err(x), StatFact::Err(y)) => x == y,
        // A directory's times change as the pilot runs; what replay needs is
        // the same object of the same kind.
        (StatFact::Ok(x), StatFact::Ok(y)) => StatView(x).same_object(&StatView(y)),
        _ => false,
    }
}
