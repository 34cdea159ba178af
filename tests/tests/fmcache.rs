//! FMCaching: the program's own lookups (here Python's imports, an
//! unmodified Debian python3 through `dlpatch --embed --program`) recorded
//! in the pilot and answered from the cache, with data never served.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use dlfm_tests::scenario::assert_ok;
use dlfm_tests::strace::{self, Call};
use dlfm_tests::Scenario;
use dlfm_workload::{generate_package_tree, PackageTree, Spec};

/// Debian's python3 (its real file, not the symlink).
fn python() -> PathBuf {
    Path::new("/usr/bin/python3").canonicalize().unwrap()
}

/// A scenario with an embedded-wrapper ld.so and a copy of python3 that
/// loads through it.
fn python_scenario() -> (Scenario, PathBuf) {
    let s = Scenario::embedded(Spec::small());
    let copy = s.root.join("python3.dlfm");
    s.program_copy(&python(), &copy);
    (s, copy)
}

/// Runs `copy script` (with `DLFM_OP=op`) under strace; checks it prints
/// `expected`; returns the calls.
fn run_python(
    s: &Scenario,
    copy: &Path,
    script: &Path,
    op: Option<&str>,
    expected: &str,
    log: &str,
) -> Vec<Call> {
    let mut cmd = s.cmd_for(copy, op);
    cmd.arg(script);
    let path = s.root.join(log);
    let out = strace::run_traced(&cmd, &path);
    assert_ok(&out, &format!("python {op:?}"));
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected, "{op:?}");
    strace::parse(&path)
}

/// The calls in `calls` on a Python source or bytecode file (by path or by
/// descriptor), or an ENOENT lookup under `root`.
fn on_python_files<'a>(calls: &'a [Call], root: &Path) -> Vec<&'a Call> {
    let root = root.to_str().unwrap();
    calls
        .iter()
        .filter(|c| {
            let p = c.path.as_deref().or(c.fd_path.as_deref()).unwrap_or("");
            let code = p.ends_with(".py") || p.ends_with(".pyc");
            let probe_under_root = p.starts_with(root) && c.errno.as_deref() == Some("ENOENT");
            code || probe_under_root
        })
        .collect()
}

fn generate(s: &Scenario) -> PackageTree {
    generate_package_tree(&python(), &s.root.join("py"), 10, 5, 10, 11).expect("package tree")
}

#[test]
fn python_imports_a_package_tree_from_the_cache() {
    let (s, copy) = python_scenario();
    let tree = generate(&s);
    assert!(tree.imports >= 500, "{} imports", tree.imports);
    let out = &tree.expected_stdout;
    let base = run_python(&s, &copy, &tree.script, None, out, "base.strace");
    assert_ok(&s.pre(&["write-cache"], &[]), "write-cache");
    run_python(
        &s,
        &copy,
        &tree.script,
        Some("write-cache"),
        out,
        "pilot.strace",
    );
    let packed = s.pre(&["read-cache", "4"], &[]);
    assert_ok(&packed, "read-cache");
    let summary = String::from_utf8_lossy(&packed.stdout);
    assert!(
        summary.contains("python sources") && summary.contains("bytecode"),
        "{summary}"
    );
    let replay = run_python(
        &s,
        &copy,
        &tree.script,
        Some("read-cache"),
        out,
        "replay.strace",
    );

    let before = on_python_files(&base, &tree.root);
    // glibc's realpath (Python's for the script, to set sys.path[0]) calls
    // readlink inside libc, where no interposer reaches: the one call left.
    let script = tree.script.to_str().unwrap();
    let after: Vec<&Call> = on_python_files(&replay, &tree.root)
        .into_iter()
        .filter(|c| !(c.name == "readlink" && c.path.as_deref() == Some(script)))
        .collect();
    assert!(
        before.len() >= 4 * tree.imports,
        "without dlfm python looks up and reads its modules: {} calls",
        before.len()
    );
    assert!(
        after.is_empty(),
        "read-cache touched Python files on the file system:\n{}",
        after
            .iter()
            .map(|c| c.raw.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    // What is left: directory listings and the stats of directories that
    // hold no code file themselves (FMCaching does not serve listings yet).
    let dirs: BTreeSet<&str> = replay
        .iter()
        .filter_map(|c| c.path.as_deref().or(c.fd_path.as_deref()))
        .filter(|p| p.starts_with(tree.root.to_str().unwrap()))
        .collect();
    eprintln!(
        "package tree: file calls without dlfm {} / read-cache {} (all calls {} / {}); \
         directories still reached in read-cache: {}",
        before.len(),
        after.len(),
        base.len(),
        replay.len(),
        dirs.len()
    );
    let trace = {
        let mut cmd = s.cmd_for(&copy, Some("read-cache"));
        cmd.arg(&tree.script).env("DLCACHE_DBG", "1");
        assert_ok(
            &s.pre(&["read-cache", "4"], &[("DLCACHE_DBG", "1")]),
            "read-cache with traces",
        );
        assert_ok(&cmd.output().unwrap(), "traced replay");
        s.trace_text()
    };
    assert!(
        trace.contains("fmcaching: ld.so preloads") && trace.contains("libdlfm_fm.so"),
        "{trace}"
    );
}

/// A program's data is never served: a file it reads that changed after
/// the pilot, and one created since, are seen as they are now.
#[test]
fn data_files_are_read_as_they_are_now() {
    let (s, copy) = python_scenario();
    let data = s.run_dir.join("input.txt");
    let later = s.run_dir.join("later.txt");
    std::fs::write(&data, "pilot\n").unwrap();
    let script = s.root.join("reader.py");
    std::fs::write(
        &script,
        format!(
            "import os, json\n\
             print(open({data:?}).read().strip(), os.path.exists({later:?}), os.stat({data:?}).st_size)\n",
            data = data.display().to_string(),
            later = later.display().to_string()
        ),
    )
    .unwrap();
    assert_ok(&s.pre(&["write-cache"], &[]), "write-cache");
    run_python(
        &s,
        &copy,
        &script,
        Some("write-cache"),
        "pilot False 6\n",
        "pilot.strace",
    );
    assert_ok(&s.pre(&["read-cache", "4"], &[]), "read-cache");

    std::fs::write(&data, "changed since\n").unwrap();
    std::fs::write(&later, "new\n").unwrap();
    let replay = run_python(
        &s,
        &copy,
        &script,
        Some("read-cache"),
        "changed since True 14\n",
        "replay.strace",
    );
    for p in [&data, &later] {
        assert!(
            replay.iter().any(|c| c.path.as_deref() == p.to_str()),
            "{} must be looked up on the file system",
            p.display()
        );
    }
    // The stdlib modules (json) were served meanwhile.
    assert!(
        !replay.iter().any(|c| c
            .path
            .as_deref()
            .is_some_and(|p| p.ends_with("json/__init__.py"))),
        "json's source should come from the cache"
    );
}

/// A module edited after the pilot, or a module file added where the pilot
/// found none, makes `dlfm.pre read-cache` refuse, naming it.
#[test]
fn a_module_changed_or_added_since_the_pilot_is_refused() {
    let (s, copy) = python_scenario();
    let tree = generate_package_tree(&python(), &s.root.join("py"), 1, 1, 3, 5).unwrap();
    // The program also probes for an optional plugin module by name.
    let plugin = tree.root.join("app00/plugin.py");
    let script = s.root.join("probe.py");
    std::fs::write(
        &script,
        format!(
            "import os, runpy\nrunpy.run_path({:?})\nprint(os.path.exists({:?}))\n",
            tree.script.display().to_string(),
            plugin.display().to_string()
        ),
    )
    .unwrap();
    let out = format!("{}False\n", tree.expected_stdout);
    let pilot = |log: &str| {
        assert_ok(&s.pre(&["write-cache"], &[]), "write-cache");
        run_python(&s, &copy, &script, Some("write-cache"), &out, log);
    };
    let refusal = || {
        let r = s.pre(&["read-cache", "4"], &[]);
        let err = String::from_utf8_lossy(&r.stderr).into_owned();
        assert_eq!(r.status.code(), Some(2), "{err}");
        err
    };

    pilot("pilot.strace");
    let module = tree.root.join("app00/part00/mod01.py");
    let text = std::fs::read_to_string(&module).unwrap();
    std::fs::write(&module, format!("{text}# edited after the pilot\n")).unwrap();
    let err = refusal();
    assert!(
        err.contains(module.to_str().unwrap()) && err.contains("changed since the pilot"),
        "{err}"
    );

    pilot("pilot2.strace");
    std::fs::write(&plugin, "PLUGIN = 1\n").unwrap();
    let err = refusal();
    assert!(
        err.contains(plugin.to_str().unwrap()) && err.contains("missing in the pilot"),
        "{err}"
    );
}
