//! Record and replay on a generated program: 20 libraries over 4 RUNPATH and
//! 2 LD_LIBRARY_PATH directories, a dependency chain, a library loaded with
//! dlopen after main starts, and libc. The same output in every mode, and
//! strace shows what reaches the file system.

use std::collections::BTreeSet;

use dlfm_runtime::summary;
use dlfm_tests::strace::{looked_up, Call, LOOKUPS};
use dlfm_tests::Scenario;
use dlfm_workload::Spec;

/// Calls that use an open file.
const ON_FD: [&str; 6] = ["read", "pread64", "mmap", "newfstatat", "fstat", "lseek"];

/// What in `replay` reached the file system for a path in `recorded`.
/// `cache` lists the names the cache is opened by (the staging step opens
/// it by its absolute path to read its header).
fn touches(replay: &[Call], recorded: &BTreeSet<String>, cache: &[&str]) -> Vec<String> {
    let mut bad = Vec::new();
    for c in replay {
        if LOOKUPS.contains(&c.name.as_str())
            && c.path.as_ref().is_some_and(|p| recorded.contains(p))
        {
            bad.push(format!("lookup of a recorded path: {}", c.raw));
        }
        if ON_FD.contains(&c.name.as_str())
            && c.fd_path.as_ref().is_some_and(|p| recorded.contains(p))
        {
            bad.push(format!("call on a recorded file's descriptor: {}", c.raw));
        }
        if c.errno.as_deref() == Some("ENOENT") {
            bad.push(format!("ENOENT probe: {}", c.raw));
        }
        // The FMCaching interposer reads /proc/self/maps once (the kernel's
        // list of this process's mappings, not a file system) to find the
        // ld.so wrapper's mapping of the index.
        if c.name == "openat"
            && !c.path.as_deref().is_some_and(|p| cache.contains(&p))
            && !c
                .path
                .as_deref()
                .is_some_and(|p| p.starts_with("dlcache.dbg/") || p == "/proc/self/maps")
        {
            bad.push(format!("a file other than the cache was opened: {}", c.raw));
        }
    }
    bad
}

fn replay_reaches_only_the_cache(spec: Spec) {
    let s = Scenario::new(spec);
    let base = s.traced(s.cmd(None), "base.strace");
    let recorded = looked_up(&base);
    let probes = base
        .iter()
        .filter(|c| c.errno.as_deref() == Some("ENOENT"))
        .count();
    assert!(
        probes > 50,
        "the workload should make an ENOENT storm, saw {probes}"
    );
    for lib in s.w.all_libs() {
        assert!(
            recorded.contains(lib.to_str().unwrap()),
            "{} was not looked up without dlfm",
            lib.display()
        );
    }

    s.pilot_and_pack();
    let mut cmd = s.cmd(Some("read-cache"));
    cmd.env("DLCACHE_DBG", "1");
    let replay = s.traced(cmd, "replay.strace");
    // The process stages the cache on node-local storage and replays from
    // that copy: what matters is what reaches the (shared) file system.
    let [copy] = &s.staged_copies()[..] else {
        panic!("one node-local copy expected: {:?}", s.staged_copies())
    };
    let shared = s.shared(&replay);
    let cache = s.cache();
    let bad = touches(
        &shared,
        &recorded,
        &["dlcache.dat", cache.to_str().unwrap()],
    );
    assert!(
        bad.is_empty(),
        "the read-cache run reached the file system:\n{}",
        bad.join("\n")
    );
    let from_cache = replay
        .iter()
        .filter(|c| {
            c.name == "mmap"
                && c.fd_path
                    .as_deref()
                    .is_some_and(|p| std::path::Path::new(p).starts_with(copy.join("root")))
        })
        .count();
    assert!(
        from_cache > 2 * s.w.all_libs().count(),
        "library segments should be mapped from the node-local copy ({from_cache} mappings)"
    );
    // The library loaded with dlopen after main started was served too.
    let traces = s.trace_text();
    for lib in &s.w.dlopen_libs {
        let line = format!("openat served {}", lib.display());
        assert!(
            traces.contains(&line),
            "no `{line}` in the trace:\n{traces}"
        );
    }
}

#[test]
fn pie_replay_reaches_only_the_cache() {
    replay_reaches_only_the_cache(Spec::small());
}

#[test]
fn non_pie_replay_reaches_only_the_cache() {
    replay_reaches_only_the_cache(Spec {
        pie: false,
        seed: 3,
        ..Spec::small()
    });
}

/// Without DLFM_OP, or with an unknown value, ld.so makes exactly the calls
/// it makes without dlfm: compared with the same program linked without the
/// wrapper and loaded by the system ld.so.
#[test]
fn without_dlfm_op_ld_so_makes_the_same_calls() {
    let s = Scenario::new(Spec::small());
    let plain_dir = s.root.join("plain");
    let plain =
        dlfm_workload::generate(&Spec::small(), &dlfm_workload::Link::default(), &plain_dir)
            .unwrap();
    let shape = |calls: &[Call], root: &str| -> Vec<String> {
        calls
            .iter()
            .map(|c| {
                let path = match LOOKUPS.contains(&c.name.as_str()) {
                    true => c.path.as_deref().unwrap_or("").replace(root, "<w>"),
                    false => String::new(),
                };
                format!("{} {} {:?}", c.name, path, c.errno)
            })
            .collect()
    };
    let mut plain_cmd = s.cmd_for(&plain.program, None);
    plain_cmd.env("LD_LIBRARY_PATH", &plain.ld_library_path);
    let log = s.root.join("plain.strace");
    let out = dlfm_tests::strace::run_traced(&plain_cmd, &log);
    assert!(out.status.success());
    let expected = shape(
        &dlfm_tests::strace::parse(&log),
        plain_dir.to_str().unwrap(),
    );
    let w = s.w.dir.to_str().unwrap().to_string();
    for op in [None, Some("no-such-op")] {
        let calls = s.traced(s.cmd(op), "unset.strace");
        assert_eq!(shape(&calls, &w), expected, "DLFM_OP={op:?}");
    }
}

/// A lookup the cache does not hold goes to the file system and the program
/// still works: here an extra, empty LD_LIBRARY_PATH directory at the front.
#[test]
fn lookups_not_in_the_cache_pass_through() {
    let s = Scenario::new(Spec::small());
    s.pilot_and_pack();
    let extra = s.root.join("extra");
    std::fs::create_dir_all(&extra).unwrap();
    let mut cmd = s.cmd(Some("read-cache"));
    cmd.env(
        "LD_LIBRARY_PATH",
        format!("{}:{}", extra.display(), s.w.ld_library_path),
    );
    cmd.env("DLCACHE_DBG", "1");
    let calls = s.traced(cmd, "miss.strace");
    let extra = extra.to_str().unwrap();
    assert!(
        calls
            .iter()
            .any(|c| c.path.as_deref().is_some_and(|p| p.starts_with(extra))
                && c.errno.as_deref() == Some("ENOENT")),
        "probes of the new directory must reach the file system"
    );
    let traces = s.trace_text();
    assert!(
        traces.contains(&format!("openat missed {extra}/")),
        "{traces}"
    );
    let summary = traces
        .lines()
        .filter_map(|l| summary::parse(l.as_bytes()))
        .find(|s| s.mode == b"read-cache")
        .expect("a summary line");
    assert!(summary.missed > 0, "{summary:?}");
}

/// DLCACHE_DBG: dlfm.pre makes one trace file per core; a run writes one line
/// per call and a summary with the counts.
#[test]
fn debug_trace_files_get_lines_and_a_summary() {
    let s = Scenario::new(Spec::small());
    s.pilot_and_pack();
    let dir = s.run_dir.join("dlcache.dbg");
    let files = std::fs::read_dir(&dir).unwrap().count();
    let cores = std::thread::available_parallelism().unwrap().get().min(52);
    assert_eq!(files, cores, "one trace file per core");
    let mut cmd = s.cmd(Some("read-cache"));
    cmd.env("DLCACHE_DBG", "1");
    s.run_ok(cmd);
    let text = s.trace_text();
    let served = text
        .lines()
        .filter(|l| l.contains(" served ") && summary::parse(l.as_bytes()).is_none())
        .count();
    assert!(served > 100, "expected a line per served call:\n{text}");
    let summary = text
        .lines()
        .filter_map(|l| summary::parse(l.as_bytes()))
        .find(|s| s.mode == b"read-cache")
        .expect("a summary line");
    assert_eq!(
        (summary.handled, summary.missed),
        (served as u64, 0),
        "the summary against {served} served lines"
    );
}
