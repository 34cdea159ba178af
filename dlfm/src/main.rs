//! `dlfm`: one word in front of a command. `dlfm run COMMAND` records the
//! program's lookups on its first run, packs them into a cache kept in a
//! per-user store (keyed by program, loader and environment), replays from
//! it on every later run, learns what a replay missed, and records again
//! when a cached file changed. `dlfm ls`, `dlfm gc`, `dlfm rm` manage the
//! store. Underneath it runs the manual's tools, `dlpatch` and `dlfm.pre`.

mod child;
mod cycle;
mod key;
mod launcher;
mod lock;
mod manage;
mod steps;
mod store;
mod target;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// Start programs fast at any width: record once, replay everywhere.
#[derive(Parser)]
#[command(
    name = "dlfm",
    version,
    after_help = "\
Examples:
    dlfm run python3 app.py               # a program
    dlfm run srun -n 512 python3 app.py   # in front of the launcher
    dlfm run mpirun -np 64 ./solver in.dat
    dlfm ls                               # what the store holds
    dlfm gc --older-than 30d              # forget what was not used

The first run of a program in an environment records (rank 0) while every
rank runs normally, then packs the recording into the store; later runs
replay it: ld.so's and Python's lookups are answered from one cache, staged
once per node (by sbcast inside Slurm), and no recorded lookup reaches the
shared file system. A run after a cached file changed records again. A
problem never fails the job: dlfm says it in one line and runs the command
as without dlfm. See dlfm-run(1) and docs/dlfm-run.md.

Environment:
    DLFM_CACHE_DIR  the store (default: cache_dir in $DLFM_CONFIG or
                    /etc/dlfm.conf, else $XDG_CACHE_HOME/dlfm, else
                    ~/.cache/dlfm); every node of a job must see it
    DLFM_OP=off     run every command plain (as does --off)"
)]
struct Cli {
    /// The store directory (default: DLFM_CACHE_DIR, see dlfm(1)).
    #[arg(long, global = true, value_name = "DIR")]
    store: Option<PathBuf>,
    /// Write the man pages into DIR and exit.
    #[arg(long = dlfm_cli::man::OPTION, value_name = "DIR", hide = true)]
    man: Option<PathBuf>,
    #[command(subcommand)]
    op: Option<Op>,
}

#[derive(Subcommand)]
enum Op {
    /// Run COMMAND with dlfm: record on the first run, replay after.
    ///
    /// COMMAND is a program (`./app`, `python3 app.py`, a `#!` script) or a
    /// launcher line whose program dlfm finds: srun, mpirun/mpiexec (Open
    /// MPI, MPICH's Hydra), flux run, aprun, jsrun; for any other launcher
    /// say where the program is with --program-at. The program runs through
    /// a patched copy of its loader kept in the store (`LOADER --argv0
    /// ARGV0 PROGRAM ARGS`); argv[0], sys.executable and venv detection are
    /// as without dlfm; /proc/self/exe names the loader copy. The exit
    /// status is COMMAND's.
    #[command(trailing_var_arg = true)]
    Run {
        /// Say only problems, not the start and end lines.
        #[arg(short, long)]
        quiet: bool,
        /// Run COMMAND plain (as DLFM_OP=off does).
        #[arg(long)]
        off: bool,
        /// The program is COMMAND's word N (the launcher is word 0).
        #[arg(long, value_name = "N")]
        program_at: Option<usize>,
        /// The number of processes, when the line does not say (-n, -np)
        /// and SLURM_NTASKS is not set: sets the cache's striping.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        width: Option<u32>,
        /// The command.
        #[arg(required = true, allow_hyphen_values = true, value_name = "COMMAND")]
        command: Vec<OsString>,
    },
    /// List the store's entries: program, key, size, last use, runs,
    /// lookups learned.
    Ls {
        /// One JSON array instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Remove entries not used for a while.
    Gc {
        /// Remove entries whose last run is older than this: 30d, 12h, 90m,
        /// 600s.
        #[arg(long, value_name = "AGE", value_parser = manage::parse_age)]
        older_than: u64,
        /// Say what would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// One JSON object instead of the lines.
        #[arg(long)]
        json: bool,
    },
    /// Remove the entries of KEY (a key, or a prefix of one only key).
    Rm {
        /// The keys.
        #[arg(required = true, value_name = "KEY")]
        keys: Vec<String>,
        /// One JSON object instead of the lines.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    dlfm_cli::reset_sigpipe();
    let cli = Cli::parse();
    if let Some(code) = dlfm_cli::man::write_if_asked(cli.man.as_deref(), Cli::command(), "dlfm") {
        return code;
    }
    let Some(op) = cli.op else {
        let _ = Cli::command().print_help();
        return ExitCode::from(2);
    };
    let result = match op {
        Op::Run {
            quiet,
            off,
            program_at,
            width,
            command,
        } => cycle::run(
            command,
            &cycle::Options {
                quiet,
                off,
                program_at,
                width,
                store: cli.store,
            },
        ),
        Op::Ls { json } => manage::ls(cli.store, json),
        Op::Gc {
            older_than,
            dry_run,
            json,
        } => manage::gc(cli.store, older_than, dry_run, json),
        Op::Rm { keys, json } => manage::rm(cli.store, &keys, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dlfm: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
