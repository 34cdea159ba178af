//! FMCaching: the program's own lookups (here Python's imports, an
//! unmodified Debian python3 through `dlpatch --embed --program`) recorded
//! in the pilot and answered from the cache, with data never served.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use dlfm_tests::pip_package;
use dlfm_tests::scenario::{assert_ok, python};
use dlfm_tests::strace::Call;
use dlfm_tests::Scenario;
use dlfm_workload::{generate_package_tree, PackageTree, Spec};

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
    let (stdout, calls) = s.traced_output(&cmd, log, &format!("python {op:?}"));
    assert_eq!(stdout, expected, "{op:?}");
    calls
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
    let (s, copy) = Scenario::python();
    let tree = generate(&s);
    tree_replays(&s, &copy, &tree, &[stdlib()]);
}

/// Debian's python3's standard library directory (an installed tree:
/// dpkg's lists name its files).
fn stdlib() -> PathBuf {
    let out = std::process::Command::new(python())
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['stdlib'])",
        ])
        .output()
        .unwrap();
    assert_ok(&out, "python3 sysconfig");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// A virtual environment's python, the tree reached through a `.pth` file
/// in the environment's site-packages (as an editable install is).
#[test]
fn a_virtual_environments_python_imports_a_package_tree_from_the_cache() {
    let s = Scenario::embedded(Spec::small());
    let venv = s.root.join("venv");
    let made = std::process::Command::new("/usr/bin/python3")
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv)
        .output()
        .unwrap();
    assert_ok(&made, "python3 -m venv");
    let copy = venv.join("bin/python3.dlfm");
    s.program_copy(&venv.join("bin/python3"), &copy);
    let tree = generate(&s);
    let site = std::fs::read_dir(venv.join("lib"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("site-packages");
    std::fs::write(site.join("tree.pth"), format!("{}\n", tree.root.display())).unwrap();
    tree_replays(&s, &copy, &tree, &[stdlib(), site]);
}

/// Takes `copy` through a pilot and a replay of the tree's script, checks
/// that the replay's imports made no call on a Python file of the tree, and
/// none at all under the `installed` trees (the standard library, a venv's
/// site-packages), and that DLCACHE_DBG says the interposer was preloaded.
fn tree_replays(s: &Scenario, copy: &Path, tree: &PackageTree, installed: &[PathBuf]) {
    assert!(tree.imports >= 500, "{} imports", tree.imports);
    let out = &tree.expected_stdout;
    let base = run_python(s, copy, &tree.script, None, out, "base.strace");
    assert_ok(&s.pre(&["write-cache"], &[]), "write-cache");
    run_python(
        s,
        copy,
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
        s,
        copy,
        &tree.script,
        Some("read-cache"),
        out,
        "replay.strace",
    );

    let before = on_python_files(&base, &tree.root);
    // The node-local copy (staging) is not the shared file system. glibc's
    // realpath (Python's for the script, to set sys.path[0]) calls readlink
    // inside libc: the interposer answers realpath as a whole.
    let script = tree.script.to_str().unwrap();
    assert!(
        base.iter()
            .any(|c| c.name == "readlink" && c.path.as_deref() == Some(script)),
        "without dlfm glibc's realpath reads the script's link"
    );
    let replay = s.shared(&replay);
    let after = on_python_files(&replay, &tree.root);
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
    // Directories too: the tree's packages, and the tree's root that holds
    // them, are stat'ed and listed from the cache.
    let dirs: BTreeSet<&str> = replay
        .iter()
        .filter_map(|c| c.path.as_deref().or(c.fd_path.as_deref()))
        .filter(|p| p.starts_with(tree.root.to_str().unwrap()))
        .collect();
    assert!(
        dirs.is_empty(),
        "directories reached: {:#?}",
        replay
            .iter()
            .filter(|c| c
                .path
                .as_deref()
                .or(c.fd_path.as_deref())
                .is_some_and(|p| dirs.contains(p)))
            .map(|c| c.raw.as_str())
            .collect::<Vec<_>>()
    );
    for dir in installed {
        let d = dir.to_str().unwrap();
        let (was, left): (Vec<&Call>, Vec<&Call>) = (
            base.iter().filter(|c| c.is_under(d)).collect(),
            replay.iter().filter(|c| c.is_under(d)).collect(),
        );
        eprintln!("{d}: calls {} -> {}", was.len(), left.len());
        assert!(!was.is_empty(), "python looks under {d} without dlfm");
        assert!(
            left.is_empty(),
            "read-cache reached {d}:\n{}",
            left.iter()
                .map(|c| c.raw.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
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
        let mut cmd = s.cmd_for(copy, Some("read-cache"));
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
    // The interposer's own lines: a module's source stat'ed, its bytecode
    // opened, both served.
    let package = tree.root.join("app00");
    for line in [
        format!(" fm stat served {}/__init__.py = 0", package.display()),
        format!(
            " fm open served {}/__pycache__/__init__.",
            package.display()
        ),
    ] {
        assert!(trace.contains(&line), "no '{line}' in the trace");
    }
    let served = trace
        .lines()
        .filter(|l| l.contains(" fm open served "))
        .count();
    assert!(
        served >= tree.imports,
        "{served} served opens traced for {} imports",
        tree.imports
    );
}

/// A program's data is never served: a file it reads that changed after
/// the pilot, and one created since, are seen as they are now.
#[test]
fn data_files_are_read_as_they_are_now() {
    let (s, copy) = Scenario::python();
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
    // DLCACHE_DBG names the data file's open as a miss of the interposer.
    assert_ok(
        &s.pre(&["read-cache", "4"], &[("DLCACHE_DBG", "1")]),
        "read-cache with traces",
    );
    let mut traced = s.cmd_for(&copy, Some("read-cache"));
    traced.arg(&script).env("DLCACHE_DBG", "1");
    assert_ok(&traced.output().unwrap(), "traced replay");
    let line = format!(" fm open missed {}", data.display());
    assert!(s.trace_text().contains(&line), "no '{line}' in the trace");
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
    let (s, copy) = Scenario::python();
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

/// A served file behaves like the real one for everything a program does
/// with a descriptor: fstat, read, lseek, pread, dup, fcntl(F_DUPFD),
/// mmap, ioctl(FIONREAD), fdopen + fread, a forked child sharing the
/// offset, close. The same program prints the same lines without dlfm and
/// in read-cache, where strace shows the file was never opened.
#[test]
fn a_served_file_behaves_like_the_real_one() {
    let s = Scenario::new(Spec::small());
    let module = s.root.join("served_module.py");
    std::fs::write(
        &module,
        "VALUE = 1234567890 # a module, so FMCaching caches it\n",
    )
    .unwrap();
    let prog = s.build_c(
        "descriptors",
        r#"
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
static void show_stat(const char *what, int fd) {
    struct stat st;
    if (fstat(fd, &st) != 0) { printf("%s fstat failed\n", what); return; }
    printf("%s ino=%lu size=%ld mtime=%ld mode=%o\n", what, (unsigned long)st.st_ino,
           (long)st.st_size, (long)st.st_mtime, st.st_mode);
}
int main(int argc, char **argv) {
    char buf[64] = {0};
    int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
    if (fd < 0) { perror("open"); return 1; }
    show_stat("fd", fd);
    printf("read %zd [%.10s]\n", read(fd, buf, 10), buf);
    printf("lseek %ld\n", (long)lseek(fd, 2, SEEK_CUR));
    memset(buf, 0, sizeof buf);
    printf("pread %zd [%.5s]\n", pread(fd, buf, 5, 1), buf);
    printf("read %zd [%.3s]\n", read(fd, buf, 3), buf);
    int d = dup(fd);
    show_stat("dup", d);
    int d2 = fcntl(fd, F_DUPFD_CLOEXEC, 100);
    show_stat("dupfd", d2);
    int avail = -1;
    printf("fionread %d %d\n", ioctl(fd, FIONREAD, &avail), avail);
    char *m = mmap(NULL, 16, PROT_READ, MAP_PRIVATE, fd, 0);
    printf("mmap [%.6s]\n", m == MAP_FAILED ? "failed" : m);
    FILE *f = fdopen(dup(fd), "r");
    fseek(f, 0, SEEK_SET);
    memset(buf, 0, sizeof buf);
    printf("fread %zu [%.5s]\n", fread(buf, 1, 5, f), buf);
    fclose(f);
    lseek(fd, 0, SEEK_SET);
    pid_t pid = fork();
    if (pid == 0) {
        char c[4] = {0};
        read(fd, c, 3);
        printf("child [%s]\n", c);
        show_stat("child", fd);
        fflush(stdout);
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    memset(buf, 0, sizeof buf);
    printf("parent after child %zd [%.3s]\n", read(fd, buf, 3), buf);
    close(fd);
    struct stat st;
    printf("closed fstat %d\n", fstat(fd, &st));
    show_stat("dup after close", d);
    return 0;
}
"#,
        &[],
    );
    let run = |op: Option<&str>, log: &str| -> (String, Vec<Call>) {
        let mut cmd = s.cmd_for(&prog, op);
        cmd.arg(&module);
        s.traced_output(&cmd, log, &format!("descriptors {op:?}"))
    };
    let (expected, _) = run(None, "base.strace");
    assert!(expected.contains("mmap [VALUE ]"), "{expected}");
    assert_ok(&s.pre(&["write-cache"], &[]), "write-cache");
    assert_eq!(run(Some("write-cache"), "pilot.strace").0, expected);
    assert_ok(&s.pre(&["read-cache", "4"], &[]), "read-cache");
    let (got, calls) = run(Some("read-cache"), "replay.strace");
    assert_eq!(got, expected);
    let opened: Vec<&String> = calls
        .iter()
        .filter(|c| c.path.as_deref() == module.to_str())
        .map(|c| &c.raw)
        .collect();
    assert!(
        opened.is_empty(),
        "the module reached the file system: {opened:#?}"
    );
}

/// A first pilot on a tree that has no bytecode yet: python compiles each
/// module and writes its `__pycache__/*.pyc` during the pilot. read-cache
/// takes those files in (and says so) instead of refusing them as names
/// that appeared since the pilot, and the replay neither compiles nor
/// writes: nothing under the tree reaches the file system.
#[test]
fn bytecode_the_pilot_wrote_is_taken_in() {
    let (s, copy) = Scenario::python();
    let root = s.root.join("fresh");
    let mut script = format!(
        "import sys\nsys.path.insert(0, {:?})\n",
        root.to_str().unwrap()
    );
    let mut expected = String::new();
    for p in 0..3 {
        let pkg = root.join(format!("pkg{p}"));
        std::fs::create_dir_all(&pkg).unwrap();
        std::fs::write(pkg.join("__init__.py"), "").unwrap();
        for m in 0..5 {
            std::fs::write(
                pkg.join(format!("m{m}.py")),
                format!("V = {}\n", p * 10 + m),
            )
            .unwrap();
            script.push_str(&format!("import pkg{p}.m{m}\nprint(pkg{p}.m{m}.V)\n"));
            expected.push_str(&format!("{}\n", p * 10 + m));
        }
    }
    let driver = s.root.join("fresh_driver.py");
    std::fs::write(&driver, script).unwrap();
    let run = |op: Option<&str>, log: &str| -> Vec<Call> {
        let mut cmd = s.cmd_for(&copy, op);
        cmd.arg(&driver).env_remove("PYTHONDONTWRITEBYTECODE");
        let (stdout, calls) = s.traced_output(&cmd, log, &format!("fresh_driver.py {op:?}"));
        assert_eq!(stdout, expected, "{op:?}");
        calls
    };
    assert!(walk_files(&root)
        .iter()
        .all(|p| p.extension().is_some_and(|e| e == "py")));
    assert_ok(&s.pre(&["write-cache"], &[]), "write-cache");
    run(Some("write-cache"), "pilot.strace");
    let written = walk_files(&root)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "pyc"))
        .count();
    assert_eq!(written, 18, "the pilot's python writes the bytecode");
    let packed = s.pre(&["read-cache", "4"], &[]);
    assert_ok(&packed, "read-cache");
    let summary = String::from_utf8_lossy(&packed.stdout);
    assert!(
        summary.contains("bytecode: 18 __pycache__ file(s)"),
        "{summary}"
    );
    let replay = run(Some("read-cache"), "replay.strace");
    let under = format!("{}/", root.display());
    let reached: Vec<&String> = replay
        .iter()
        .filter(|c| {
            c.path
                .as_deref()
                .or(c.fd_path.as_deref())
                .is_some_and(|p| p.starts_with(&under))
        })
        .map(|c| &c.raw)
        .collect();
    assert!(reached.is_empty(), "reached the tree: {reached:#?}");
}

/// A served open copies the file's bytes from the cache's mapping into a
/// memfd, then lets go of those pages: after importing the 560-module
/// tree, the interposer's mapping of the cache holds fewer resident pages
/// than half the tree's `.pyc` files (each of which has a page of its own
/// in the cache), so a rank's resident set does not grow with the code it
/// imported.
#[test]
fn served_files_do_not_stay_resident() {
    let (s, copy) = Scenario::python();
    let tree = generate(&s);
    let cache = s.cache();
    let driver = s.root.join("resident.py");
    std::fs::write(
        &driver,
        format!(
            r#"import runpy
runpy.run_path({script:?}, run_name="__main__")
rss, whole = 0, False
for line in open("/proc/self/smaps"):
    f = line.split()
    if "-" in f[0] and not f[0].endswith(":"):
        whole = len(f) > 5 and f[5] == {cache:?} and f[2] == "00000000"
    elif f[0] == "Rss:" and whole:
        rss = max(rss, int(f[1]))
print("cache-rss-kib", rss)
"#,
            script = tree.script.to_str().unwrap(),
            cache = cache.to_str().unwrap(),
        ),
    )
    .unwrap();
    let pyc = walk_files(&tree.root)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "pyc"))
        .count();
    assert!(pyc >= 500, "{pyc} .pyc files");
    // Without a node copy (which serves every open from its own node-local
    // file, mapping only the metadata), served opens are memfds copied from
    // the mapped cache: those pages must not stay resident.
    let run = |op: Option<&str>| -> u64 {
        let out = s
            .cmd_for(&copy, op)
            .env("DLFM_STAGE", "off")
            .arg(&driver)
            .output()
            .unwrap();
        assert_ok(&out, &format!("resident.py {op:?}"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.starts_with(&tree.expected_stdout), "{stdout}");
        let last = stdout.lines().last().unwrap();
        last.strip_prefix("cache-rss-kib ")
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_ok(&s.pre(&["write-cache"], &[]), "write-cache");
    run(Some("write-cache"));
    assert_ok(&s.pre(&["read-cache", "4"], &[]), "read-cache");
    let rss_kib = run(Some("read-cache"));
    assert!(rss_kib > 0, "no whole mapping of {} found", cache.display());
    let limit = pyc as u64 * 4 / 2;
    assert!(
        rss_kib < limit,
        "the cache's mapping keeps {rss_kib} KiB resident after serving {pyc} .pyc files (limit {limit} KiB)"
    );
}

/// The cache's index is mapped once per process: the interposer reads it
/// through the ld.so wrapper's mapping of the node copy's metadata, in the
/// process and in a forked child, instead of mapping the file again.
#[test]
fn the_index_is_mapped_once_per_process() {
    let (s, copy) = Scenario::python();
    let tree = generate(&s);
    let stage = s.stage_dir();
    let driver = s.root.join("mapped.py");
    std::fs::write(
        &driver,
        format!(
            r#"import os, runpy
runpy.run_path({script:?}, run_name="__main__")
def index_maps():
    n = 0
    for line in open("/proc/self/maps"):
        f = line.split()
        if len(f) > 5 and f[5].startswith({stage:?}) and f[5].endswith("/cache") and f[2] == "00000000":
            n += 1
    return n
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    import json, email.parser
    os.write(w, str(index_maps()).encode())
    os._exit(0)
os.waitpid(pid, 0)
print("index-mappings", index_maps(), os.read(r, 16).decode())
"#,
            script = tree.script.to_str().unwrap(),
            stage = stage.to_str().unwrap(),
        ),
    )
    .unwrap();
    let run = |op: &str| -> String {
        let out = s.cmd_for(&copy, Some(op)).arg(&driver).output().unwrap();
        assert_ok(&out, &format!("mapped.py {op}"));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(stdout.starts_with(&tree.expected_stdout), "{stdout}");
        stdout.lines().last().unwrap().to_string()
    };
    assert_ok(&s.pre(&["write-cache"], &[]), "write-cache");
    assert_eq!(run("write-cache"), "index-mappings 0 0");
    assert_ok(&s.pre(&["read-cache", "4"], &[]), "read-cache");
    assert_eq!(
        run("read-cache"),
        "index-mappings 1 1",
        "the node copy's index, in the process and its forked child"
    );
    assert!(
        !s.staged_copies().is_empty(),
        "the replay staged a node copy"
    );
}

/// Every file under `dir`, recursively.
fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk_files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Every stat entry point a program can reach is served: `statx` (what
/// newer toolchains call), and glibc's pre-2.33 `__xstat64`, `__lxstat64`,
/// `__fxstatat64` and `__fxstat64` (what programs and wheels built against
/// an older glibc call), for a module and for a module that does not
/// exist. The output is the same without dlfm, in the pilot and in
/// read-cache, where strace shows neither path reached the file system.
#[test]
fn statx_and_old_glibc_stat_calls_are_served() {
    let s = Scenario::new(Spec::small());
    let module = s.root.join("stat_module.py");
    std::fs::write(&module, "VALUE = 1\n").unwrap();
    let missing = s.root.join("absent_module.py");
    let prog = s.build_c(
        "stats",
        r#"
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
extern int __xstat64(int, const char *, struct stat64 *);
extern int __lxstat64(int, const char *, struct stat64 *);
extern int __fxstat64(int, int, struct stat64 *);
extern int __fxstatat64(int, int, const char *, struct stat64 *, int);
__asm__(".symver __xstat64,__xstat64@GLIBC_2.2.5");
__asm__(".symver __lxstat64,__lxstat64@GLIBC_2.2.5");
__asm__(".symver __fxstat64,__fxstat64@GLIBC_2.2.5");
__asm__(".symver __fxstatat64,__fxstatat64@GLIBC_2.4");
static void show(const char *what, int r, const struct stat64 *st) {
    if (r != 0) { printf("%s errno=%d\n", what, errno); return; }
    printf("%s ino=%lu size=%ld mtime=%ld.%09ld mode=%o nlink=%lu dev=%u:%u\n", what,
           (unsigned long)st->st_ino, (long)st->st_size, (long)st->st_mtim.tv_sec,
           st->st_mtim.tv_nsec, st->st_mode, (unsigned long)st->st_nlink,
           major(st->st_dev), minor(st->st_dev));
}
static void show_x(const char *what, int r, const struct statx *x) {
    if (r != 0) { printf("%s errno=%d\n", what, errno); return; }
    printf("%s basic=%d ino=%llu size=%llu mtime=%lld.%09u mode=%o nlink=%u dev=%u:%u\n",
           what, (x->stx_mask & STATX_BASIC_STATS) == STATX_BASIC_STATS,
           (unsigned long long)x->stx_ino, (unsigned long long)x->stx_size,
           (long long)x->stx_mtime.tv_sec, x->stx_mtime.tv_nsec, x->stx_mode, x->stx_nlink,
           x->stx_dev_major, x->stx_dev_minor);
}
int main(int argc, char **argv) {
    struct stat64 st;
    struct statx x;
    for (int i = 1; i < 3; i++) {
        show_x("statx", statx(AT_FDCWD, argv[i], 0, STATX_BASIC_STATS, &x), &x);
        show_x("statx-nofollow", statx(AT_FDCWD, argv[i], AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT,
                                       STATX_ALL, &x), &x);
        show("xstat", __xstat64(1, argv[i], &st), &st);
        show("lxstat", __lxstat64(1, argv[i], &st), &st);
        show("fxstatat", __fxstatat64(1, AT_FDCWD, argv[i], &st, 0), &st);
    }
    int fd = open(argv[1], O_RDONLY);
    show("fxstat", __fxstat64(1, fd, &st), &st);
    show_x("statx-fd", statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &x), &x);
    return 0;
}
"#,
        &[],
    );
    let run = |op: Option<&str>, log: &str| -> (String, Vec<Call>) {
        let mut cmd = s.cmd_for(&prog, op);
        cmd.arg(&module).arg(&missing);
        s.traced_output(&cmd, log, &format!("stats {op:?}"))
    };
    let (expected, base) = run(None, "base.strace");
    assert!(
        expected.contains("statx-fd basic=1") && expected.contains("xstat errno=2"),
        "{expected}"
    );
    let reached = |calls: &[Call]| -> Vec<String> {
        calls
            .iter()
            .filter(|c| {
                c.path.as_deref() == module.to_str() || c.path.as_deref() == missing.to_str()
            })
            .map(|c| c.raw.clone())
            .collect()
    };
    assert!(
        reached(&base).iter().any(|r| r.starts_with("statx(")),
        "the program did not call statx: {:#?}",
        reached(&base)
    );
    assert_ok(&s.pre(&["write-cache"], &[]), "write-cache");
    assert_eq!(run(Some("write-cache"), "pilot.strace").0, expected);
    assert_ok(&s.pre(&["read-cache", "4"], &[]), "read-cache");
    let (got, calls) = run(Some("read-cache"), "replay.strace");
    assert_eq!(got, expected);
    let reached = reached(&calls);
    assert!(reached.is_empty(), "reached the file system: {reached:#?}");
}

/// Imports from eight threads at once, and a fork while another thread
/// imports, with every answer from the cache: the output is right every
/// time and nothing hangs.
#[test]
fn threads_and_fork_import_from_the_cache() {
    let (s, copy) = Scenario::python();
    let tree = generate(&s);
    let script = s.root.join("threads.py");
    std::fs::write(
        &script,
        format!(
            r#"import importlib, os, sys, threading
sys.path.insert(0, {root:?})
names = [f"app{{p:02}}.part{{s:02}}.mod{{m:02}}" for p in range(10) for s in range(5) for m in range(10)]
total = [0] * 8
def work(i):
    total[i] = sum(importlib.import_module(n).VALUE for n in names[i::8])
threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
for t in threads:
    t.start()
pid = os.fork()
if pid == 0:
    # Only what no other thread imports: a module lock that a thread of
    # the parent held at the fork stays held in the child (CPython's own
    # hazard, with or without dlfm), so the child reads a module's file
    # instead of importing it.
    import json, email.message
    source = os.path.join({root:?}, *names[-1].split(".")) + ".py"
    os._exit(0 if "VALUE" in open(source).read() else 3)
for t in threads:
    t.join()
_, status = os.waitpid(pid, 0)
print(sum(total), os.waitstatus_to_exitcode(status))
"#,
            root = tree.root.display().to_string()
        ),
    )
    .unwrap();
    let expected = format!("{} 0\n", tree.expected_stdout.trim());
    assert_ok(&s.pre(&["write-cache"], &[]), "write-cache");
    run_python(
        &s,
        &copy,
        &script,
        Some("write-cache"),
        &expected,
        "pilot.strace",
    );
    assert_ok(&s.pre(&["read-cache", "4"], &[]), "read-cache");
    for i in 0..10 {
        let mut cmd = s.cmd_for(&copy, Some("read-cache"));
        cmd.arg(&script);
        let out = dlfm_tests::scenario::output_within(cmd, std::time::Duration::from_secs(60));
        assert_ok(&out, &format!("run {i}"));
        assert_eq!(String::from_utf8_lossy(&out.stdout), expected, "run {i}");
    }
}

/// Listings of code directories come from the cache; a directory that
/// holds data is always listed by the file system (a file added to it is
/// seen); `dlfm.pre check` names a code directory whose entries changed.
#[test]
fn only_code_directories_are_listed_from_the_cache() {
    let (s, copy) = Scenario::python();
    let code = s.root.join("lib/pkg");
    let data = s.root.join("data");
    std::fs::create_dir_all(&code).unwrap();
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(code.join("__init__.py"), "").unwrap();
    std::fs::write(code.join("a.py"), "A = 1\n").unwrap();
    std::fs::write(data.join("input.txt"), "x\n").unwrap();
    // Installed packages come compiled; the pilot then writes nothing.
    let compiled = std::process::Command::new(python())
        .args(["-m", "compileall", "-q"])
        .arg(s.root.join("lib"))
        .output()
        .unwrap();
    assert_ok(&compiled, "compileall");
    let script = s.root.join("lister.py");
    std::fs::write(
        &script,
        format!(
            "import os, sys\nsys.path.insert(0, {lib:?})\nimport pkg.a\n\
             print(sorted(os.listdir({code:?})), sorted(os.listdir({data:?})))\n",
            lib = s.root.join("lib").display().to_string(),
            code = code.display().to_string(),
            data = data.display().to_string()
        ),
    )
    .unwrap();
    let first = "['__init__.py', '__pycache__', 'a.py'] ['input.txt']\n";
    assert_ok(&s.pre(&["write-cache"], &[]), "write-cache");
    run_python(
        &s,
        &copy,
        &script,
        Some("write-cache"),
        first,
        "pilot.strace",
    );
    let packed = s.pre(&["read-cache", "4"], &[]);
    assert_ok(&packed, "read-cache");
    assert!(
        String::from_utf8_lossy(&packed.stdout).contains("directory listings: "),
        "{}",
        String::from_utf8_lossy(&packed.stdout)
    );

    std::fs::write(data.join("more.txt"), "y\n").unwrap();
    let now = "['__init__.py', '__pycache__', 'a.py'] ['input.txt', 'more.txt']\n";
    let replay = run_python(&s, &copy, &script, Some("read-cache"), now, "replay.strace");
    let listed = |dir: &Path| {
        replay
            .iter()
            .filter(|c| c.name == "getdents64" && c.fd_path.as_deref() == dir.to_str())
            .count()
    };
    assert_eq!(
        listed(&code),
        0,
        "the code directory is listed from the cache"
    );
    assert!(
        listed(&data) > 0,
        "the data directory is listed by the file system"
    );

    std::fs::write(code.join("b.py"), "B = 2\n").unwrap();
    let check = s.pre(&["check"], &[]);
    let err = String::from_utf8_lossy(&check.stderr);
    assert_eq!(check.status.code(), Some(2), "{err}");
    assert!(
        err.contains(code.to_str().unwrap()) && err.contains("entries changed since packing"),
        "{err}"
    );
}

/// numpy, scipy, pandas and matplotlib from PyPI (`.ci/run` installs them
/// into target/pydeps): identical output (a figure rendered with
/// matplotlib's style sheets and fonts, package data), and in read-cache no
/// lookup, open, read, mapping, listing or ENOENT probe under their tree:
/// code and package data (the files each `*.dist-info/RECORD` names) come
/// from the cache.
#[test]
fn numpy_scipy_pandas_and_matplotlib_import_from_the_cache() {
    let Some(pydeps) = dlfm_tests::pydeps::pydeps() else {
        return;
    };
    let (s, copy) = Scenario::python();
    let script = s.root.join("science.py");
    std::fs::write(
        &script,
        "import numpy as np, scipy, scipy.linalg, scipy.sparse, scipy.optimize, pandas as pd\n\
         import matplotlib\n\
         matplotlib.use('Agg')\n\
         import matplotlib.pyplot as plt\n\
         a = np.arange(1, 10, dtype=float).reshape(3, 3) + np.eye(3)\n\
         plt.style.use('ggplot')\n\
         fig, ax = plt.subplots(figsize=(2, 2), dpi=50)\n\
         ax.plot([1, 3, 2]); ax.set_title('dlfm')\n\
         fig.canvas.draw()\n\
         print(np.__version__, scipy.__version__, pd.__version__, matplotlib.__version__,\n\
         \x20     round(float(scipy.linalg.det(a)), 6), scipy.sparse.identity(4).nnz,\n\
         \x20     round(float(scipy.optimize.brentq(lambda x: x * x - 2, 0, 2)), 6),\n\
         \x20     int(pd.DataFrame({'a': range(10)})['a'].sum()),\n\
         \x20     int(np.asarray(fig.canvas.buffer_rgba()).sum()))\n",
    )
    .unwrap();
    let mplconfig = s.root.join("mplconfig");
    let run = |program: &Path, op: Option<&str>, log: &str| -> (String, Vec<Call>) {
        let mut cmd = s.cmd_for(program, op);
        cmd.arg(&script)
            .env("PYTHONPATH", &pydeps)
            .env("MPLCONFIGDIR", &mplconfig)
            .env("PYTHONDONTWRITEBYTECODE", "1");
        s.traced_output(&cmd, log, &format!("science {op:?}"))
    };
    let (expected, base) = run(&python(), None, "base.strace");
    assert_ok(&s.pre(&["write-cache"], &[]), "write-cache");
    let (pilot, _) = run(&copy, Some("write-cache"), "pilot.strace");
    let packed = s.pre(&["read-cache", "4"], &[]);
    assert_ok(&packed, "read-cache");
    eprintln!("{}", String::from_utf8_lossy(&packed.stdout));
    let (replayed, replay) = run(&copy, Some("read-cache"), "replay.strace");
    assert_eq!(pilot, expected);
    assert_eq!(replayed, expected);
    let tree = pydeps.to_str().unwrap();
    let under = |calls: &[Call]| -> Vec<Call> {
        calls.iter().filter(|c| c.is_under(tree)).cloned().collect()
    };
    let (before, after) = (under(&base), under(&replay));
    eprintln!(
        "numpy+scipy+pandas+matplotlib: calls under their tree {} -> {}; all file calls {} -> {}",
        before.len(),
        after.len(),
        base.len(),
        replay.len()
    );
    assert!(before.len() > 1000, "{} calls", before.len());
    let left: Vec<&str> = after.iter().map(|c| c.raw.as_str()).collect();
    assert!(
        left.is_empty(),
        "read-cache looked up, listed or read under {tree}:\n{}",
        left.join("\n")
    );
}

/// A pilot program that closes every descriptor it did not open and opens
/// a file of its own on the journal's old number: its file holds only what
/// it wrote (the journal is dropped, never written through that number).
#[test]
fn a_program_closing_our_descriptors_keeps_its_files_intact() {
    let (s, copy) = Scenario::python();
    let out = s.run_dir.join("mine.txt");
    let script = s.root.join("closer.py");
    std::fs::write(
        &script,
        format!(
            "import os\nos.closerange(3, 65536)\n\
             fd = os.open({out:?}, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)\n\
             import json, email.message\nos.stat(json.__file__)\n\
             os.write(fd, b'mine\\n')\nos.close(fd)\nprint(open({out:?}).read(), end='')\n",
            out = out.display().to_string()
        ),
    )
    .unwrap();
    assert_ok(&s.pre(&["write-cache"], &[]), "write-cache");
    run_python(
        &s,
        &copy,
        &script,
        Some("write-cache"),
        "mine\n",
        "pilot.strace",
    );
    assert_eq!(std::fs::read(&out).unwrap(), b"mine\n");
}

/// A module edited after packing, whose bytecode python finds valid (so
/// the pilot only looked the source up): `dlfm.pre check`, with or without
/// `--quick`, names it. Replay answers the source's status from the cache,
/// and python would run the old bytecode.
#[test]
fn check_names_a_module_edited_after_packing() {
    let (s, copy) = Scenario::python();
    let tree = generate_package_tree(&python(), &s.root.join("py"), 1, 1, 3, 5).unwrap();
    assert_ok(&s.pre(&["write-cache"], &[]), "write-cache");
    let pilot = run_python(
        &s,
        &copy,
        &tree.script,
        Some("write-cache"),
        &tree.expected_stdout,
        "pilot.strace",
    );
    let module = tree.root.join("app00/part00/mod01.py");
    let opened = pilot.iter().any(|c| {
        c.name == "openat"
            && c.path.as_deref() == module.to_str()
            && c.result.is_some_and(|r| r >= 0)
    });
    assert!(!opened, "the pilot reads the bytecode, not the source");
    assert_ok(&s.pre(&["read-cache", "4"], &[]), "read-cache");
    assert_ok(
        &s.pre(&["check", "--quick"], &[]),
        "check --quick before the edit",
    );
    let text = std::fs::read_to_string(&module).unwrap();
    std::fs::write(&module, format!("{text}# edited after packing\n")).unwrap();
    for args in [&["check"][..], &["check", "--quick"]] {
        let r = s.pre(args, &[]);
        let err = String::from_utf8_lossy(&r.stderr).into_owned();
        assert_eq!(r.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(module.to_str().unwrap()) && err.contains("changed since the pilot"),
            "{args:?}: {err}"
        );
    }
}

/// A package installed by pip (a `*.dist-info/RECORD` naming its files)
/// whose module reads its data at import: a table and a style it lists, a
/// probe for an optional override that is absent. In read-cache strace
/// shows no call at all under the site directory (code, data, listings,
/// the absent name). A data file of the package changed after the pilot is
/// refused by the pack; one changed after packing, or a name that appears
/// in its data directory, is named by `dlfm.pre check`. A data file the
/// program writes beside its input, outside the package, is seen as it is.
#[test]
fn installed_package_data_is_served_and_checked() {
    let (s, copy) = Scenario::python();
    let site = s.root.join("site");
    let data = site.join("mypkg/data");
    pip_package::install(
        &site,
        "mypkg",
        &[
            (
                "mypkg/__init__.py",
                "import os\n\
                 HERE = os.path.join(os.path.dirname(__file__), 'data')\n\
                 NAMES = sorted(os.listdir(HERE))\n\
                 with open(os.path.join(HERE, 'table.txt')) as f:\n\
                 \x20   TABLE = f.read().split()\n\
                 STYLE = open(os.path.join(HERE, 'style.css')).read().strip()\n\
                 OVERRIDE = os.path.exists(os.path.join(HERE, 'override.css'))\n",
            ),
            ("mypkg/data/table.txt", "1 2 3 5 8\n"),
            ("mypkg/data/style.css", "body { color: teal }\n"),
        ],
    );
    let input = s.run_dir.join("input.txt");
    std::fs::write(&input, "first\n").unwrap();
    let script = s.root.join("uses_data.py");
    std::fs::write(
        &script,
        format!(
            "import mypkg\n\
             print(mypkg.NAMES, mypkg.TABLE, mypkg.STYLE, mypkg.OVERRIDE)\n\
             print(open({input:?}).read().strip())\n",
            input = input.display().to_string()
        ),
    )
    .unwrap();
    let run = |op: Option<&str>, log: &str| -> (String, Vec<Call>) {
        let mut cmd = s.cmd_for(&copy, op);
        cmd.arg(&script)
            .env("PYTHONPATH", &site)
            .env("PYTHONDONTWRITEBYTECODE", "1");
        s.traced_output(&cmd, log, &format!("uses_data {op:?}"))
    };
    let expected =
        "['style.css', 'table.txt'] ['1', '2', '3', '5', '8'] body { color: teal } False\n";
    let pilot = |log: &str| {
        assert_ok(&s.pre(&["write-cache"], &[]), "write-cache");
        let (out, _) = run(Some("write-cache"), log);
        assert_eq!(out, format!("{expected}first\n"));
    };
    pilot("pilot.strace");
    let (summary, pack_calls) = s.traced_output(
        &s.pre_cmd(&["read-cache", "4"], &[]),
        "pack.strace",
        "read-cache",
    );
    // The pack lists the data directory once to find manifests in it, and
    // once more to judge it (to serve the absent override.css) and store
    // that same listing.
    let listed: Vec<&str> = pack_calls
        .iter()
        .filter(|c| {
            c.name == "openat" && c.path.as_deref() == data.to_str() && !c.raw.contains("O_PATH")
        })
        .map(|c| c.raw.as_str())
        .collect();
    assert_eq!(
        listed.len(),
        2,
        "the pack's listings of the data directory: {listed:#?}"
    );
    assert!(
        summary.contains("pip RECORD") && summary.contains("package data (manifests)"),
        "{summary}"
    );
    std::fs::write(&input, "second\n").unwrap();
    let (out, base) = run(None, "base.strace");
    assert_eq!(out, format!("{expected}second\n"));
    let (out, replay) = run(Some("read-cache"), "replay.strace");
    assert_eq!(out, format!("{expected}second\n"), "the input as it is now");
    let tree = site.to_str().unwrap();
    let under = |calls: &[Call]| -> Vec<String> {
        s.shared(calls)
            .iter()
            .filter(|c| c.is_under(tree))
            .map(|c| c.raw.clone())
            .collect()
    };
    let (before, after) = (under(&base), under(&replay));
    for probe in ["table.txt", "style.css", "override.css", "getdents64"] {
        assert!(
            before.iter().any(|c| c.contains(probe)),
            "without dlfm python reaches {probe}"
        );
    }
    assert!(
        after.is_empty(),
        "read-cache reached the installed package:\n{}",
        after.join("\n")
    );
    assert!(
        s.shared(&replay)
            .iter()
            .any(|c| c.path.as_deref() == input.to_str()),
        "the program's input is read from the file system"
    );
    eprintln!(
        "installed package data: calls under the site {} -> 0",
        before.len()
    );

    // A name that appears in the data directory after packing, and a data
    // file changed after packing: `check` names both.
    assert_ok(&s.pre(&["check", "--quick"], &[]), "check before changes");
    let style = data.join("style.css");
    std::fs::write(&style, "body { color: red }\n").unwrap();
    std::fs::write(data.join("override.css"), "body {}\n").unwrap();
    let r = s.pre(&["check", "--quick"], &[]);
    let err = String::from_utf8_lossy(&r.stderr).into_owned();
    assert_eq!(r.status.code(), Some(2), "{err}");
    assert!(
        err.contains(style.to_str().unwrap()) && err.contains("changed since the pilot"),
        "{err}"
    );
    assert!(
        err.contains(data.to_str().unwrap()) && err.contains("entries changed"),
        "{err}"
    );
    // The pack refuses a data file changed since the pilot.
    std::fs::remove_file(data.join("override.css")).unwrap();
    std::fs::write(&style, "body { color: teal }\n").unwrap();
    std::fs::write(&input, "first\n").unwrap();
    pilot("pilot2.strace");
    std::fs::write(&style, "body { color: blue }\n").unwrap();
    let r = s.pre(&["read-cache", "4"], &[]);
    let err = String::from_utf8_lossy(&r.stderr).into_owned();
    assert_eq!(r.status.code(), Some(2), "{err}");
    assert!(
        err.contains(style.to_str().unwrap()) && err.contains("changed since the pilot"),
        "{err}"
    );
}
