//! The journal's record format, its encoder and its decoder (no std, no
//! allocation, no panic): see docs/internals.md §3. The wrapper encodes;
//! `dlfm-pack` scans whole journals with [`decode`]. Like `read`, every
//! function is `#[inline]` so the wrapper compiles it into its own object.
//!
//! Record: a 16-byte header (magic u32, total length u32, kind u16, origin
//! u16, FNV-1a 32 of kind, origin and payload u32), then the payload:
//! - Process: pid u32, program id length u8, ld.so id length u8, zero u16,
//!   program id [32], ld.so id [32], executable name;
//! - Open: flags u32 (x86_64's open flags on every machine:
//!   [`stored_open_flags`]), result i32, has_stat u32, zero u32, stat [144],
//!   path;
//! - Stat: flags u32, result i32, stat [144], path;
//! - Access: mode u32, result i32, path;
//! - Setup: the FMCaching interposers' paths, NUL-separated, one per
//!   machine (written by `dlfm.pre write-cache` as the journal's first
//!   record; each process preloads the first built for its machine; empty:
//!   no FMCaching).
//!
//! The origin says who made the lookup: 0 ld.so (DLCaching), 1 the program
//! through libc (FMCaching), which `dlfm.pre` scopes to code and metadata.
//!
//! (Kind 5 was a Map record, which the packer never used; a journal holding
//! one decodes it as damage.)

use crate::hash::{fnv1a32, fnv1a32_continue};
use dlfm_bytes::{le_u16, le_u32};

use crate::layout::{ID_MAX, STAT_SIZE};
use crate::stat::StatView;

/// Longest record.
pub const MAX_RECORD: usize = 8192;
/// Length of a record header.
pub const HEADER_LEN: usize = 16;
/// A record's first 4 bytes, `DLJR` little-endian.
pub const MAGIC: u32 = 0x524a_4c44;
/// Kind of a Process record.
pub const KIND_PROCESS: u16 = 1;
/// Kind of an Open record.
pub const KIND_OPEN: u16 = 2;
/// Kind of a Stat record.
pub const KIND_STAT: u16 = 3;
/// Kind of an Access record.
pub const KIND_ACCESS: u16 = 4;
/// Kind of a Setup record.
pub const KIND_SETUP: u16 = 6;
/// Room for an identity in a Process record.
pub const ID_ROOM: usize = ID_MAX;

/// Who made a recorded lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum Origin {
    /// ld.so, through the patched sites (DLCaching).
    Ldso = 0,
    /// The program, through libc (FMCaching's interposer).
    Program = 1,
}

/// One journal record: what the wrapper appends and [`decode`] gives back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record<'a> {
    /// A process started recording.
    Process {
        /// Its pid.
        pid: u32,
        /// The program's identity (at most 32 bytes kept).
        program_id: &'a [u8],
        /// ld.so's identity (at most 32 bytes kept).
        ldso_id: &'a [u8],
        /// The name it was executed by.
        exe: &'a [u8],
    },
    /// `open(path, flags)` returned `result`; `stat` is the file's fstat.
    Open {
        /// Open flags.
        flags: u32,
        /// Descriptor or -errno.
        result: i32,
        /// The opened file's stat.
        stat: Option<&'a [u8; STAT_SIZE]>,
        /// The path.
        path: &'a [u8],
    },
    /// `stat(path)` returned `result` and `stat`.
    Stat {
        /// newfstatat flags.
        flags: u32,
        /// 0 or -errno.
        result: i32,
        /// The stat (zeros on failure).
        stat: &'a [u8; STAT_SIZE],
        /// The path.
        path: &'a [u8],
    },
    /// `access(path, mode)` returned `result`.
    Access {
        /// The mode.
        mode: u32,
        /// 0 or -errno.
        result: i32,
        /// The path.
        path: &'a [u8],
    },
    /// How the pilot is set up (the journal's first record).
    Setup {
        /// The FMCaching interposers' absolute paths, NUL-separated (empty:
        /// none); read them with [`interposers`].
        fm_paths: &'a [u8],
    },
}

impl Record<'_> {
    /// Whether this is a lookup that found a directory (an open or a stat
    /// that succeeded on one).
    #[inline]
    pub fn found_directory(&self) -> bool {
        match *self {
            Record::Open {
                result,
                stat: Some(st),
                ..
            } => result >= 0 && StatView(st).is_dir(),
            Record::Stat { result, stat, .. } => result == 0 && StatView(stat).is_dir(),
            _ => false,
        }
    }
}

/// Appends bytes to a buffer, remembering whether everything fit.
struct Writer<'b> {
    buf: &'b mut [u8],
    len: usize,
    fits: bool,
}

impl Writer<'_> {
    #[inline]
    fn bytes(&mut self, b: &[u8]) {
        match self
            .len
            .checked_add(b.len())
            .and_then(|end| self.buf.get_mut(self.len..end))
        {
            Some(dst) => {
                dlfm_bytes::copy(dst, b);
                self.len += b.len();
            }
            None => self.fits = false,
        }
    }

    #[inline]
    fn zeros(&mut self, n: usize) {
        match self
            .len
            .checked_add(n)
            .and_then(|end| self.buf.get_mut(self.len..end))
        {
            Some(dst) => {
                dlfm_bytes::fill(dst, 0);
                self.len += n;
            }
            None => self.fits = false,
        }
    }

    /// An identity in its fixed 32-byte room.
    #[inline]
    fn id(&mut self, id: &[u8]) {
        let kept = id.get(..id.len().min(ID_ROOM)).unwrap_or(&[]);
        self.bytes(kept);
        self.zeros(ID_ROOM - kept.len());
    }
}

/// Encodes `rec`, made by `origin`, into `buf`; returns its length, or
/// `None` if it does not fit in `buf` or in MAX_RECORD.
#[inline]
pub fn encode(rec: &Record<'_>, origin: Origin, buf: &mut [u8]) -> Option<usize> {
    let mut w = Writer {
        buf,
        len: HEADER_LEN,
        fits: true,
    };
    let kind = match rec {
        Record::Process {
            pid,
            program_id,
            ldso_id,
            exe,
        } => {
            w.bytes(&pid.to_le_bytes());
            w.bytes(&[
                program_id.len().min(ID_ROOM) as u8,
                ldso_id.len().min(ID_ROOM) as u8,
                0,
                0,
            ]);
            w.id(program_id);
            w.id(ldso_id);
            w.bytes(exe);
            KIND_PROCESS
        }
        Record::Open {
            flags,
            result,
            stat,
            path,
        } => {
            w.bytes(&flags.to_le_bytes());
            w.bytes(&result.to_le_bytes());
            w.bytes(&u32::from(stat.is_some()).to_le_bytes());
            w.zeros(4);
            match stat {
                Some(s) => w.bytes(&s[..]),
                None => w.zeros(STAT_SIZE),
            }
            w.bytes(path);
            KIND_OPEN
        }
        Record::Stat {
            flags,
            result,
            stat,
            path,
        } => {
            w.bytes(&flags.to_le_bytes());
            w.bytes(&result.to_le_bytes());
            w.bytes(&stat[..]);
            w.bytes(path);
            KIND_STAT
        }
        Record::Access { mode, result, path } => {
            w.bytes(&mode.to_le_bytes());
            w.bytes(&result.to_le_bytes());
            w.bytes(path);
            KIND_ACCESS
        }
        Record::Setup { fm_paths } => {
            w.bytes(fm_paths);
            KIND_SETUP
        }
    };
    let len = w.len;
    if !w.fits || len > MAX_RECORD {
        return None;
    }
    let sum = record_sum(kind, origin as u16, w.buf.get(HEADER_LEN..len)?);
    let mut h = Writer {
        buf: w.buf,
        len: 0,
        fits: true,
    };
    h.bytes(&MAGIC.to_le_bytes());
    h.bytes(&(len as u32).to_le_bytes());
    h.bytes(&kind.to_le_bytes());
    h.bytes(&(origin as u16).to_le_bytes());
    h.bytes(&sum.to_le_bytes());
    Some(len)
}

/// Whether every byte is zero (the padding and reserved fields [`encode`]
/// writes, which [`decode`] insists on so that one record has one encoding).
#[inline]
fn zeros(b: &[u8]) -> bool {
    b.iter().all(|&x| x == 0)
}

/// A record's checksum: FNV-1a 32 of its kind and origin (as stored, little
/// endian) and its payload, so that a damaged kind or origin is caught too.
#[inline]
pub fn record_sum(kind: u16, origin: u16, payload: &[u8]) -> u32 {
    let k = kind.to_le_bytes();
    let o = origin.to_le_bytes();
    fnv1a32_continue(fnv1a32(&[k[0], k[1], o[0], o[1]]), payload)
}

/// The record at the start of `bytes`, who made it, and its length, if a
/// whole, valid record is there (magic, length within
/// `HEADER_LEN..=MAX_RECORD`, a known origin, payload checksum, a known
/// kind whose payload has the fields of its kind, zeros where [`encode`]
/// writes zeros: the decoder accepts exactly the encoder's bytes). Borrowed: paths and
/// stats point into `bytes`.
#[inline]
pub fn decode(bytes: &[u8]) -> Option<(Record<'_>, Origin, usize)> {
    if le_u32(bytes, 0)? != MAGIC {
        return None;
    }
    let len = le_u32(bytes, 4)? as usize;
    if !(HEADER_LEN..=MAX_RECORD).contains(&len) {
        return None;
    }
    let kind = le_u16(bytes, 8)?;
    let origin = match le_u16(bytes, 10)? {
        0 => Origin::Ldso,
        1 => Origin::Program,
        _ => return None,
    };
    let sum = le_u32(bytes, 12)?;
    let p = bytes.get(HEADER_LEN..len)?;
    if record_sum(kind, le_u16(bytes, 10)?, p) != sum {
        return None;
    }
    let i32_at = |o| le_u32(p, o).map(|v| v as i32);
    let stat_at = |o: usize| -> Option<&[u8; STAT_SIZE]> {
        p.get(o..o.checked_add(STAT_SIZE)?)?.try_into().ok()
    };
    let rec = match kind {
        KIND_PROCESS => {
            let (pl, ll) = (*p.get(4)? as usize, *p.get(5)? as usize);
            if pl > ID_ROOM
                || ll > ID_ROOM
                || !zeros(p.get(6..8)?)
                || !zeros(p.get(8 + pl..8 + ID_ROOM)?)
                || !zeros(p.get(8 + ID_ROOM + ll..8 + 2 * ID_ROOM)?)
            {
                return None;
            }
            Record::Process {
                pid: le_u32(p, 0)?,
                program_id: p.get(8..8 + pl)?,
                ldso_id: p.get(8 + ID_ROOM..8 + ID_ROOM + ll)?,
                exe: p.get(8 + 2 * ID_ROOM..)?,
            }
        }
        KIND_OPEN => Record::Open {
            flags: le_u32(p, 0)?,
            result: i32_at(4)?,
            stat: match (le_u32(p, 8)?, le_u32(p, 12)?, stat_at(16)?) {
                (1, 0, stat) => Some(stat),
                (0, 0, stat) if zeros(stat) => None,
                _ => return None,
            },
            path: p.get(16 + STAT_SIZE..)?,
        },
        KIND_STAT => Record::Stat {
            flags: le_u32(p, 0)?,
            result: i32_at(4)?,
            stat: stat_at(8)?,
            path: p.get(8 + STAT_SIZE..)?,
        },
        KIND_ACCESS => Record::Access {
            mode: le_u32(p, 0)?,
            result: i32_at(4)?,
            path: p.get(8..)?,
        },
        KIND_SETUP => Record::Setup { fm_paths: p },
        _ => return None,
    };
    Some((rec, origin, len))
}

/// An Open record's flag for a directory opened to be listed (`opendir`):
/// x86_64's `O_DIRECTORY`, as every stored flag is.
pub const OPEN_DIRECTORY: u32 = 0o200000;

/// The stored form of this target's `open` flags: x86_64's values, so that
/// a journal reads the same on any host. aarch64 (the generic layout) has
/// four flags elsewhere; they swap places, every other flag is the same.
#[inline]
pub fn stored_open_flags(flags: u32) -> u32 {
    #[cfg(target_arch = "aarch64")]
    {
        // (aarch64's value, x86_64's): O_DIRECTORY, O_NOFOLLOW, O_DIRECT,
        // O_LARGEFILE.
        const MOVED: [(u32, u32); 4] = [
            (0o40000, OPEN_DIRECTORY),
            (0o100000, 0o400000),
            (0o200000, 0o40000),
            (0o400000, 0o100000),
        ];
        let mut out = flags;
        for &(here, _) in MOVED.iter() {
            out &= !here;
        }
        for &(here, stored) in MOVED.iter() {
            if flags & here != 0 {
                out |= stored;
            }
        }
        out
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        flags
    }
}

/// The interposer paths of a Setup record's `fm_paths`, in order (one
/// per machine, host's first).
#[inline]
pub fn interposers(fm_paths: &[u8]) -> impl Iterator<Item = &[u8]> {
    fm_paths.split(|&b| b == 0).filter(|p| !p.is_empty())
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use proptest::prelude::*;

    use super::*;

    fn round_trip(rec: Record<'_>) {
        for origin in [Origin::Ldso, Origin::Program] {
            let mut buf = [0u8; MAX_RECORD];
            let n = encode(&rec, origin, &mut buf).expect("fits");
            let (back, back_origin, len) = decode(&buf[..n]).expect("decodes");
            assert_eq!((len, back_origin), (n, origin));
            assert_eq!(back, rec);
        }
    }

    /// Gives `bytes` a valid header for `kind` and `origin` over its payload.
    fn reseal(bytes: &mut [u8], kind: u16, origin: u16) {
        let len = bytes.len() as u32;
        let sum = record_sum(kind, origin, &bytes[HEADER_LEN..]);
        bytes[..4].copy_from_slice(&MAGIC.to_le_bytes());
        bytes[4..8].copy_from_slice(&len.to_le_bytes());
        bytes[8..10].copy_from_slice(&kind.to_le_bytes());
        bytes[10..12].copy_from_slice(&origin.to_le_bytes());
        bytes[12..16].copy_from_slice(&sum.to_le_bytes());
    }

    #[test]
    fn non_canonical_records_are_refused() {
        let stat = [7u8; STAT_SIZE];
        let mut buf = [0u8; MAX_RECORD];
        let process = Record::Process {
            pid: 9,
            program_id: b"abc",
            ldso_id: b"de",
            exe: b"/p",
        };
        let open = Record::Open {
            flags: 0,
            result: 3,
            stat: Some(&stat),
            path: b"/l",
        };
        let no_stat = Record::Open {
            flags: 0,
            result: -2,
            stat: None,
            path: b"/l",
        };
        // (record, payload byte set to 1, why the encoder would never write it)
        let cases: [(Record<'_>, usize, &str); 6] = [
            (process, 6, "reserved u16"),
            (process, 8 + 3, "program id padding"),
            (process, 8 + ID_ROOM + 2, "ld.so id padding"),
            (open, 12, "reserved u32"),
            (no_stat, 16 + 5, "stat bytes without a stat"),
            (no_stat, 8, "has_stat 2"),
        ];
        for (rec, at, why) in cases {
            let n = encode(&rec, Origin::Ldso, &mut buf).unwrap();
            assert!(decode(&buf[..n]).is_some());
            let mut bad = buf[..n].to_vec();
            bad[HEADER_LEN + at] = if at == 8 { 2 } else { 1 };
            reseal(&mut bad, le_u16(&buf, 8).unwrap(), 0);
            assert!(decode(&bad).is_none(), "{why}: accepted");
        }
    }

    proptest! {
        #[test]
        fn every_kind_round_trips(
            pid: u32,
            flags: u32,
            result: i32,
            ids in (proptest::collection::vec(any::<u8>(), 0..=ID_ROOM),
                    proptest::collection::vec(any::<u8>(), 0..=ID_ROOM)),
            path in proptest::collection::vec(any::<u8>(), 0..4000),
            stat in proptest::collection::vec(any::<u8>(), STAT_SIZE),
        ) {
            let stat: &[u8; STAT_SIZE] = stat.as_slice().try_into().unwrap();
            round_trip(Record::Process { pid, program_id: &ids.0, ldso_id: &ids.1, exe: &path });
            round_trip(Record::Open { flags, result, stat: Some(stat), path: &path });
            round_trip(Record::Open { flags, result, stat: None, path: &path });
            round_trip(Record::Stat { flags, result, stat, path: &path });
            round_trip(Record::Access { mode: flags, result, path: &path });
            round_trip(Record::Setup { fm_paths: &path });
        }

        #[test]
        fn decode_never_panics_and_stays_in_bounds(bytes: Vec<u8>) {
            if let Some((_, _, len)) = decode(&bytes) {
                prop_assert!(len <= bytes.len() && len >= HEADER_LEN);
            }
        }

        #[test]
        fn whatever_decodes_encodes_to_the_same_bytes(
            bytes in proptest::collection::vec(any::<u8>(), HEADER_LEN..400),
            kind in prop_oneof![Just(KIND_PROCESS), Just(KIND_OPEN), Just(KIND_STAT),
                                Just(KIND_ACCESS), Just(KIND_SETUP)],
            origin in 0u16..2,
        ) {
            // Random payloads of a real kind, sealed, so that they get past
            // the checksum: only the fields' own checks can refuse them.
            let mut bytes = bytes;
            reseal(&mut bytes, kind, origin);
            if let Some((rec, origin, n)) = decode(&bytes) {
                let mut buf = [0u8; MAX_RECORD];
                let m = encode(&rec, origin, &mut buf).expect("a decoded record encodes");
                prop_assert_eq!(&buf[..m], &bytes[..n]);
            }
        }

        #[test]
        fn a_flipped_byte_is_never_decoded_as_another_record(
            path in proptest::collection::vec(any::<u8>(), 0..200),
            at: usize,
            bit in 0u8..8,
        ) {
            let mut buf = [0u8; MAX_RECORD];
            let rec = Record::Access { mode: 4, result: -2, path: &path };
            let n = encode(&rec, Origin::Program, &mut buf).unwrap();
            let at = at % n;
            buf[at] ^= 1 << bit;
            if let Some((back, ..)) = decode(&buf[..n]) {
                prop_assert!(false, "a damaged record decoded as {back:?}");
            }
        }
    }

    #[test]
    fn open_flags_are_stored_as_x86_64s() {
        use linux_raw_sys::general as here;
        // x86_64's values, whatever this target's are.
        let cases = [
            (here::O_DIRECTORY, OPEN_DIRECTORY),
            (here::O_NOFOLLOW, 0o400000),
            (here::O_DIRECT, 0o40000),
            (here::O_CLOEXEC, 0o2000000),
            (here::O_RDONLY, 0),
        ];
        for (flag, stored) in cases {
            assert_eq!(stored_open_flags(flag), stored, "{flag:#o}");
        }
        let all = here::O_DIRECTORY | here::O_NOFOLLOW | here::O_CLOEXEC;
        assert_eq!(
            stored_open_flags(all),
            OPEN_DIRECTORY | 0o400000 | 0o2000000
        );
    }
}
