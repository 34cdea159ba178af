//! `dlfm.pre check`: a cache whose stored bytes were damaged, or whose
//! libraries changed on disk after packing, is refused with the files named;
//! a good one passes.

use std::os::unix::fs::PermissionsExt;

use dlfm_cache::read::Cache;
use dlfm_tests::Scenario;
use dlfm_workload::Spec;

/// Runs `dlfm.pre check` on `cache` and returns (exit code, stdout + stderr).
fn check(s: &Scenario, cache: &std::path::Path) -> (Option<i32>, String) {
    let out = s.pre(&["--cache", cache.to_str().unwrap(), "check"], &[]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[test]
fn check_names_damaged_and_changed_files() {
    let s = Scenario::new(Spec::small());
    s.pilot_and_pack();
    let (code, text) = check(&s, &s.cache());
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("is good"), "{text}");

    // Damage: flip the ELF class byte of one stored library in a copy.
    let mut bytes = std::fs::read(s.cache()).unwrap();
    let victim = s.w.libs[3].to_str().unwrap().to_string();
    let at = {
        let cache = Cache::parse(&bytes, bytes.len() as u64).unwrap();
        (0..cache.files())
            .filter_map(|i| cache.file(i))
            .find(|f| f.path == victim.as_bytes())
            .expect("the library is stored")
            .data_off as usize
    };
    bytes[at + 4] ^= 3;
    let damaged = s.run_dir.join("damaged.dat");
    std::fs::write(&damaged, &bytes).unwrap();
    let (code, text) = check(&s, &damaged);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains(&format!("{victim} is damaged in the cache")),
        "{text}"
    );
    assert_eq!(text.lines().count(), 1, "{text}");

    // A library rebuilt after packing.
    let rebuilt = &s.w.libs[5];
    let mut lib = std::fs::read(rebuilt).unwrap();
    lib.extend_from_slice(&[0; 16]);
    std::fs::write(rebuilt, &lib).unwrap();
    std::fs::set_permissions(rebuilt, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (code, text) = check(&s, &s.cache());
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains(&format!("{} changed since the pilot", rebuilt.display())),
        "{text}"
    );
    let (code, text) = check(&s, &s.run_dir.join("missing.dat"));
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("cannot open the cache"), "{text}");
}
