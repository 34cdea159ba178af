//! The journal's record format and its encoder (no std, no panic): see
//! docs/internals.md §3. `dlfm-pack` holds the decoder. Like `read`, every
//! function is `#[inline]` so the wrapper compiles it into its own object.
//!
//! Record: a 16-byte header (magic u32, total length u32, kind u16, zero u16,
//! FNV-1a 32 of the payload u32), then the payload:
//! - Process: pid u32, program id length u8, ld.so id length u8, zero u16,
//!   program id [32], ld.so id [32], executable name;
//! - Open: flags u32, result i32, has_stat u32, zero u32, stat [144], path;
//! - Stat: flags u32, result i32, stat [144], path;
//! - Access: mode u32, result i32, path;
//! - Map: prot u32, flags u32, offset u64, len u64, path.

pub use crate::hash::fnv1a32;
use crate::read::STAT_SIZE;

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
/// Kind of a Map record.
pub const KIND_MAP: u16 = 5;
/// Room for an identity in a Process record.
pub const ID_ROOM: usize = 32;

/// One record to append.
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
    /// A recorded file was mapped.
    Map {
        /// Protection.
        prot: u32,
        /// Flags.
        flags: u32,
        /// File offset.
        offset: u64,
        /// Length.
        len: u64,
        /// The file's path.
        path: &'a [u8],
    },
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

/// Encodes `rec` into `buf`; returns its length, or `None` if it does not
/// fit in `buf` or in MAX_RECORD.
#[inline]
pub fn encode(rec: &Record<'_>, buf: &mut [u8]) -> Option<usize> {
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
        Record::Map {
            prot,
            flags,
            offset,
            len,
            path,
        } => {
            w.bytes(&prot.to_le_bytes());
            w.bytes(&flags.to_le_bytes());
            w.bytes(&offset.to_le_bytes());
            w.bytes(&len.to_le_bytes());
            w.bytes(path);
            KIND_MAP
        }
    };
    let len = w.len;
    if !w.fits || len > MAX_RECORD {
        return None;
    }
    let sum = fnv1a32(w.buf.get(HEADER_LEN..len)?);
    let mut h = Writer {
        buf: w.buf,
        len: 0,
        fits: true,
    };
    h.bytes(&MAGIC.to_le_bytes());
    h.bytes(&(len as u32).to_le_bytes());
    h.bytes(&kind.to_le_bytes());
    h.zeros(2);
    h.bytes(&sum.to_le_bytes());
    Some(len)
}
