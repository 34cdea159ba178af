//! `bench/syscalls`: on a generated program with many shared libraries,
//! measures per process, without dlfm and with read-cache (same session,
//! runs interleaved):
//! - the file-system calls that reach the kernel (strace), split into calls
//!   on recorded objects (paths ld.so looked up and their descriptors),
//!   calls on the cache file, and the rest;
//! - start-up wall time over `--runs` runs each (median, min, ratio);
//! - peak resident memory (ru_maxrss from wait4).
//!
//! Then the same for an unmodified program: Debian's python3, run through a
//! copy that loads through the embedded-wrapper ld.so (`dlpatch --embed
//! --program`), importing `--python-modules` generated C-extension modules,
//! against the original python3 without dlfm; and the same python3
//! importing a generated pure-Python package tree (`--tree-packages`, 55
//! modules each), which FMCaching (the interposer the pilot preloads)
//! serves.

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

    eprintln!("timing {} runs of each, interleaved ...", args.runs);
    let mut times = [Vec::new(), Vec::new()];
    let mut rss = [Vec::new(), Vec::new()];
    for _ in 0..args.runs {
        for (i, op) in [None, Some("read-cache")].into_iter().enumerate() {
            let (t, kib) = timed(s.cmd(op), &s.w.expected_stdout)?;
            times[i].push(t);
            rss[i].push(kib);
        }
    }

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
    let (mb, mr) = (median(&times[0]), median(&times[1]));
    println!(
        "start-up to exit, wall time, {} runs each, interleaved",
        args.runs
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
    println!();
    let (kb, kr) = (median_u64(&rss[0]), median_u64(&rss[1]));
    println!("peak resident memory per process (ru_maxrss, median)");
    println!("  {:<40}{:>14}{:>14}", "KiB", kb, kr);
    println!(
        "  {:<40}{:>28.3}",
        "ratio read-cache / without",
        kr as f64 / kb as f64
    );
    if args.python_modules > 0 {
        python_case(&args)?;
    }
    if args.tree_packages > 0 {
        package_tree_case(&args)?;
    }
    Ok(())
}
/// Unmodified python3 importing a generated pure-Python package tree: what
/// FMCaching serves.
fn package_tree_case(args: &Args) -> Result<()> {
    let python = Path::new("/usr/bin/python3").canonicalize()?;
    eprintln!(
        "python3: generating a package tree of {} packages ...",
        args.tree_packages
    );
    let s = Scenario::embedded(Spec::small());
    let tree = generate_package_tree(&python, &s.root.join("py"), args.tree_packages, 5, 10, 3)?;
    let copy = s.root.join("python3.dlfm");
    s.program_copy(&python, &copy);
    let cmd = |program: &Path, op: Option<&str>| {
        let mut c = s.cmd_for(program, op);
        c.arg(&tree.script);
        c
    };
    for a in [&["write-cache"][..], &["read-cache", "1"]] {
        if a[0] == "read-cache" {
            timed(cmd(&copy, Some("write-cache")), &tree.expected_stdout)?;
        }
        let out = s.pre(a, &[]);
        if !out.status.success() {
            bail!("dlfm.pre {a:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    let trace = |c: Command, name: &str| -> Vec<Call> {
        let log = s.root.join(name);
        strace::run_traced(&c, &log);
        strace::parse(&log)
    };
    let base = trace(cmd(&python, None), "tree-base.strace");
    let replay = trace(cmd(&copy, Some("read-cache")), "tree-replay.strace");
    let root = tree.root.display().to_string();
    let target = |c: &Call| c.path.clone().or(c.fd_path.clone()).unwrap_or_default();
    let under_tree = |c: &Call| target(c).starts_with(&root);
    let code = |c: &Call| {
        let p = target(c);
        p.ends_with(".py") || p.ends_with(".pyc")
    };
    eprintln!("timing {} runs of each, interleaved ...", args.runs);
    let mut times = [Vec::new(), Vec::new()];
    for _ in 0..args.runs {
        times[0].push(timed(cmd(&python, None), &tree.expected_stdout)?.0);
        times[1].push(timed(cmd(&copy, Some("read-cache")), &tree.expected_stdout)?.0);
    }
    println!();
    println!(
        "unmodified python3 importing a package tree of {} modules (FMCaching), through dlpatch --embed --program",
        tree.imports
    );
    println!(
        "file-system calls per process (strace -f){:>14}{:>14}",
        "python3", "read-cache"
    );
    let row = |label: &str, f: &dyn Fn(&Call) -> bool| {
        let n = |calls: &[Call]| calls.iter().filter(|c| f(c)).count();
        println!("  {:<40}{:>14}{:>14}", label, n(&base), n(&replay));
    };
    row("total", &|_| true);
    row("on the tree (files and directories)", &under_tree);
    row("  on its .py/.pyc files", &|c| under_tree(c) && code(c));
    row("  on its directories (stat, listing)", &|c| {
        under_tree(c) && !code(c)
    });
    row("on any .py/.pyc file (stdlib too)", &code);
    row("getdents64 (directory listings)", &|c| {
        c.name == "getdents64"
    });
    row("failed with ENOENT", &|c| {
        c.errno.as_deref() == Some("ENOENT")
    });
    let (mb, mr) = (median(&times[0]), median(&times[1]));
    println!(
        "start-up to exit, wall time, {} runs each, interleaved",
        args.runs
    );
    println!("  {:<40}{:>14}{:>14}", "median (ms)", ms(mb), ms(mr));
    println!(
        "  {:<40}{:>28.3}",
        "ratio read-cache / without (median)",
        mr.as_secs_f64() / mb.as_secs_f64()
    );
    Ok(())
}

/// Unmodified python3 importing generated extension modules.
fn python_case(args: &Args) -> Result<()> {
    let python = Path::new("/usr/bin/python3").canonicalize()?;
    eprintln!(
        "python3: generating {} extension modules ...",
        args.python_modules
    );
    let s = Scenario::embedded(Spec::small());
    let py = generate_python(&python, args.python_modules, 11, &s.root.join("py"))?;
    let copy = s.root.join("python3.dlfm");
    s.program_copy(&python, &copy);
    let cmd = |program: &Path, op: Option<&str>| {
        let mut c = s.cmd_for(program, op);
        c.arg(&py.script).env("PYTHONDONTWRITEBYTECODE", "1");
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
    timed(cmd(&copy, Some("write-cache")), &py.expected_stdout)?;
    pre(&["read-cache", "1"])?;
    let trace = |c: Command, name: &str| -> Vec<Call> {
        let log = s.root.join(name);
        strace::run_traced(&c, &log);
        strace::parse(&log)
    };
    let base = trace(cmd(&python, None), "py-base.strace");
    let replay = trace(cmd(&copy, Some("read-cache")), "py-replay.strace");
    let libs: BTreeSet<String> = py
        .modules
        .iter()
        .chain(&py.deps)
        .map(|p| p.display().to_string())
        .collect();
    let on_libs = |c: &Call| {
        c.path
            .as_ref()
            .or(c.fd_path.as_ref())
            .is_some_and(|p| libs.contains(p))
    };
    let by_loader =
        |c: &Call| ["openat", "read", "pread64", "mmap", "close"].contains(&c.name.as_str());
    let py_files = |c: &Call| {
        c.path
            .as_ref()
            .or(c.fd_path.as_ref())
            .is_some_and(|p| p.ends_with(".py") || p.ends_with(".pyc"))
    };
    let enoent = |c: &Call| c.errno.as_deref() == Some("ENOENT");

    eprintln!("timing {} runs of each, interleaved ...", args.runs);
    let mut times = [Vec::new(), Vec::new()];
    for _ in 0..args.runs {
        times[0].push(timed(cmd(&python, None), &py.expected_stdout)?.0);
        times[1].push(timed(cmd(&copy, Some("read-cache")), &py.expected_stdout)?.0);
    }
    println!();
    println!(
        "unmodified python3 importing {} extension modules (each with its own library), through dlpatch --embed --program",
        args.python_modules
    );
    println!(
        "file-system calls per process (strace -f){:>14}{:>14}",
        "python3", "read-cache"
    );
    let row = |label: &str, f: &dyn Fn(&Call) -> bool| {
        let n = |calls: &[Call]| calls.iter().filter(|c| f(c)).count();
        println!("  {:<40}{:>14}{:>14}", label, n(&base), n(&replay));
    };
    row("total", &|_| true);
    row("open/read/mmap/close of modules, libs", &|c| {
        on_libs(c) && by_loader(c)
    });
    row("stat of modules by importlib (libc)", &|c| {
        on_libs(c) && !by_loader(c)
    });
    row("failed with ENOENT", &enoent);
    row("  of them ld.so's (openat of a .so)", &|c| {
        enoent(c) && c.name == "openat" && c.path.as_deref().is_some_and(|p| p.contains(".so"))
    });
    row("python's own .py/.pyc files (libc)", &py_files);
    let (mb, mr) = (median(&times[0]), median(&times[1]));
    println!(
        "start-up to exit, wall time, {} runs each, interleaved",
        args.runs
    );
    println!("  {:<40}{:>14}{:>14}", "median (ms)", ms(mb), ms(mr));
    println!(
        "  {:<40}{:>28.3}",
        "ratio read-cache / without (median)",
        mr.as_secs_f64() / mb.as_secs_f64()
    );
    Ok(())
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
fn timed(mut cmd: Command, expected: &str) -> Result<(Duration, u64)> {
    let start = Instant::now();
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("spawn")?;
    let pid = child.id() as libc::pid_t;
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.expect("piped stdout"), &mut out)?;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our child, not yet waited for; both out-pointers are
    // valid for the call.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let elapsed = start.elapsed();
    if r != pid || !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("the program failed (status {status:#x})");
    }
    if out != expected {
        bail!("wrong output: {out:?}, expected {expected:?}");
    }
    Ok((elapsed, usage.ru_maxrss as u64))
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
