//! Node-local copies of the cache: their file names and the pointer file
//! that says which copy a job may use. One owner for the wrapper (which
//! stages and reads them), the interposer (which reads them) and `dlfm.pre`
//! (which broadcasts them with `sbcast` and removes them).
//!
//! In the stage directory (default `/dev/shm`), for user `<uid>`:
//! ```text
//! dlfm-<uid>-<path key>-<job>.job   a job's pointer: "dlfm-stage-1 <key> <checksum> <file_len>\n"
//! dlfm-<uid>-<path key>.lock         flock(2) taken by the process that stages
//! dlfm-<uid>-<checksum>-<file_len>.d/        the node's copy (complete: renamed from .d.part)
//!     cache                                  the cache's metadata (its first meta_len bytes)
//!     root/<canonical path>                  each stored file, read-only, under its own path
//! dlfm-<uid>-<checksum>-<file_len>.d.part/   a copy being written
//! dlfm-<uid>-<checksum>-<file_len>.dat       the whole cache, as `sbcast` delivers it;
//!                                            unpacked into the .d copy by its first user
//! ```
//! A library mapped from `root/usr/lib/libx.so` shows in `/proc/self/maps`
//! under a name that ends with the library's own path, and a served open's
//! `/proc/self/fd/N` likewise: a replayed program sees its own files where
//! it looks for them, and every process of the node shares one copy of each
//! in the page cache.
//! `<path key>` is the FNV-1a 64 of the shared cache's absolute path; a
//! copy is named by its content (the metadata checksum, which covers every
//! stored file's size and data checksum, and the file's length), so that
//! two jobs with the same cache share one copy and a repacked cache never
//! meets an old copy under its name. Every number is 16 lowercase hex
//! digits; `<uid>` is decimal. Each job has its own pointer: `<job>` in its
//! name is the job's key (a hash of the launcher's job identifier, see
//! `dlfm_runtime::staging_policy`; 0 without a job), and the `<key>` inside says
//! who last checked the copy against the shared cache (the job, for every
//! step; or one step): a process of that job or step uses the copy without
//! touching the shared file system. So a job's epilog removes its own
//! pointers and only the copies no other job's pointer names
//! (`dlfm.pre clean`), never what a job still running on the node uses.

use crate::hash::fnv1a64;
use crate::layout::{Header, Plain};

/// The stage directory when `DLFM_STAGE_DIR` is not set.
pub const DEFAULT_DIR: &str = "/dev/shm";
/// Every node-local file's name starts with this, then the owner's uid.
pub const PREFIX: &str = "dlfm-";

/// What identifies a cache's contents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContentId {
    /// The metadata checksum from the header.
    pub checksum: u64,
    /// The whole file's length from the header.
    pub file_len: u64,
}

impl ContentId {
    /// The content id of the cache whose first bytes are `h`; `None` if `h`
    /// is not a header of this format version.
    #[inline]
    pub fn of_header(h: &[u8]) -> Option<ContentId> {
        let h = Header::from_bytes(h)?;
        if h.is_this_version() != (true, true) {
            return None;
        }
        Some(ContentId {
            checksum: h.checksum.get(),
            file_len: h.file_len.get(),
        })
    }
}

/// The key of a shared cache's absolute path, which names its pointer and
/// lock files.
#[inline]
pub fn path_key(absolute_path: &[u8]) -> u64 {
    fnv1a64(absolute_path)
}

/// Which node-local file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeFile {
    /// A job's pointer for the shared cache with this path key.
    Pointer(PointerKey),
    /// The pointer being written (renamed onto the pointer when complete).
    PointerPart(PointerKey),
    /// The lock of the shared cache with this path key.
    Lock(u64),
    /// The node's copy of this content: a directory (see the module doc).
    Tree(ContentId),
    /// The copy being written.
    TreePart(ContentId),
    /// The whole cache as `sbcast` delivered it.
    Copy(ContentId),
}

/// In a node copy ([`NodeFile::Tree`]): the cache's metadata.
pub const TREE_CACHE: &str = "cache";
/// In a node copy: the directory under which every stored file lies at its
/// canonical path.
pub const TREE_ROOT: &str = "root";

/// What names a pointer: the shared cache's path key and the job's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PointerKey {
    /// The shared cache's path key ([`path_key`]).
    pub path: u64,
    /// The job's key (0: no job).
    pub job: u64,
}

/// Longest node-local name: prefix, uid, two numbers, `.job.part`.
pub const NAME_MAX: usize = 64;

/// A node-local file's name (no directory), built without allocation.
pub struct NodeName {
    bytes: [u8; NAME_MAX],
    len: usize,
}

impl NodeName {
    /// The name of `file` for user `uid`.
    #[inline]
    pub fn new(uid: u32, file: NodeFile) -> NodeName {
        let mut n = NodeName {
            bytes: [0; NAME_MAX],
            len: 0,
        };
        n.push(PREFIX.as_bytes());
        n.decimal(uid);
        n.push(b"-");
        match file {
            NodeFile::Pointer(k) | NodeFile::PointerPart(k) => {
                n.hex(k.path);
                n.push(b"-");
                n.hex(k.job);
                n.push(b".job");
                if let NodeFile::PointerPart(_) = file {
                    n.push(b".part");
                }
            }
            NodeFile::Lock(key) => {
                n.hex(key);
                n.push(b".lock");
            }
            NodeFile::Tree(id) | NodeFile::TreePart(id) | NodeFile::Copy(id) => {
                n.hex(id.checksum);
                n.push(b"-");
                n.hex(id.file_len);
                match file {
                    NodeFile::Tree(_) => n.push(b".d"),
                    NodeFile::TreePart(_) => n.push(b".d.part"),
                    _ => n.push(b".dat"),
                }
            }
        }
        n
    }

    /// The name's bytes.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or(&[])
    }

    #[inline]
    fn push(&mut self, part: &[u8]) {
        if let Some(dst) = self.bytes.get_mut(self.len..self.len + part.len()) {
            self.len += dlfm_bytes::copy(dst, part);
        }
    }

    #[inline]
    fn decimal(&mut self, mut v: u32) {
        let mut digits = [0u8; 10];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 || i == 0 {
                break;
            }
        }
        if let Some(d) = digits.get(i..) {
            self.push(d);
        }
    }

    #[inline]
    fn hex(&mut self, v: u64) {
        let mut digits = [0u8; 16];
        write_hex(&mut digits, v);
        self.push(&digits);
    }
}

/// A node-local file's name read back: its owner's uid and which file it
/// is; `None` for any other name (the inverse of [`NodeName::new`]).
pub fn parse_name(name: &[u8]) -> Option<(u32, NodeFile)> {
    let uid = owner_of(name)?;
    let rest = name.strip_prefix(PREFIX.as_bytes())?;
    let rest = &rest[rest.iter().position(|&b| b == b'-')? + 1..];
    let two = |r: &[u8]| -> Option<(u64, u64)> {
        if r.len() != 33 || r[16] != b'-' {
            return None;
        }
        Some((read_hex(&r[..16])?, read_hex(&r[17..])?))
    };
    let file = if let Some(r) = rest.strip_suffix(b".job") {
        let (path, job) = two(r)?;
        NodeFile::Pointer(PointerKey { path, job })
    } else if let Some(r) = rest.strip_suffix(b".job.part") {
        let (path, job) = two(r)?;
        NodeFile::PointerPart(PointerKey { path, job })
    } else if let Some(r) = rest.strip_suffix(b".lock") {
        (r.len() == 16).then_some(())?;
        NodeFile::Lock(read_hex(r)?)
    } else if let Some(r) = rest.strip_suffix(b".dat") {
        let (checksum, file_len) = two(r)?;
        NodeFile::Copy(ContentId { checksum, file_len })
    } else if let Some(r) = rest.strip_suffix(b".d") {
        let (checksum, file_len) = two(r)?;
        NodeFile::Tree(ContentId { checksum, file_len })
    } else {
        let (checksum, file_len) = two(rest.strip_suffix(b".d.part")?)?;
        NodeFile::TreePart(ContentId { checksum, file_len })
    };
    Some((uid, file))
}

/// The owner's uid in a node-local file's name, if `name` is one of dlfm's
/// (prefix, decimal uid, `-`, then a name ending as one of ours does).
pub fn owner_of(name: &[u8]) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX.as_bytes())?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 10 || rest.get(digits) != Some(&b'-') {
        return None;
    }
    // Straight-line tests, not a table of slices (which would need
    // relocations in the wrapper).
    let ours = name.ends_with(b".job")
        || name.ends_with(b".job.part")
        || name.ends_with(b".lock")
        || name.ends_with(b".dat")
        || name.ends_with(b".d")
        || name.ends_with(b".d.part");
    if !ours {
        return None;
    }
    rest[..digits].iter().try_fold(0u32, |v, &d| {
        v.checked_mul(10)?.checked_add(u32::from(d - b'0'))
    })
}

/// The pointer file's contents: the job that last checked the copy of the
/// shared cache against it, and which copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pointer {
    /// The job's key.
    pub job: u64,
    /// The copy's content.
    pub content: ContentId,
}

/// The pointer file's first bytes.
const POINTER_MAGIC: &[u8; 13] = b"dlfm-stage-1 ";

impl Pointer {
    /// Length of a pointer file.
    pub const LEN: usize = 64;

    /// The pointer file's bytes.
    #[inline]
    pub fn write(&self, out: &mut [u8; Pointer::LEN]) {
        dlfm_bytes::copy(out, POINTER_MAGIC);
        let mut at = POINTER_MAGIC.len();
        for (i, v) in [self.job, self.content.checksum, self.content.file_len]
            .into_iter()
            .enumerate()
        {
            if let Some(dst) = out.get_mut(at..at + 16) {
                write_hex(dst, v);
            }
            at += 16;
            if let Some(sep) = out.get_mut(at) {
                *sep = if i == 2 { b'\n' } else { b' ' };
            }
            at += 1;
        }
    }

    /// Reads a pointer file's bytes; `None` unless they are exactly one
    /// pointer.
    #[inline]
    pub fn read(b: &[u8]) -> Option<Pointer> {
        if b.len() != Pointer::LEN || !dlfm_bytes::equal(b.get(..13)?, POINTER_MAGIC) {
            return None;
        }
        let field = |i: usize| {
            let at = 13 + 17 * i;
            let sep = if i == 2 { b'\n' } else { b' ' };
            if *b.get(at + 16)? != sep {
                return None;
            }
            read_hex(b.get(at..at + 16)?)
        };
        Some(Pointer {
            job: field(0)?,
            content: ContentId {
                checksum: field(1)?,
                file_len: field(2)?,
            },
        })
    }
}

/// Writes `v` as 16 lowercase hex digits into `out` (at least 16 bytes).
#[inline]
fn write_hex(out: &mut [u8], v: u64) {
    for (i, d) in out.iter_mut().take(16).enumerate() {
        let nibble = ((v >> (60 - 4 * i)) & 0xf) as u8;
        *d = if nibble < 10 {
            b'0' + nibble
        } else {
            b'a' + nibble - 10
        };
    }
}

/// Reads 16 lowercase hex digits.
#[inline]
fn read_hex(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |v, &d| {
        let n = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => return None,
        };
        Some((v << 4) | u64::from(n))
    })
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::String;

    const ID: ContentId = ContentId {
        checksum: 0x0123_4567_89ab_cdef,
        file_len: 0x2000,
    };

    fn name(uid: u32, f: NodeFile) -> String {
        String::from_utf8(NodeName::new(uid, f).as_bytes().into()).unwrap()
    }

    const PK: PointerKey = PointerKey {
        path: 0xabc,
        job: 0x17,
    };

    #[test]
    fn names_are_as_documented() {
        assert_eq!(
            name(1000, NodeFile::Pointer(PK)),
            "dlfm-1000-0000000000000abc-0000000000000017.job"
        );
        assert_eq!(name(0, NodeFile::Lock(1)), "dlfm-0-0000000000000001.lock");
        assert_eq!(
            name(u32::MAX, NodeFile::TreePart(ID)),
            "dlfm-4294967295-0123456789abcdef-0000000000002000.d.part"
        );
        assert_eq!(
            name(7, NodeFile::Tree(ID)),
            "dlfm-7-0123456789abcdef-0000000000002000.d"
        );
        assert_eq!(
            name(7, NodeFile::Copy(ID)),
            "dlfm-7-0123456789abcdef-0000000000002000.dat"
        );
        let longest = PointerKey {
            path: u64::MAX,
            job: u64::MAX,
        };
        assert!(name(u32::MAX, NodeFile::PointerPart(longest)).len() <= NAME_MAX);
    }

    #[test]
    fn owners_are_read_back_from_names() {
        for (uid, f) in [
            (0, NodeFile::Pointer(PK)),
            (1000, NodeFile::Copy(ID)),
            (u32::MAX, NodeFile::TreePart(ID)),
            (3, NodeFile::Tree(ID)),
            (42, NodeFile::Lock(9)),
            (42, NodeFile::PointerPart(PK)),
        ] {
            assert_eq!(owner_of(NodeName::new(uid, f).as_bytes()), Some(uid));
            assert_eq!(parse_name(NodeName::new(uid, f).as_bytes()), Some((uid, f)));
        }
        assert_eq!(parse_name(b"dlfm-1-0000000000000abc.job"), None, "no job");
        for other in [
            &b"dlfm-x-1.dat"[..],
            b"dlfm--1.dat",
            b"dlfm-1-1.txt",
            b"other-1-1.dat",
            b"dlfm-99999999999-1.dat",
        ] {
            assert_eq!(owner_of(other), None);
        }
    }

    #[test]
    fn pointers_round_trip_and_reject_damage() {
        let p = Pointer {
            job: u64::MAX,
            content: ID,
        };
        let mut b = [0u8; Pointer::LEN];
        p.write(&mut b);
        assert_eq!(b.last(), Some(&b'\n'));
        assert_eq!(Pointer::read(&b), Some(p));
        assert_eq!(Pointer::read(&b[..63]), None);
        for i in 0..Pointer::LEN {
            let mut d = b;
            d[i] = b'X';
            assert_eq!(Pointer::read(&d), None, "byte {i} damaged");
        }
    }

    #[test]
    fn content_ids_come_from_valid_headers_only() {
        use crate::layout::{U32, U64};
        let mut h = [0u8; crate::layout::HEADER_LEN];
        let header = Header {
            file_len: U64::new(8192),
            meta_len: U64::new(crate::layout::HEADER_LEN as u64),
            width: U32::new(1),
            ..Default::default()
        }
        .stamped();
        h.copy_from_slice(header.as_bytes());
        crate::layout::seal(&mut h);
        let id = ContentId::of_header(&h).unwrap();
        assert_eq!(id.file_len, 8192);
        assert_eq!(id.checksum, Header::from_bytes(&h).unwrap().checksum.get());
        h[0] = b'X';
        assert_eq!(ContentId::of_header(&h), None);
        assert_eq!(ContentId::of_header(&h[..64]), None);
    }
}
