//! The pilot and the packer: which process records, what a crash leaves,
//! children that fork and exec, and the refusal of libraries that changed
//! since the pilot.

use std::path::PathBuf;

use dlfm_runtime::summary;
use dlfm_tests::scenario::{assert_ok, rpath};
use dlfm_tests::Scenario;
use dlfm_workload::Spec;

fn journal(s: &Scenario) -> PathBuf {
    s.run_dir.join("dlcache.dat.journal")
}

#[test]
fn only_rank_zero_records() {
    let s = Scenario::new(Spec::small());
    for (var, rank, records) in [
        ("PMI_RANK", "1", false),
        ("SLURM_PROCID", "3", false),
        ("OMPI_COMM_WORLD_RANK", "0", true),
    ] {
        assert_ok(&s.pre(&["write-cache"], &[]), "write-cache");
        // dlfm.pre's Setup record; a recording process appends after it.
        let setup = std::fs::metadata(journal(&s)).unwrap().len();
        let mut cmd = s.cmd(Some("write-cache"));
        cmd.env(var, rank);
        s.run_ok(cmd);
        let len = std::fs::metadata(journal(&s)).unwrap().len();
        assert_eq!(
            len > setup,
            records,
            "{var}={rank}: journal of {len} bytes ({setup} from dlfm.pre)"
        );
    }
}

#[test]
fn a_library_changed_since_the_pilot_is_refused_by_name() {
    let s = Scenario::new(Spec::small());
    assert_ok(&s.pre(&["write-cache"], &[]), "write-cache");
    s.run_ok(s.cmd(Some("write-cache")));
    let lib = s.w.libs[4].clone();
    let mut bytes = std::fs::read(&lib).unwrap();
    bytes.extend_from_slice(&[0u8; 16]);
    std::fs::write(&lib, bytes).unwrap();
    let out = s.pre(&["read-cache", "24"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(lib.to_str().unwrap()) && err.contains("changed since the pilot"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(!s.cache().exists(), "no cache may be written");
}

/// A pilot killed half way (after loading, before exit) leaves a journal that
/// packs; so does a journal whose last record was torn, with a warning.
#[test]
fn a_crashed_pilot_still_packs() {
    let s = Scenario::new(Spec::small());
    let lib = s.shared_lib("late", "int late(void) { return 5; }\n");
    let prog = s.build_c(
        "crasher",
        "#include <dlfcn.h>\n#include <signal.h>\n#include <stdio.h>\n\
         int main(void) { void *h = dlopen(\"liblate.so\", RTLD_NOW); printf(\"%d\\n\", h != 0); fflush(stdout); raise(SIGKILL); return 0; }\n",
        &[&rpath(lib.parent().unwrap())],
    );
    assert_ok(&s.pre(&["write-cache"], &[]), "write-cache");
    let out = s.cmd_for(&prog, Some("write-cache")).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n");
    assert!(
        out.status.code().is_none(),
        "the pilot must have been killed"
    );
    // Tear the last record, as a process killed inside write(2) might.
    let mut bytes = std::fs::read(journal(&s)).unwrap();
    bytes.extend_from_within(..40);
    std::fs::write(journal(&s), &bytes).unwrap();
    let out = s.pre(&["read-cache", "4"], &[("DLCACHE_DBG", "1")]);
    assert_ok(&out, "read-cache after a crash");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("skipped 40 damaged journal bytes"), "{text}");
    // The dlopen the pilot made before dying is served in replay.
    let mut cmd = s.cmd_for(&prog, Some("read-cache"));
    cmd.env("DLCACHE_DBG", "1");
    // The program kills itself after its dlopen, in replay as in the pilot.
    let out = cmd.output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n", "replay");
    assert!(out.status.code().is_none(), "the replay ran to its SIGKILL");
    assert!(
        s.trace_text()
            .contains(&format!("openat served {}", lib.display())),
        "{}",
        s.trace_text()
    );
}

/// A recording process's children record too, into the same journal: a fork
/// that execs another program linked with the wrapper through the same
/// patched ld.so. In read-cache both replay.
#[test]
fn forked_and_execed_children_record_and_replay() {
    let s = Scenario::new(Spec::small());
    let parent_lib = s.shared_lib("parent", "int parent_value(void) { return 11; }\n");
    let child_lib = s.shared_lib("child", "int child_value(void) { return 22; }\n");
    let dir = parent_lib.parent().unwrap().to_path_buf();
    let child = s.build_c(
        "child",
        "#include <stdio.h>\nint child_value(void);\nint main(void) { printf(\"child %d\\n\", child_value()); return 0; }\n",
        &[&format!("-L{}", dir.display()), "-lchild", &rpath(&dir)],
    );
    let parent = s.build_c(
        "parent",
        "#include <stdio.h>\n#include <sys/wait.h>\n#include <unistd.h>\nint parent_value(void);\n\
         int main(int argc, char **argv) { printf(\"parent %d\\n\", parent_value()); fflush(stdout);\n\
         pid_t p = fork(); if (p == 0) { execl(argv[1], argv[1], (char *)0); _exit(127); }\n\
         int st = 0; waitpid(p, &st, 0); return WIFEXITED(st) ? WEXITSTATUS(st) : 1; }\n",
        &[&format!("-L{}", dir.display()), "-lparent", &rpath(&dir)],
    );
    let run = |op: &str, trace: bool| {
        let mut c = s.cmd_for(&parent, Some(op));
        c.arg(&child);
        if trace {
            c.env("DLCACHE_DBG", "1");
        }
        let out = c.output().unwrap();
        assert_ok(&out, op);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "parent 11\nchild 22\n"
        );
    };
    assert_ok(&s.pre(&["write-cache"], &[]), "write-cache");
    run("write-cache", false);
    let out = s.pre(&["read-cache", "4"], &[("DLCACHE_DBG", "1")]);
    assert_ok(&out, "read-cache");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("2 recording process(es)"), "{text}");
    assert!(
        text.contains("/parent") && text.contains("/child"),
        "both programs recorded:\n{text}"
    );

    run("read-cache", true);
    let traces = s.trace_text();
    for lib in [&parent_lib, &child_lib] {
        assert!(
            traces.contains(&format!("openat served {}", lib.display())),
            "{} not served:\n{traces}",
            lib.display()
        );
    }
    let summaries = traces
        .lines()
        .filter_map(|l| summary::parse(l.as_bytes()))
        .filter(|s| s.mode == b"read-cache" && s.missed == 0)
        .count();
    assert_eq!(
        summaries, 2,
        "parent and child both replay with no miss:\n{traces}"
    );
}

/// Eight children that exec a wrapper-linked program at the same moment all
/// record into the one journal: every record arrives whole (one write(2) per
/// record on an O_APPEND descriptor), and the journal packs with no damage.
#[test]
fn concurrent_recorders_do_not_corrupt_the_journal() {
    let s = Scenario::new(Spec::small());
    let child_lib = s.shared_lib("leaf", "int leaf_value(void) { return 7; }\n");
    let dir = child_lib.parent().unwrap().to_path_buf();
    let leaf = s.build_c(
        "leaf",
        "#include <stdio.h>\nint leaf_value(void);\nint main(void) { printf(\"%d\\n\", leaf_value()); return 0; }\n",
        &[&format!("-L{}", dir.display()), "-lleaf", &rpath(&dir)],
    );
    let fan = s.build_c(
        "fan",
        "#include <stdio.h>\n#include <sys/wait.h>\n#include <unistd.h>\n\
         int main(int argc, char **argv) { for (int i = 0; i < 8; i++) if (fork() == 0) { execl(argv[1], argv[1], (char *)0); _exit(127); }\n\
         int ok = 1, st; while (wait(&st) > 0) ok &= WIFEXITED(st) && WEXITSTATUS(st) == 0; return ok ? 0 : 1; }\n",
        &[],
    );
    assert_ok(&s.pre(&["write-cache"], &[]), "write-cache");
    let mut cmd = s.cmd_for(&fan, Some("write-cache"));
    cmd.arg(&leaf);
    let out = cmd.output().unwrap();
    assert_ok(&out, "fan-out pilot");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "7\n".repeat(8));
    let out = s.pre(&["read-cache", "4"], &[]);
    assert_ok(&out, "read-cache");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("from 9 recording process(es)"), "{text}");
    assert!(!text.contains("damaged"), "{text}");
    assert!(!text.contains("different results"), "{text}");
}
