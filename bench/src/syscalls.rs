//! `bench/syscalls`: on a generated program with many shared libraries,
//! measures per process, without dlfm and with read-cache (same session,
//! runs interleaved):
//! - the file-system calls that reach the kernel (strace), split into calls
//!   on recorded objects (paths ld.so looked up and their descriptors),
//!   calls on the cache file, and the rest;
//! - start-up wall time over `--runs` runs each (median, min, ratio);
//! - peak resident memory (GNU time's `%M`: see `timed`).
//!
//! Then the same for an unmodified program: Debian's python3, run through a
//! copy that loads through the embedded-wrapper ld.so (`dlpatch --embed
//! --program`), importing `--python-modules` generated C-extension modules,
//! against the original python3 without dlfm; and the same python3
//! importing a generated pure-Python package tree (`--tree-packages`, 55
//! modules each), which FMCaching (the interposer the pilot preloads)
//! serves; and with `--scientific`, numpy, scipy, pandas and matplotlib
//! from PyPI.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use dlfm_tests::strace::{self, looked_up, Call, LOOKUPS};
use dlfm_tests::Scenario;
use dlfm_workload::{generate_package_tree, generate_python, Spec};

/// Measure what dlfm's replay saves a many-library program.
#[derive(Parser)]
struct Args {
    /// Shared libraries in the generated program.
    #[arg(long, default_value_t = 200)]
    libs: usize,
    /// Timed runs per configuration (at least 10 for the published figure).
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Generated extension modules python3 imports (0: skip that case).
    #[arg(long, default_value_t = 100)]
    python_modules: usize,
    /// Top-level packages of the generated pure-Python tree python3 imports
    /// (5 subpackages of 10 modules each; 0: skip that case).
    #[arg(long, default_value_t = 10)]
    tree_packages: usize,
    /// Also time numpy, scipy and pandas from target/pydeps (`.ci/run`
    /// installs them).
    #[arg(long)]
    scientific: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    eprintln!("generating and building {} libraries ...", args.libs);
    let s = Scenario::new(Spec::bench(args.libs));
    eprintln!("pilot and pack ...");
    s.pilot_and_pack();

    let base = s.traced(s.cmd(None), "base.strace");
    let replay = s.traced(s.cmd(Some("read-cache")), "replay.strace");
    let recorded = looked_up(&base);
    let cache = s.cache().canonicalize()?.display().to_string();
    let (b, r) = (
        Counts::of(&base, &recorded, &cache),
        Counts::of(&replay, &recorded, &cache),
    );

    let runs = run_interleaved(args.runs, &s.w.expected_stdout, |op| s.cmd(op))?;

    let spec = Spec::bench(args.libs);
    println!(
        "dlfm bench/syscalls: {} libraries x {} functions, {} RUNPATH + {} LD_LIBRARY_PATH directories, {} loaded with dlopen",
        spec.libs, spec.funcs_per_lib, spec.runpath_dirs, spec.env_dirs, spec.dlopen_libs
    );
    println!(
        "cache: {} ({} KiB)",
        s.cache().display(),
        std::fs::metadata(s.cache())?.len() / 1024
    );
    println!();
    println!(
        "file-system calls per process (strace -f){:>14}{:>14}",
        "without dlfm", "read-cache"
    );
    let names: BTreeSet<&String> = b.by_name.keys().chain(r.by_name.keys()).collect();
    for n in names {
        println!(
            "  {:<40}{:>14}{:>14}",
            n,
            b.by_name.get(n).copied().unwrap_or(0),
            r.by_name.get(n).copied().unwrap_or(0)
        );
    }
    println!("  {:<40}{:>14}{:>14}", "total", b.total, r.total);
    println!(
        "  {:<40}{:>14}{:>14}",
        "on recorded paths or their descriptors", b.recorded, r.recorded
    );
    println!(
        "  {:<40}{:>14}{:>14}",
        "failed with ENOENT", b.enoent, r.enoent
    );
    println!(
        "  {:<40}{:>14}{:>14}",
        "on the cache file", b.cache, r.cache
    );
    println!(
        "  {:<40}{:>14}{:>14}",
        "other (stdout, the trace file, ...)",
        b.other(),
        r.other()
    );
    println!();
    print_runs(&runs);
    if args.python_modules > 0 {
        python_case(extension_case(&args)?, args.runs)?;
    }
    if args.tree_packages > 0 {
        python_case(package_tree_case(&args)?, args.runs)?;
    }
    if args.scientific {
        match scientific_case()? {
            Some(case) => python_case(case, args.runs)?,
            None => println!("\nnumpy/scipy/pandas/matplotlib case skipped: not in target/pydeps"),
        }
    }
    Ok(())
}
/// A predicate on traced calls, for one row of a table.
type Row = (&'static str, Box<dyn Fn(&Call) -> bool>);

/// One configuration of an unmodified python3: what it runs and what the
/// table counts.
struct PyCase {
    /// The table's heading.
    title: String,
    /// The scenario (its embedded-wrapper ld.so and run directory).
    s: Scenario,
    /// python3's arguments.
    args: Vec<std::ffi::OsString>,
    /// Extra environment.
    env: Vec<(&'static str, std::ffi::OsString)>,
    /// What python3 prints.
    expected: String,
    /// Rows after "total".
    rows: Vec<Row>,
}

/// The path a call names, or the file behind its descriptor.
fn target(c: &Call) -> &str {
    c.path.as_deref().or(c.fd_path.as_deref()).unwrap_or("")
}

/// `.py` and `.pyc` files.
fn is_python_file(c: &Call) -> bool {
    let p = target(c);
    p.ends_with(".py") || p.ends_with(".pyc")
}

/// Runs `case` through a copy of python3 made by `dlpatch --embed
/// --program`: pilot, pack, one run that stages the node copy (in /dev/shm,
/// where `dlfm run` stages), one traced run of python3 and of the copy in
/// read-cache, then `runs` timed runs of each, interleaved; prints a table.
fn python_case(mut case: PyCase, runs: usize) -> Result<()> {
    let python = Path::new("/usr/bin/python3").canonicalize()?;
    case.s.stage_in_memory()?;
    let s = &case.s;
    let copy = s.root.join("python3.dlfm");
    s.program_copy(&python, &copy);
    let cmd = |program: &Path, op: Option<&str>| {
        let mut c = s.cmd_for(program, op);
        c.args(&case.args).env("PYTHONDONTWRITEBYTECODE", "1");
        for (k, v) in &case.env {
            c.env(k, v);
        }
        c
    };
    let pre = |a: &[&str]| -> Result<()> {
        let out = s.pre(a, &[]);
        if !out.status.success() {
            bail!("dlfm.pre {a:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    };
    pre(&["write-cache"])?;
    timed(cmd(&copy, Some("write-cache")), &case.expected)?;
    pre(&["read-cache", "1"])?;
    let trace = |c: Command, name: &str| -> Vec<Call> {
        let log = s.root.join(name);
        strace::run_traced(&c, &log);
        strace::parse(&log)
    };
    // The node's first process stages the node copy; the traced one is a
    // later rank's.
    timed(cmd(&copy, Some("read-cache")), &case.expected)?;
    let base = trace(cmd(&python, None), "py-base.strace");
    let replay = trace(cmd(&copy, Some("read-cache")), "py-replay.strace");
    let timings = run_interleaved(runs, &case.expected, |op| {
        cmd(if op.is_some() { &copy } else { &python }, op)
    })?;
    println!();
    println!("{}", case.title);
    println!(
        "file-system calls per process (strace -f){:>14}{:>14}",
        "python3", "read-cache"
    );
    let count = |f: &dyn Fn(&Call) -> bool| {
        (
            base.iter().filter(|c| f(c)).count(),
            replay.iter().filter(|c| f(c)).count(),
        )
    };
    let (bt, rt) = count(&|_| true);
    println!("  {:<40}{:>14}{:>14}", "total", bt, rt);
    let (bl, rl) = count(&|c| s.is_node_local(c));
    println!(
        "  {:<40}{:>14}{:>14}",
        "  on the node's copy (node-local)", bl, rl
    );
    println!(
        "  {:<40}{:>14}{:>14}",
        "  elsewhere (the file systems)",
        bt - bl,
        rt - rl
    );
    for (label, f) in &case.rows {
        let (b, r) = count(f.as_ref());
        let share = if b > 0 {
            format!("{:>8.1}%", 100.0 * r as f64 / b as f64)
        } else {
            String::new()
        };
        println!("  {label:<40}{b:>14}{r:>14}{share}");
    }
    print_runs(&timings);
    Ok(())
}

/// Rows for calls under `root`: all of them, the `.py`/`.pyc` ones, the
/// directories' (stat, listing), then listings and ENOENT anywhere.
fn tree_rows(root: String) -> Vec<Row> {
    let (r1, r2, r3) = (root.clone(), root.clone(), root);
    vec![
        (
            "on the tree (files and directories)",
            Box::new(move |c: &Call| target(c).starts_with(&r1)),
        ),
        (
            "  on its .py/.pyc files",
            Box::new(move |c: &Call| target(c).starts_with(&r2) && is_python_file(c)),
        ),
        (
            "  its ENOENT probes",
            Box::new(move |c: &Call| {
                target(c).starts_with(&r3) && c.errno.as_deref() == Some("ENOENT")
            }),
        ),
        (
            "on any .py/.pyc file (stdlib too)",
            Box::new(is_python_file),
        ),
        (
            "on the standard library (/usr/lib/python3*)",
            Box::new(|c: &Call| target(c).starts_with("/usr/lib/python3")),
        ),
        (
            "getdents64 (directory listings)",
            Box::new(|c: &Call| c.name == "getdents64"),
        ),
        (
            "failed with ENOENT",
            Box::new(|c: &Call| c.errno.as_deref() == Some("ENOENT")),
        ),
    ]
}

/// Unmodified python3 importing a generated pure-Python package tree: what
/// FMCaching serves.
fn package_tree_case(args: &Args) -> Result<PyCase> {
    let python = Path::new("/usr/bin/python3").canonicalize()?;
    eprintln!(
        "python3: generating a package tree of {} packages ...",
        args.tree_packages
    );
    let s = Scenario::embedded(Spec::small());
    let tree = generate_package_tree(&python, &s.root.join("py"), args.tree_packages, 5, 10, 3)?;
    Ok(PyCase {
        title: format!(
            "unmodified python3 importing a package tree of {} modules (FMCaching), through dlpatch --embed --program",
            tree.imports
        ),
        args: vec![tree.script.into()],
        env: Vec::new(),
        expected: tree.expected_stdout,
        rows: tree_rows(tree.root.display().to_string()),
        s,
    })
}

/// numpy, scipy, pandas and matplotlib from PyPI in target/pydeps
/// (`.ci/run` installs them), if there: imported, and a figure drawn
/// (matplotlib reads its style sheets, its matplotlibrc and a font: package
/// data).
fn scientific_case() -> Result<Option<PyCase>> {
    let Some(pydeps) = dlfm_tests::pydeps::pydeps() else {
        return Ok(None);
    };
    let script = "import numpy as np, scipy.linalg, scipy.sparse, scipy.optimize, pandas as pd; \
                  import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt; \
                  fig, ax = plt.subplots(figsize=(2, 2), dpi=50); ax.plot([1, 3, 2]); \
                  ax.set_title('dlfm'); fig.canvas.draw(); \
                  print(np.__version__, round(float(scipy.linalg.det(np.eye(3) * 2)), 3), \
                  int(pd.DataFrame({'a': range(10)})['a'].sum()), \
                  int(np.asarray(fig.canvas.buffer_rgba()).sum()))";
    let python = Path::new("/usr/bin/python3").canonicalize()?;
    let s = Scenario::embedded(Spec::small());
    // matplotlib's font cache: written by the first run, read by the rest.
    let mplconfig = s.root.join("mplconfig");
    let out = Command::new(&python)
        .args(["-c", script])
        .env("PYTHONPATH", &pydeps)
        .env("MPLCONFIGDIR", &mplconfig)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()?;
    if !out.status.success() {
        bail!(
            "python3 -c {script:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(Some(PyCase {
        title: "unmodified python3 importing numpy, scipy.{linalg,sparse,optimize}, pandas and matplotlib from PyPI, drawing a figure (FMCaching)"
            .to_string(),
        s,
        args: vec!["-c".into(), script.into()],
        env: vec![
            ("PYTHONPATH", pydeps.clone().into()),
            ("MPLCONFIGDIR", mplconfig.into()),
        ],
        expected: String::from_utf8(out.stdout)?,
        rows: tree_rows(pydeps.display().to_string()),
    }))
}

/// Unmodified python3 importing generated extension modules.
fn extension_case(args: &Args) -> Result<PyCase> {
    let python = Path::new("/usr/bin/python3").canonicalize()?;
    eprintln!(
        "python3: generating {} extension modules ...",
        args.python_modules
    );
    let s = Scenario::embedded(Spec::small());
    let py = generate_python(&python, args.python_modules, 11, &s.root.join("py"))?;
    let libs: BTreeSet<String> = py
        .modules
        .iter()
        .chain(&py.deps)
        .map(|p| p.display().to_string())
        .collect();
    let libs = std::sync::Arc::new(libs);
    let by_loader =
        |c: &Call| ["openat", "read", "pread64", "mmap", "close"].contains(&c.name.as_str());
    let (l1, l2) = (libs.clone(), libs);
    let enoent = |c: &Call| c.errno.as_deref() == Some("ENOENT");
    Ok(PyCase {
        title: format!(
            "unmodified python3 importing {} extension modules (each with its own library), through dlpatch --embed --program",
            args.python_modules
        ),
        args: vec![py.script.into()],
        env: Vec::new(),
        expected: py.expected_stdout,
        rows: vec![
            (
                "open/read/mmap/close of modules, libs",
                Box::new(move |c: &Call| l1.contains(target(c)) && by_loader(c)),
            ),
            (
                "stat of modules by importlib (libc)",
                Box::new(move |c: &Call| l2.contains(target(c)) && !by_loader(c)),
            ),
            ("failed with ENOENT", Box::new(enoent)),
            (
                "  of them ld.so's (openat of a .so)",
                Box::new(move |c: &Call| {
                    enoent(c)
                        && c.name == "openat"
                        && c.path.as_deref().is_some_and(|p| p.contains(".so"))
                }),
            ),
            ("python's own .py/.pyc files (libc)", Box::new(is_python_file)),
        ],
        s,
    })
}

/// Counts of one run's calls.
#[derive(Default)]
struct Counts {
    by_name: BTreeMap<String, usize>,
    total: usize,
    recorded: usize,
    enoent: usize,
    cache: usize,
}

impl Counts {
    fn of(calls: &[Call], recorded: &BTreeSet<String>, cache: &str) -> Counts {
        let mut c = Counts::default();
        for call in calls {
            *c.by_name.entry(call.name.clone()).or_default() += 1;
            c.total += 1;
            let on_recorded = call
                .path
                .as_ref()
                .is_some_and(|p| LOOKUPS.contains(&call.name.as_str()) && recorded.contains(p))
                || call.fd_path.as_ref().is_some_and(|p| recorded.contains(p));
            if on_recorded {
                c.recorded += 1;
            } else if call.fd_path.as_deref() == Some(cache)
                || call
                    .path
                    .as_deref()
                    .is_some_and(|p| p.ends_with("dlcache.dat"))
            {
                c.cache += 1;
            }
            if call.errno.as_deref() == Some("ENOENT") {
                c.enoent += 1;
            }
        }
        c
    }

    fn other(&self) -> usize {
        self.total - self.recorded - self.cache
    }
}

/// Runs `cmd`, checks its output, and returns its wall time and peak RSS.
///
/// The peak is GNU time's (`%M`): a child's `ru_maxrss` starts from the
/// memory of the process that spawned it (the kernel keeps the larger of
/// the two across `exec`), and this benchmark holds megabytes of parsed
/// traces, so the program is started by the small `time` process instead.
fn timed(cmd: Command, expected: &str) -> Result<(Duration, u64)> {
    let report = std::env::temp_dir().join(format!("dlfm-bench-rss.{}", std::process::id()));
    let mut timed = Command::new(TIME);
    timed
        .args(["-f", "%M", "-o"])
        .arg(&report)
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .stdout(std::process::Stdio::piped());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => timed.env(k, v),
            None => timed.env_remove(k),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        timed.current_dir(dir);
    }
    let start = Instant::now();
    let out = timed
        .output()
        .with_context(|| format!("{TIME} (apt-get install time)"))?;
    let elapsed = start.elapsed();
    let kib = std::fs::read_to_string(&report);
    let _ = std::fs::remove_file(&report);
    if !out.status.success() {
        bail!("the program failed ({})", out.status);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    if stdout != expected {
        bail!("wrong output: {stdout:?}, expected {expected:?}");
    }
    let kib = kib.with_context(|| format!("{TIME}'s report {}", report.display()))?;
    let kib = kib
        .trim()
        .parse()
        .with_context(|| format!("{TIME}'s report: {kib:?}"))?;
    Ok((elapsed, kib))
}

/// GNU time (Debian's package `time`).
const TIME: &str = "/usr/bin/time";

/// Wall times and peak resident memory (KiB) of interleaved runs: index 0
/// without dlfm, 1 in read-cache.
struct Runs {
    times: [Vec<Duration>; 2],
    rss: [Vec<u64>; 2],
}

/// Runs `cmd(None)` (without dlfm) and `cmd(Some("read-cache"))`, `runs`
/// times each, interleaved, checking each one's output against `expected`.
fn run_interleaved(
    runs: usize,
    expected: &str,
    cmd: impl Fn(Option<&str>) -> Command,
) -> Result<Runs> {
    eprintln!("timing {runs} runs of each, interleaved ...");
    let mut out = Runs {
        times: [Vec::new(), Vec::new()],
        rss: [Vec::new(), Vec::new()],
    };
    for _ in 0..runs {
        for (i, op) in [None, Some("read-cache")].into_iter().enumerate() {
            let (t, kib) = timed(cmd(op), expected)?;
            out.times[i].push(t);
            out.rss[i].push(kib);
        }
    }
    Ok(out)
}

/// Prints `runs`: medians, minimum times, ratios.
fn print_runs(runs: &Runs) {
    let Runs { times, rss } = runs;
    let (mb, mr) = (median(&times[0]), median(&times[1]));
    println!(
        "start-up to exit, wall time, {} runs each, interleaved",
        times[0].len()
    );
    println!("  {:<40}{:>14}{:>14}", "median (ms)", ms(mb), ms(mr));
    println!(
        "  {:<40}{:>14}{:>14}",
        "min (ms)",
        ms(min(&times[0])),
        ms(min(&times[1]))
    );
    println!(
        "  {:<40}{:>28.3}",
        "ratio read-cache / without (median)",
        mr.as_secs_f64() / mb.as_secs_f64()
    );
    let (kb, kr) = (median_u64(&rss[0]), median_u64(&rss[1]));
    println!("peak resident memory per process (GNU time's %M, median)");
    println!("  {:<40}{:>14}{:>14}", "KiB", kb, kr);
    println!(
        "  {:<40}{:>28.3}",
        "ratio read-cache / without",
        kr as f64 / kb as f64
    );
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v[v.len() / 2]
}

fn min(v: &[Duration]) -> Duration {
    v.iter().min().copied().unwrap_or_default()
}

fn median_u64(v: &[u64]) -> u64 {
    let mut v = v.to_vec();
    v.sort_unstable();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}
