//! dlpatch's input handling on any bytes, as the ld.so to patch (plain and
//! with an embedded wrapper archive made of the same bytes) and as the
//! program: a result or a refusal, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = dlfm_elf::patch_ldso(bytes);
    let _ = dlfm_elf::check_program(bytes);
    let _ = dlfm_elf::interp_of(bytes);
    let _ = dlfm_elf::origin_search_paths(bytes);
    if bytes.len() < 4096 {
        let _ = dlfm_elf::patch_ldso_embedded(bytes, bytes);
    }
});
