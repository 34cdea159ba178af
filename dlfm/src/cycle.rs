//! `dlfm run`'s cycle: decide (record, replay or plain), run the command,
//! then pack or learn. Every problem before the command starts makes the
//! run plain with one line saying why; every problem after it is said in
//! one line and leaves the command's status alone.
//!
//! | the entry of the key | this run |
//! |---|---|
//! | none, unfinished, damaged | records (if it gets the lock, else plain) |
//! | ready, `dlfm.pre check --quick` good | replays; folds misses in after (if it gets the lock) |
//! | ready, a file changed | records again (if it gets the lock, else plain) |
//! | its loader was refused | plain |

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Instant;

use dlfm_cli::human;

use crate::child;
use crate::key::{self, Key};
use crate::launcher::{self, Line};
use crate::lock::{self, Lock, Taken};
use crate::steps::{self, Tools};
use crate::store::{self, Entry, EntryInfo, ENTRY_FORMAT};
use crate::target::{self, Target};

/// `dlfm run`'s options.
pub struct Options {
    /// Only problems are said.
    pub quiet: bool,
    /// Run plain.
    pub off: bool,
    /// The program is this word of the command.
    pub program_at: Option<usize>,
    /// The width for the pack, if the line does not say.
    pub width: Option<u32>,
    /// The store directory (else the default).
    pub store: Option<PathBuf>,
}

/// What this run does.
enum Plan {
    /// Records into a new generation of the entry, holding its lock.
    Record {
        job: Job,
        lock: Lock,
        generation: String,
    },
    /// Replays the entry's current generation.
    Replay { job: Job, how: String },
}

/// What a recording or replaying run knows.
struct Job {
    line: Line,
    /// The program, and the command's word that named it.
    target: Target,
    word: OsString,
    entry: Entry,
    info: EntryInfo,
    key: Key,
    tools: Tools,
    /// The width for packing: `--width`, the line's, `SLURM_NTASKS`, or 1.
    width: u32,
}

/// Runs `words` as `dlfm run` does; never returns.
pub fn run(words: Vec<OsString>, opts: &Options) -> ! {
    let op = std::env::var_os(dlfm_runtime::env::OP);
    if opts.off || op.as_deref().is_some_and(|v| v == "off") {
        std::process::exit(child::exec(&words, &[]));
    }
    let started = Instant::now();
    let plan = match plan(words.clone(), opts) {
        Ok(p) => p,
        Err(why) => {
            eprintln!("dlfm: {why}; running without dlfm");
            std::process::exit(child::exec(&words, &[]));
        }
    };
    let say = |s: String| {
        if !opts.quiet {
            eprintln!("dlfm: {s}");
        }
    };
    match plan {
        Plan::Record {
            job,
            lock,
            generation,
        } => {
            let cache = job.entry.cache(&generation);
            let status = spawn(&job, &cache, "write-cache", &words);
            job.entry.note_use(b'r');
            say(finish_recording(job, &lock, &generation, started));
            drop(lock);
            child::end_like(status)
        }
        Plan::Replay { job, how } => {
            let generation = job.info.current.clone().unwrap_or_default();
            let cache = job.entry.cache(&generation);
            say(format!(
                "replaying {} ({} paths, {}), {how}",
                job.key.name,
                thousands(job.info.paths),
                human(job.info.bytes)
            ));
            let status = spawn(&job, &cache, "read-cache", &words);
            job.entry.note_use(b'p');
            say(learn(job, &generation));
            child::end_like(status)
        }
    }
}

/// Starts the command with dlfm's variables (`op`, the cache); a command
/// that cannot start ends dlfm as a shell would.
fn spawn(
    job: &Job,
    cache: &std::path::Path,
    op: &str,
    words: &[OsString],
) -> std::process::ExitStatus {
    let vars = [
        (dlfm_runtime::env::OP, OsString::from(op)),
        (dlfm_runtime::env::CACHE, cache.as_os_str().to_os_string()),
    ];
    let program = job.target.invocation(
        &job.entry.loader(&job.target.comm),
        job.info.argv0,
        &job.word,
    );
    let rewritten = match job.line.rewritten(program, &vars) {
        Ok(w) => w,
        Err(launcher::Unsupported(why)) => {
            eprintln!("dlfm: {why}; running without dlfm");
            std::process::exit(child::exec(words, &[]));
        }
    };
    match child::spawn_and_wait(&rewritten, &vars) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("dlfm: cannot run {}: {e}", steps::shown(&rewritten[..1]));
            std::process::exit(if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            });
        }
    }
}

/// What the entry of the key asks this run to do.
enum Decision {
    /// Replay the entry as it is.
    Replay,
    /// Record, saying why.
    Record(String),
}

/// Decides what this run does (see the module doc); Err: run plain, why.
fn plan(words: Vec<OsString>, opts: &Options) -> Result<Plan, String> {
    let line = launcher::parse(words, opts.program_at).map_err(|launcher::Unsupported(w)| w)?;
    let word = line.words[line.program].clone();
    let target = target::resolve(&word)?;
    let tools = Tools::find().map_err(|e| e.to_string())?;
    let (dir, _) = store::store_dir(opts.store.clone()).map_err(|e| e.to_string())?;
    let dir = std::path::absolute(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    store::open(&dir).map_err(|e| format!("{e:#}"))?;
    let interp = target
        .identity
        .interp
        .clone()
        .ok_or("the program has no loader")?;
    let loader_id = target::loader_id(std::path::Path::new(&interp))?;
    let key = key::key_of(&target, &interp, &loader_id, |n| std::env::var_os(n));
    let entry = Entry::new(&dir, &key.name);
    let width = opts
        .width
        .or(line.width)
        .or_else(|| std::env::var("SLURM_NTASKS").ok()?.parse().ok())
        .unwrap_or(1);
    let (info, decision) = decide(&entry, &target, &interp, &key, &tools)?;
    let job = Job {
        line,
        target,
        word,
        entry,
        info,
        key,
        tools,
        width,
    };
    match decision {
        Decision::Replay => {
            let how = if std::env::var_os("SLURM_JOB_ID").is_some() {
                let cache = job.entry.cache(job.info.current.as_deref().unwrap_or(""));
                job.tools.stage(&cache).unwrap_or_else(|e| {
                    format!("not broadcast ({e:#}): {}", steps::staged_by_ranks())
                })
            } else {
                steps::staged_by_ranks()
            };
            Ok(Plan::Replay { job, how })
        }
        Decision::Record(why) => start_recording(job, &interp, &why, opts.quiet),
    }
}

/// The entry's description (a new one if it has none or a damaged one) and
/// what it asks for; Err: run plain (its loader was refused).
fn decide(
    entry: &Entry,
    target: &Target,
    interp: &str,
    key: &Key,
    tools: &Tools,
) -> Result<(EntryInfo, Decision), String> {
    let info = match entry.info() {
        Ok(Some(info)) => info,
        Ok(None) => {
            return Ok((
                new_info(target, interp, key),
                Decision::Record("first run of this program and environment: recording".into()),
            ))
        }
        Err(e) => {
            return Ok((
                new_info(target, interp, key),
                Decision::Record(format!("{e:#}: recording again")),
            ))
        }
    };
    if let Some(refused) = &info.refused {
        entry.note_use(b'-');
        return Err(format!("{}: {refused}", target.elf.display()));
    }
    let checked = match &info.current {
        Some(g) if entry.loader(&target.comm).is_file() || target.identity.linked => {
            tools.check(&entry.cache(g))
        }
        Some(_) => Err(vec!["its patched loader is missing".into()]),
        None => Err(vec!["no recording finished yet".into()]),
    };
    Ok(match checked {
        Ok(()) => (info, Decision::Replay),
        Err(problems) => (info, Decision::Record(changed_line(&problems))),
    })
}

/// Takes the entry's lock, makes the patched loader if the entry has none,
/// starts a new generation's journal; Err: run plain, why.
fn start_recording(mut job: Job, interp: &str, why: &str, quiet: bool) -> Result<Plan, String> {
    let entry = &job.entry;
    entry.create().map_err(|e| format!("{e:#}"))?;
    let lock = match lock::try_take(&entry.dir) {
        Ok(Taken::Yes(l)) => l,
        Ok(Taken::Held(who)) => {
            entry.note_use(b'-');
            return Err(format!("{who} is recording this program and environment"));
        }
        Err(e) => return Err(format!("cannot lock {}: {e}", entry.dir.display())),
    };
    let loader = entry.loader(&job.target.comm);
    if !job.target.identity.linked && !loader.is_file() {
        if let Err(e) = job.tools.patch_loader(interp, &loader) {
            if let Some(refusal) = job.tools.loader_refusal(interp) {
                job.info.refused = Some(refusal.clone());
                let _ = entry.write_info(&job.info);
                return Err(format!("{}: {refusal}", job.target.elf.display()));
            }
            return Err(format!("cannot write the patched loader: {e:#}"));
        }
        job.info.argv0 = steps::loader_takes_argv0(&loader);
        entry.write_info(&job.info).map_err(|e| format!("{e:#}"))?;
    }
    let generation = entry.new_generation().map_err(|e| format!("{e:#}"))?;
    job.tools
        .write_cache(&entry.cache(&generation))
        .map_err(|e| format!("cannot start the recording: {e:#}"))?;
    if !quiet {
        eprintln!("dlfm: {why} ({})", job.key.name);
    }
    Ok(Plan::Record {
        job,
        lock,
        generation,
    })
}

/// The start line of a run that records again: what changed.
fn changed_line(problems: &[String]) -> String {
    let first = problems
        .first()
        .map_or("the cache is unusable", String::as_str);
    match problems.len() {
        0 | 1 => format!("{first}: recording again"),
        n => format!("{first} (and {} more): recording again", n - 1),
    }
}

/// A new entry's description.
fn new_info(target: &Target, interp: &str, key: &Key) -> EntryInfo {
    EntryInfo {
        format: ENTRY_FORMAT,
        key: key.name.clone(),
        program: target.path.display().to_string(),
        elf: target.elf.display().to_string(),
        loader: interp.to_string(),
        argv0: false,
        environment: key.environment.clone(),
        material: key.material.clone(),
        created: store::now(),
        recorded: 0,
        current: None,
        paths: 0,
        bytes: 0,
        learned: 0,
        refused: None,
    }
}

/// After a recording run: pack it and make it the entry's cache; the end
/// line.
fn finish_recording(job: Job, lock: &Lock, generation: &str, started: Instant) -> String {
    let Job {
        entry,
        mut info,
        key,
        tools,
        width,
        ..
    } = job;
    let drop_generation = || {
        let _ = std::fs::remove_dir_all(entry.dir.join(generation));
    };
    if !lock.held() {
        drop_generation();
        return "another run took this entry over while this one recorded: its recording is dropped"
            .into();
    }
    match tools.read_cache(&entry.cache(generation), width) {
        Ok(packed) => {
            info.current = Some(generation.to_string());
            info.recorded = store::now();
            info.paths = packed.paths;
            info.bytes = packed.bytes;
            info.learned = 0;
            if let Err(e) = entry.write_info(&info) {
                drop_generation();
                return format!("could not keep the recording: {e:#}");
            }
            entry.remove_generations_but(generation);
            format!(
                "recorded {} ({} paths, {}) in {:.1} s; the next run replays",
                key.name,
                thousands(packed.paths),
                human(packed.bytes),
                started.elapsed().as_secs_f64()
            )
        }
        Err(e) => {
            drop_generation();
            format!("could not pack the recording ({e:#}); the next run records again")
        }
    }
}

/// After a replay: fold what it missed into the cache (if this run gets
/// the lock); the end line.
fn learn(job: Job, generation: &str) -> String {
    let cache = job.entry.cache(generation);
    let misses = PathBuf::from(format!(
        "{}{}",
        cache.display(),
        dlfm_cache::names::MISSES_SUFFIX
    ));
    let noted = std::fs::read_dir(&misses)
        .map(|d| d.flatten().any(|e| e.metadata().is_ok_and(|m| m.len() > 0)))
        .unwrap_or(false);
    if !noted {
        return "replay done: the cache missed nothing".into();
    }
    let lock = match lock::try_take(&job.entry.dir) {
        Ok(Taken::Yes(l)) => l,
        _ => return "replay done: its misses are left for the next run to learn".into(),
    };
    let mut info = match job.entry.info() {
        Ok(Some(i)) if i.current.as_deref() == Some(generation) => i,
        _ => return "replay done: the entry changed meanwhile; its misses are dropped".into(),
    };
    let result = match job.tools.read_cache(&cache, job.width) {
        Ok(p) => {
            info.paths = p.paths;
            info.bytes = p.bytes;
            info.learned += p.learned;
            match job.entry.write_info(&info) {
                Ok(()) => format!(
                    "replay done: learned {} lookup(s) it missed; the next run is served them",
                    p.learned
                ),
                Err(e) => format!("replay done; could not note what it learned: {e:#}"),
            }
        }
        Err(e) => format!("replay done; could not learn its misses ({e:#})"),
    };
    drop(lock);
    result
}

/// `6405` as `6,405`.
fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
