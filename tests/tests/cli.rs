//! The command lines' refusals: one line saying what and why, exit status 2,
//! and nothing written.

use std::process::Command;

use dlfm_tests::artifacts;

fn refused(cmd: &mut Command, needle: &str) {
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{cmd:?} should exit 2");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains(needle), "{cmd:?}: `{needle}` not in: {err}");
}

#[test]
fn dlpatch_refuses_with_one_line() {
    let art = artifacts();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ld.so");
    let dlpatch = || {
        let mut c = Command::new(&art.dlpatch);
        c.arg("-o").arg(&out);
        c
    };
    refused(
        dlpatch().arg("/bin/true"),
        "not linked with the dlfm wrapper",
    );
    refused(
        dlpatch().arg(dir.path().join("nope")),
        "cannot read the program",
    );
    let prog = dir.path().join("prog");
    let src = dir.path().join("p.c");
    std::fs::write(&src, "int main(void) { return 0; }\n").unwrap();
    let cc = Command::new("cc")
        .arg("-o")
        .arg(&prog)
        .arg(&src)
        .arg(&art.wrapper)
        .output()
        .unwrap();
    assert!(cc.status.success());
    refused(
        dlpatch().arg(&prog).args(["--ldso", "/bin/true"]),
        "ld.so build not recognised",
    );
    refused(
        dlpatch().arg(&prog).args(["--ldso", "/etc/hostname"]),
        "not an ELF file",
    );
    assert!(!out.exists(), "nothing may be written on a refusal");
    // The same program is accepted, and --dry-run writes nothing either.
    let dry = dlpatch().arg(&prog).arg("--dry-run").output().unwrap();
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    assert!(String::from_utf8_lossy(&dry.stdout).contains("openat"));
    assert!(!out.exists());
}

#[test]
fn dlfm_pre_refuses_with_one_line() {
    let art = artifacts();
    let dir = tempfile::tempdir().unwrap();
    let pre = || {
        let mut c = Command::new(&art.dlfm_pre);
        c.current_dir(dir.path())
            .env_remove("DLFM_CACHE")
            .env_remove("DLCACHE_DBG");
        c
    };
    refused(pre().args(["read-cache", "24"]), "cannot read the journal");
    std::fs::write(dir.path().join("dlcache.dat.journal"), b"").unwrap();
    refused(pre().args(["read-cache", "24"]), "holds no recording");
    std::fs::write(dir.path().join("dlcache.dat.journal"), vec![7u8; 1000]).unwrap();
    refused(pre().args(["read-cache", "24"]), "holds no recording");
    let bad_width = pre().args(["read-cache", "0"]).output().unwrap();
    assert_eq!(bad_width.status.code(), Some(2));
    assert!(!dir.path().join("dlcache.dat").exists());
}
