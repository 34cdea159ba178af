//! The journal's record format and its encoder (no std, no panic): see
//! docs/internals.md §3. `dlfm-pack` holds the decoder.

pub const MAX_RECORD: usize = 8192;
pub const HEADER_LEN: usize = 16;
pub const MAGIC: u32 = 0x524a4c44;
pub const KIND_PROCESS: u16 = 1;
pub const KIND_OPEN: u16 = 2;
pub const KIND_STAT: u16 = 3;
pub const KIND_ACCESS: u16 = 4;
pub const KIND_MAP: u16 = 5;
#[inline]
pub fn fnv1a32(b: &[u8]) -> u32 {
    let mut h: u32 = 0x811c9dc5;
    for &x in b {
        h ^= u32::from(x);
        h = h.wrapping_mul(0x01000193);
    }
    h
}
pub enum Record<'a> {
    Process {
        pid: u32,
        program_id: &'a [u8],
        ldso_id: &'a [u8],
        exe: &'a [u8],
    },
    Open {
        flags: u32,
        result: i32,
        stat: Option<&'a [u8; 144]>,
        path: &'a [u8],
    },
    Stat {
        flags: u32,
        result: i32,
        stat: &'a [u8; 144],
        path: &'a [u8],
    },
    Access {
        mode: u32,
        result: i32,
        path: &'a [u8],
    },
    Map {
        prot: u32,
        flags: u32,
        offset: u64,
        len: u64,
        path: &'a [u8],
    },
}
struct W<'b> {
    b: &'b mut [u8],
    n: usize,
    ok: bool,
}
impl W<'_> {
    fn put(&mut self, s: &[u8]) {
        match self.b.get_mut(self.n..self.n + s.len()) {
            Some(d) => {
                dlfm_bytes::copy(d, s);
                self.n += s.len();
            }
            None => self.ok = false,
        }
    }
    fn zeros(&mut self, k: usize) {
        match self.b.get_mut(self.n..self.n + k) {
            Some(d) => {
                dlfm_bytes::fill(d, 0);
                self.n += k;
            }
            None => self.ok = false,
        }
    }
}
#[inline]
pub fn encode(rec: &Record<'_>, buf: &mut [u8]) -> Option<usize> {
    let mut w = W {
        b: buf,
        n: 16,
        ok: true,
    };
    let kind: u16 = match rec {
        Record::Process {
            pid,
            program_id,
            ldso_id,
            exe,
        } => {
            w.put(&pid.to_le_bytes());
            w.put(&[
                program_id.len().min(32) as u8,
                ldso_id.len().min(32) as u8,
                0,
                0,
            ]);
            let a = program_id.get(..program_id.len().min(32))?;
            w.put(a);
            w.zeros(32 - a.len());
            let l = ldso_id.get(..ldso_id.len().min(32))?;
            w.put(l);
            w.zeros(32 - l.len());
            w.put(exe);
            1
        }
        Record::Open {
            flags,
            result,
            stat,
            path,
        } => {
            w.put(&flags.to_le_bytes());
            w.put(&result.to_le_bytes());
            w.put(&(stat.is_some() as u32).to_le_bytes());
            w.zeros(4);
            match stat {
                Some(s) => w.put(&s[..]),
                None => w.zeros(144),
            }
            w.put(path);
            2
        }
        Record::Stat {
            flags,
            result,
            stat,
            path,
        } => {
            w.put(&flags.to_le_bytes());
            w.put(&result.to_le_bytes());
            w.put(&stat[..]);
            w.put(path);
            3
        }
        Record::Access { mode, result, path } => {
            w.put(&mode.to_le_bytes());
            w.put(&result.to_le_bytes());
            w.put(path);
            4
        }
        Record::Map {
            prot,
            flags,
            offset,
            len,
            path,
        } => {
            w.put(&prot.to_le_bytes());
            w.put(&flags.to_le_bytes());
            w.put(&offset.to_le_bytes());
            w.put(&len.to_le_bytes());
            w.put(path);
            5
        }
    };
    if !w.ok || w.n > MAX_RECORD {
        return None;
    }
    let n = w.n;
    let h = fnv1a32(w.b.get(16..n)?);
    let mut hdr = W {
        b: w.b,
        n: 0,
        ok: true,
    };
    hdr.put(&0x524a4c44u32.to_le_bytes());
    hdr.put(&(n as u32).to_le_bytes());
    hdr.put(&kind.to_le_bytes());
    hdr.put(&[0, 0]);
    hdr.put(&h.to_le_bytes());
    Some(n)
}
