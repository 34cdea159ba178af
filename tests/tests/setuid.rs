//! A setuid program, linked with the wrapper or loaded through an embedded
//! loader, ignores DLFM_* and DLCACHE_DBG exactly as ld.so ignores
//! LD_LIBRARY_PATH: an ordinary user must not make it read a cache, write a
//! journal or append to a trace file with its owner's privileges. Each check
//! runs a real setuid-root copy as the unprivileged user `nobody`.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use dlfm_tests::scenario::assert_ok;
use dlfm_tests::strace;
use dlfm_tests::Scenario;
use dlfm_workload::Spec;

/// The unprivileged user every check runs as.
const NOBODY: u32 = 65534;

/// LD_LIBRARY_PATH is ignored for a setuid program, so every library lives
/// on the RUNPATH.
fn spec() -> Spec {
    Spec {
        env_dirs: 0,
        ..Spec::small()
    }
}

/// Lets `nobody` reach the scenario (the temporary root is 0700), makes the
/// program setuid root, and packs a cache as root (the owner's own, valid
/// cache: what the user then points the program at).
fn prepare(s: &Scenario) {
    std::fs::set_permissions(&s.root, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&s.run_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    s.pilot_and_pack();
    std::fs::set_permissions(&s.w.program, std::fs::Permissions::from_mode(0o4755)).unwrap();
}

/// The program's command line without LD_LIBRARY_PATH: in a secure process
/// ld.so removes such variables from the environment, and the wrapper must
/// be tested where it sees the environment exactly as the user set it.
fn cmd(s: &Scenario, op: &str) -> Command {
    let mut c = s.cmd(Some(op));
    c.env_remove("LD_LIBRARY_PATH");
    c
}

/// The program run as `nobody` (so it runs as root through its setuid bit).
fn as_nobody(s: &Scenario, op: &str) -> Command {
    let mut c = cmd(s, op);
    c.uid(NOBODY).gid(NOBODY);
    c
}

/// Runs `cmd` under `strace -u nobody` (root traces it, so the kernel still
/// honours the setuid bit) and returns every path the process opened.
fn opened_as_nobody(s: &Scenario, cmd: &Command, name: &str) -> Vec<String> {
    let log = s.root.join(name);
    let out = strace::run_traced_as(cmd, &log, Some("nobody"));
    assert_ok(&out, "the program under strace -u nobody");
    assert_eq!(String::from_utf8_lossy(&out.stdout), s.w.expected_stdout);
    strace::parse(&log)
        .into_iter()
        .filter(|c| c.name == "openat")
        .filter_map(|c| c.path)
        .collect()
}

/// The checks, for a program that is setuid root once `prepare` ran.
fn setuid_ignores_dlfm(s: &Scenario) {
    prepare(s);
    let lib = s.w.libs[0].to_str().unwrap().to_string();

    // Control: without the setuid bit the same user's run does replay (the
    // cache is readable by everyone), so the checks below can tell.
    std::fs::set_permissions(&s.w.program, std::fs::Permissions::from_mode(0o755)).unwrap();
    let plain = opened_as_nobody(s, &cmd(s, "read-cache"), "plain.strace");
    assert!(
        plain.iter().any(|p| p.ends_with("dlcache.dat")),
        "{plain:?}"
    );
    assert!(!plain.contains(&lib), "{plain:?}");
    std::fs::set_permissions(&s.w.program, std::fs::Permissions::from_mode(0o4755)).unwrap();

    // read-cache: the setuid run never opens the cache; ld.so opens the
    // libraries itself.
    let secure = opened_as_nobody(s, &cmd(s, "read-cache"), "setuid.strace");
    assert!(
        !secure.iter().any(|p| p.contains("dlcache")),
        "a setuid program opened a dlfm file: {secure:?}"
    );
    assert!(secure.contains(&lib), "{secure:?}");

    // write-cache: a journal only root may write keeps only what dlfm.pre
    // wrote.
    assert_ok(&s.pre(&["write-cache"], &[]), "dlfm.pre write-cache");
    let journal = s.run_dir.join("dlcache.dat.journal");
    std::fs::set_permissions(&journal, std::fs::Permissions::from_mode(0o644)).unwrap();
    let setup = std::fs::metadata(&journal).unwrap().len();
    s.run_ok(as_nobody(s, "write-cache"));
    assert_eq!(
        std::fs::metadata(&journal).unwrap().len(),
        setup,
        "a setuid program wrote the journal for an unprivileged user"
    );

    // DLCACHE_DBG: a trace file that is a symlink to a root-owned file must
    // not be followed and appended to.
    let victim = s.root.join("root-owned");
    std::fs::write(&victim, "untouched\n").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
    link_every_trace_file_to(s, &victim);
    let mut cmd = as_nobody(s, "read-cache");
    cmd.env("DLCACHE_DBG", "1");
    s.run_ok(cmd);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched\n");
}

/// Replaces each trace file `dlfm.pre` made with a symlink to `target`.
fn link_every_trace_file_to(s: &Scenario, target: &Path) {
    let dir = s.run_dir.join("dlcache.dbg");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        std::fs::remove_file(e.path()).unwrap();
        symlink(target, e.path()).unwrap();
        n += 1;
    }
    assert!(n > 0, "dlfm.pre made no trace files in {}", dir.display());
}

#[test]
fn a_setuid_linked_program_ignores_dlfm() {
    setuid_ignores_dlfm(&Scenario::new(spec()));
}

#[test]
fn a_setuid_program_through_the_embedded_loader_ignores_dlfm() {
    let s = Scenario::embedded(spec());
    setuid_ignores_dlfm(&s);
}
