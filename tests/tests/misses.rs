//! A cache that learns: lookups the wide run makes that the pilot never saw
//! (here a library chosen by the MPI world size) are recorded once per node
//! in read-cache, `dlfm.pre report` names them, and the next
//! `dlfm.pre read-cache` folds them in, so that the next wide run is fully
//! served: strace shows nothing on those paths.

use std::process::Command;

use dlfm_tests::mpi_hello;
use dlfm_tests::pip_package;
use dlfm_tests::scenario::{assert_ok, rpath};
use dlfm_tests::Scenario;
use dlfm_workload::Spec;
use serde_json::Value;

/// Loads `libnarrow.so` in a run of up to 4 ranks, `libwide.so` in a wider
/// one (the world size comes from Open MPI's variable).
const PROGRAM: &str = r#"
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
int main(void)
{
    const char *size = getenv("OMPI_COMM_WORLD_SIZE");
    const char *name = size && atoi(size) > 4 ? "libwide.so" : "libnarrow.so";
    void *h = dlopen(name, RTLD_NOW);
    if (!h) { fprintf(stderr, "%s\n", dlerror()); return 1; }
    int (*value)(void) = (int (*)(void))dlsym(h, "value");
    printf("%s %d\n", name, value());
    return 0;
}
"#;

/// Runs `n` ranks of a job of world size `size` at once, each with the
/// environment `per_rank(i)` adds; checks every output.
fn ranks(s: &Scenario, prog: &std::path::Path, size: usize, local_ranks: bool) {
    let children: Vec<_> = (0..size)
        .map(|i| {
            let mut c = s.cmd_for(prog, Some("read-cache"));
            c.env("OMPI_COMM_WORLD_SIZE", size.to_string())
                .env("OMPI_COMM_WORLD_RANK", i.to_string())
                .env("DLCACHE_DBG", "1");
            if local_ranks {
                c.env("OMPI_COMM_WORLD_LOCAL_RANK", i.to_string());
            }
            c.stdout(std::process::Stdio::piped())
                .spawn()
                .expect("start a rank")
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().expect("wait for a rank");
        assert_ok(&out, "a rank");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "libwide.so 8\n");
    }
}

fn json(out: &std::process::Output) -> Value {
    assert_ok(out, "dlfm.pre --json");
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

fn node() -> String {
    let out = Command::new("uname").arg("-n").output().expect("uname");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn misses_of_a_wider_run_are_reported_and_folded_into_the_next_pack() {
    let s = Scenario::new(Spec::small());
    s.shared_lib("narrow", "int value(void) { return 2; }\n");
    let libs = s.shared_lib("wide", "int value(void) { return 8; }\n");
    let libs_dir = libs.parent().unwrap().to_path_buf();
    let empty = s.root.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let prog = s.build_c("ranks", PROGRAM, &[&rpath(&empty), &rpath(&libs_dir)]);

    // Pilot at width 2: only libnarrow.so is seen.
    assert_ok(&s.pre(&["write-cache"], &[]), "dlfm.pre write-cache");
    let mut pilot = s.cmd_for(&prog, Some("write-cache"));
    pilot.env("OMPI_COMM_WORLD_SIZE", "2");
    let out = pilot.output().unwrap();
    assert_ok(&out, "the pilot");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "libnarrow.so 2\n");
    let packed = json(&s.pre(&["read-cache", "8", "--json"], &[("DLCACHE_DBG", "1")]));
    assert_eq!(packed["folded"]["nodes"], serde_json::json!([]));
    let report = json(&s.pre(&["report", "--json"], &[]));
    assert_eq!(report["nodes"], serde_json::json!([]), "{report}");

    // Wide run, 8 ranks with local ranks: only local rank 0 records.
    ranks(&s, &prog, 8, true);
    let report = json(&s.pre(&["report", "--json"], &[]));
    assert_eq!(report["nodes"], serde_json::json!([node()]), "{report}");
    assert_eq!(report["recording_processes"], 1, "{report}");
    // 8 ranks at once without local ranks: all record, into one journal.
    ranks(&s, &prog, 8, false);
    let report = json(&s.pre(&["report", "--json"], &[]));
    assert_eq!(report["recording_processes"], 9, "{report}");
    let wide = libs.to_str().unwrap();
    let probe = empty.join("libwide.so");
    let paths: Vec<&Value> = report["dirs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|d| d["paths"].as_array().unwrap())
        .collect();
    let find = |p: &str| paths.iter().find(|m| m["path"] == p).copied();
    let hit = find(wide).unwrap_or_else(|| panic!("{wide} not reported: {report}"));
    assert_eq!(hit["found"], true);
    assert!(hit["calls"].as_array().unwrap().contains(&"open".into()));
    let miss = find(probe.to_str().unwrap()).expect("the ENOENT probe is reported");
    assert_eq!(miss["found"], false);
    assert!(
        paths
            .iter()
            .all(|m| !m["path"].as_str().unwrap().contains("narrow")),
        "libnarrow.so is in the cache: {report}"
    );
    let traced = &report["traced"];
    assert!(traced["processes"].as_u64().unwrap() >= 16, "{report}");
    assert!(traced["missed"].as_u64().unwrap() >= 16, "{report}");
    let human = s.pre(&["report"], &[]);
    assert_ok(&human, "dlfm.pre report");
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains(wide) && text.contains("read-cache WIDTH again"),
        "{text}"
    );

    // The next pack folds the misses in (no damage: the 8 writers did not
    // interleave), and the next wide run is served.
    let packed = json(&s.pre(&["read-cache", "8", "--json"], &[("DLCACHE_DBG", "1")]));
    assert_eq!(
        packed["folded"]["nodes"],
        serde_json::json!([node()]),
        "{packed}"
    );
    assert!(
        packed["folded"]["lookups"].as_u64().unwrap() >= 4,
        "{packed}"
    );
    assert_eq!(packed["damaged_bytes"], 0, "{packed}");
    let mut wide_run = s.cmd_for(&prog, Some("read-cache"));
    wide_run.env("OMPI_COMM_WORLD_SIZE", "8");
    let (stdout, calls) = s.traced_output(&wide_run, "wide.strace", "the wide run");
    assert_eq!(stdout, "libwide.so 8\n");
    let shared = s.shared(&calls);
    let touched: Vec<&str> = shared
        .iter()
        .filter(|c| {
            c.path.as_deref().is_some_and(|p| p.contains("libwide"))
                || c.fd_path.as_deref().is_some_and(|p| p.contains("libwide"))
                || c.errno.as_deref() == Some("ENOENT")
        })
        .map(|c| c.raw.as_str())
        .collect();
    assert!(
        touched.is_empty(),
        "after learning:\n{}",
        touched.join("\n")
    );
    let report = json(&s.pre(&["report", "--json"], &[]));
    assert_eq!(
        report["nodes"],
        serde_json::json!([]),
        "nothing missed: {report}"
    );
}

/// `mpirun -np n` of the hello with DLFM_OP=`op` (and trace files);
/// checks every rank's line.
fn mpirun(s: &Scenario, program: &std::path::Path, op: &str, n: usize) {
    let mut cmd = mpi_hello::mpirun(s, program, Some(op), n);
    cmd.env("DLCACHE_DBG", "1");
    let out = cmd.output().expect("mpirun (apt-get install openmpi-bin)");
    assert_ok(&out, &format!("mpirun -np {n} ({op})"));
    assert_eq!(
        mpi_hello::sorted_lines(&out.stdout),
        mpi_hello::expected_lines(n)
    );
}

#[test]
fn open_mpi_at_8_ranks_after_a_pilot_at_2_learns_what_it_missed() {
    let s = Scenario::embedded(Spec::small());
    let hello = mpi_hello::build(&s);
    let copy = s.root.join("hello.dlfm");
    s.program_copy(&hello, &copy);

    assert_ok(&s.pre(&["write-cache"], &[]), "write-cache");
    mpirun(&s, &copy, "write-cache", 2);
    assert_ok(
        &s.pre(&["read-cache", "8"], &[("DLCACHE_DBG", "1")]),
        "read-cache",
    );
    mpirun(&s, &copy, "read-cache", 8);
    let report = json(&s.pre(&["report", "--json"], &[]));
    eprintln!("after -np 8: {report}");
    assert_eq!(report["nodes"], serde_json::json!([node()]), "{report}");
    assert_eq!(
        report["recording_processes"], 1,
        "local rank 0 only: {report}"
    );
    let missed = report["missed_lookups"].as_u64().unwrap();
    let libraries = report["dirs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|d| d["paths"].as_array().unwrap())
        .filter(|p| p["found"] == true && p["path"].as_str().unwrap().contains(".so"))
        .count();
    assert!(missed > 0 && libraries > 0, "{report}");

    let packed = json(&s.pre(&["read-cache", "8", "--json"], &[("DLCACHE_DBG", "1")]));
    assert_eq!(
        packed["folded"]["lookups"].as_u64(),
        Some(missed),
        "{packed}"
    );
    mpirun(&s, &copy, "read-cache", 8);
    let report = json(&s.pre(&["report", "--json"], &[]));
    assert_eq!(
        report["nodes"],
        serde_json::json!([]),
        "after learning: {report}"
    );
    // Open MPI's /proc, /sys and configuration lookups are not noted: no
    // journal grows with what no pack can serve.
    assert_eq!(miss_journals(&s), vec![], "after learning");
}

/// The python program of the next test: it reads what no cache may serve
/// (`/proc`, `/sys`, a configuration file, a data file, a listing of its
/// job directory), walks `realpath` up from a module to `/`, and, with
/// `LEARN` set, imports a module from a directory the pilot never saw.
const LEARNER: &str = r#"
import os, sys
import helper
here = os.path.dirname(os.path.abspath(__file__))
with open("/proc/self/status") as f:
    assert f.read().startswith("Name:")
os.path.exists("/sys/devices/system/cpu/online")
with open("app.ini") as f:
    conf = f.read().strip()
with open("data.csv") as f:
    rows = len(f.read().splitlines())
names = sorted(n for n in os.listdir(".") if n.endswith(".csv"))
real = os.path.realpath(helper.__file__)
line = f"{conf} {rows} {names} {helper.VALUE} {real == os.path.join(here, 'helper.py')}"
if os.environ.get("LEARN"):
    sys.path.insert(0, os.environ["LEARN"])
    import learned
    line += f" {learned.VALUE}"
print(line)
"#;

/// The miss journals of the scenario's cache (files in
/// `dlcache.dat.misses/`).
fn miss_journals(s: &Scenario) -> Vec<(std::path::PathBuf, u64)> {
    let dir = s.run_dir.join("dlcache.dat.misses");
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let e = e.unwrap();
            (e.path(), e.metadata().unwrap().len())
        })
        .collect();
    v.sort();
    v
}

/// A replay notes exactly what the next pack would serve: a python program
/// whose misses are all unlearnable (`/proc`, `/sys`, its configuration,
/// its data) runs five times in read-cache and no miss journal appears;
/// every directory above its modules is served, so a `realpath` walk to `/`
/// reaches nothing; a module the pilot never saw is noted once, by one
/// process, folded by the next pack, and never noted again.
#[test]
fn a_replay_notes_only_what_the_next_pack_serves() {
    let (s, copy) = Scenario::python();
    let code = s.root.join("code");
    let learn = s.root.join("learn");
    for d in [&code, &learn] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(code.join("main.py"), LEARNER).unwrap();
    std::fs::write(code.join("helper.py"), "VALUE = 7\n").unwrap();
    std::fs::write(learn.join("learned.py"), "VALUE = 'learned'\n").unwrap();
    std::fs::write(s.run_dir.join("app.ini"), "conf\n").unwrap();
    std::fs::write(s.run_dir.join("data.csv"), "a\nb\nc\n").unwrap();
    let expected = "conf 3 ['data.csv'] 7 True\n";
    let run = |op: &str, learn_it: bool, log: Option<&str>| {
        let mut c = s.cmd_for(&copy, Some(op));
        c.arg(code.join("main.py"));
        let expect = if learn_it {
            c.env("LEARN", &learn);
            expected.replace('\n', " learned\n")
        } else {
            expected.to_string()
        };
        let (stdout, calls) = match log {
            Some(log) => s.traced_output(&c, log, op),
            None => {
                let out = c.output().unwrap();
                assert_ok(&out, op);
                (
                    String::from_utf8_lossy(&out.stdout).into_owned(),
                    Vec::new(),
                )
            }
        };
        assert_eq!(stdout, expect, "{op}");
        calls
    };
    assert_ok(&s.pre(&["write-cache"], &[]), "dlfm.pre write-cache");
    run("write-cache", false, None);
    assert_ok(&s.pre(&["read-cache", "4"], &[]), "dlfm.pre read-cache");

    for _ in 0..5 {
        run("read-cache", false, None);
    }
    assert_eq!(
        miss_journals(&s),
        vec![],
        "nothing learnable was missed, nothing may be noted"
    );

    // Python's realpath walk (an lstat of each directory) from a module up
    // to / reaches nothing: every directory above a served path is served.
    // (libc's own realpath, which python calls on the script at start-up,
    // reads links inside libc, out of the interposer's reach.)
    let calls = s.shared(&run("read-cache", false, Some("walk.strace")));
    let mut above = Vec::new();
    let mut at = code.join("helper.py");
    while let Some(dir) = at.parent() {
        above.push(dir.to_str().unwrap().to_string());
        at = dir.to_path_buf();
    }
    let walked: Vec<&str> = calls
        .iter()
        .filter(|c| c.name.contains("stat"))
        .filter(|c| {
            c.path
                .as_deref()
                .is_some_and(|p| above.iter().any(|a| a == p))
        })
        .map(|c| c.raw.as_str())
        .collect();
    assert!(
        walked.is_empty(),
        "directories above served paths:\n{}",
        walked.join("\n")
    );
    assert_eq!(miss_journals(&s), vec![]);

    // A learnable miss: noted once, by one process.
    run("read-cache", true, None);
    let journals = miss_journals(&s);
    assert_eq!(journals.len(), 1, "{journals:?}");
    let report = json(&s.pre(&["report", "--json"], &[]));
    let paths: Vec<&Value> = report["dirs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|d| d["paths"].as_array().unwrap())
        .collect();
    let module = learn.join("learned.py");
    let noted = paths
        .iter()
        .find(|p| p["path"] == module.to_str().unwrap())
        .unwrap_or_else(|| panic!("{} not noted: {report}", module.display()));
    assert_eq!(noted["processes"], 1, "{report}");
    assert_eq!(noted["found"], true);
    for p in &paths {
        let p = p["path"].as_str().unwrap();
        assert!(
            p.starts_with(learn.to_str().unwrap()),
            "noted {p}: {report}"
        );
    }
    let packed = json(&s.pre(&["read-cache", "4", "--json"], &[]));
    assert!(
        packed["folded"]["lookups"].as_u64().unwrap() >= 1,
        "{packed}"
    );
    assert_eq!(miss_journals(&s), vec![], "folded journals are removed");

    // Never noted again, and served.
    for _ in 0..3 {
        run("read-cache", true, None);
    }
    assert_eq!(
        miss_journals(&s),
        vec![],
        "a learned miss is not noted again"
    );
    let calls = s.shared(&run("read-cache", true, Some("learned.strace")));
    let touched: Vec<&str> = calls
        .iter()
        .filter(|c| {
            let p = c.path.as_deref().or(c.fd_path.as_deref()).unwrap_or("");
            p.ends_with("learned.py") || p.ends_with(".pyc") && p.contains("learned")
        })
        .map(|c| c.raw.as_str())
        .collect();
    assert!(
        touched.is_empty(),
        "after learning:\n{}",
        touched.join("\n")
    );
}

/// Package data a replay missed is learned: a pip-installed package
/// (`RECORD` names its files) lists its data directory and reads one style
/// in the pilot; a wide run reads another style from that directory. The
/// cache holds the directory's listing, so the replay notes the file it
/// missed; the next pack reads the manifest and serves it; then strace
/// shows no call on it, and runs note nothing more.
#[test]
fn package_data_a_replay_missed_is_learned() {
    missed_style_is_learned(true);
}

/// The same when the package only opens its data by name and nothing lists
/// the directory (matplotlib's fonts): the pack lists it anyway, because it
/// serves a file there and a manifest names every file in it.
#[test]
fn package_data_missed_in_a_directory_nothing_listed_is_learned() {
    missed_style_is_learned(false);
}

/// A style package's pilot reads `base.css`; a wide run reads `dark.css` too
/// (see the two tests above). `listed`: the package lists its styles.
fn missed_style_is_learned(listed: bool) {
    let (s, copy) = Scenario::python();
    let site = s.root.join("site");
    let data = site.join("stylepkg/styles");
    pip_package::install(
        &site,
        "stylepkg",
        &[
            (
                "stylepkg/__init__.py",
                "import os\n\
                 HERE = os.path.join(os.path.dirname(__file__), 'styles')\n\
                 def load(name):\n\
                 \x20   return open(os.path.join(HERE, name + '.css')).read().strip()\n\
                 NAMES = sorted(os.listdir(HERE)) if os.environ['LIST'] == '1' else []\n",
            ),
            ("stylepkg/styles/base.css", "a {}\n"),
            ("stylepkg/styles/dark.css", "b {}\n"),
            ("stylepkg/styles/print.css", "c {}\n"),
        ],
    );
    let script = s.root.join("styled.py");
    std::fs::write(
        &script,
        "import os, stylepkg\n\
         print(stylepkg.NAMES, [stylepkg.load(n) for n in os.environ['STYLES'].split(',')])\n",
    )
    .unwrap();
    let run = |op: &str, styles: &str, log: &str| -> Vec<dlfm_tests::strace::Call> {
        let mut c = s.cmd_for(&copy, Some(op));
        c.arg(&script)
            .env("PYTHONPATH", &site)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("STYLES", styles)
            .env("LIST", if listed { "1" } else { "0" });
        let (out, calls) = s.traced_output(&c, log, op);
        let loaded: Vec<String> = styles
            .split(',')
            .map(|n| {
                let body = std::fs::read_to_string(data.join(format!("{n}.css"))).unwrap();
                format!("'{}'", body.trim())
            })
            .collect();
        let names = if listed {
            "['base.css', 'dark.css', 'print.css']"
        } else {
            "[]"
        };
        assert_eq!(
            out,
            format!("{names} [{}]\n", loaded.join(", ")),
            "{op} {styles}"
        );
        calls
    };
    let dark = data.join("dark.css");
    let on_dark = |calls: &[dlfm_tests::strace::Call]| -> Vec<String> {
        s.shared(calls)
            .iter()
            .filter(|c| c.path.as_deref() == dark.to_str())
            .map(|c| c.raw.clone())
            .collect()
    };
    assert_ok(&s.pre(&["write-cache"], &[]), "dlfm.pre write-cache");
    let pilot = run("write-cache", "base", "pilot.strace");
    let listings_of_styles = pilot
        .iter()
        .filter(|c| c.name == "getdents64" && c.fd_path.as_deref() == data.to_str())
        .count();
    assert_eq!(
        listings_of_styles > 0,
        listed,
        "the pilot lists the styles only if asked to"
    );
    assert_ok(&s.pre(&["read-cache", "4"], &[]), "dlfm.pre read-cache");
    run("read-cache", "base", "served.strace");
    assert_eq!(miss_journals(&s), vec![], "the pilot's style is served");

    // The wide run reads dark.css too: it reaches the file system, once
    // noted.
    let missed = run("read-cache", "base,dark", "missed.strace");
    assert!(
        !on_dark(&missed).is_empty(),
        "dark.css is not in the cache yet"
    );
    assert_eq!(miss_journals(&s).len(), 1);
    let report = json(&s.pre(&["report", "--json"], &[]));
    let noted: Vec<&str> = report["dirs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|d| d["paths"].as_array().unwrap())
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    assert_eq!(noted, vec![dark.to_str().unwrap()], "{report}");
    let packed = json(&s.pre(&["read-cache", "4", "--json"], &[]));
    assert!(
        packed["folded"]["lookups"].as_u64().unwrap() >= 1,
        "{packed}"
    );

    // Learned: served, and never noted again.
    let learned = run("read-cache", "base,dark", "learned.strace");
    assert_eq!(
        on_dark(&learned),
        Vec::<String>::new(),
        "dark.css after learning"
    );
    run("read-cache", "base,dark", "again.strace");
    assert_eq!(
        miss_journals(&s),
        vec![],
        "a learned miss is not noted again"
    );
}
