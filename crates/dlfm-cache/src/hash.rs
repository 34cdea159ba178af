//! FNV-1a hashes: 64 bits for the cache index's path keys and the metadata
//! checksum, 32 bits for a journal record's payload check. Plain loops over
//! bytes (no tables, no division), so they are safe to run before relocation.

/// FNV-1a 64 starting value.
pub const FNV64_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a 64 multiplier.
const FNV64_PRIME: u64 = 0x0100_0000_01b3;
/// FNV-1a 32 starting value.
pub const FNV32_OFFSET: u32 = 0x811c_9dc5;
/// FNV-1a 32 multiplier.
const FNV32_PRIME: u32 = 0x0100_0193;

/// Continues an FNV-1a 64 hash `h` over `bytes` (start from
/// [`FNV64_OFFSET`]); lets the checksum hash around its own field.
#[inline]
pub fn fnv1a64_continue(h: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(h, |h, &b| (h ^ u64::from(b)).wrapping_mul(FNV64_PRIME))
}

/// FNV-1a 64 of `bytes`: the index's path hash.
#[inline]
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    fnv1a64_continue(FNV64_OFFSET, bytes)
}

/// Continues an FNV-1a 32 hash `h` over `bytes` (start from
/// [`FNV32_OFFSET`]); lets a stored file's checksum be computed as its bytes
/// stream past.
#[inline]
pub fn fnv1a32_continue(h: u32, bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .fold(h, |h, &b| (h ^ u32::from(b)).wrapping_mul(FNV32_PRIME))
}

/// FNV-1a 32 of `bytes`: a journal record's payload check and a stored
/// file's checksum.
#[inline]
pub fn fnv1a32(bytes: &[u8]) -> u32 {
    fnv1a32_continue(FNV32_OFFSET, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_test_vectors() {
        // The FNV reference values for "" and "a".
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
    }

    #[test]
    fn continuing_equals_hashing_the_concatenation() {
        assert_eq!(
            fnv1a64_continue(fnv1a64(b"/usr/"), b"lib"),
            fnv1a64(b"/usr/lib")
        );
        assert_eq!(
            fnv1a32_continue(fnv1a32(b"/usr/"), b"lib"),
            fnv1a32(b"/usr/lib")
        );
    }
}
