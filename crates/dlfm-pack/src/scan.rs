//! Scanning a whole journal the pilot's recording processes appended to. A
//! pilot killed half way can leave a torn record; the scan skips to the next
//! record header and reports what it skipped. The record format and its
//! decoder belong to `dlfm_cache::journal`.

use dlfm_cache::journal::{decode, Origin, Record};

/// A stretch of the journal that could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    /// Where it starts.
    pub offset: usize,
    /// How many bytes were skipped.
    pub skipped_bytes: usize,
}

/// The records read (borrowed from the journal's bytes) and the damage
/// skipped.
#[derive(Clone, Debug, Default)]
pub struct Scanned<'a> {
    /// Complete, valid records in journal order, with who made them.
    pub records: Vec<(Record<'a>, Origin)>,
    /// Damaged stretches.
    pub damaged: Vec<Damage>,
}

/// Scans a whole journal; never fails, never panics.
pub fn scan(bytes: &[u8]) -> Scanned<'_> {
    let mut out = Scanned::default();
    let mut at = 0;
    let mut bad_from: Option<usize> = None;
    while let Some(rest) = bytes.get(at..).filter(|r| !r.is_empty()) {
        match decode(rest) {
            Some((rec, origin, len)) => {
                if let Some(from) = bad_from.take() {
                    out.damaged.push(Damage {
                        offset: from,
                        skipped_bytes: at - from,
                    });
                }
                out.records.push((rec, origin));
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
