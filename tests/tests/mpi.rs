//! FMCaching for an MPI program: Open MPI's start-up (`MPI_Init`'s
//! component discovery: a listing of its component directory, a `stat` of
//! every `mca_*.so`, then ld.so's opens of the ones it loads) served from
//! the cache on every rank of `mpirun -np 4`, and its installed config
//! files (package content, as dpkg's lists say) with it.

use std::collections::BTreeMap;
use std::path::Path;

use dlfm_tests::mpi_hello;
use dlfm_tests::scenario::assert_ok;
use dlfm_tests::strace::{self, Call};
use dlfm_tests::Scenario;
use dlfm_workload::Spec;

/// `mpirun -np 4 program` under strace -f: the sorted output lines and,
/// per rank (a process that executed `program`), its calls.
fn mpirun(
    s: &Scenario,
    program: &Path,
    op: Option<&str>,
    log: &str,
) -> (Vec<String>, BTreeMap<u32, Vec<Call>>) {
    let cmd = mpi_hello::mpirun(s, program, op, 4);
    let path = s.root.join(log);
    let out = strace::run_traced(&cmd, &path);
    assert_ok(&out, &format!("mpirun {op:?}"));
    let lines = mpi_hello::sorted_lines(&out.stdout);
    let program = program.to_str().unwrap();
    (
        lines,
        strace::per_process(strace::parse(&path), |p| p == program),
    )
}

/// Open MPI's component directory (where `mca_*.so` lie).
fn component_dir(calls: &[Call]) -> String {
    calls
        .iter()
        .filter_map(|c| c.path.as_deref())
        .find(|p| p.contains("/mca_") && p.ends_with(".so"))
        .and_then(|p| Path::new(p).parent())
        .expect("MPI_Init looks at its components")
        .display()
        .to_string()
}

/// The directories of the installed `*mca-params*.conf` files that a rank
/// looked up (Open MPI's and PMIx's), outside the user's home.
fn installed_config_dirs(calls: &[Call]) -> Vec<String> {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let mut dirs: Vec<String> = calls
        .iter()
        .filter_map(|c| c.path.as_deref())
        .filter(|p| p.contains("mca-params") && p.ends_with(".conf") && !p.starts_with(&home))
        .filter_map(|p| Some(Path::new(p).parent()?.display().to_string()))
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

/// The calls in `calls` on Open MPI's component directory or anything in it.
fn on_components<'a>(calls: &'a [Call], dir: &str) -> Vec<&'a Call> {
    calls.iter().filter(|c| c.is_under(dir)).collect()
}

#[test]
fn mpi_init_finds_its_components_in_the_cache_on_every_rank() {
    let s = Scenario::embedded(Spec::small());
    let hello = mpi_hello::build(&s);
    let copy = s.root.join("hello.dlfm");
    s.program_copy(&hello, &copy);
    let expected = mpi_hello::expected_lines(4);

    let (out, base) = mpirun(&s, &hello, None, "base.strace");
    assert_eq!(out, expected);
    assert_eq!(base.len(), 4, "four ranks");
    let dir = component_dir(base.values().next().unwrap());

    assert_ok(&s.pre(&["write-cache"], &[]), "write-cache");
    let (out, pilot) = mpirun(&s, &copy, Some("write-cache"), "pilot.strace");
    assert_eq!(out, expected);
    assert_eq!(pilot.len(), 4);
    let packed = s.pre(&["read-cache", "4"], &[]);
    assert_ok(&packed, "read-cache");
    let (out, replay) = mpirun(&s, &copy, Some("read-cache"), "replay.strace");
    assert_eq!(out, expected);
    assert_eq!(replay.len(), 4);

    for (pid, calls) in &base {
        let n = on_components(calls, &dir).len();
        assert!(n > 100, "rank {pid} without dlfm: {n} calls on {dir}");
    }
    // Open MPI's and PMIx's installed config files (dpkg's lists name
    // them): read, and their `-override.conf` variants probed, by every
    // rank without dlfm; from the cache with it.
    let config_dirs = installed_config_dirs(base.values().next().unwrap());
    assert!(
        config_dirs.iter().any(|d| d.starts_with("/etc/openmpi")),
        "ranks read Open MPI's config: {config_dirs:?}"
    );
    for (pid, calls) in &replay {
        let left: Vec<&str> = calls
            .iter()
            .filter(|c| config_dirs.iter().any(|d| c.is_under(d)))
            .map(|c| c.raw.as_str())
            .collect();
        assert!(
            left.is_empty(),
            "rank {pid} reached Open MPI's installed config in read-cache:\n{}",
            left.join("\n")
        );
    }
    for (pid, calls) in &replay {
        let left: Vec<&str> = on_components(calls, &dir)
            .iter()
            .map(|c| c.raw.as_str())
            .collect();
        assert!(
            left.is_empty(),
            "rank {pid} reached {dir} in read-cache:\n{}",
            left.join("\n")
        );
    }
    let count = |m: &BTreeMap<u32, Vec<Call>>| m.values().map(Vec::len).sum::<usize>() / m.len();
    eprintln!(
        "mpirun -np 4: per rank, calls on {dir} {} -> 0; all file calls {} -> {}",
        base.values()
            .map(|c| on_components(c, &dir).len())
            .sum::<usize>()
            / 4,
        count(&base),
        count(&replay)
    );
}
