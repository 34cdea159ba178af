//! The wrapper's and dlfm.pre's own files: a FIFO never blocks them, a
//! journal is never created by the wrapper (only appended to once
//! `dlfm.pre write-cache` made it), a child that changes directory before it
//! execs still finds the pilot's journal, a cache owned by another user or
//! writable by others is refused, and dlfm.pre refuses a directory as the
//! cache without leaving a half-written file.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use dlfm_tests::scenario::{assert_ok, output_within, rpath};
use dlfm_tests::Scenario;
use dlfm_workload::Spec;

/// Makes a FIFO at `path`.
fn mkfifo(path: &Path) {
    let out = Command::new("mkfifo").arg(path).output().expect("mkfifo");
    assert_ok(&out, "mkfifo");
}

/// Creates the trace files of this node so that the next run traces.
fn traces_on(s: &Scenario) {
    let _ = std::fs::remove_dir_all(s.run_dir.join("dlcache.dbg"));
    assert_ok(
        &s.pre(&["write-cache"], &[("DLCACHE_DBG", "1")]),
        "dlfm.pre write-cache with DLCACHE_DBG",
    );
}

/// Runs the scenario's program with `op`, `DLFM_CACHE=cache` and tracing,
/// bounded in time, checks its output and returns the trace.
fn run_traced_bounded(s: &Scenario, op: &str, cache: &Path) -> String {
    traces_on(s);
    let mut cmd = s.cmd(Some(op));
    cmd.env("DLFM_CACHE", cache).env("DLCACHE_DBG", "1");
    let out = output_within(cmd, Duration::from_secs(30));
    assert_ok(&out, op);
    assert_eq!(String::from_utf8_lossy(&out.stdout), s.w.expected_stdout);
    s.trace_text()
}

#[test]
fn a_fifo_as_cache_or_journal_never_blocks() {
    let s = Scenario::new(Spec::small());
    let fifo = s.root.join("fifo.dat");
    mkfifo(&fifo);
    let trace = run_traced_bounded(&s, "read-cache", &fifo);
    assert!(
        trace.contains("read-cache off: the cache is not a regular file"),
        "{trace}"
    );

    let journal_fifo = s.root.join("j.dat.journal");
    mkfifo(&journal_fifo);
    // The journal is opened read-write and non-blocking (its Setup record
    // is read back): a FIFO opens at once and is refused as not a file.
    let trace = run_traced_bounded(&s, "write-cache", &s.root.join("j.dat"));
    assert!(
        trace.contains("write-cache off: the journal is not a regular file"),
        "{trace}"
    );

    // dlfm.pre refuses them too, at once.
    let mut pre = Command::new(&s.art.dlfm_pre);
    pre.current_dir(&s.run_dir)
        .arg("--cache")
        .arg(s.root.join("j.dat"))
        .args(["read-cache", "4"]);
    let out = output_within(pre, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is a FIFO, not a regular file"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn the_wrapper_never_creates_a_journal() {
    let s = Scenario::new(Spec::small());
    let dir = s.root.join("a-directory");
    std::fs::create_dir(&dir).unwrap();
    let trace = run_traced_bounded(&s, "write-cache", &dir);
    assert!(
        trace.contains("write-cache off: cannot open the journal"),
        "{trace}"
    );
    assert!(!s.root.join("a-directory.journal").exists());

    let missing = s.root.join("never-prepared.dat");
    let trace = run_traced_bounded(&s, "write-cache", &missing);
    assert!(
        trace.contains("write-cache off: cannot open the journal"),
        "{trace}"
    );
    assert!(!s.root.join("never-prepared.dat.journal").exists());
}

/// A pilot child that changes directory and then execs records into the
/// pilot's journal (the relative DLFM_CACHE reaches it as an absolute path)
/// and leaves no stray journal where it went.
#[test]
fn a_child_that_changes_directory_finds_the_journal() {
    let s = Scenario::new(Spec::small());
    let lib = s.shared_lib("wanderer", "int wanderer_value(void) { return 33; }\n");
    let dir = lib.parent().unwrap().to_path_buf();
    let child = s.build_c(
        "wanderer",
        "#include <stdio.h>\n#include <stdlib.h>\nint wanderer_value(void);\n\
         int main(void) { printf(\"child %d %s\\n\", wanderer_value(), getenv(\"DLFM_CACHE\")[0] == '/' ? \"absolute\" : \"relative\"); return 0; }\n",
        &[&format!("-L{}", dir.display()), "-lwanderer", &rpath(&dir)],
    );
    let parent = s.build_c(
        "chdir-parent",
        "#include <stdio.h>\n#include <sys/wait.h>\n#include <unistd.h>\n\
         int main(int argc, char **argv) { pid_t p = fork();\n\
         if (p == 0) { if (chdir(\"sub\") != 0) _exit(126); execl(argv[1], argv[1], (char *)0); _exit(127); }\n\
         int st = 0; waitpid(p, &st, 0); return WIFEXITED(st) ? WEXITSTATUS(st) : 1; }\n",
        &[],
    );
    std::fs::create_dir(s.run_dir.join("sub")).unwrap();
    assert_ok(&s.pre(&["write-cache"], &[]), "write-cache");
    let mut cmd = s.cmd_for(&parent, Some("write-cache"));
    cmd.arg(&child).env("DLFM_CACHE", "dlcache.dat");
    let out = output_within(cmd, Duration::from_secs(30));
    assert_ok(&out, "the pilot");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "child 33 absolute\n");
    assert!(
        !s.run_dir.join("sub/dlcache.dat.journal").exists(),
        "a stray journal was created where the child went"
    );
    let out = s.pre(&["read-cache", "4"], &[]);
    assert_ok(&out, "read-cache");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("2 recording process(es)"), "{text}");
    assert!(text.contains("/wanderer"), "{text}");
}

#[test]
fn a_cache_owned_by_another_user_or_writable_by_others_is_refused() {
    let s = Scenario::new(Spec::small());
    s.pilot_and_pack();
    let foreign = s.root.join("foreign.dat");
    std::fs::copy(s.cache(), &foreign).unwrap();
    std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).unwrap();
    let trace = run_traced_bounded(&s, "read-cache", &foreign);
    assert!(
        trace.contains("read-cache off: the cache is not trusted (owned by another user)"),
        "{trace}"
    );
    assert!(!trace.contains("openat served"), "{trace}");

    let open = s.root.join("open.dat");
    std::fs::copy(s.cache(), &open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o666)).unwrap();
    let trace = run_traced_bounded(&s, "read-cache", &open);
    assert!(
        trace.contains("read-cache off: the cache is not trusted (writable by others)"),
        "{trace}"
    );

    // The user's own read-only cache is served.
    let trace = run_traced_bounded(&s, "read-cache", &s.cache());
    assert!(trace.contains("openat served"), "{trace}");
    // mmap lines name the (virtual) descriptor mapped, not the address hint.
    let vfd_maps = trace
        .lines()
        .filter_map(|l| l.split("mmap served fd ").nth(1))
        .filter_map(|rest| rest.split(' ').next()?.parse::<i64>().ok())
        .filter(|&fd| fd >= 0x7fff_ffc0)
        .count();
    assert!(vfd_maps > 0, "{trace}");
}

#[test]
fn dlfm_pre_refuses_a_directory_as_the_cache_and_leaves_nothing() {
    let s = Scenario::new(Spec::small());
    s.pilot_and_pack();
    let dir = s.root.join("cache-dir");
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(
        s.run_dir.join("dlcache.dat.journal"),
        s.root.join("cache-dir.journal"),
    )
    .unwrap();
    for op in [&["write-cache"][..], &["read-cache", "2"][..]] {
        let mut args = vec!["--cache", dir.to_str().unwrap()];
        args.extend_from_slice(op);
        let out = s.pre(&args, &[]);
        assert_eq!(out.status.code(), Some(2), "{op:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("is a directory, not a regular file"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(!s.root.join("cache-dir.tmp").exists());
    }
}
