//! Unmodified programs: `dlpatch --embed` puts the wrapper in the ld.so copy,
//! used through a program copy's PT_INTERP (`--program`) or by running the
//! loader explicitly. Record and replay work as with a linked wrapper, for a
//! generated C program and for Python importing C-extension modules.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use dlfm_tests::scenario::assert_ok;
use dlfm_tests::strace::{looked_up, touches, Call};
use dlfm_tests::Scenario;
use dlfm_workload::{generate_python, Spec};

#[test]
fn an_unmodified_program_replays_through_its_copy() {
    let s = Scenario::embedded(Spec::small());
    let interp = dlfm_elf::program_interp(&std::fs::read(&s.w.program).unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(Path::new(&interp), s.ldso.canonicalize().unwrap());
    let base = s.traced(s.cmd(None), "base.strace");
    let recorded = looked_up(&base);
    s.pilot_and_pack();
    // Staging's calls on node-local storage are not the file system's.
    let bad = touches(&s.replay_on_shared("replay.strace"), &recorded);
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
    s.program_copy(&plain, &copy);
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

/// `python` (a program path) through an embedded-loader copy at `copy`,
/// importing 30 generated C-extension modules: identical output, and in
/// read-cache no open, read or mapping of any module or library it depends
/// on, and no failed `openat` of a library (ld.so's probes). Python's own
/// calls (importlib's `stat` of module files and package `__init__*.so`
/// candidates, .py and .pyc reads) are libc's, not ld.so's, and are counted
/// separately. Returns what `sys.prefix` was in the copy.
fn python_replays(s: &Scenario, python: &Path, copy: &Path) -> String {
    let py = generate_python(Path::new("/usr/bin/python3"), 30, 5, &s.root.join("py"))
        .expect("python modules (apt-get install python3-dev)");
    s.program_copy(python, copy);
    let run = |op: Option<&str>, log: &str| -> Vec<Call> {
        let mut cmd = s.cmd_for(copy, op);
        cmd.arg(&py.script).env("PYTHONDONTWRITEBYTECODE", "1");
        let (stdout, calls) = s.traced_output(&cmd, log, "python under strace");
        assert_eq!(stdout, py.expected_stdout, "{op:?}");
        calls
    };
    let base = run(None, "py-base.strace");
    assert_ok(&s.pre(&["write-cache"], &[]), "write-cache");
    run(Some("write-cache"), "py-pilot.strace");
    assert_ok(&s.pre(&["read-cache", "4"], &[]), "read-cache");
    let replay = run(Some("read-cache"), "py-replay.strace");

    let libs: BTreeSet<String> = py
        .modules
        .iter()
        .chain(&py.deps)
        .map(|p| p.display().to_string())
        .collect();
    let on_libs = |calls: &[Call], names: &[&str]| -> Vec<String> {
        calls
            .iter()
            .filter(|c| names.contains(&c.name.as_str()))
            .filter(|c| {
                c.path
                    .as_ref()
                    .or(c.fd_path.as_ref())
                    .is_some_and(|p| libs.contains(p))
            })
            .map(|c| c.raw.clone())
            .collect()
    };
    let loader_calls = ["openat", "read", "pread64", "mmap"];
    assert!(
        on_libs(&base, &loader_calls).len() >= 2 * libs.len(),
        "the baseline opens and maps every module"
    );
    let left = on_libs(&replay, &loader_calls);
    assert!(
        left.is_empty(),
        "read-cache opened, read or mapped a recorded library:\n{}",
        left.join("\n")
    );
    let probes: Vec<&String> = replay
        .iter()
        .filter(|c| c.name == "openat" && c.errno.as_deref() == Some("ENOENT"))
        .filter(|c| {
            c.path
                .as_deref()
                .is_some_and(|p| p.ends_with(".so") || p.contains(".so."))
        })
        .map(|c| &c.raw)
        .collect();
    assert!(
        probes.is_empty(),
        "ld.so's library probes must all be served: {probes:#?}"
    );
    // importlib stats the modules' directory (a sys.path entry) before each
    // import and lists it once: it holds only modules ld.so loads, so it is
    // code, and served.
    let dir = py.module_dir.display().to_string();
    let on_dir = |calls: &[Call]| -> Vec<String> {
        calls
            .iter()
            .filter(|c| c.path.as_ref().or(c.fd_path.as_ref()) == Some(&dir))
            .map(|c| c.raw.clone())
            .collect()
    };
    assert!(!on_dir(&base).is_empty(), "the baseline looks {dir} up");
    let left = on_dir(&replay);
    assert!(
        left.is_empty(),
        "read-cache reached the modules' directory:\n{}",
        left.join("\n")
    );
    eprintln!(
        "{}: calls on the modules and their libraries without dlfm {} / read-cache {} (open, read, mmap); \
         importlib's stat of them {} / {}; all file calls {} / {}",
        python.display(),
        on_libs(&base, &loader_calls).len(),
        left.len(),
        on_libs(&base, &["newfstatat", "stat"]).len(),
        on_libs(&replay, &["newfstatat", "stat"]).len(),
        base.len(),
        replay.len()
    );
    let out = s
        .cmd_for(copy, Some("read-cache"))
        .args(["-c", "import sys; print(sys.prefix)"])
        .output()
        .unwrap();
    assert_ok(&out, "sys.prefix");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn debian_python_imports_extension_modules_from_the_cache() {
    let s = Scenario::embedded(Spec::small());
    let python = Path::new("/usr/bin/python3").canonicalize().unwrap();
    let prefix = python_replays(&s, &python, &s.root.join("python3.dlfm"));
    assert_eq!(prefix, "/usr");
}

/// A virtual environment's python: the copy placed in the environment's
/// bin/ finds its pyvenv.cfg there, as the original would.
#[test]
fn a_virtual_environments_python_imports_from_the_cache() {
    let s = Scenario::embedded(Spec::small());
    let venv = s.root.join("venv");
    let out = Command::new("/usr/bin/python3")
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv)
        .output()
        .unwrap();
    assert_ok(&out, "python3 -m venv");
    let prefix = python_replays(
        &s,
        &venv.join("bin/python3"),
        &venv.join("bin/python3.dlfm"),
    );
    assert_eq!(Path::new(&prefix), venv);
}

#[test]
fn a_loader_path_too_long_for_the_interpreter_field_is_refused() {
    let s = Scenario::embedded(Spec::small());
    let deep = s
        .root
        .join("a-directory-name-long-enough-to-overflow-the-field");
    std::fs::create_dir_all(&deep).unwrap();
    let out = Command::new(&s.art.dlpatch)
        .args(["--embed", "--program", "/bin/true", "-o"])
        .arg(deep.join("true.dlfm"))
        .arg("--loader")
        .arg(deep.join("ld.so"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("interpreter field holds 27") && err.lines().count() == 1,
        "{err}"
    );
    assert!(
        !deep.join("true.dlfm").exists() && !deep.join("ld.so").exists(),
        "nothing written"
    );
}
