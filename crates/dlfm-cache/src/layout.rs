//! The layout of `dlcache.dat` (all integers little-endian), shared by the
//! writer (`dlfm-pack`) and the reader (`read`).
//!
//! ```text
//! header, 128 bytes at offset 0:
//!   0 magic "DLFMCACH"   8 version u32 (1)   12 header_len u32 (128)
//!  16 file_len u64       24 meta_len u64: [0, meta_len) is metadata
//!  32 checksum u64: FNV-1a 64 of [0, meta_len) with these 8 bytes as zero
//!  40 entries_off u64    48 entries_count u32   52 files_count u32
//!  56 files_off u64      64 stats_off u64       72 stats_count u32
//!  76 ids_count u32      80 ids_off u64         88 strings_off u64
//!  96 strings_len u64   104 width u32          108..128 zero
//! entry, 32 bytes, sorted by (FNV-1a 64 of the path, path bytes):
//!   0 hash u64   8 path_off u32   12 path_len u32 (into strings)
//!  16 open i32   20 stat i32   24 access i32   28 zero
//!     each: i32::MIN = not recorded, < 0 = -errno,
//!     >= 0 = file index (open), stat index (stat), 0 (access)
//! file, 32 bytes:
//!   0 data_off u64 (a multiple of 4096, in the data region)  8 size u64
//!  16 stat index u32   20 path_off u32   24 path_len u32   28 zero
//! stat, 144 bytes: the kernel's x86_64 struct stat as newfstatat wrote it
//! id, 40 bytes: kind u8 (1 program, 2 ld.so), len u8 (<= 32), 6 zero, 32 bytes
//! ```
//! The data region starts at the first page boundary after the metadata;
//! each file's bytes start on a page boundary and are padded with zeros.

use crate::read::Outcome;
pub const HEADER_LEN: usize = 128;
pub const ENTRY_LEN: usize = 32;
pub const FILE_LEN: usize = 32;
pub const ID_LEN: usize = 40;
pub const ID_MAX: usize = 32;
pub const MAGIC: [u8; 8] = *b"DLFMCACH";
pub const VERSION: u32 = 1;
#[inline]
pub fn encode_outcome(o: Outcome) -> i32 {
    match o {
        Outcome::NotRecorded => i32::MIN,
        Outcome::Err(e) => -e,
        Outcome::Ok(i) => i as i32,
    }
}
pub struct Header {
    pub file_len: u64,
    pub meta_len: u64,
    pub entries_off: u64,
    pub entries_count: u32,
    pub files_count: u32,
    pub files_off: u64,
    pub stats_off: u64,
    pub stats_count: u32,
    pub ids_count: u32,
    pub ids_off: u64,
    pub strings_off: u64,
    pub strings_len: u64,
    pub width: u32,
}
#[inline]
fn put(b: &mut [u8], at: usize, v: &[u8]) {
    if let Some(d) = b.get_mut(at..at + v.len()) {
        dlfm_bytes::copy(d, v);
    }
}
impl Header {
    #[inline]
    pub fn write(&self, b: &mut [u8]) {
        put(b, 0, &MAGIC);
        put(b, 8, &VERSION.to_le_bytes());
        put(b, 12, &(HEADER_LEN as u32).to_le_bytes());
        put(b, 16, &self.file_len.to_le_bytes());
        put(b, 24, &self.meta_len.to_le_bytes());
        put(b, 40, &self.entries_off.to_le_bytes());
        put(b, 48, &self.entries_count.to_le_bytes());
        put(b, 52, &self.files_count.to_le_bytes());
        put(b, 56, &self.files_off.to_le_bytes());
        put(b, 64, &self.stats_off.to_le_bytes());
        put(b, 72, &self.stats_count.to_le_bytes());
        put(b, 76, &self.ids_count.to_le_bytes());
        put(b, 80, &self.ids_off.to_le_bytes());
        put(b, 88, &self.strings_off.to_le_bytes());
        put(b, 96, &self.strings_len.to_le_bytes());
        put(b, 104, &self.width.to_le_bytes());
    }
}
#[inline]
pub fn checksum(meta: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for (i, &x) in meta.iter().enumerate() {
        let x = if (32..40).contains(&i) { 0 } else { x };
        h ^= u64::from(x);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}
#[inline]
pub fn seal(meta: &mut [u8]) {
    let c = checksum(meta);
    put(meta, 32, &c.to_le_bytes());
}
