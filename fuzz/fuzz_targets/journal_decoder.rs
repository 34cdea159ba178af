//! The journal decoder on any bytes: every record it decodes encodes to
//! exactly the bytes it was decoded from (one record, one encoding: the
//! decoder refuses non-zero padding and reserved fields, which this target
//! found on 2026-12-03), and a whole-journal scan never panics.
#![no_main]

use dlfm_cache::journal::{decode, encode, MAX_RECORD};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let mut at = 0;
    let mut buf = vec![0u8; MAX_RECORD];
    while let Some(rest) = bytes.get(at..).filter(|r| !r.is_empty()) {
        match decode(rest) {
            Some((rec, origin, len)) => {
                assert!(len > 0 && len <= rest.len());
                let n = encode(&rec, origin, &mut buf).expect("a decoded record encodes");
                assert_eq!(&buf[..n], &rest[..len], "{rec:?} has another encoding");
                at += len;
            }
            None => at += 1,
        }
    }
    let _ = dlfm_pack::scan::scan(bytes);
});
