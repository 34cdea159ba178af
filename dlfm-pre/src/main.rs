//! `dlfm.pre`: the job-script step around a dlfm run (the DLFM manual's
//! interface).
//!
//! - `dlfm.pre write-cache` before the pilot: starts an empty journal that
//!   the pilot's recording process appends to, naming the FMCaching
//!   interposer (`libdlfm_fm.so`) unless `--no-fm`;
//! - `dlfm.pre read-cache WIDTH` before the large run: packs the journal into
//!   `dlcache.dat`, refusing files that changed since the pilot; the
//!   program's own lookups are scoped to code (`--include`, `--exclude`).
//!
//! - `dlfm.pre report` after the large run: what its caches missed; the
//!   next `read-cache` folds those misses in;
//! - `dlfm.pre stage` (also done by `read-cache`): inside a Slurm
//!   allocation, broadcasts the cache to every node's local storage;
//! - `dlfm.pre clean`: removes node-local copies (an epilog).
//!
//! With `DLCACHE_DBG` set, write-cache and read-cache also create the trace
//! directory and one empty trace file per node and core. With `--json`,
//! each command prints one JSON object instead of its human summary.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once by `main` for `--json`: human lines are not printed then.
static JSON: AtomicBool = AtomicBool::new(false);

/// Whether `--json` was given.
fn json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// `println!` for the human summary, silent under `--json`.
macro_rules! say {
    ($($arg:tt)*) => {
        if !$crate::json() {
            println!($($arg)*);
        }
    };
}

mod lustre;
mod misses;
mod node_storage;
mod prepare;
mod trace_files;

use clap::{CommandFactory, Parser, Subcommand};

/// Prepare a dlfm pilot run, or pack its recording into the cache file.
#[derive(Parser)]
#[command(
    name = "dlfm.pre",
    version,
    after_help = "\
A dlfm run has two jobs. In the small pilot job:
    export DLFM_OP=write-cache
    dlfm.pre write-cache           # starts an empty journal
    srun -n 24 ./myapp             # rank 0 records every lookup ld.so makes,
                                   # and (FMCaching) the program's own
In the large job:
    export DLFM_OP=read-cache
    dlfm.pre read-cache 24000      # packs dlcache.dat, checks the files
    srun -n 24000 ./myapp          # every rank replays from dlcache.dat
Before each later large run with the same cache:
    dlfm.pre check                 # refuses if a cached file changed
After a large run:
    dlfm.pre report                # what the cache missed (one journal per
                                   # node in dlcache.dat.misses/)
    dlfm.pre read-cache 24000      # folds the misses in: the next run is
                                   # fully served

One copy per node: each node's first rank copies dlcache.dat into node-local
storage (DLFM_STAGE_DIR, default /dev/shm) and the node's other ranks map that
copy. Inside a Slurm allocation `read-cache` (or `stage`) broadcasts it with
sbcast instead, so no rank reads the shared copy. An epilog runs
`dlfm.pre clean` to free the node-local storage.

Environment:
    DLFM_CACHE    the cache file (default ./dlcache.dat); the journal is
                  <cache>.journal
    DLCACHE_DBG   on/true/yes/1: create dlcache.dbg/dlcache.dbg.<node>.<core>
                  trace files; each process that finds its file writes one
                  line per call and a summary
    DLFM_STAGE_DIR   node-local directory for the copies (default /dev/shm)
    DLFM_STAGE       off: every rank maps the shared cache (no copies)
    DLFM_STAGE_WAIT  seconds a rank waits for its node's copy (default 60),
                     then maps the shared cache"
)]
struct Cli {
    /// The cache file (default: $DLFM_CACHE, else ./dlcache.dat).
    #[arg(long, global = true, value_name = "PATH")]
    cache: Option<PathBuf>,
    /// Print one JSON object (the summary) instead of the human lines.
    #[arg(long, global = true)]
    json: bool,
    /// Write the man pages into DIR and exit.
    #[arg(long = dlfm_cli::man::OPTION, value_name = "DIR", hide = true)]
    man: Option<PathBuf>,
    #[command(subcommand)]
    op: Option<Op>,
}

#[derive(Subcommand)]
enum Op {
    /// Before the pilot: start an empty, writable journal. The pilot also
    /// records the program's own lookups (FMCaching: Python imports, MPI
    /// component discovery) through libdlfm_fm.so, found beside this tool
    /// (or in ../lib), with those built for other machines in
    /// ../lib/<machine>/: each process preloads the one built for its
    /// machine.
    WriteCache {
        /// Record ld.so's lookups only (DLCaching alone).
        #[arg(long)]
        no_fm: bool,
        /// An FMCaching interposer; give one per machine (default: every
        /// libdlfm_fm.so of this install, this machine's first).
        #[arg(long, value_name = "PATH", conflicts_with = "no_fm")]
        fm: Vec<PathBuf>,
    },
    /// Before the large run: pack the pilot's journal into the cache file.
    ///
    /// ld.so's lookups are always packed. Of the program's own lookups only
    /// installed content is: code and its metadata by name (.py, .pyc, .so,
    /// .so.N, .la, .pth, .egg-link, pyvenv.cfg, anything in a *.dist-info
    /// or *.egg-info directory, found or not); any file an installed
    /// package's manifest names (pip's RECORD, egg-info's
    /// installed-files.txt, conda-meta, Spack's install manifest, dpkg's
    /// lists: package data, shipped config), a directory holding such files
    /// and the names found missing in it; and every directory above a
    /// served path (for stat and lstat). Everything else (input files,
    /// output, configuration in HOME, /proc, /sys) is left to the file
    /// system. A replay notes the code it missed; the next read-cache folds
    /// it in.
    ReadCache {
        /// The number of processes of the large run (sets Lustre striping).
        #[arg(value_parser = clap::value_parser!(u32).range(1..))]
        width: u32,
        /// Also cache the program's lookups of paths matching GLOB (`*`
        /// matches any run of characters, `/` included; `?` one character).
        /// Repeatable.
        #[arg(long, value_name = "GLOB")]
        include: Vec<String>,
        /// Never cache the program's lookups of paths matching GLOB (wins
        /// over --include and the defaults). Repeatable.
        #[arg(long, value_name = "GLOB")]
        exclude: Vec<String>,
        /// Do not broadcast the cache to the nodes (`stage` does it later).
        #[arg(long)]
        no_stage: bool,
    },
    /// Before each large run: check that every stored file's bytes are
    /// intact and that no file changed on disk since the pilot (replay
    /// trusts the cache and does not look at the disk). Exit 2 naming the
    /// files if not.
    Check {
        /// Compare with the disk only, without reading the stored bytes
        /// back (O(files) metadata requests, no data read).
        #[arg(long)]
        quick: bool,
    },
    /// After a large run: what its caches missed (lookups the pilot never
    /// saw), from the miss journals one process per node writes in
    /// <cache>.misses/ and the DLCACHE_DBG trace summaries; the next
    /// read-cache folds the misses into the cache.
    Report,
    /// Inside a Slurm allocation: broadcast the cache to every node's local
    /// storage with sbcast, for every step of this job (read-cache does
    /// this too). Outside one it says what it skipped; the ranks then stage
    /// the cache themselves, one copy per node.
    Stage,
    /// Remove dlfm's node-local files from DLFM_STAGE_DIR (default
    /// /dev/shm): in a job (SLURM_JOB_ID, PMIX_NAMESPACE, PBS_JOBID,
    /// LSB_JOBID or FLUX_JOB_ID set, as in an epilog) that job's pointers and
    /// the copies no other job on the node still uses; otherwise, or with
    /// --all, every one. This user's, or every user's when run as root.
    Clean {
        /// Remove every node-local file of dlfm's, whatever job uses it (an
        /// administrator's clean-up of an idle node).
        #[arg(long)]
        all: bool,
    },
}

/// Which interposers the pilot's processes choose from: none with
/// `--no-fm`, those given, or this install's (`install::interposers`).
fn fm_choice(no_fm: bool, fm: Vec<PathBuf>) -> Vec<PathBuf> {
    if no_fm {
        Vec::new()
    } else if fm.is_empty() {
        dlfm_cli::install::interposers()
    } else {
        fm
    }
}

fn main() -> ExitCode {
    dlfm_cli::reset_sigpipe();
    let cli = Cli::parse();
    if let Some(code) =
        dlfm_cli::man::write_if_asked(cli.man.as_deref(), Cli::command(), "dlfm.pre")
    {
        return code;
    }
    let Some(op) = cli.op else {
        let _ = Cli::command().print_help();
        return ExitCode::from(2);
    };
    let cache = cli
        .cache
        .or_else(|| std::env::var_os(dlfm_runtime::env::CACHE).map(PathBuf::from))
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from(dlfm_cache::names::DEFAULT_CACHE));
    JSON.store(cli.json, Ordering::Relaxed);
    let result = run(op, &cache);
    match result {
        Ok(summary) => {
            if cli.json {
                println!("{summary}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            if cli.json {
                let problems = e.downcast_ref::<prepare::Stale>().map(|s| &s.problems);
                println!(
                    "{}",
                    serde_json::json!({ "error": format!("{e:#}"), "problems": problems })
                );
            }
            eprintln!("dlfm.pre: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs `op` on `cache`; returns its summary as JSON.
fn run(op: Op, cache: &std::path::Path) -> anyhow::Result<serde_json::Value> {
    Ok(match op {
        Op::WriteCache { no_fm, fm } => {
            serde_json::to_value(prepare::write_cache(cache, fm_choice(no_fm, fm))?)?
        }
        Op::ReadCache {
            width,
            include,
            exclude,
            no_stage,
        } => {
            let summary = prepare::read_cache(
                cache,
                width,
                &dlfm_pack::scope::Scope::new(&include, &exclude),
                !no_stage,
            )?;
            prepare::say_read(&summary);
            serde_json::to_value(summary)?
        }
        Op::Check { quick } => {
            let sums = if quick {
                dlfm_pack::Sums::Skip
            } else {
                dlfm_pack::Sums::Verify
            };
            serde_json::to_value(prepare::check(cache, sums)?)?
        }
        Op::Report => {
            let r = misses::report(cache)?;
            say!("dlfm.pre report: {}", cache.display());
            misses::say_report(&r);
            serde_json::to_value(r)?
        }
        Op::Stage => {
            let staged = node_storage::stage(cache)?;
            say!("dlfm.pre stage: {}", cache.display());
            prepare::say_staged(&staged);
            serde_json::to_value(staged)?
        }
        Op::Clean { all } => {
            let cleaned = node_storage::clean(all)?;
            say!(
                "dlfm.pre clean ({}): removed {} node-local file(s) ({}) from {}",
                cleaned.scope,
                cleaned.removed,
                dlfm_cli::human(cleaned.bytes),
                cleaned.dir
            );
            if cleaned.kept > 0 {
                say!(
                    "  kept         {} copy(ies) another job's pointer still names",
                    cleaned.kept
                );
            }
            for f in &cleaned.failed {
                say!("  warning      could not remove {f}");
            }
            serde_json::to_value(cleaned)?
        }
    })
}
