//! Replay looks the same from inside the process: with the node's copy, a
//! served library's mappings in `/proc/self/maps` (and `/proc/PID/maps`,
//! `/proc/PID/map_files`) and a served file's `/proc/self/fd/N` name a file
//! whose path ends with the file's own canonical path, so a program that
//! takes a branch from them takes the pilot's; and gdb attached to a
//! replayed process resolves the served library's symbols.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use dlfm_tests::scenario::{assert_ok, rpath};
use dlfm_tests::Scenario;
use dlfm_workload::Spec;

/// Decides from its own maps whether its plugin library is mapped (torch
/// preloads its CUDA libraries when it finds them missing): mapped, it
/// calls it; not, it loads another library the pilot never saw. It also
/// opens the plugin's file and checks `/proc/self/fd/N`. With an argument
/// it stops in the plugin until killed (for gdb).
const PROGRAM: &str = r#"
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
extern int plug(int wait);
int main(int argc, char **argv)
{
    char line[8192];
    int mapped = 0;
    FILE *maps = fopen("/proc/self/maps", "r");
    while (maps && fgets(line, sizeof line, maps))
        if (strstr(line, SUFFIX "\n"))
            mapped = 1;
    if (maps)
        fclose(maps);
    if (!mapped) {
        void *h = dlopen("libother.so", RTLD_NOW);
        printf("plugin not mapped: loaded libother.so (%s)\n", h ? "found" : dlerror());
        return 0;
    }
    char fdpath[64], target[4096];
    int fd = open(PLUGIN, O_RDONLY);
    snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(fdpath, target, sizeof target - 1);
    target[n > 0 ? n : 0] = 0;
    size_t t = strlen(target), s = strlen(SUFFIX);
    int same = t >= s && strcmp(target + t - s, SUFFIX) == 0;
    printf("plugin mapped, fd names it: %s, plug %d\n", same ? "yes" : "no", plug(argc > 1));
    return 0;
}
"#;

/// A child killed (and reaped) when dropped, a failing test included.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_replayed_program_sees_its_own_files_and_takes_the_pilots_branch() {
    let s = Scenario::new(Spec::small());
    let plug = s.shared_lib(
        "plug",
        "#include <stdio.h>\n#include <unistd.h>\n\
         int plug(int wait) { if (wait) { puts(\"ready\"); fflush(stdout); for (;;) pause(); } return 7; }\n",
    );
    s.shared_lib("other", "int other(void) { return 1; }\n");
    // The program finds its plugin through a symbolic link to its
    // directory: without dlfm the kernel names the real path in the maps.
    let real_dir = plug.parent().unwrap().canonicalize().unwrap();
    let link = s.root.join("libs-link");
    std::os::unix::fs::symlink(&real_dir, &link).unwrap();
    let suffix = real_dir.join("libplug.so");
    let prog = s.build_c(
        "branchy",
        PROGRAM,
        &[
            &rpath(&link),
            &format!("-DSUFFIX=\"{}\"", suffix.display()),
            &format!("-DPLUGIN=\"{}\"", link.join("libplug.so").display()),
            &format!("-L{}", real_dir.display()),
            "-lplug",
            "-g",
        ],
    );
    let expected = "plugin mapped, fd names it: yes, plug 7\n";
    let run = |op: Option<&str>| {
        let mut c = s.cmd_for(&prog, op);
        c.env("DLCACHE_DBG", "1");
        let out = c.output().unwrap();
        assert_ok(&out, &format!("{op:?}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(run(None), expected, "without dlfm");
    assert_ok(&s.pre(&["write-cache"], &[]), "write-cache");
    assert_eq!(run(Some("write-cache")), expected, "the pilot");
    assert_ok(
        &s.pre(&["read-cache", "4"], &[("DLCACHE_DBG", "1")]),
        "read-cache",
    );
    // The first replay after a fresh pack: the same branch, nothing missed.
    assert_eq!(run(Some("read-cache")), expected, "the replay");
    let summaries: Vec<String> = s
        .trace_text()
        .lines()
        .filter(|l| l.contains("summary: read-cache"))
        .map(String::from)
        .collect();
    assert!(
        !summaries.is_empty() && summaries.iter().all(|l| l.contains(" missed 0,")),
        "{summaries:#?}"
    );
    let [copy] = &s.staged_copies()[..] else {
        panic!("one node copy expected")
    };
    // Without the node copy the mappings name the cache file: the program
    // takes the other branch (what replay did before the copy was a tree,
    // and the reason the fidelity needs staging).
    let mut c = s.cmd_for(&prog, Some("read-cache"));
    c.env("DLFM_STAGE", "off");
    let out = c.output().unwrap();
    assert_ok(&out, "replay without staging");
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("plugin not mapped"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A replayed process seen from outside: its maps and map_files name the
    // plugin's node-local copy, under the plugin's own path; gdb attached
    // to it resolves the plugin's symbols and backtraces through it.
    let mut c = s.cmd_for(&prog, Some("read-cache"));
    c.arg("wait").stdout(Stdio::piped());
    let mut child = Killed(c.spawn().unwrap());
    let mut ready = String::new();
    BufReader::new(child.0.stdout.as_mut().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(ready, "ready\n");
    let pid = child.0.id();
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let in_copy = Scenario::in_copy(copy, &plug);
    let plug_maps: Vec<&str> = maps.lines().filter(|l| l.ends_with("libplug.so")).collect();
    assert!(!plug_maps.is_empty(), "{maps}");
    for l in &plug_maps {
        assert!(
            l.ends_with(in_copy.to_str().unwrap()) && l.ends_with(suffix.to_str().unwrap()),
            "{l}"
        );
    }
    let linked: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/map_files"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|p| p.display().to_string())
        .filter(|p| p.ends_with("libplug.so"))
        .collect();
    assert!(
        !linked.is_empty() && linked.iter().all(|p| Path::new(p) == in_copy),
        "{linked:?}"
    );
    let gdb = Command::new("gdb")
        .args(["-batch", "-nx", "-p", &pid.to_string()])
        .args(["-ex", "info sharedlibrary", "-ex", "bt"])
        .output()
        .expect("gdb (scripts/setup-debian.sh installs it)");
    let text = String::from_utf8_lossy(&gdb.stdout);
    let shared: Vec<&str> = text.lines().filter(|l| l.contains("libplug.so")).collect();
    assert!(
        shared.iter().any(|l| l.contains("Yes")),
        "gdb read the plugin's symbols:\n{text}\n{}",
        String::from_utf8_lossy(&gdb.stderr)
    );
    assert!(
        text.lines()
            .any(|l| l.contains(" plug (") || l.contains(" in plug (")),
        "a backtrace through the plugin:\n{text}"
    );
    assert!(
        text.lines().any(|l| l.contains(" main (")),
        "back to main:\n{text}"
    );
}

/// Python's view: a served module's descriptor (`/proc/self/fd/N`) ends with
/// the module's canonical path, and no mapping names the cache, in pilot
/// and replay alike.
#[test]
fn python_sees_its_modules_under_their_own_paths() {
    let (s, copy) = Scenario::python();
    let code = s.root.join("code");
    std::fs::create_dir_all(&code).unwrap();
    std::fs::write(code.join("helper.py"), "VALUE = 3\n").unwrap();
    let script = code.join("main.py");
    std::fs::write(
        &script,
        r#"import os, sys
import helper, json
fd = os.open(helper.__file__, os.O_RDONLY)
own = os.readlink(f"/proc/self/fd/{fd}").endswith(os.path.realpath(helper.__file__))
maps = open("/proc/self/maps").read()
print(own, "dlcache" in maps, "/lib-dynload/_json." in maps, helper.VALUE)
"#,
    )
    .unwrap();
    let run = |op: Option<&str>| {
        let out = s.cmd_for(&copy, op).arg(&script).output().unwrap();
        assert_ok(&out, &format!("{op:?}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let expected = "True False True 3\n";
    assert_eq!(run(None), expected);
    assert_ok(&s.pre(&["write-cache"], &[]), "write-cache");
    assert_eq!(run(Some("write-cache")), expected);
    assert_ok(&s.pre(&["read-cache", "4"], &[]), "read-cache");
    assert_eq!(run(Some("read-cache")), expected, "replay");
    assert_eq!(s.staged_copies().len(), 1);
}

/// A RUNPATH with an empty entry (`$ORIGIN:`, as CUDA's libraries carry)
/// makes ld.so look up libraries relative to the working directory: those
/// lookups are recorded with the directory they were relative to, served
/// when the replay runs there (no relative lookup reaches the file system),
/// and passed to the kernel in another directory.
#[test]
fn lookups_relative_to_the_working_directory_are_served_there_only() {
    let s = Scenario::new(Spec::small());
    let src = "int here(void) { return 42; }\n";
    let lib = s.shared_lib("here", src);
    // The library lies in the run directory (the working directory) and in
    // another one; the program finds it through the empty RUNPATH entry.
    std::fs::copy(&lib, s.run_dir.join("libhere.so")).unwrap();
    let elsewhere = s.root.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::copy(&lib, elsewhere.join("libhere.so")).unwrap();
    let origin_only = s.root.join("empty");
    std::fs::create_dir_all(&origin_only).unwrap();
    let prog = s.build_c(
        "relative",
        "#include <dlfcn.h>\n#include <stdio.h>\n\
         int main(void) { void *h = dlopen(\"libhere.so\", RTLD_NOW);\n\
         int (*f)(void) = h ? (int (*)(void))dlsym(h, \"here\") : 0;\n\
         printf(\"%d\\n\", f ? f() : -1); return 0; }\n",
        &[&format!(
            "-Wl,--enable-new-dtags,-rpath,{}:",
            origin_only.display()
        )],
    );
    let run = |op: Option<&str>, dir: &Path, log: &str| {
        let mut c = s.cmd_for(&prog, op);
        c.current_dir(dir);
        let (out, calls) = s.traced_output(&c, log, &format!("{op:?} in {}", dir.display()));
        assert_eq!(out, "42\n");
        calls
    };
    let relative = |calls: &[dlfm_tests::strace::Call]| -> Vec<String> {
        calls
            .iter()
            .filter(|c| c.name == "openat" && c.path.as_deref() == Some("libhere.so"))
            .map(|c| c.raw.clone())
            .collect()
    };
    let base = run(None, &s.run_dir, "base.strace");
    assert!(
        !relative(&base).is_empty(),
        "ld.so looks in the working directory"
    );
    assert_ok(&s.pre(&["write-cache"], &[]), "write-cache");
    run(Some("write-cache"), &s.run_dir, "pilot.strace");
    assert_ok(&s.pre(&["read-cache", "4"], &[]), "read-cache");
    let here = run(Some("read-cache"), &s.run_dir, "here.strace");
    assert!(relative(&here).is_empty(), "{:#?}", relative(&here));
    // Elsewhere the same relative name is another file: to the kernel.
    let mut c = s.cmd_for(&prog, Some("read-cache"));
    c.current_dir(&elsewhere).env("DLFM_CACHE", s.cache());
    let (out, calls) = s.traced_output(&c, "elsewhere.strace", "replay elsewhere");
    assert_eq!(out, "42\n");
    assert!(
        !relative(&calls).is_empty(),
        "passed to the kernel elsewhere"
    );
}
