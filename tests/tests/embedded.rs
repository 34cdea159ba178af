//! Unmodified programs: `dlpatch --embed` puts the wrapper in the ld.so copy,
//! used through a program copy's PT_INTERP (`--program`) or by running the
//! loader explicitly. Record and replay work as with a linked wrapper, for a
//! generated C program and for Python importing C-extension modules.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use dlfm_tests::scenario::assert_ok;
use dlfm_tests::strace::{self, looked_up, Call, LOOKUPS};
use dlfm_tests::Scenario;
use dlfm_workload::{generate_python, Spec};

/// Calls of `calls` that touch a path in `recorded` (looked up, or through
/// a descriptor), and ENOENT results.
fn touches(calls: &[Call], recorded: &BTreeSet<String>) -> Vec<String> {
    calls
        .iter()
        .filter(|c| {
            (LOOKUPS.contains(&c.name.as_str())
                && c.path.as_ref().is_some_and(|p| recorded.contains(p)))
                || c.fd_path.as_ref().is_some_and(|p| recorded.contains(p))
                || c.errno.as_deref() == Some("ENOENT")
        })
        .map(|c| c.raw.clone())
        .collect()
}

#[test]
fn an_unmodified_program_replays_through_its_copy() {
    let s = Scenario::embedded(Spec::small());
    let interp = dlfm_elf::interp_of(&std::fs::read(&s.w.program).unwrap()).unwrap();
    assert_eq!(Path::new(&interp), s.ldso.canonicalize().unwrap());
    let base = s.traced(s.cmd(None), "base.strace");
    let recorded = looked_up(&base);
    s.pilot_and_pack();
    let mut cmd = s.cmd(Some("read-cache"));
    cmd.env("DLCACHE_DBG", "1");
    let replay = s.traced(cmd, "replay.strace");
    let bad = touches(&replay, &recorded);
    assert!(
        bad.is_empty(),
        "the read-cache run reached the file system:\n{}",
        bad.join("\n")
    );
    assert!(s
        .trace_text()
        .contains(&format!("openat served {}", s.w.dlopen_libs[0].display())));
}

#[test]
fn running_the_loader_explicitly_records_and_replays() {
    let s = Scenario::embedded(Spec::small());
    let explicit = |op: Option<&str>| {
        let mut c = s.cmd_for(&s.ldso, op);
        c.arg(&s.w.program);
        c
    };
    assert_ok(&s.pre(&["write-cache"], &[]), "write-cache");
    s.run_ok(explicit(Some("write-cache")));
    assert_ok(
        &s.pre(&["read-cache", "4"], &[("DLCACHE_DBG", "1")]),
        "read-cache",
    );
    let mut cmd = explicit(Some("read-cache"));
    cmd.env("DLCACHE_DBG", "1");
    s.run_ok(cmd);
    let traces = s.trace_text();
    for lib in s.w.all_libs() {
        assert!(
            traces.contains(&format!("openat served {}", lib.display())),
            "{} not served:\n{traces}",
            lib.display()
        );
    }
}

#[test]
fn a_bad_cache_leaves_an_unmodified_program_running() {
    let s = Scenario::embedded(Spec::small());
    s.pilot_and_pack();
    let damaged = s.run_dir.join("damaged.dat");
    let mut bytes = std::fs::read(s.cache()).unwrap();
    bytes[200] ^= 0xff;
    std::fs::write(&damaged, bytes).unwrap();
    for cache in [damaged, s.run_dir.join("missing.dat")] {
        let mut cmd = s.cmd(Some("read-cache"));
        cmd.env("DLFM_CACHE", &cache).env("DLCACHE_DBG", "1");
        s.run_ok(cmd);
    }
    let traces = s.trace_text();
    assert!(
        traces.contains("read-cache off: the cache file is damaged"),
        "{traces}"
    );
    assert!(
        traces.contains("read-cache off: cannot open the cache file"),
        "{traces}"
    );
}

/// A program run this way keeps working when it execs another program (here
/// a shell, which loads through the system ld.so and is not cached).
#[test]
fn children_of_an_unmodified_program_keep_working() {
    let s = Scenario::embedded(Spec::small());
    let src = s.root.join("spawn.c");
    std::fs::write(
        &src,
        "#include <stdlib.h>\nint main(void) { return system(\"echo child says hi\"); }\n",
    )
    .unwrap();
    let plain = s.root.join("spawn");
    assert_ok(
        &Command::new("cc")
            .arg("-o")
            .arg(&plain)
            .arg(&src)
            .output()
            .unwrap(),
        "cc",
    );
    let copy = s.root.join("spawn.dlfm");
    let out = Command::new(&s.art.dlpatch)
        .args(["--embed", "--program"])
        .arg(&plain)
        .arg("-o")
        .arg(&copy)
        .arg("--loader")
        .arg(&s.ldso)
        .output()
        .unwrap();
    assert_ok(&out, "dlpatch");
    for op in ["write-cache", "read-cache"] {
        assert_ok(
            &s.pre(&[op, "4"][..if op == "write-cache" { 1 } else { 2 }], &[]),
            op,
        );
        let out = s.cmd_for(&copy, Some(op)).output().unwrap();
        assert_ok(&out, op);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "child says hi\n");
    }
}

/// Debian's python3 through the embedded loader, importing generated
/// C-extension modules: identical output, and in read-cache no open, read or
/// mapping of any module or library it depends on, and no failed `openat`
/// of a library (ld.so's probes). Python's own calls (importlib's `stat` of
/// module files and package `__init__*.so` candidates, .py and .pyc reads)
/// are libc's, not ld.so's, and are counted separately.
#[test]
fn python_imports_extension_modules_from_the_cache() {
    let python = Path::new("/usr/bin/python3");
    let s = Scenario::embedded(Spec::small());
    let py = generate_python(python, 30, 5, &s.root.join("py"))
        .expect("python modules (apt-get install python3-dev)");
    let copy = s.root.join("python3.dlfm");
    let out = Command::new(&s.art.dlpatch)
        .args(["--embed", "--program"])
        .arg(python.canonicalize().unwrap())
        .arg("-o")
        .arg(&copy)
        .arg("--loader")
        .arg(&s.ldso)
        .output()
        .unwrap();
    assert_ok(&out, "dlpatch --embed --program python3");
    let run = |op: Option<&str>, log: Option<&str>| -> Vec<Call> {
        let mut cmd = s.cmd_for(&copy, op);
        cmd.arg(&py.script).env("PYTHONDONTWRITEBYTECODE", "1");
        let calls = match log {
            Some(name) => {
                let path = s.root.join(name);
                let out = strace::run_traced(&cmd, &path);
                assert_ok(&out, "python under strace");
                assert_eq!(String::from_utf8_lossy(&out.stdout), py.expected_stdout);
                strace::parse(&path)
            }
            None => {
                let out = cmd.output().unwrap();
                assert_ok(&out, "python");
                assert_eq!(String::from_utf8_lossy(&out.stdout), py.expected_stdout);
                Vec::new()
            }
        };
        calls
    };
    let base = run(None, Some("py-base.strace"));
    assert_ok(&s.pre(&["write-cache"], &[]), "write-cache");
    run(Some("write-cache"), None);
    assert_ok(&s.pre(&["read-cache", "4"], &[]), "read-cache");
    let replay = run(Some("read-cache"), Some("py-replay.strace"));

    let libs: BTreeSet<String> = py
        .modules
        .iter()
        .chain(&py.deps)
        .map(|p| p.display().to_string())
        .collect();
    let on_libs = |calls: &[Call], names: &[&str]| {
        calls
            .iter()
            .filter(|c| names.contains(&c.name.as_str()))
            .filter(|c| {
                c.path
                    .as_ref()
                    .or(c.fd_path.as_ref())
                    .is_some_and(|p| libs.contains(p))
            })
            .count()
    };
    let loader_calls = ["openat", "read", "pread64", "mmap"];
    assert!(
        on_libs(&base, &loader_calls) >= 2 * libs.len(),
        "the baseline opens and maps every module"
    );
    let left: Vec<&Call> = replay
        .iter()
        .filter(|c| loader_calls.contains(&c.name.as_str()))
        .filter(|c| {
            c.path
                .as_ref()
                .or(c.fd_path.as_ref())
                .is_some_and(|p| libs.contains(p))
        })
        .collect();
    assert!(
        left.is_empty(),
        "read-cache opened, read or mapped a recorded library: {left:#?}"
    );
    let enoent_so = |calls: &[Call]| -> Vec<String> {
        calls
            .iter()
            .filter(|c| c.name == "openat" && c.errno.as_deref() == Some("ENOENT"))
            .filter(|c| {
                c.path
                    .as_deref()
                    .is_some_and(|p| p.ends_with(".so") || p.contains(".so."))
            })
            .map(|c| c.raw.clone())
            .collect()
    };
    let probes = enoent_so(&replay);
    assert!(
        probes.is_empty(),
        "ld.so's library probes must all be served:\n{}",
        probes.join("\n")
    );
    let stats = |calls: &[Call]| on_libs(calls, &["newfstatat", "stat"]);
    eprintln!(
        "python: calls on the modules and their libraries, without dlfm {} / read-cache {} (open/read/mmap), \
         stat by importlib {} / {}; all file calls {} / {}",
        on_libs(&base, &loader_calls),
        left.len(),
        stats(&base),
        stats(&replay),
        base.len(),
        replay.len()
    );
}
