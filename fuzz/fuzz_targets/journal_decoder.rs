//! The journal decoder on any bytes: every record it decodes encodes, and
//! decodes back to the same record (the decoder accepts some non-canonical
//! bytes, found by this target on 2026-12-03, so the bytes themselves may
//! differ), and a whole-journal scan never panics.
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
                let (again, origin_again, n_again) =
                    decode(&buf[..n]).expect("an encoded record decodes");
                assert_eq!((again, origin_again, n_again), (rec, origin, n));
                at += len;
            }
            None => at += 1,
        }
    }
    let _ = dlfm_pack::scan::scan(bytes);
});
