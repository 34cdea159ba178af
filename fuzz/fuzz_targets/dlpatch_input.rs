//! dlpatch's input handling on any bytes, as the ld.so to patch (plain and
//! with an embedded wrapper archive made of the same bytes) and as the
//! program, through the whole `--program` path (its interpreter, machine,
//! `$ORIGIN` entries and the copy with a new PT_INTERP): a result or a
//! refusal, never a panic. `fuzz/run` builds it with debug assertions and
//! overflow checks, so an unchecked sum of two file offsets is a crash too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = dlfm_elf::patch_ldso(bytes);
    let _ = dlfm_elf::check_program(bytes);
    let _ = dlfm_elf::program_interp(bytes);
    let _ = dlfm_elf::arch_of(bytes);
    let _ = dlfm_elf::origin_search_paths(bytes);
    let _ = dlfm_elf::with_interp(bytes, "/tmp/dlfm-fuzz/ld.so");
    if bytes.len() < 4096 {
        let _ = dlfm_elf::patch_ldso_embedded(bytes, bytes);
    }
});
