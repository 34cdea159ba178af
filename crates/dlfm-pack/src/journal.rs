//! Reading the journal the pilot's recording processes appended to. A pilot
//! killed half way can leave a torn record; the reader skips to the next
//! record header and reports what it skipped.

use dlfm_cache::journal::{
    HEADER_LEN, KIND_ACCESS, KIND_MAP, KIND_OPEN, KIND_PROCESS, KIND_STAT, MAGIC, MAX_RECORD,
};
use dlfm_cache::read::STAT_SIZE;

/// One journal record, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnedRecord {
    /// A process started recording.
    Process {
        /// Its process id.
        pid: u32,
        /// The program's identity.
        program_id: Vec<u8>,
        /// ld.so's identity.
        ldso_id: Vec<u8>,
        /// The name it was executed by.
        exe: Vec<u8>,
    },
    /// `open(path, flags)` gave `result`; `stat` is the file's fstat then.
    Open {
        /// Open flags.
        flags: u32,
        /// Descriptor or -errno.
        result: i32,
        /// The opened file's stat.
        stat: Option<[u8; STAT_SIZE]>,
        /// The path.
        path: Vec<u8>,
    },
    /// `stat(path)` gave `result` and `stat`.
    Stat {
        /// newfstatat flags (0).
        flags: u32,
        /// 0 or -errno.
        result: i32,
        /// The stat (zeros on failure).
        stat: [u8; STAT_SIZE],
        /// The path.
        path: Vec<u8>,
    },
    /// `access(path, mode)` gave `result`.
    Access {
        /// The access mode.
        mode: u32,
        /// 0 or -errno.
        result: i32,
        /// The path.
        path: Vec<u8>,
    },
    /// A recorded file was mapped.
    Map {
        /// mmap protection.
        prot: u32,
        /// mmap flags.
        flags: u32,
        /// File offset.
        offset: u64,
        /// Length.
        len: u64,
        /// The file's path.
        path: Vec<u8>,
    },
}

/// A stretch of the journal that could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    /// Where it starts.
    pub offset: usize,
    /// How many bytes were skipped.
    pub skipped_bytes: usize,
}

/// The records read and the damage skipped.
#[derive(Clone, Debug, Default)]
pub struct Decoded {
    /// Complete, valid records in journal order.
    pub records: Vec<OwnedRecord>,
    /// Damaged stretches.
    pub damaged: Vec<Damage>,
}

/// Decodes a whole journal; never fails, never panics.
pub fn decode(bytes: &[u8]) -> Decoded {
    let mut out = Decoded::default();
    let mut at = 0;
    let mut bad_from: Option<usize> = None;
    while at < bytes.len() {
        match record_at(bytes, at) {
            Some((rec, len)) => {
                if let Some(from) = bad_from.take() {
                    out.damaged.push(Damage {
                        offset: from,
                        skipped_bytes: at - from,
                    });
                }
                out.records.push(rec);
                at += len;
            }
            None => {
                bad_from.get_or_insert(at);
                at += 1;
            }
        }
    }
    if let Some(from) = bad_from {
        out.damaged.push(Damage {
            offset: from,
            skipped_bytes: bytes.len() - from,
        });
    }
    out
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn stat_at(b: &[u8], at: usize) -> Option<[u8; STAT_SIZE]> {
    b.get(at..at + STAT_SIZE)?.try_into().ok()
}

/// The valid record at `at` and its length.
fn record_at(bytes: &[u8], at: usize) -> Option<(OwnedRecord, usize)> {
    if u32_at(bytes, at)? != MAGIC {
        return None;
    }
    let len = u32_at(bytes, at + 4)? as usize;
    if !(HEADER_LEN..=MAX_RECORD).contains(&len) {
        return None;
    }
    let kind = u16::from_le_bytes(bytes.get(at + 8..at + 10)?.try_into().ok()?);
    let sum = u32_at(bytes, at + 12)?;
    let p = bytes.get(at + HEADER_LEN..at + len)?;
    if dlfm_cache::journal::fnv1a32(p) != sum {
        return None;
    }
    let i32_at = |o| u32_at(p, o).map(|v| v as i32);
    let rec = match kind {
        KIND_PROCESS => {
            let (pl, ll) = (*p.get(4)? as usize, *p.get(5)? as usize);
            if pl > 32 || ll > 32 {
                return None;
            }
            OwnedRecord::Process {
                pid: u32_at(p, 0)?,
                program_id: p.get(8..8 + pl)?.to_vec(),
                ldso_id: p.get(40..40 + ll)?.to_vec(),
                exe: p.get(72..)?.to_vec(),
            }
        }
        KIND_OPEN => OwnedRecord::Open {
            flags: u32_at(p, 0)?,
            result: i32_at(4)?,
            stat: if u32_at(p, 8)? != 0 {
                Some(stat_at(p, 16)?)
            } else {
                None
            },
            path: p.get(16 + STAT_SIZE..)?.to_vec(),
        },
        KIND_STAT => OwnedRecord::Stat {
            flags: u32_at(p, 0)?,
            result: i32_at(4)?,
            stat: stat_at(p, 8)?,
            path: p.get(8 + STAT_SIZE..)?.to_vec(),
        },
        KIND_ACCESS => OwnedRecord::Access {
            mode: u32_at(p, 0)?,
            result: i32_at(4)?,
            path: p.get(8..)?.to_vec(),
        },
        KIND_MAP => OwnedRecord::Map {
            prot: u32_at(p, 0)?,
            flags: u32_at(p, 4)?,
            offset: u64_at(p, 8)?,
            len: u64_at(p, 16)?,
            path: p.get(24..)?.to_vec(),
        },
        _ => return None,
    };
    Some((rec, len))
}
