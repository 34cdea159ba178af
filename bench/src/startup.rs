//! `bench/startup`: R ranks of a generated many-library program, launched by
//! Open MPI's `mpirun` (oversubscribed), whose libraries live on the
//! simulated parallel file system (`dlfm-pfs`, a FUSE mount with a queueing
//! metadata server). For each R and each configuration, measured in the
//! same run:
//! - `baseline`: no dlfm;
//! - `dlfm-pfs`: read-cache, every rank maps the cache file on the simulated
//!   file system (`DLFM_STAGE=off`);
//! - `dlfm-stage`: read-cache as users get it by default: the first rank
//!   copies the cache from the simulated file system to node-local storage
//!   (empty before each run, so the copy is part of the start-up), the
//!   others map that copy;
//! - `dlfm-shm`: read-cache, cache file put on /dev/shm beforehand (what
//!   `dlfm.pre read-cache` does with sbcast inside Slurm);
//! - `copy-shm`: the library tree copied to /dev/shm first (copy time
//!   included) and found there through LD_LIBRARY_PATH, what users do by hand;
//! - `run-job1`, `run-job2`, `run-job3`: three consecutive jobs of `dlfm run
//!   mpirun ...` with the unmodified program and an empty store before the
//!   first: job 1 records (and packs after the launcher returns), jobs 2 and
//!   3 check, stage and replay (and learn, if they missed anything). Their
//!   times include all of that; the node-local stage directory is emptied
//!   before each job, as an epilog's `dlfm.pre clean` would. The store lies
//!   on local storage (the simulated file system is read-only); the check's
//!   requests on the program's files are counted.
//!
//! The program and its ld.so copy live on local storage in every
//! configuration, so the requests counted are the libraries' (and the cache
//! file's).
//!
//! With `--python` the ranks are an unmodified python3 instead (a copy made
//! by `dlpatch --embed --program`, with the FMCaching interposer), importing
//! a generated package tree and extension modules that live on the simulated
//! file system; `copy-shm` is left out (a Python tree is not found through
//! LD_LIBRARY_PATH).
//!
//! Reported: time until every rank reached `main` (for Python: had imported
//! everything) and until the job ended, requests that reached the simulated
//! file system (total and per rank), and peak resident memory per rank.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::Parser;
use dlfm_pfs::{Client, Model, Mount};
use dlfm_tests::artifacts;
use dlfm_workload::{generate, generate_package_tree, generate_python, Link, Spec};

mod slurm_nodes;

/// Startup time at width on a simulated parallel file system.
#[derive(Parser)]
struct Args {
    /// Rank counts to run.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32,64")]
    ranks: Vec<usize>,
    /// Shared libraries in the generated program.
    #[arg(long, default_value_t = 200)]
    libs: usize,
    /// Pad each generated library with this many MiB after its ELF
    /// contents (which ld.so never maps, but the cache stores whole): a
    /// cache of about libs x MiB, for multi-GB staging and sbcast.
    #[arg(long, default_value_t = 0, value_name = "MIB")]
    pad_mib: u64,
    /// Microseconds per metadata request at the simulated server.
    #[arg(long, default_value_t = 200)]
    latency_us: u64,
    /// Service threads of the simulated server.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// The CI smoke configuration: 4 ranks, 20 libraries.
    #[arg(long)]
    smoke: bool,
    /// Run the Python configuration instead: an unmodified python3 (a copy
    /// made by `dlpatch --embed --program`) importing a generated package
    /// tree of `--tree-packages` x 55 modules and `--python-modules`
    /// extension modules, all on the simulated file system; "all in main"
    /// is then "every rank has imported everything".
    #[arg(long)]
    python: bool,
    /// With `--python`: the ranks import numpy, scipy, pandas and
    /// matplotlib from PyPI (target/pydeps, copied onto the simulated file
    /// system) and draw a figure, instead of the generated modules.
    #[arg(long, requires = "python")]
    scientific: bool,
    /// Top-level packages of the Python configuration's tree.
    #[arg(long, default_value_t = 10)]
    tree_packages: usize,
    /// Extension modules (each with its own library) of the Python
    /// configuration.
    #[arg(long, default_value_t = 50)]
    python_modules: usize,
    /// The client-cache settings to measure under, each from a cold cache
    /// (dlfm-pfs `--client`): none (every lookup reaches the server),
    /// lustre (found entries cached, failed lookups not), gpfs (both).
    #[arg(long, value_delimiter = ',', default_value = "none,lustre")]
    clients: Vec<String>,
    /// Write a PNG plot of startup time against ranks here (the first
    /// client setting's).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Measure learning instead (issue 13): the program's dlopen libraries
    /// (a tenth of them) load only in runs wider than 4 ranks, so the
    /// one-process pilot never sees them. For each R (> 4): requests of the
    /// wide run with the pilot's cache, then `dlfm.pre read-cache` folds
    /// what that run missed in, and the requests of the next wide run.
    #[arg(long)]
    learn: bool,
    /// Run on this many simulated nodes of a real Slurm cluster (srun;
    /// --ranks is then ranks per node, at most 16): see `slurm_nodes`.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=8))]
    nodes: Option<u16>,
}

/// The configurations compared.
const CONFIGS: [&str; 8] = [
    "baseline",
    "dlfm-pfs",
    "dlfm-stage",
    "dlfm-shm",
    "copy-shm",
    "run-job1",
    "run-job2",
    "run-job3",
];

/// One measured configuration: ranks, configuration, what was measured.
type Row = (usize, &'static str, Measure);

/// One measured run.
struct Measure {
    startup: Duration,
    job: Duration,
    ops: u64,
    rss_kib: u64,
}

fn main() -> Result<()> {
    let mut args = Args::parse();
    if args.smoke {
        args.ranks = vec![4];
        args.libs = 20;
    }
    let art = artifacts();
    // Mounts and directories of earlier runs that were killed before they
    // could clean up.
    dlfm_pfs::clean_stale_under(
        &std::env::temp_dir()
            .join("dlfm-startup-")
            .display()
            .to_string(),
    );
    remove_dead_runs(&std::env::temp_dir(), "dlfm-startup-");
    remove_dead_runs(Path::new("/tmp"), "dlfm-l");
    remove_dead_runs(Path::new("/dev/shm"), "dlfm-startup-");
    let root = std::env::temp_dir().join(format!("dlfm-startup-{}", std::process::id()));
    let shm = PathBuf::from(format!("/dev/shm/dlfm-startup-{}", std::process::id()));
    // Local storage for the program and its ld.so copy, at a short path: a
    // `dlpatch --embed --program` copy of python3 must name its loader in
    // the 27 bytes of its interpreter field.
    let local = PathBuf::from(format!("/tmp/dlfm-l{}", std::process::id()));
    let _cleanup = Cleanup(vec![root.clone(), shm.clone(), local.clone()]);
    let (pfs, backing, run) = (root.join("pfs"), root.join("backing"), root.join("run"));
    for d in [&pfs, &run, &shm, &local] {
        std::fs::create_dir_all(d)?;
    }

    // Build what the ranks load at the paths it will have on the mount,
    // then move it to the backing directory and mount that there. The
    // program and its ld.so copy stay on local storage: what reaches the
    // simulated file system is then the libraries' (and modules') traffic.
    let job = if args.scientific {
        scientific_job(&pfs, &local)?
    } else if args.python {
        python_job(&args, &pfs, &local)?
    } else {
        c_job(&args, &pfs, &local)?
    };
    std::fs::rename(&pfs, &backing)?;
    std::fs::create_dir_all(&pfs)?;
    dlfm_pfs::clean_stale(&pfs);
    let model = Model {
        metadata_latency: Duration::from_micros(args.latency_us),
        threads: args.threads,
        ..Model::default()
    };
    let mount = Mount::new(&backing, &pfs, &model)?;

    // Pilot (one process) and pack, then stage the cache on the file system
    // and on /dev/shm.
    eprintln!("pilot and pack ...");
    let local_cache = run.join("dlcache.dat");
    let pre = |a: &[&str]| {
        ok(
            Command::new(&art.dlfm_pre)
                .args(a)
                .current_dir(&run)
                .env("DLFM_CACHE", &local_cache),
            "dlfm.pre",
        )
    };
    pre(&["write-cache"])?;
    let mut pilot = Command::new(&job.dlfm_program);
    pilot
        .args(&job.args)
        .current_dir(&run)
        .env("LD_LIBRARY_PATH", &job.ld_library_path)
        .env("DLFM_OP", "write-cache")
        .env("DLFM_CACHE", &local_cache);
    for (k, v) in &job.env {
        pilot.env(k, v);
    }
    ok(&mut pilot, "pilot")?;
    pre(&[
        "read-cache",
        &args.ranks.iter().max().unwrap_or(&1).to_string(),
    ])?;
    std::fs::copy(&local_cache, backing.join("dlcache.dat"))?;
    std::fs::copy(&local_cache, shm.join("dlcache.dat"))?;

    if args.learn {
        if args.python || args.nodes.is_some() {
            bail!("--learn runs the generated C program on one node (drop --python and --nodes)");
        }
        let rows = learn(&args, &job, &pfs, &shm, &run, &mount, &pre)?;
        drop(mount);
        print_learn(&rows, &job, &args);
        return Ok(());
    }

    if let Some(nodes) = args.nodes {
        if args.python {
            bail!("--nodes runs the generated C program only (drop --python)");
        }
        let nodes = usize::from(nodes);
        drop(mount);
        for name in &args.clients {
            let model = with_client(&model, name)?;
            let place = slurm_nodes::Place {
                backing: &backing,
                pfs: &pfs,
                run_dir: &run,
                model: &model,
            };
            let rows = slurm_nodes::run(nodes, &args.ranks, &job, &place, &art.dlfm_pre)?;
            print_nodes(nodes, name, &rows, &job, &args);
        }
        return Ok(());
    }

    // Each measurement on a fresh mount: the node's client cache starts
    // cold, as for a new job, under each client setting.
    drop(mount);
    let mut all: Vec<(&str, Vec<Row>)> = Vec::new();
    for name in &args.clients {
        let model = with_client(&model, name)?;
        let mut rows = Vec::new();
        for &r in &args.ranks {
            for config in CONFIGS {
                if config == "copy-shm" && job.tree.is_none() {
                    continue;
                }
                let mount = Mount::new(&backing, &pfs, &model)?;
                let m = measure(config, r, &job, &pfs, &shm, &run)?;
                let m = Measure {
                    ops: mount.unmount().total(),
                    ..m
                };
                eprintln!(
                    "client {name:<6} R={r:<3} {config:<9} startup {:>9.1} ms, {} requests",
                    ms(m.startup),
                    m.ops
                );
                rows.push((r, config, m));
            }
        }
        all.push((name.as_str(), rows));
    }
    for (name, rows) in &all {
        print_table(name, rows, &job, &args);
    }
    if let (Some(path), Some((_, rows))) = (&args.plot, all.first()) {
        plot(rows, &args, &job.what, path)?;
        println!("plot: {}", path.display());
    }
    Ok(())
}

/// `model` with the client-cache setting `name` (of `--clients`).
fn with_client(model: &Model, name: &str) -> Result<Model> {
    let client = Client::named(name).with_context(|| format!("--clients: no setting {name:?}"))?;
    Ok(Model {
        client,
        ..model.clone()
    })
}

/// Prints the table of one client setting's measurements, and the ratios
/// of `dlfm run`'s jobs.
fn print_table(client: &str, rows: &[Row], job: &Job, args: &Args) {
    println!(
        "bench/startup: {}, {} µs per metadata request, {} service thread(s), client cache: {client}, mpirun --oversubscribe",
        job.what, args.latency_us, args.threads
    );
    println!(
        "{:>4} {:<9} {:>12} {:>10} {:>10} {:>10} {:>11} {:>10}",
        "R", "config", "all in main", "job end", "vs base", "requests", "per rank", "RSS KiB"
    );
    let mut ratios = Vec::new();
    for (r, config, m) in rows {
        let base = rows
            .iter()
            .find(|x| x.0 == *r && x.1 == "baseline")
            .map(|x| x.2.startup)
            .unwrap_or(m.startup);
        println!(
            "{:>4} {:<9} {:>9.1} ms {:>7.1} ms {:>9.2}x {:>10} {:>11.1} {:>10}",
            r,
            config,
            ms(m.startup),
            ms(m.job),
            base.as_secs_f64() / m.startup.as_secs_f64(),
            m.ops,
            m.ops as f64 / *r as f64,
            m.rss_kib
        );
        let of = |c: &str| rows.iter().find(|x| x.0 == *r && x.1 == c).map(|x| &x.2);
        match (*config, of("baseline"), of("dlfm-shm")) {
            ("run-job1", Some(b), _) => ratios.push(format!(
                "R={r}: run-job1 (records) / baseline: all in main {:.2}x, job end {:.2}x",
                m.startup.as_secs_f64() / b.startup.as_secs_f64(),
                m.job.as_secs_f64() / b.job.as_secs_f64()
            )),
            (c, _, Some(shm)) if c.starts_with("run-job") => ratios.push(format!(
                "R={r}: {c} (replays) / dlfm-shm: all in main {:.2}x, job end {:.2}x",
                m.startup.as_secs_f64() / shm.startup.as_secs_f64(),
                m.job.as_secs_f64() / shm.job.as_secs_f64()
            )),
            _ => {}
        }
    }
    for line in ratios {
        println!("{line}");
    }
}

/// One R of a `--learn` run: requests to the simulated file system.
struct Learned {
    ranks: usize,
    baseline: (u64, Duration),
    before: (u64, Duration),
    missed_lookups: u64,
    after: (u64, Duration),
}

/// `--learn`: per R, the wide run with the pilot's cache, the fold, and the
/// wide run after it (the pilot's journal is restored before each R).
fn learn(
    args: &Args,
    job: &Job,
    pfs: &Path,
    shm: &Path,
    run: &Path,
    mount: &Mount,
    pre: &dyn Fn(&[&str]) -> Result<()>,
) -> Result<Vec<Learned>> {
    if let Some(r) = args.ranks.iter().find(|&&r| r <= 4) {
        bail!(
            "--learn needs --ranks above 4 (got {r}): the plugins load only in runs wider than 4"
        );
    }
    let journal = run.join("dlcache.dat.journal");
    let pilot_journal = run.join("pilot.journal");
    std::fs::copy(&journal, &pilot_journal)?;
    let requests = |config: &str, r: usize| -> Result<(u64, Duration)> {
        mount.reset();
        let m = measure(config, r, job, pfs, shm, run)?;
        Ok((mount.counts().total(), m.startup))
    };
    let mut rows = Vec::new();
    for &r in &args.ranks {
        std::fs::copy(&pilot_journal, &journal)?;
        pre(&["read-cache", &r.to_string()])?;
        let baseline = requests("baseline", r)?;
        let before = requests("dlfm-local", r)?;
        let out = Command::new(artifacts().dlfm_pre.as_path())
            .args(["report", "--json"])
            .current_dir(run)
            .env("DLFM_CACHE", run.join("dlcache.dat"))
            .output()?;
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).with_context(|| {
            format!("dlfm.pre report: {}", String::from_utf8_lossy(&out.stderr))
        })?;
        let missed_lookups = report["missed_lookups"].as_u64().unwrap_or(0);
        pre(&["read-cache", &r.to_string()])?;
        let after = requests("dlfm-local", r)?;
        eprintln!(
            "R={r:<3} requests: baseline {}, before learning {} ({missed_lookups} missed lookups noted), after {}",
            baseline.0, before.0, after.0
        );
        rows.push(Learned {
            ranks: r,
            baseline,
            before,
            missed_lookups,
            after,
        });
    }
    Ok(rows)
}

/// The table of a `--learn` run.
fn print_learn(rows: &[Learned], job: &Job, args: &Args) {
    println!(
        "bench/startup --learn: {} ({} loaded only in runs wider than 4 ranks), {} µs per metadata request, mpirun --oversubscribe",
        job.what,
        (args.libs / 10).max(1),
        args.latency_us
    );
    println!(
        "{:>4} {:>20} {:>20} {:>13} {:>20}",
        "R", "baseline", "before learning", "misses noted", "after learning"
    );
    let cell = |(n, t): (u64, Duration)| format!("{n} req {:>7.1} ms", ms(t));
    for l in rows {
        println!(
            "{:>4} {:>20} {:>20} {:>13} {:>20}",
            l.ranks,
            cell(l.baseline),
            cell(l.before),
            l.missed_lookups,
            cell(l.after)
        );
    }
    println!("req: requests to the simulated file system in the whole job; ms: until every rank reached main (the cache lives on local storage here)");
}

/// The table of a `--nodes` run.
fn print_nodes(nodes: usize, client: &str, rows: &[slurm_nodes::Row], job: &Job, args: &Args) {
    println!(
        "bench/startup --nodes {nodes}: {}, {} µs per metadata request, {} service thread(s) shared by the nodes, client cache per node: {client}, srun on a Slurm cluster of namespaced nodes",
        job.what, args.latency_us, args.threads
    );
    println!(
        "{:>2} {:>6} {:<11} {:>12} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>10}",
        "N",
        "R/node",
        "config",
        "all in main",
        "vs base",
        "vs shm",
        "metadata",
        "per node",
        "per rank",
        "reads",
        "stage step"
    );
    for (r, config, m, stage, reads) in rows {
        let of = |c: &str| {
            rows.iter()
                .find(|x| x.0 == *r && x.1 == c)
                .map_or(m.startup, |x| x.2.startup)
                .as_secs_f64()
        };
        println!(
            "{:>2} {:>6} {:<11} {:>9.1} ms {:>8.2}x {:>8.2}x {:>9} {:>9.1} {:>9.2} {:>7} {:>10}",
            nodes,
            r,
            config,
            ms(m.startup),
            of("baseline") / m.startup.as_secs_f64(),
            m.startup.as_secs_f64() / of("dlfm-shm"),
            m.ops,
            m.ops as f64 / nodes as f64,
            m.ops as f64 / (nodes * r) as f64,
            reads,
            stage.map_or("-".to_string(), |d| format!("{:.1} ms", ms(d)))
        );
    }
}

/// The font the plot's text uses (Debian's fonts-dejavu-core).
const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Startup time against ranks, one line per configuration.
fn plot(rows: &[Row], args: &Args, what: &str, path: &Path) -> Result<()> {
    use plotters::prelude::*;
    let font = std::fs::read(FONT)
        .with_context(|| format!("{FONT} (apt-get install fonts-dejavu-core)"))?;
    plotters::style::register_font(
        "sans-serif",
        FontStyle::Normal,
        Box::leak(font.into_boxed_slice()),
    )
    .map_err(|_| anyhow::anyhow!("cannot load {FONT}"))?;
    let max_r = rows.iter().map(|r| r.0).max().unwrap_or(1) as f64;
    let max_t = rows.iter().map(|r| ms(r.2.startup)).fold(1.0, f64::max);
    let min_t = rows
        .iter()
        .map(|r| ms(r.2.startup))
        .fold(max_t, f64::min)
        .max(0.1);
    let root = BitMapBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let title = format!(
        "Startup: {what}, {} µs per metadata request, {} server thread(s)",
        args.latency_us, args.threads
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..max_r * 1.05, (min_t * 0.7..max_t * 1.5).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("ranks (mpirun, one node)")
        .y_desc("time until every rank is in main (ms, log scale)")
        .label_style(("sans-serif", 14))
        .draw()?;
    let colors = [RED, BLUE, CYAN, GREEN, MAGENTA];
    for (config, color) in CONFIGS.iter().zip(colors) {
        let points: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| r.1 == *config)
            .map(|r| (r.0 as f64, ms(r.2.startup)))
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
            .label(*config)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// What the ranks run.
struct Job {
    /// For the table's heading.
    what: String,
    /// The program without dlfm.
    program: PathBuf,
    /// The program with dlfm (the same, or a `dlpatch --embed --program`
    /// copy).
    dlfm_program: PathBuf,
    /// Its arguments.
    args: Vec<String>,
    /// LD_LIBRARY_PATH for the ranks.
    ld_library_path: String,
    /// Extra environment for the ranks.
    env: Vec<(&'static str, String)>,
    /// The line each rank prints.
    expected: String,
    /// For `copy-shm`: the generated tree (under the mount) whose
    /// directories with "path" in their name go on LD_LIBRARY_PATH.
    tree: Option<PathBuf>,
}

/// The generated many-library program, linked with the wrapper.
fn c_job(args: &Args, pfs: &Path, local: &Path) -> Result<Job> {
    let art = artifacts();
    eprintln!("generating {} libraries ...", args.libs);
    let mut spec = Spec::bench(args.libs);
    if args.learn {
        spec.dlopen_libs = (args.libs / 10).max(1);
        spec.dlopen_when_wide = true;
    }
    let ldso = local.join("ld.so");
    let w = generate(
        &spec,
        &Link {
            wrapper_archive: Some(art.wrapper.clone()),
            interp: Some(ldso.clone()),
            ..Link::default()
        },
        &pfs.join("w"),
    )?;
    ok(
        Command::new(&art.dlpatch)
            .arg(&w.program)
            .arg("-o")
            .arg(&ldso),
        "dlpatch",
    )?;
    let program = local.join("prog");
    std::fs::rename(&w.program, &program)?;
    if args.pad_mib > 0 {
        for lib in w.all_libs() {
            let f = std::fs::OpenOptions::new().write(true).open(lib)?;
            f.set_len(f.metadata()?.len() + args.pad_mib * 1024 * 1024)?;
        }
    }
    let padded = if args.pad_mib > 0 {
        format!(", each padded by {} MiB", args.pad_mib)
    } else {
        String::new()
    };
    Ok(Job {
        what: format!("{} libraries{padded}", args.libs),
        program: program.clone(),
        dlfm_program: program,
        args: Vec::new(),
        ld_library_path: w.ld_library_path,
        env: Vec::new(),
        expected: w.expected_stdout,
        tree: Some(pfs.join("w")),
    })
}

/// An unmodified python3 importing a generated package tree and extension
/// modules from the simulated file system; the driver (local) runs both
/// generated scripts, checks what they print, prints one line and stamps
/// the moment everything was imported.
fn python_job(args: &Args, pfs: &Path, local: &Path) -> Result<Job> {
    let python = Path::new("/usr/bin/python3").canonicalize()?;
    eprintln!(
        "generating a package tree of {} packages and {} extension modules ...",
        args.tree_packages, args.python_modules
    );
    let tree = generate_package_tree(&python, &pfs.join("py"), args.tree_packages, 5, 10, 3)?;
    let ext = generate_python(&python, args.python_modules, 11, &pfs.join("ext"))?;
    let copy = python_copy(&python, local)?;
    let driver = local.join("driver.py");
    std::fs::write(
        &driver,
        format!(
            "import contextlib, io, runpy, sys, time\n\
             out = io.StringIO()\n\
             with contextlib.redirect_stdout(out):\n\
             \x20   runpy.run_path({tree:?})\n\
             \x20   runpy.run_path({ext:?})\n\
             import os\n\
             os.write(2, f'main-reached {{time.time_ns()}}\\n'.encode())\n\
             hwm = next(l for l in open('/proc/self/status') if l.startswith('VmHWM:')).split()[1]\n\
             os.write(2, f'peak-rss-kib {{hwm}}\\n'.encode())\n\
             print('imports-ok' if out.getvalue() == {expected:?} else 'wrong: ' + repr(out.getvalue()))\n",
            tree = tree.script.display().to_string(),
            ext = ext.script.display().to_string(),
            expected = format!("{}{}", tree.expected_stdout, ext.expected_stdout),
        ),
    )?;
    Ok(Job {
        what: format!(
            "python3 importing {} modules of a package tree and {} extension modules",
            tree.imports, args.python_modules
        ),
        program: python,
        dlfm_program: copy,
        args: vec![driver.display().to_string()],
        ld_library_path: String::new(),
        env: vec![("PYTHONDONTWRITEBYTECODE", "1".into())],
        expected: "imports-ok\n".into(),
        tree: None,
    })
}

/// A copy of `python` made by `dlpatch --embed --program` in `local`
/// (its loader beside it).
fn python_copy(python: &Path, local: &Path) -> Result<PathBuf> {
    let copy = local.join("python3.dlfm");
    ok(
        Command::new(&artifacts().dlpatch)
            .args(["--embed", "--program"])
            .arg(python)
            .arg("-o")
            .arg(&copy)
            .arg("--loader")
            .arg(local.join("ld.so")),
        "dlpatch --embed --program",
    )?;
    Ok(copy)
}

/// An unmodified python3 importing numpy, scipy, pandas and matplotlib
/// from a copy of target/pydeps on the simulated file system and drawing a
/// figure (style sheets, matplotlibrc, a font: package data).
fn scientific_job(pfs: &Path, local: &Path) -> Result<Job> {
    let python = Path::new("/usr/bin/python3").canonicalize()?;
    let Some(pydeps) = dlfm_tests::pydeps::pydeps() else {
        bail!("--scientific needs target/pydeps (scripts/setup-debian.sh test installs it)");
    };
    eprintln!(
        "copying {} onto the simulated file system ...",
        pydeps.display()
    );
    let site = pfs.join("pydeps");
    ok(
        Command::new("cp").arg("-a").arg(&pydeps).arg(&site),
        "cp -a target/pydeps",
    )?;
    let copy = python_copy(&python, local)?;
    let driver = local.join("driver.py");
    std::fs::write(
        &driver,
        "import numpy as np, scipy.linalg, scipy.sparse, scipy.optimize, pandas as pd\n\
         import matplotlib\n\
         matplotlib.use('Agg')\n\
         import matplotlib.pyplot as plt\n\
         fig, ax = plt.subplots(figsize=(2, 2), dpi=50)\n\
         ax.plot([1, 3, 2]); ax.set_title('dlfm'); fig.canvas.draw()\n\
         import os, time\n\
         os.write(2, f'main-reached {time.time_ns()}\\n'.encode())\n\
         hwm = next(l for l in open('/proc/self/status') if l.startswith('VmHWM:')).split()[1]\n\
         os.write(2, f'peak-rss-kib {hwm}\\n'.encode())\n\
         print('imports-ok' if int(np.asarray(fig.canvas.buffer_rgba()).sum()) > 0 else 'wrong')\n",
    )?;
    Ok(Job {
        what: "python3 importing numpy, scipy, pandas and matplotlib and drawing a figure".into(),
        program: python,
        dlfm_program: copy,
        args: vec![driver.display().to_string()],
        ld_library_path: String::new(),
        env: vec![
            ("PYTHONDONTWRITEBYTECODE", "1".into()),
            ("PYTHONPATH", site.display().to_string()),
            (
                "MPLCONFIGDIR",
                local.join("mplconfig").display().to_string(),
            ),
        ],
        expected: "imports-ok\n".into(),
        tree: None,
    })
}

/// The number after each `key` in `stream`. Each rank writes its report
/// in one write, but mpirun may put another rank's output right before it
/// on the same line, so reports are found anywhere, not at line starts.
fn numbers_after<T: std::str::FromStr>(stream: &str, key: &str) -> Vec<T> {
    stream
        .match_indices(key)
        .filter_map(|(i, _)| {
            let rest = &stream[i + key.len()..];
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            rest[..end].parse().ok()
        })
        .collect()
}

/// Runs one configuration at `ranks` and measures it.
fn measure(
    config: &str,
    ranks: usize,
    job: &Job,
    pfs: &Path,
    shm: &Path,
    run: &Path,
) -> Result<Measure> {
    let t0 = SystemTime::now();
    let start = Instant::now();
    let mut program = &job.dlfm_program;
    let mut ld_library_path = job.ld_library_path.clone();
    let mut env = job.env.clone();
    let mut launcher = Command::new("mpirun");
    match (config, &job.tree) {
        ("baseline", _) => program = &job.program,
        (job_n, _) if job_n.starts_with("run-job") => {
            program = &job.program;
            let store = run.join("store");
            if job_n == "run-job1" {
                let _ = std::fs::remove_dir_all(&store);
            }
            let stage = shm.join("run-stage");
            let _ = std::fs::remove_dir_all(&stage);
            std::fs::create_dir_all(&stage)?;
            launcher = Command::new(&artifacts().dlfm);
            launcher
                .args(["run", "--quiet", "mpirun"])
                .env("DLFM_CACHE_DIR", &store)
                .env("DLFM_STAGE_DIR", &stage);
        }
        ("dlfm-pfs", _) => {
            // Every rank maps the cache on the shared file system.
            env.push(("DLFM_OP", "read-cache".into()));
            env.push(("DLFM_CACHE", pfs.join("dlcache.dat").display().to_string()));
            env.push(("DLFM_STAGE", "off".into()));
        }
        ("dlfm-stage", _) => {
            // The default: the node's first rank copies the cache from the
            // shared file system to node-local storage (empty at the start
            // of each run, so the copy is part of the measured start-up).
            let stage = shm.join("stage");
            let _ = std::fs::remove_dir_all(&stage);
            std::fs::create_dir_all(&stage)?;
            env.push(("DLFM_OP", "read-cache".into()));
            env.push(("DLFM_CACHE", pfs.join("dlcache.dat").display().to_string()));
            env.push(("DLFM_STAGE_DIR", stage.display().to_string()));
        }
        ("dlfm-local", _) => {
            // `--learn`: the cache and its miss journals on local storage,
            // so the requests counted are the libraries'.
            env.push(("DLFM_OP", "read-cache".into()));
            env.push(("DLFM_CACHE", run.join("dlcache.dat").display().to_string()));
            env.push(("DLFM_STAGE", "off".into()));
        }
        ("dlfm-shm", _) => {
            // The cache put on /dev/shm beforehand (what sbcast does).
            env.push(("DLFM_OP", "read-cache".into()));
            env.push(("DLFM_CACHE", shm.join("dlcache.dat").display().to_string()));
            env.push(("DLFM_STAGE", "off".into()));
        }
        (_, Some(tree)) => {
            // What users do by hand: copy the tree, point LD_LIBRARY_PATH at
            // every copied library directory.
            let copy = shm.join("tree");
            let _ = std::fs::remove_dir_all(&copy);
            ok(Command::new("cp").arg("-r").arg(tree).arg(&copy), "cp -r")?;
            let dirs: Vec<String> = std::fs::read_dir(&copy)?
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().contains("path"))
                })
                .map(|p| p.display().to_string())
                .collect();
            ld_library_path = dirs.join(":");
        }
        (_, None) => bail!("{config} does not apply here"),
    }
    // The ranks' environment goes through -x: set on mpirun itself, its own
    // libraries would be looked up in the simulated file system too.
    env.push(("LD_LIBRARY_PATH", ld_library_path));
    env.push(("DLFM_WORKLOAD_STAMP", "1".into()));
    let mut cmd = launcher;
    cmd.args([
        "--allow-run-as-root",
        "--oversubscribe",
        "--bind-to",
        "none",
        "-np",
    ])
    .arg(ranks.to_string())
    .current_dir(run);
    for (k, v) in &env {
        cmd.arg("-x").arg(format!("{k}={v}"));
    }
    let out = cmd
        .arg(program)
        .args(&job.args)
        .output()
        .context("mpirun (apt-get install openmpi-bin)")?;
    let m = ranks_done(config, ranks, job, &out, t0, start)?;
    if config.starts_with("run-job") {
        did_what_dlfm_run_should(config, &run.join("store"), &out)?;
    }
    Ok(m)
}

/// A `dlfm run` job measured what it should: job 1 recorded, later jobs
/// replayed (the entry's `uses`: one letter per run, r or p), not a run
/// that fell back to plain.
fn did_what_dlfm_run_should(config: &str, store: &Path, out: &std::process::Output) -> Result<()> {
    let uses: Vec<String> = std::fs::read_dir(store)?
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("uses")).ok())
        .collect();
    let wanted = if config == "run-job1" { 'r' } else { 'p' };
    match uses.as_slice() {
        [one] if one.ends_with(wanted) => Ok(()),
        _ => bail!(
            "{config}: dlfm run did not {} (store uses {uses:?}):\n{}",
            if wanted == 'r' { "record" } else { "replay" },
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Reads what `ranks` ranks of `job` printed (`out`, the launcher's output)
/// for a run launched at `t0` / `start`: checks the output and returns the
/// time until the last rank reached `main`, the job's time and the mean peak
/// RSS.
fn ranks_done(
    config: &str,
    ranks: usize,
    job: &Job,
    out: &std::process::Output,
    t0: SystemTime,
    start: Instant,
) -> Result<Measure> {
    let job_time = start.elapsed();
    if !out.status.success() {
        bail!(
            "{config} at {ranks} ranks failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // mpirun forwards each rank's output as it comes, so one rank's line
    // may be split by another's: count the expected text, not lines.
    let stdout = String::from_utf8_lossy(&out.stdout);
    if stdout.matches(job.expected.trim_end()).count() != ranks {
        bail!("{config} at {ranks} ranks: wrong output:\n{stdout}");
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let t0_ns = t0.duration_since(UNIX_EPOCH)?.as_nanos() as i128;
    let reached: Vec<i128> = numbers_after(&stderr, "main-reached ");
    let rss: Vec<u64> = numbers_after(&stderr, "peak-rss-kib ");
    if reached.len() != ranks {
        bail!(
            "{config}: {} of {ranks} ranks reported reaching main",
            reached.len()
        );
    }
    let last = reached.iter().max().copied().unwrap_or(t0_ns);
    Ok(Measure {
        startup: Duration::from_nanos((last - t0_ns).max(0) as u64),
        job: job_time,
        ops: 0,
        rss_kib: rss.iter().sum::<u64>() / rss.len().max(1) as u64,
    })
}

/// Runs `cmd`, failing with its output.
fn ok(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd.output().with_context(|| format!("cannot run {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Removes `<prefix><pid>` directories in `dir` whose process is gone.
fn remove_dead_runs(dir: &Path, prefix: &str) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(prefix) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Removes the benchmark's directories at the end (after the mount is gone).
struct Cleanup(Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for d in &self.0 {
            dlfm_pfs::clean_stale(&d.join("pfs"));
            let _ = std::fs::remove_dir_all(d);
        }
    }
}
