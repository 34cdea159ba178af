//! `dlfm run`: one word in front of a command records, packs, replays,
//! learns and records again by itself, and never makes the command fail.
//! Each test has a store of its own (`DLFM_CACHE_DIR`) and a stage
//! directory of its own (`DLFM_STAGE_DIR`).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dlfm_tests::scenario::{assert_ok, python, ISOLATE};
use dlfm_tests::strace::{self, Call};
use dlfm_tests::tmpfs::TmpFs;
use dlfm_tests::{artifacts, mpi_hello, Scenario};
use dlfm_workload::{generate_package_tree, Spec};

/// The PATH of every command here: the system's programs (a developer's
/// PATH may put a pyenv shim, a shell script, before python3).
const PATH: &str = "/usr/bin:/bin:/usr/sbin:/sbin";

/// A store, a stage directory and a working directory.
struct World {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    store: PathBuf,
    stage: PathBuf,
    run_dir: PathBuf,
}

impl World {
    fn new() -> World {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let (store, stage, run_dir) = (root.join("store"), root.join("stage"), root.join("run"));
        for d in [&stage, &run_dir] {
            std::fs::create_dir_all(d).unwrap();
        }
        World {
            _tmp: tmp,
            root,
            store,
            stage,
            run_dir,
        }
    }

    /// `dlfm ARGS`, isolated from the machine's dlfm variables, with this
    /// world's store and stage directory.
    fn dlfm<S: AsRef<OsStr>>(&self, args: &[S]) -> Command {
        self.dlfm_at(&artifacts().dlfm, args)
    }

    /// Like [`World::dlfm`], with the `dlfm` binary at `exe`.
    fn dlfm_at<S: AsRef<OsStr>>(&self, exe: &Path, args: &[S]) -> Command {
        let mut c = Command::new(exe);
        c.args(args).current_dir(&self.run_dir);
        for v in ISOLATE {
            c.env_remove(v);
        }
        c.env("PATH", PATH)
            .env("DLFM_CACHE_DIR", &self.store)
            .env("DLFM_STAGE_DIR", &self.stage)
            .env_remove("DLFM_CONFIG")
            // Containers often forbid the cross-memory-attach syscalls.
            .env("OMPI_MCA_btl_vader_single_copy_mechanism", "none");
        c
    }

    /// The store's entries (key directories).
    fn entries(&self) -> Vec<PathBuf> {
        let Ok(d) = std::fs::read_dir(&self.store) else {
            return vec![];
        };
        let mut v: Vec<PathBuf> = d
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.join("entry.json").exists() || p.join("lock").exists())
            .collect();
        v.sort();
        v
    }

    /// The only entry's `uses` (one byte per run: r, p or -).
    fn uses(&self) -> String {
        let e = self.entries();
        assert_eq!(e.len(), 1, "one entry: {e:?}");
        std::fs::read_to_string(e[0].join("uses")).unwrap_or_default()
    }
}

/// The generation directory an entry's `entry.json` names as current.
fn current_generation(entry: &Path) -> String {
    let info = std::fs::read_to_string(entry.join("entry.json")).unwrap();
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    info["current"]
        .as_str()
        .expect("a current generation")
        .to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs `cmd` under strace -f: its output, and the calls of the processes
/// that ran through a loader of the store (the program's processes).
fn traced(w: &World, cmd: &Command, log: &str) -> (Output, BTreeMap<u32, Vec<Call>>) {
    let path = w.root.join(log);
    let out = strace::run_traced(cmd, &path);
    let store = w.store.to_str().unwrap();
    let per = strace::per_process(strace::parse(&path), |p| p.starts_with(store));
    (out, per)
}

/// The calls in `calls` on anything under `dir` (by path or descriptor).
fn under<'a>(calls: &'a [Call], dir: &Path) -> Vec<&'a str> {
    let dir = dir.to_str().unwrap();
    calls
        .iter()
        .filter(|c| c.is_under(dir))
        .map(|c| c.raw.as_str())
        .collect()
}

#[test]
fn a_python_program_records_replays_and_records_again_after_an_edit() {
    let w = World::new();
    let tree = generate_package_tree(&python(), &w.root.join("py"), 3, 2, 5, 7).unwrap();
    let run = |log: Option<&str>| {
        let mut cmd = w.dlfm(&[
            OsStr::new("run"),
            OsStr::new("python3"),
            tree.script.as_os_str(),
        ]);
        match log {
            Some(l) => traced(&w, &cmd, l),
            None => (cmd.output().unwrap(), BTreeMap::new()),
        }
    };

    // Run 1 records: the same output as without dlfm.
    let (first, _) = run(None);
    assert_ok(&first, "dlfm run, first");
    assert_eq!(stdout(&first), tree.expected_stdout);
    assert!(
        stderr(&first).contains("first run of this program and environment: recording"),
        "{}",
        stderr(&first)
    );
    assert!(
        stderr(&first).contains("the next run replays"),
        "{}",
        stderr(&first)
    );

    // Run 2 replays: the program's process makes no call on the tree.
    let (second, programs) = run(Some("second.strace"));
    assert_ok(&second, "dlfm run, second");
    assert_eq!(stdout(&second), tree.expected_stdout);
    assert!(stderr(&second).contains("replaying"), "{}", stderr(&second));
    assert_eq!(programs.len(), 1, "one python process");
    for calls in programs.values() {
        let left = under(calls, &tree.root);
        assert!(
            left.is_empty(),
            "replay reached the tree:\n{}",
            left.join("\n")
        );
    }

    // A module edited: run 3 shows the edit and records again, saying which
    // file changed; run 4 replays the new version.
    let edited = tree
        .sources
        .iter()
        .find(|p| p.file_name() != Some(OsStr::new("__init__.py")))
        .unwrap();
    let mut text = std::fs::read_to_string(edited).unwrap();
    text.push_str("\nprint('edited module')\n");
    std::fs::write(edited, text).unwrap();
    let (third, _) = run(None);
    assert_ok(&third, "dlfm run, third");
    assert!(
        stdout(&third).contains("edited module"),
        "{}",
        stdout(&third)
    );
    let said = stderr(&third);
    assert!(
        said.contains(edited.to_str().unwrap()) && said.contains("recording again"),
        "{said}"
    );
    let (fourth, programs) = run(Some("fourth.strace"));
    assert_ok(&fourth, "dlfm run, fourth");
    assert_eq!(stdout(&fourth), stdout(&third));
    assert!(stderr(&fourth).contains("replaying"), "{}", stderr(&fourth));
    for calls in programs.values() {
        let left = under(calls, &tree.root);
        assert!(
            left.is_empty(),
            "replay reached the tree:\n{}",
            left.join("\n")
        );
    }
    assert_eq!(w.uses(), "rprp");
}

#[test]
fn a_launcher_line_records_once_then_every_rank_replays() {
    let s = Scenario::embedded(Spec::small());
    let hello = mpi_hello::build(&s);
    let w = World::new();
    let expected = mpi_hello::expected_lines(4);
    let line = |log: &str| {
        let cmd = w.dlfm(&[
            OsStr::new("run"),
            OsStr::new("mpirun"),
            OsStr::new("--allow-run-as-root"),
            OsStr::new("--oversubscribe"),
            OsStr::new("-np"),
            OsStr::new("4"),
            hello.as_os_str(),
        ]);
        let (out, ranks) = traced(&w, &cmd, log);
        assert_ok(&out, log);
        assert_eq!(mpi_hello::sorted_lines(&out.stdout), expected, "{log}");
        (stderr(&out), ranks)
    };
    let (said, ranks) = line("first.strace");
    assert!(said.contains("recording"), "{said}");
    assert_eq!(ranks.len(), 4, "every rank runs through the loader copy");
    let components = ranks
        .values()
        .flatten()
        .filter_map(|c| c.path.as_deref())
        .find(|p| p.contains("/mca_") && p.ends_with(".so"))
        .and_then(|p| Path::new(p).parent())
        .expect("MPI_Init looks at its components")
        .to_path_buf();
    for (pid, calls) in &ranks {
        let n = under(calls, &components).len();
        assert!(
            n > 100,
            "rank {pid} while recording: {n} calls on {components:?}"
        );
    }
    let (said, ranks) = line("second.strace");
    assert!(said.contains("replaying"), "{said}");
    assert_eq!(ranks.len(), 4);
    for (pid, calls) in &ranks {
        let left = under(calls, &components);
        assert!(
            left.is_empty(),
            "rank {pid} reached {components:?}:\n{}",
            left.join("\n")
        );
    }
}

/// A program that prints `out` and exits with status 3.
const EXITS_3: &str = "import json; print('out'); raise SystemExit(3)";

#[test]
fn concurrent_first_runs_record_once_and_the_next_run_replays() {
    let w = World::new();
    let script = w.root.join("slow.py");
    std::fs::write(&script, "import json, time\ntime.sleep(1)\nprint('done')\n").unwrap();
    let children: Vec<_> = (0..8)
        .map(|_| {
            w.dlfm(&[OsStr::new("run"), OsStr::new("python3"), script.as_os_str()])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<Output> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let mut recorded = 0;
    for o in &outs {
        assert_ok(o, "a concurrent first run");
        assert_eq!(stdout(o), "done\n");
        let said = stderr(o);
        if said.contains("recording (") {
            recorded += 1;
        } else {
            assert!(
                said.contains("is recording this program") || said.contains("replaying"),
                "{said}"
            );
        }
    }
    assert_eq!(recorded, 1, "exactly one run records");
    assert_eq!(w.uses().matches('r').count(), 1);
    let next = w
        .dlfm(&[OsStr::new("run"), OsStr::new("python3"), script.as_os_str()])
        .output()
        .unwrap();
    assert_ok(&next, "the run after");
    assert!(stderr(&next).contains("replaying"), "{}", stderr(&next));
}

/// `dlfm run python3 -c EXITS_3` in `w`: it printed `out`, ended with
/// status 3, and said `why` on stderr.
fn runs_plain_with_status(w: &World, extra: &[(&str, &str)], why: &str) -> Output {
    let mut cmd = w.dlfm(&["run", "python3", "-c", EXITS_3]);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert_eq!(stdout(&out), "out\n", "{}", stderr(&out));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(why),
        "wanted `{why}` in:\n{}",
        stderr(&out)
    );
    out
}

#[test]
fn a_store_that_cannot_be_written_runs_the_command_plain() {
    // Read-only: the store's file system refuses every write.
    let w = World::new();
    let ro = TmpFs::mount(&w.store, "4m");
    ro.writable(false);
    assert_eq!(
        std::fs::write(w.store.join("probe"), b"x")
            .unwrap_err()
            .raw_os_error(),
        Some(libc::EROFS),
        "the store is read-only"
    );
    runs_plain_with_status(&w, &[], "running without dlfm");
    drop(ro);

    // Full: room for the loader copy but not for the cache.
    let w = World::new();
    let _small = TmpFs::mount(&w.store, "1m");
    let out = runs_plain_with_status(&w, &[], "could not pack the recording");
    // The kernel's own word that the store filled up.
    assert!(
        stderr(&out).contains("No space left on device"),
        "{}",
        stderr(&out)
    );
    // Every later run still runs the command.
    runs_plain_with_status(&w, &[], "could not pack the recording");
}

#[test]
fn a_damaged_entry_is_recorded_again() {
    let w = World::new();
    runs_plain_with_status(&w, &[], "recording");
    let entry = w.entries().remove(0);
    let generation = current_generation(&entry);

    // The cache cut short.
    let cache = entry.join(&generation).join("dlcache.dat");
    let len = cache.metadata().unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&cache);
    // Read-only file (0444): root may still write it.
    f.unwrap().set_len(len / 3).unwrap();
    runs_plain_with_status(&w, &[], "recording again");
    runs_plain_with_status(&w, &[], "replaying");

    // entry.json overwritten with garbage.
    std::fs::write(entry.join("entry.json"), b"{ not json").unwrap();
    runs_plain_with_status(&w, &[], "is damaged");
    runs_plain_with_status(&w, &[], "replaying");
}

#[test]
fn a_lock_of_a_live_run_is_respected_and_a_stale_one_taken_over() {
    let w = World::new();
    runs_plain_with_status(&w, &[], "recording");
    let entry = w.entries().remove(0);
    // A changed program environment is another key; make this key's cache
    // stale instead, so that the next run wants to record.
    std::fs::remove_dir_all(entry.join(current_generation(&entry))).unwrap();

    let lock = entry.join("lock");
    let hold = |owner: &str, age_secs: i64| {
        let _ = std::fs::remove_dir_all(&lock);
        std::fs::create_dir(&lock).unwrap();
        let owner_file = lock.join("owner");
        std::fs::write(&owner_file, owner).unwrap();
        let t = libc::timespec {
            tv_sec: (std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64)
                - age_secs,
            tv_nsec: 0,
        };
        let p = std::ffi::CString::new(owner_file.to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path and two timespecs that outlive the call.
        let r = unsafe { libc::utimensat(libc::AT_FDCWD, p.as_ptr(), [t, t].as_ptr(), 0) };
        assert_eq!(r, 0, "set the lock's time");
    };
    // A run on another node, touched a minute ago: respected.
    hold("another-node 4242 1", 60);
    runs_plain_with_status(&w, &[], "process 4242 on another-node is recording");
    assert!(lock.join("owner").exists(), "the live lock stays");
    // The same run, untouched for an hour (its job was killed): taken over.
    hold("another-node 4242 1", 3600);
    runs_plain_with_status(&w, &[], "recording again");
    assert!(!lock.exists(), "released after recording");
    // A dead process of this host: taken over at once.
    std::fs::remove_dir_all(entry.join(current_generation(&entry))).unwrap();
    let mut dead = Command::new("true").spawn().unwrap();
    let pid = dead.id();
    dead.wait().unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    hold(&format!("{} {pid} 1", host.trim()), 1);
    runs_plain_with_status(&w, &[], "recording again");
    runs_plain_with_status(&w, &[], "replaying");
}

#[test]
fn lines_dlfm_cannot_follow_run_plain_with_their_status() {
    let w = World::new();
    // A launcher dlfm does not know, written as a shell script: dlfm does not
    // see the program it starts.
    let launcher = w.root.join("mylauncher");
    std::fs::write(&launcher, "#!/bin/sh\nshift 2\nexec \"$@\"\n").unwrap();
    std::fs::set_permissions(
        &launcher,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let through_launcher = |before: &[&str], why: &str| {
        let mut args: Vec<&OsStr> = vec![OsStr::new("run")];
        args.extend(before.iter().map(OsStr::new));
        args.push(launcher.as_os_str());
        args.extend(["-n", "2", "python3", "-c", EXITS_3].map(OsStr::new));
        let out = w.dlfm(&args).output().unwrap();
        assert_eq!(
            (stdout(&out).as_str(), out.status.code()),
            ("out\n", Some(3))
        );
        assert!(stderr(&out).contains(why), "{}", stderr(&out));
    };
    through_launcher(&[], "runs in the shell");
    // --program-at names the program in it.
    through_launcher(&["--program-at", "3"], "recording (");
    // A line that starts several programs.
    let out = w
        .dlfm(&[
            "run",
            "mpirun",
            "--allow-run-as-root",
            "--oversubscribe",
            "-np",
            "1",
            "python3",
            "-c",
            EXITS_3,
            ":",
            "-np",
            "1",
            "python3",
            "-c",
            EXITS_3,
        ])
        .output()
        .unwrap();
    assert!(
        stderr(&out).contains("several programs"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stdout(&out), "out\nout\n");
    assert!(!out.status.success());
    // A program that does not exist: the shell's 127.
    let out = w.dlfm(&["run", "no-such-program-dlfm"]).output().unwrap();
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    // DLFM_OP=off and --off: plain, and nothing new in the store.
    let before = w.entries().len();
    runs_plain_with_status(&w, &[("DLFM_OP", "off")], "");
    let out = w
        .dlfm(&["run", "--off", "python3", "-c", EXITS_3])
        .output()
        .unwrap();
    assert_eq!(
        (stdout(&out).as_str(), out.status.code()),
        ("out\n", Some(3))
    );
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    assert_eq!(w.entries().len(), before);
    // dlfm without its tools beside it.
    let alone = w.root.join("alone");
    std::fs::create_dir_all(&alone).unwrap();
    std::fs::copy(&artifacts().dlfm, alone.join("dlfm")).unwrap();
    let out = w
        .dlfm_at(&alone.join("dlfm"), &["run", "python3", "-c", EXITS_3])
        .output()
        .unwrap();
    assert_eq!(
        (stdout(&out).as_str(), out.status.code()),
        ("out\n", Some(3))
    );
    assert!(
        stderr(&out).contains("not installed beside dlfm"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_command_killed_by_a_signal_ends_dlfm_the_same_way() {
    let w = World::new();
    let kill =
        "import os, signal, json; print('out', flush=True); os.kill(os.getpid(), signal.SIGKILL)";
    for round in ["recording", "replaying"] {
        let out = w.dlfm(&["run", "python3", "-c", kill]).output().unwrap();
        assert_eq!(stdout(&out), "out\n");
        assert_eq!(out.status.signal(), Some(libc::SIGKILL), "{}", stderr(&out));
        assert!(stderr(&out).contains(round), "{}", stderr(&out));
    }
}

#[test]
fn the_program_sees_what_it_sees_without_dlfm() {
    let w = World::new();
    let venv = w.root.join("venv");
    assert_ok(
        &Command::new("/usr/bin/python3")
            .args(["-m", "venv", "--without-pip"])
            .arg(&venv)
            .output()
            .unwrap(),
        "python3 -m venv",
    );
    let show = "import sys, os; print(sys.executable, sys.prefix, sys.base_prefix, sys.argv, \
                open('/proc/self/comm').read().strip(), os.environ.get('VIRTUAL_ENV'))";
    let env_script = w.root.join("env-script.py");
    std::fs::write(&env_script, format!("#!/usr/bin/env python3\n{show}\n")).unwrap();
    let direct_script = w.root.join("direct-script.py");
    std::fs::write(&direct_script, format!("#!/usr/bin/python3 -E\n{show}\n")).unwrap();
    for s in [&env_script, &direct_script] {
        std::fs::set_permissions(s, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let venv_python = venv.join("bin/python");
    // A C program that finds its library through `$ORIGIN/../lib`.
    let origin = w.root.join("origin");
    std::fs::create_dir_all(origin.join("bin")).unwrap();
    std::fs::create_dir_all(origin.join("lib")).unwrap();
    std::fs::write(origin.join("l.c"), "int f(void) { return 42; }\n").unwrap();
    std::fs::write(
        origin.join("m.c"),
        "#include <stdio.h>\nint f(void);\nint main(void) { printf(\"%d\\n\", f()); return 0; }\n",
    )
    .unwrap();
    let gcc = |args: &[&str]| {
        assert_ok(
            &Command::new("gcc")
                .args(args)
                .current_dir(&origin)
                .output()
                .unwrap(),
            "gcc",
        )
    };
    gcc(&["-shared", "-fPIC", "-o", "lib/libf.so", "l.c"]);
    gcc(&[
        "-o",
        "bin/m",
        "m.c",
        "-Llib",
        "-lf",
        "-Wl,-rpath,$ORIGIN/../lib",
    ]);
    let with_origin = origin.join("bin/m");
    let commands: Vec<Vec<&OsStr>> = vec![
        vec![with_origin.as_os_str()],
        vec![
            venv_python.as_os_str(),
            OsStr::new("-c"),
            OsStr::new(show),
            OsStr::new("x"),
        ],
        vec![OsStr::new("python3"), OsStr::new("-c"), OsStr::new(show)],
        vec![env_script.as_os_str(), OsStr::new("a")],
        vec![direct_script.as_os_str(), OsStr::new("b")],
    ];
    for command in commands {
        let mut plain = Command::new(command[0]);
        plain
            .args(&command[1..])
            .current_dir(&w.run_dir)
            .env("PATH", PATH);
        let plain = plain.output().unwrap();
        assert_ok(&plain, "plain");
        for round in ["recording", "replaying"] {
            let mut args = vec![OsStr::new("run")];
            args.extend(&command);
            let out = w.dlfm(&args).output().unwrap();
            assert_ok(&out, round);
            assert!(
                stderr(&out).contains(round),
                "{command:?}: {}",
                stderr(&out)
            );
            assert_eq!(stdout(&out), stdout(&plain), "{command:?} {round}");
        }
    }
}

#[test]
fn ls_gc_and_rm_manage_the_store() {
    let w = World::new();
    runs_plain_with_status(&w, &[], "recording");
    runs_plain_with_status(&w, &[("PYTHONPATH", "/nonexistent")], "recording");
    runs_plain_with_status(&w, &[], "replaying");
    let ls = w.dlfm(&["ls", "--json"]).output().unwrap();
    assert_ok(&ls, "dlfm ls --json");
    let listed: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2, "{listed:#?}");
    let runs: BTreeSet<u64> = listed.iter().map(|e| e["runs"].as_u64().unwrap()).collect();
    assert_eq!(runs, BTreeSet::from([1, 2]));
    assert!(listed
        .iter()
        .all(|e| e["state"] == "ready" && e["bytes"].as_u64().unwrap() > 0));
    let table = w.dlfm(&["ls"]).output().unwrap();
    assert!(stdout(&table).contains("python3"), "{}", stdout(&table));

    // gc keeps what was used recently, rm removes by key prefix.
    let gc = w
        .dlfm(&["gc", "--older-than", "1h", "--json"])
        .output()
        .unwrap();
    assert_ok(&gc, "dlfm gc");
    let gc: serde_json::Value = serde_json::from_slice(&gc.stdout).unwrap();
    assert_eq!(gc["removed"].as_array().unwrap().len(), 0);
    let key = listed[0]["key"].as_str().unwrap();
    let rm = w.dlfm(&["rm", &key[..6]]).output().unwrap();
    assert_ok(&rm, "dlfm rm");
    assert_eq!(w.entries().len(), 1);
    let bad = w.dlfm(&["gc", "--older-than", "soon"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let gc = w.dlfm(&["gc", "--older-than", "0s"]).output().unwrap();
    assert_ok(&gc, "dlfm gc --older-than 0s");
    assert!(w.entries().is_empty(), "{}", stdout(&gc));
}

/// `make install PREFIX=...` lays out the tools, libraries, man pages and
/// the Lmod modulefile; with Debian's Lmod, `module load dlfm` puts `dlfm`
/// on PATH, and the installed `dlfm run` records then replays (finding its
/// libraries in PREFIX/lib).
#[test]
fn an_installed_dlfm_runs_after_module_load() {
    let w = World::new();
    let prefix = w.root.join("prefix");
    let root = dlfm_tests::artifacts::workspace_root();
    artifacts();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new("make")
        .arg("-C")
        .arg(root)
        .arg("install")
        .arg(format!("PREFIX={}", prefix.display()))
        .arg(format!("CARGO={}", cargo.to_string_lossy()))
        .arg(format!(
            "CARGO_TARGET_DIR={}",
            dlfm_tests::artifacts::target_dir().display()
        ))
        .output()
        .unwrap();
    assert_ok(&out, "make install");
    for f in [
        "bin/dlfm",
        "bin/dlpatch",
        "bin/dlfm.pre",
        "bin/dlfm-pfs",
        "lib/libdlfm_wrap.a",
        "lib/libdlfm_fm.so",
    ] {
        assert!(prefix.join(f).is_file(), "{f} installed");
    }
    let man = prefix.join("share/man/man1");
    for page in [
        "dlfm.1",
        "dlfm-run.1",
        "dlfm-ls.1",
        "dlpatch.1",
        "dlfm.pre.1",
        "dlfm.pre-read-cache.1",
        "dlfm-pfs.1",
    ] {
        let text = std::fs::read_to_string(man.join(page)).unwrap_or_default();
        assert!(
            text.starts_with(".ie") || text.contains(".TH"),
            "{page}: {text:.200}"
        );
    }
    let run_page = std::fs::read_to_string(man.join("dlfm-run.1")).unwrap();
    assert!(
        run_page.contains("program\\-at"),
        "dlfm-run(1) documents --program-at"
    );

    let script = format!(
        "source /usr/share/lmod/lmod/init/bash && module use {} && module load dlfm && \
         command -v dlfm && dlfm run python3 -c \"{EXITS_3}\"; echo status=$?",
        prefix.join("share/modulefiles").display()
    );
    for round in ["recording", "replaying"] {
        let out = w
            .dlfm_at(Path::new("/bin/bash"), &["-c", &script])
            .output()
            .unwrap();
        let said = stdout(&out);
        assert!(
            said.contains(&format!("{}\n", prefix.join("bin/dlfm").display())),
            "module load puts the installed dlfm first: {said}\n{}",
            stderr(&out)
        );
        assert!(said.contains("out\nstatus=3"), "{said}\n{}", stderr(&out));
        assert!(stderr(&out).contains(round), "{}", stderr(&out));
    }
}
