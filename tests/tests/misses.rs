//! A cache that learns: lookups the wide run makes that the pilot never saw
//! (here a library chosen by the MPI world size) are recorded once per node
//! in read-cache, `dlfm.pre report` names them, and the next
//! `dlfm.pre read-cache` folds them in, so that the next wide run is fully
//! served: strace shows nothing on those paths.

use std::process::Command;

use dlfm_tests::mpi_hello;
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
}
