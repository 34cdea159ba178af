//! A program may close or replace the wrapper's descriptors (the cache, the
//! journal, a trace file): `close_range(3, ~0U, 0)`, `os.closerange`, or
//! `dup2` of its own file onto every open number. Replay and recording go on
//! (the file is opened again), loads never fail, and nothing of dlfm's is
//! ever written into the program's file.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use dlfm_tests::scenario::{assert_ok, rpath};
use dlfm_tests::strace::Call;
use dlfm_tests::Scenario;
use dlfm_workload::{generate_python, Spec};

/// A program that, as its first argument asks, closes every descriptor
/// above 2 (`close`) or `dup2`s the file named by its second argument onto
/// each of them (`dup2`), then `dlopen`s `liblate.so` and prints
/// `<base> <late>`.
const PROGRAM: &str = "#define _GNU_SOURCE\n\
#include <dlfcn.h>\n#include <fcntl.h>\n#include <stdio.h>\n#include <string.h>\n\
#include <sys/resource.h>\n#include <sys/syscall.h>\n#include <unistd.h>\n\
int base_value(void);\n\
int main(int argc, char **argv) {\n\
  const char *mode = argc > 1 ? argv[1] : \"none\";\n\
  if (!strcmp(mode, \"close\")) syscall(SYS_close_range, 3, ~0U, 0);\n\
  if (!strcmp(mode, \"dup2\")) {\n\
    int other = open(argv[2], O_WRONLY | O_APPEND);\n\
    struct rlimit r; getrlimit(RLIMIT_NOFILE, &r);\n\
    for (int fd = 3; fd < (int)r.rlim_cur; fd++) if (fd != other && fcntl(fd, F_GETFD) != -1) dup2(other, fd);\n\
  }\n\
  void *h = dlopen(\"liblate.so\", RTLD_NOW);\n\
  int (*late)(void) = h ? (int (*)(void))dlsym(h, \"late\") : 0;\n\
  printf(\"%d %d\\n\", base_value(), late ? late() : -1);\n\
  return 0;\n\
}\n";

const EXPECTED: &str = "4 5\n";

struct Setting {
    s: Scenario,
    prog: PathBuf,
    late: PathBuf,
    decoy: PathBuf,
}

fn setting() -> Setting {
    let s = Scenario::new(Spec::small());
    let base = s.shared_lib("base", "int base_value(void) { return 4; }\n");
    let late = s.shared_lib("late", "int late(void) { return 5; }\n");
    let dir = base.parent().unwrap().to_path_buf();
    let prog = s.build_c(
        "closer",
        PROGRAM,
        &[&format!("-L{}", dir.display()), "-lbase", &rpath(&dir)],
    );
    let decoy = s.root.join("decoy.txt");
    std::fs::write(&decoy, "the program's own file\n").unwrap();
    Setting {
        s,
        prog,
        late,
        decoy,
    }
}

impl Setting {
    /// Runs the program under strace with `op` and `args`; checks its output
    /// and that the decoy is unchanged; returns the calls.
    fn run(&self, op: &str, args: &[&str], log: &str) -> Vec<Call> {
        let mut cmd = self.s.cmd_for(&self.prog, Some(op));
        cmd.args(args).env("DLCACHE_DBG", "1");
        let (stdout, calls) = self.s.traced_output(&cmd, log, &format!("{op} {args:?}"));
        assert_eq!(stdout, EXPECTED, "{op} {args:?}");
        assert_eq!(
            std::fs::read_to_string(&self.decoy).unwrap(),
            "the program's own file\n",
            "dlfm wrote into the program's file ({op} {args:?})"
        );
        calls
    }

    /// The calls that opened `liblate.so` itself.
    fn late_opens(&self, calls: &[Call]) -> usize {
        let late = self.late.display().to_string();
        calls
            .iter()
            .filter(|c| c.name == "openat" && c.path.as_deref() == Some(&late))
            .count()
    }
}

#[test]
fn replay_survives_the_program_closing_or_replacing_the_cache_descriptor() {
    let t = setting();
    let s = &t.s;
    assert_ok(&s.pre(&["write-cache"], &[]), "write-cache");
    t.run("write-cache", &[], "pilot.strace");
    assert_ok(
        &s.pre(&["read-cache", "4"], &[("DLCACHE_DBG", "1")]),
        "read-cache",
    );

    let calls = t.run("read-cache", &["close"], "close.strace");
    assert_eq!(t.late_opens(&calls), 0, "liblate.so must be served");
    let cache_opens = calls
        .iter()
        .filter(|c| c.name == "openat")
        .filter(|c| {
            c.path
                .as_deref()
                .is_some_and(|p| p.ends_with("dlcache.dat"))
        })
        .count();
    assert!(
        cache_opens >= 2,
        "the cache is opened again after close_range"
    );

    let decoy = t.decoy.to_str().unwrap();
    let calls = t.run("read-cache", &["dup2", decoy], "dup2.strace");
    assert_eq!(t.late_opens(&calls), 0, "liblate.so must be served");
}

#[test]
fn recording_survives_the_program_replacing_the_journal_descriptor() {
    let t = setting();
    let s = &t.s;
    assert_ok(
        &s.pre(&["write-cache"], &[("DLCACHE_DBG", "1")]),
        "write-cache",
    );
    let decoy = t.decoy.to_str().unwrap();
    t.run("write-cache", &["dup2", decoy], "pilot.strace");
    assert_ok(&s.pre(&["read-cache", "4"], &[]), "read-cache");
    // The dlopen made after the dup2 was recorded into the real journal.
    let calls = t.run("read-cache", &[], "replay.strace");
    assert_eq!(t.late_opens(&calls), 0, "liblate.so must be served");
}

/// The issue's own case: python closes every descriptor it did not open,
/// then imports extension modules; replay serves them all.
#[test]
fn python_closerange_then_imports_from_the_cache() {
    let s = Scenario::embedded(Spec::small());
    let py = generate_python(Path::new("/usr/bin/python3"), 10, 3, &s.root.join("py"))
        .expect("python modules (apt-get install python3-dev)");
    let copy = s.root.join("python3.dlfm");
    s.program_copy(Path::new("/usr/bin/python3"), &copy);
    let script = py.script.display().to_string();
    let run = |op: &str, code: &str, log: &str| -> Vec<Call> {
        let mut cmd = s.cmd_for(&copy, Some(op));
        cmd.args(["-c", code]).env("PYTHONDONTWRITEBYTECODE", "1");
        let (stdout, calls) = s.traced_output(&cmd, log, &format!("python {op}"));
        assert_eq!(stdout, py.expected_stdout);
        calls
    };
    let plain = format!("exec(open({script:?}).read())");
    assert_ok(&s.pre(&["write-cache"], &[]), "write-cache");
    run("write-cache", &plain, "pilot.strace");
    assert_ok(&s.pre(&["read-cache", "4"], &[]), "read-cache");
    let closing = format!("import os; os.closerange(3, 1 << 20); {plain}");
    let calls = run("read-cache", &closing, "replay.strace");
    let modules: BTreeSet<String> = py.modules.iter().map(|p| p.display().to_string()).collect();
    let opened: Vec<&String> = calls
        .iter()
        .filter(|c| c.name == "openat")
        .filter_map(|c| c.path.as_ref())
        .filter(|p| modules.contains(*p))
        .collect();
    assert!(opened.is_empty(), "modules opened, not served: {opened:?}");
}
