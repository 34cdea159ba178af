//! Node-local staging: the first process of a node copies the cache into
//! node-local storage (here each scenario's own stage directory), the
//! others of the same job use that copy without touching the shared file
//! system, and anything that goes wrong leaves replay on the shared cache
//! with the program's output unchanged.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dlfm_cache::node_files::{ContentId, NodeFile, NodeName};
use dlfm_tests::scenario::{assert_ok, output_within};
use dlfm_tests::tmpfs::TmpFs;
use dlfm_tests::Scenario;
use dlfm_workload::Spec;

/// A child process killed (and reaped) when dropped, a failing test
/// included.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Empties the scenario's trace files (they stay, so processes find them).
fn clear_traces(s: &Scenario) {
    for e in std::fs::read_dir(s.run_dir.join("dlcache.dbg")).unwrap() {
        std::fs::write(e.unwrap().path(), b"").unwrap();
    }
}

/// A replay command of job `job` (Slurm job and step), traced.
fn replay(s: &Scenario, job: Option<(&str, &str)>) -> Command {
    let mut c = s.cmd(Some("read-cache"));
    c.env("DLCACHE_DBG", "1");
    if let Some((id, step)) = job {
        c.env("SLURM_JOB_ID", id).env("SLURM_STEP_ID", step);
    }
    c
}

/// Runs `cmd` (bounded) and checks the program's output.
fn run_right(s: &Scenario, cmd: Command) {
    let out = output_within(cmd, Duration::from_secs(60));
    assert_ok(&out, "replay");
    assert_eq!(String::from_utf8_lossy(&out.stdout), s.w.expected_stdout);
}

/// Runs a replay of job `job` with `env` added, checks its output, and that
/// the trace says staging was skipped for `reason` while the shared cache
/// served the libraries.
fn skipped(s: &Scenario, job: &str, env: &[(&str, &OsStr)], reason: &str) {
    clear_traces(s);
    let mut c = replay(s, Some((job, "0")));
    c.envs(env.iter().copied());
    run_right(s, c);
    let text = s.trace_text();
    assert!(
        text.contains(&format!("staging skipped: {reason}")),
        "{text}"
    );
    assert!(text.contains("openat served"), "{text}");
}

/// Names in the stage directory.
fn stage_names(s: &Scenario) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(s.stage_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Trace lines that mention the node-local copy or staging.
fn stage_lines(s: &Scenario) -> Vec<String> {
    s.trace_text()
        .lines()
        .filter(|l| l.contains("node-local copy") || l.contains("staging skipped"))
        .map(String::from)
        .collect()
}

/// Calls of `calls` that name the shared cache (by either of its names) or
/// use a descriptor of it.
fn on_shared_cache(s: &Scenario, calls: &[dlfm_tests::strace::Call]) -> Vec<String> {
    let abs = s.cache();
    let abs = abs.to_str().unwrap();
    calls
        .iter()
        .filter(|c| {
            [&c.path, &c.fd_path]
                .iter()
                .any(|p| matches!(p.as_deref(), Some("dlcache.dat")) || p.as_deref() == Some(abs))
        })
        .map(|c| c.raw.clone())
        .collect()
}

#[test]
fn concurrent_ranks_make_one_copy_and_the_job_then_leaves_the_shared_cache_alone() {
    let s = Scenario::new(Spec::small());
    s.pilot_and_pack();
    let job = Some(("101", "0"));
    let ranks: Vec<Child> = (0..8)
        .map(|_| {
            replay(&s, job)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for r in ranks {
        let out = r.wait_with_output().unwrap();
        assert_ok(&out, "rank");
        assert_eq!(String::from_utf8_lossy(&out.stdout), s.w.expected_stdout);
    }
    let [copy] = &s.staged_copies()[..] else {
        panic!("one copy expected: {:?}", stage_names(&s))
    };
    s.assert_copy_of(copy, &s.cache());
    let names = stage_names(&s);
    assert!(!names.iter().any(|n| n.ends_with(".part")), "{names:?}");
    // The job's pointer, and the current one of no job.
    assert_eq!(
        names.iter().filter(|n| n.ends_with(".job")).count(),
        2,
        "{names:?}"
    );
    assert_eq!(
        names
            .iter()
            .filter(|n| n.ends_with("-0000000000000000.job"))
            .count(),
        1,
        "{names:?}"
    );
    let lines = stage_lines(&s);
    assert_eq!(lines.len(), 8, "{lines:#?}");
    assert_eq!(
        lines.iter().filter(|l| l.contains("(staged here")).count(),
        1,
        "{lines:#?}"
    );

    // A later process of the same job: nothing on the shared cache, neither
    // from the ld.so wrapper nor from the interposer.
    let calls = s.traced(replay(&s, job), "same-job.strace");
    let shared = on_shared_cache(&s, &calls);
    assert!(shared.is_empty(), "{shared:#?}");
    assert!(
        calls.iter().any(|c| c.name == "mmap"
            && c.fd_path
                .as_deref()
                .is_some_and(|p| std::path::Path::new(p).starts_with(copy))),
        "libraries should be mapped from the copy"
    );
}

#[test]
fn a_new_job_checks_the_header_once_and_a_repacked_cache_replaces_the_copy() {
    let s = Scenario::new(Spec::small());
    s.pilot_and_pack();
    run_right(&s, replay(&s, Some(("201", "0"))));
    let [first] = &s.staged_copies()[..] else {
        panic!("{:?}", stage_names(&s))
    };
    let first = first.clone();
    let staged_at = std::fs::metadata(&first).unwrap().modified().unwrap();

    // Another job: the shared cache's header is read, nothing is copied.
    clear_traces(&s);
    let calls = s.traced(replay(&s, Some(("202", "0"))), "new-job.strace");
    assert!(
        !calls.iter().any(|c| c.name == "sendfile"),
        "the copy must be reused, not made again"
    );
    assert!(
        !on_shared_cache(&s, &calls).is_empty(),
        "the header must be checked"
    );
    assert_eq!(
        std::fs::metadata(&first).unwrap().modified().unwrap(),
        staged_at
    );
    let lines = stage_lines(&s);
    assert!(
        lines
            .iter()
            .all(|l| l.contains("(checked against the shared cache)")),
        "{lines:#?}"
    );

    // Repacked (another width: another content id): the next job stages
    // the new content and removes the old copy.
    std::fs::rename(s.cache(), s.root.join("old.dat")).unwrap();
    assert_ok(&s.pre(&["read-cache", "48"], &[]), "read-cache 48");
    run_right(&s, replay(&s, Some(("203", "0"))));
    let copies = s.staged_copies();
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert_ne!(copies[0], first);
    s.assert_copy_of(&copies[0], &s.cache());
}

#[test]
fn without_staging_or_without_room_replay_uses_the_shared_cache() {
    let s = Scenario::new(Spec::small());
    s.pilot_and_pack();
    for (var, value, reason) in [
        ("DLFM_STAGE", "off", "DLFM_STAGE=off"),
        (
            "DLFM_STAGE_DIR",
            "relative/dir",
            "DLFM_STAGE_DIR is not an absolute path",
        ),
    ] {
        skipped(&s, "301", &[(var, OsStr::new(value))], reason);
    }
    assert!(stage_names(&s).is_empty(), "{:?}", stage_names(&s));
    // A stage directory that does not exist: said per process and by
    // dlfm.pre, not silently off.
    let missing = s.root.join("no-such-dir");
    skipped(
        &s,
        "301",
        &[("DLFM_STAGE_DIR", missing.as_os_str())],
        "the stage directory (DLFM_STAGE_DIR) does not exist",
    );
    let out = s.pre(&["stage"], &[("DLFM_STAGE_DIR", missing.to_str().unwrap())]);
    assert_ok(&out, "dlfm.pre stage");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(&format!(
            "the stage directory {} does not exist",
            missing.display()
        )),
        "{said}"
    );

    // A stage directory too small for the cache: no copy, no half-written
    // file, the program served from the shared cache.
    let small = TmpFs::mount(&s.root.join("small"), "64k");
    skipped(
        &s,
        "302",
        &[("DLFM_STAGE_DIR", small.0.as_os_str())],
        "no room in the stage directory",
    );
    let left: Vec<_> = std::fs::read_dir(&small.0)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| !n.to_string_lossy().ends_with(".lock"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // A cache that is on tmpfs already is staged all the same: only the
    // copy's tree names each library by its own path in the mappings.
    let mem = TmpFs::mount(&s.root.join("mem"), "64m");
    let in_mem = mem.0.join("dlcache.dat");
    std::fs::copy(s.cache(), &in_mem).unwrap();
    clear_traces(&s);
    let mut c = replay(&s, Some(("303", "0")));
    c.env("DLFM_CACHE", &in_mem);
    run_right(&s, c);
    let said = s.trace_text();
    assert!(said.contains("read-cache: node-local copy "), "{said}");
    assert_eq!(s.staged_copies().len(), 1);
}

#[test]
fn a_held_lock_is_waited_for_only_as_long_as_asked_and_a_dead_stagers_part_is_redone() {
    let s = Scenario::new(Spec::small());
    s.pilot_and_pack();
    // The first run makes the lock file; the copy it made is removed so
    // that the next process must stage again.
    run_right(&s, replay(&s, None));
    let lock = stage_names(&s)
        .into_iter()
        .find(|n| n.ends_with(".lock"))
        .expect("a lock file");
    for copy in s.staged_copies() {
        std::fs::remove_dir_all(copy).unwrap();
    }
    // Another process holds the lock (a stager that hangs): one process
    // (the shell becomes `sleep`), so killing it frees the lock.
    let holder = Killed(
        Command::new("sh")
            .arg("-c")
            .arg(r#"exec 9>>"$1" && flock -x 9 && exec sleep 60"#)
            .arg("sh")
            .arg(s.stage_dir().join(&lock))
            .spawn()
            .expect("sh and flock(1) from util-linux"),
    );
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    skipped(
        &s,
        "401",
        &[("DLFM_STAGE_WAIT", OsStr::new("1"))],
        "another process was still staging when DLFM_STAGE_WAIT ran out",
    );
    let took = started.elapsed();
    drop(holder);
    assert!(took < Duration::from_secs(20), "waited {took:?}");
    assert!(s.staged_copies().is_empty());

    // A stager killed half way left a .part: the next one starts over
    // (writing over a half-written library and its stale neighbours).
    let id = ContentId::of_header(&std::fs::read(s.cache()).unwrap()).unwrap();
    let part = s.stage_dir().join(OsStr::from_bytes(
        NodeName::new(0, NodeFile::TreePart(id)).as_bytes(),
    ));
    let half = Scenario::in_copy(&part, &s.w.libs[0]);
    std::fs::create_dir_all(half.parent().unwrap()).unwrap();
    std::fs::write(&half, b"half a library").unwrap();
    std::fs::write(part.join("cache"), b"half a cache").unwrap();
    run_right(&s, replay(&s, Some(("402", "0"))));
    assert!(!part.exists());
    let [copy] = &s.staged_copies()[..] else {
        panic!("{:?}", stage_names(&s))
    };
    s.assert_copy_of(copy, &s.cache());
}

#[test]
fn a_copy_of_an_untrusted_cache_is_never_made_and_dlfm_pre_clean_removes_copies() {
    let s = Scenario::new(Spec::small());
    s.pilot_and_pack();
    let foreign = s.root.join("foreign.dat");
    std::fs::copy(s.cache(), &foreign).unwrap();
    std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).unwrap();
    let mut c = replay(&s, Some(("501", "0")));
    c.env("DLFM_CACHE", &foreign);
    clear_traces(&s);
    run_right(&s, c);
    let text = s.trace_text();
    assert!(
        text.contains("staging skipped: the shared cache is not trusted"),
        "{text}"
    );
    assert!(s.staged_copies().is_empty());

    run_right(&s, replay(&s, Some(("502", "0"))));
    assert_eq!(s.staged_copies().len(), 1);
    let out = s.pre(
        &["clean"],
        &[("DLFM_STAGE_DIR", s.stage_dir().to_str().unwrap())],
    );
    assert_ok(&out, "dlfm.pre clean");
    assert!(stage_names(&s).is_empty(), "{:?}", stage_names(&s));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("removed"), "{said}");
}

#[test]
fn dlfm_pre_prints_json_summaries_and_says_what_it_did_not_broadcast() {
    let s = Scenario::new(Spec::small());
    assert_ok(&s.pre(&["write-cache"], &[]), "write-cache");
    s.run_ok(s.cmd(Some("write-cache")));
    let json = |args: &[&str]| -> (Option<i32>, serde_json::Value) {
        let out = s.pre(args, &[("DLFM_STAGE_DIR", s.stage_dir().to_str().unwrap())]);
        let text = String::from_utf8_lossy(&out.stdout);
        let v = serde_json::from_str(text.trim())
            .unwrap_or_else(|e| panic!("{args:?} printed no JSON object ({e}): {text}"));
        (out.status.code(), v)
    };
    let (code, v) = json(&["--json", "read-cache", "24"]);
    assert_eq!(code, Some(0), "{v}");
    assert!(
        v["files"].as_u64().unwrap() >= s.w.all_libs().count() as u64,
        "{v}"
    );
    assert_eq!(v["width"], 24);
    assert_eq!(v["staging"]["outcome"], "skipped", "{v}");
    assert!(
        v["staging"]["reason"]
            .as_str()
            .unwrap()
            .contains("not inside a Slurm allocation"),
        "{v}"
    );
    let (code, v) = json(&["--json", "check"]);
    assert_eq!(code, Some(0), "{v}");
    assert!(v["files"].as_u64().unwrap() > 0, "{v}");
    assert!(v["bytes"].as_u64().unwrap() > 0, "{v}");
    let (code, v) = json(&["--json", "--cache", "/nonexistent/x.dat", "check"]);
    assert_eq!(code, Some(2), "{v}");
    assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");

    // Human summary: the same skip, said in a line; `stage` alone too.
    let out = s.pre(&["stage"], &[]);
    assert_ok(&out, "dlfm.pre stage");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("broadcast skipped: not inside a Slurm allocation"),
        "{text}"
    );
    let (code, v) = json(&["--json", "clean"]);
    assert_eq!((code, v["removed"].as_u64()), (Some(0), Some(0)), "{v}");
}

/// Two jobs on one node with the same cache: the first job's epilog
/// (`dlfm.pre clean` with its `SLURM_JOB_ID`) removes its own pointer and
/// keeps the copy the second job's pointer names, so a later process of the
/// second job still makes no call on the shared cache; the second job's
/// epilog then frees the copy, and `--all` the rest.
#[test]
fn an_epilog_cleans_its_own_job_and_leaves_another_jobs_copy_alone() {
    let s = Scenario::new(Spec::small());
    s.pilot_and_pack();
    run_right(&s, replay(&s, Some(("601", "0"))));
    run_right(&s, replay(&s, Some(("602", "0"))));
    let [copy] = &s.staged_copies()[..] else {
        panic!("one copy for both jobs: {:?}", stage_names(&s))
    };
    let pointers = |s: &Scenario| {
        stage_names(s)
            .into_iter()
            .filter(|n| n.ends_with(".job"))
            .count()
    };
    // One per job, and the current one of no job.
    assert_eq!(pointers(&s), 3, "{:?}", stage_names(&s));
    let stage = s.stage_dir();
    let epilog = |job: &str, extra: &[&str]| {
        let mut args = vec!["--json", "clean"];
        args.extend_from_slice(extra);
        let out = s.pre(
            &args,
            &[
                ("DLFM_STAGE_DIR", stage.to_str().unwrap()),
                ("SLURM_JOB_ID", job),
            ],
        );
        assert_ok(&out, "dlfm.pre clean");
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };

    let first = epilog("601", &[]);
    assert_eq!(first["scope"], "job SLURM_JOB_ID=601", "{first}");
    assert_eq!(
        (first["removed"].as_u64(), first["kept"].as_u64()),
        (Some(1), Some(1)),
        "{first}"
    );
    assert!(copy.exists(), "the second job's copy stays");
    assert_eq!(pointers(&s), 2);
    let calls = s.traced(replay(&s, Some(("602", "0"))), "second-job.strace");
    let shared = on_shared_cache(&s, &calls);
    assert!(
        shared.is_empty(),
        "after the first job's epilog: {shared:#?}"
    );
    assert!(
        calls.iter().any(|c| c.name == "mmap"
            && c.fd_path
                .as_deref()
                .is_some_and(|p| std::path::Path::new(p).starts_with(copy))),
        "the second job maps its node copy"
    );

    let second = epilog("602", &[]);
    assert_eq!(
        second["removed"].as_u64(),
        Some(3),
        "its pointer, the copy and the current pointer: {second}"
    );
    assert!(
        s.staged_copies().is_empty() && pointers(&s) == 0,
        "{:?}",
        stage_names(&s)
    );
    let all = epilog("602", &["--all"]);
    assert_eq!(all["scope"], "all", "{all}");
    assert!(stage_names(&s).is_empty(), "{:?}", stage_names(&s));
}
