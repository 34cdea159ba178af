//! Reading `dlcache.dat` without std, allocation or panics: every offset and
//! length read from the file is checked against the buffer, so a damaged or
//! hostile file gives an error or a miss, never a crash. The wrapper runs
//! this inside ld.so, so every function here is `#[inline]`: it is compiled
//! into the wrapper's own object, never called through the GOT.

pub const STAT_SIZE: usize = 144;
pub const PAGE: u64 = 4096;
const NOT_RECORDED: i32 = i32::MIN;
#[derive(Clone, Copy)]
pub enum IdKind {
    Program = 1,
    Ldso = 2,
}
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    NotRecorded,
    Err(i32),
    Ok(u32),
}
#[derive(Clone, Copy)]
pub struct Entry {
    pub open: Outcome,
    pub stat: Outcome,
    pub access: Outcome,
}
#[derive(Clone, Copy)]
pub struct FileRef<'a> {
    pub data_off: u64,
    pub size: u64,
    pub stat_index: u32,
    pub path: &'a [u8],
}
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheError {
    TooShort,
    BadMagic,
    BadVersion,
    LengthMismatch,
    BadChecksum,
    OutOfBounds,
    BadTable,
}
impl CacheError {
    pub fn reason(self) -> &'static [u8] {
        match self {
            CacheError::TooShort => b"too short",
            CacheError::BadMagic => b"bad magic",
            CacheError::BadVersion => b"bad version",
            CacheError::LengthMismatch => b"length mismatch",
            CacheError::BadChecksum => b"bad checksum",
            CacheError::OutOfBounds => b"out of bounds",
            CacheError::BadTable => b"bad table",
        }
    }
}
#[inline]
fn u32at(b: &[u8], o: usize) -> Option<u32> {
    let s = b.get(o..o.checked_add(4)?)?;
    Some(u32::from(s[0]) | u32::from(s[1]) << 8 | u32::from(s[2]) << 16 | u32::from(s[3]) << 24)
}
#[inline]
fn u64at(b: &[u8], o: usize) -> Option<u64> {
    Some(u64::from(u32at(b, o)?) | u64::from(u32at(b, o.checked_add(4)?)?) << 32)
}
pub struct Cache<'a> {
    b: &'a [u8],
    entries_off: usize,
    entries: u32,
    files_off: usize,
    files: u32,
    stats_off: usize,
    stats: u32,
    ids_off: usize,
    ids: u32,
    strings_off: usize,
    strings_len: usize,
    width: u32,
}
#[inline]
fn table(meta: usize, off: u64, count: u32, size: usize) -> Result<usize, CacheError> {
    let off = usize::try_from(off).map_err(|_| CacheError::OutOfBounds)?;
    let end = (count as usize)
        .checked_mul(size)
        .and_then(|n| n.checked_add(off))
        .ok_or(CacheError::OutOfBounds)?;
    if end > meta {
        Err(CacheError::OutOfBounds)
    } else {
        Ok(off)
    }
}
impl<'a> Cache<'a> {
    #[inline]
    pub fn parse(b: &'a [u8]) -> Result<Cache<'a>, CacheError> {
        if b.len() < 128 {
            return Err(CacheError::TooShort);
        }
        if !dlfm_bytes::equal(b.get(0..8).ok_or(CacheError::TooShort)?, b"DLFMCACH") {
            return Err(CacheError::BadMagic);
        }
        if u32at(b, 8) != Some(1) {
            return Err(CacheError::BadVersion);
        }
        if u64at(b, 16) != Some(b.len() as u64) {
            return Err(CacheError::LengthMismatch);
        }
        let meta = u64at(b, 24).ok_or(CacheError::TooShort)?;
        let meta = usize::try_from(meta).map_err(|_| CacheError::OutOfBounds)?;
        if meta < 128 || meta > b.len() {
            return Err(CacheError::OutOfBounds);
        }
        let m = b.get(..meta).ok_or(CacheError::OutOfBounds)?;
        if u64at(b, 32) != Some(crate::layout::checksum(m)) {
            return Err(CacheError::BadChecksum);
        }
        let g = |o| u64at(b, o).ok_or(CacheError::TooShort);
        let g32 = |o| u32at(b, o).ok_or(CacheError::TooShort);
        let entries = g32(48)?;
        let files = g32(52)?;
        let stats = g32(72)?;
        let ids = g32(76)?;
        let c = Cache {
            b,
            entries_off: table(meta, g(40)?, entries, 32)?,
            entries,
            files_off: table(meta, g(56)?, files, 32)?,
            files,
            stats_off: table(meta, g(64)?, stats, 144)?,
            stats,
            ids_off: table(meta, g(80)?, ids, 40)?,
            ids,
            strings_off: table(meta, g(88)?, 0, 0)?,
            strings_len: usize::try_from(g(96)?).map_err(|_| CacheError::OutOfBounds)?,
            width: g32(104)?,
        };
        if c.strings_off
            .checked_add(c.strings_len)
            .map_or(true, |e| e > meta)
        {
            return Err(CacheError::OutOfBounds);
        }
        Ok(c)
    }
    #[inline]
    fn path(&self, off: u32, len: u32) -> Option<&'a [u8]> {
        let s = self
            .b
            .get(self.strings_off..self.strings_off + self.strings_len)?;
        s.get(off as usize..(off as usize).checked_add(len as usize)?)
    }
    #[inline]
    pub fn lookup(&self, path: &[u8]) -> Option<Entry> {
        let h = fnv1a64(path);
        let (mut lo, mut hi) = (0u32, self.entries);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let e = self.b.get(
                self.entries_off + mid as usize * 32..self.entries_off + mid as usize * 32 + 32,
            )?;
            let eh = u64at(e, 0)?;
            let ep = self.path(u32at(e, 8)?, u32at(e, 12)?)?;
            let ord = if eh != h { eh.cmp(&h) } else { cmp(ep, path) };
            match ord {
                core::cmp::Ordering::Less => lo = mid + 1,
                core::cmp::Ordering::Greater => hi = mid,
                core::cmp::Ordering::Equal => {
                    let o = |v: u32| {
                        let v = v as i32;
                        if v == NOT_RECORDED {
                            Outcome::NotRecorded
                        } else if v < 0 {
                            Outcome::Err(-v)
                        } else {
                            Outcome::Ok(v as u32)
                        }
                    };
                    return Some(Entry {
                        open: o(u32at(e, 16)?),
                        stat: o(u32at(e, 20)?),
                        access: o(u32at(e, 24)?),
                    });
                }
            }
        }
        None
    }
    #[inline]
    pub fn file(&self, index: u32) -> Option<FileRef<'a>> {
        if index >= self.files {
            return None;
        }
        let f = self
            .b
            .get(self.files_off + index as usize * 32..self.files_off + index as usize * 32 + 32)?;
        let data_off = u64at(f, 0)?;
        let size = u64at(f, 8)?;
        let end = data_off.checked_add(size)?;
        if end > self.b.len() as u64 || data_off % PAGE != 0 {
            return None;
        }
        Some(FileRef {
            data_off,
            size,
            stat_index: u32at(f, 16)?,
            path: self.path(u32at(f, 20)?, u32at(f, 24)?)?,
        })
    }
    #[inline]
    pub fn stat(&self, index: u32) -> Option<&'a [u8]> {
        if index >= self.stats {
            return None;
        }
        let o = self.stats_off + index as usize * 144;
        self.b.get(o..o + 144)
    }
    #[inline]
    pub fn has_id(&self, kind: IdKind, id: &[u8]) -> bool {
        for i in 0..self.ids as usize {
            let Some(e) = self
                .b
                .get(self.ids_off + i * 40..self.ids_off + i * 40 + 40)
            else {
                return false;
            };
            let len = e[1] as usize;
            if e[0] == kind as u8 && len <= 32 {
                if let Some(b) = e.get(8..8 + len) {
                    if dlfm_bytes::equal(b, id) {
                        return true;
                    }
                }
            }
        }
        false
    }
    #[inline]
    pub fn width(&self) -> u32 {
        self.width
    }
}
#[inline]
fn cmp(a: &[u8], b: &[u8]) -> core::cmp::Ordering {
    let n = a.len().min(b.len());
    for i in 0..n {
        let (x, y) = (
            a.get(i).copied().unwrap_or(0),
            b.get(i).copied().unwrap_or(0),
        );
        if x != y {
            return x.cmp(&y);
        }
    }
    a.len().cmp(&b.len())
}
#[inline]
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h = 0xcbf29ce484222325u64;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}
