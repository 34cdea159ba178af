//! The packer's merge of journals on any bytes: the input is split in two
//! journals (as the pilot's and a node's miss journal are appended to one
//! another), scanned and merged in both orders; the facts must not depend on
//! the order, and nothing may panic.
#![no_main]

use dlfm_pack::merge::merge;
use dlfm_pack::scan::scan;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Some((&cut, rest)) = bytes.split_first() else {
        return;
    };
    let cut = (cut as usize * rest.len()) / 256;
    let (a, b) = rest.split_at(cut);
    let (ra, rb) = (scan(a).records, scan(b).records);
    let ab: Vec<_> = ra.iter().chain(&rb).cloned().collect();
    let ba: Vec<_> = rb.iter().chain(&ra).cloned().collect();
    let (m1, m2) = (merge(&ab), merge(&ba));
    assert_eq!(m1.processes, m2.processes);
    assert_eq!(m1.paths.len(), m2.paths.len());
});
