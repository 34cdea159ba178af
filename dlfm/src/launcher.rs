//! Finding the program in a launcher line, and passing dlfm's variables
//! through the launcher. The rules (docs/dlfm-run.md lists them):
//!
//! - the first word names the launcher by its file name: `srun`;
//!   `mpirun`, `mpiexec`, `orterun`, `prterun` and their `.openmpi`,
//!   `.mpich`, `.hydra` forms; `flux run`; `aprun`; `jsrun`. Any other
//!   first word is the program itself;
//! - after it, options: a word that starts with `-` is an option; one of the
//!   launcher's options that take a value (the tables below) also takes the
//!   next word, unless written `--opt=value` (or, for a one-letter option,
//!   `-n8`); `--` ends the options; the first other word is the program;
//! - the width (for the cache's striping) is the value of `-n`/`--ntasks`,
//!   `-np`, `-p` (jsrun), else `SLURM_NTASKS`, else 1;
//! - a line that starts several programs (`:` after the program, Open MPI's
//!   `--app`, Hydra's `-configfile`, srun's `--multi-prog`) is not one
//!   program: dlfm runs it plain;
//! - `--program-at N` says the program is word N (the launcher is word 0),
//!   for any launcher.

use std::ffi::{OsStr, OsString};
use std::path::Path;

/// The launchers dlfm knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Launcher {
    /// Slurm's `srun`.
    Srun,
    /// `mpirun`/`mpiexec` of Open MPI, which forwards only the variables
    /// named with `-x`.
    OpenMpi,
    /// `mpirun`/`mpiexec` of MPICH's Hydra (or another MPI whose launcher
    /// forwards the whole environment).
    Hydra,
    /// `flux run`.
    Flux,
    /// Cray's `aprun`.
    Aprun,
    /// IBM's `jsrun`.
    Jsrun,
    /// Named by `--program-at`.
    Given,
}

impl Launcher {
    /// The launcher's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Launcher::Srun => "srun",
            Launcher::OpenMpi => "mpirun (Open MPI)",
            Launcher::Hydra => "mpirun (Hydra)",
            Launcher::Flux => "flux run",
            Launcher::Aprun => "aprun",
            Launcher::Jsrun => "jsrun",
            Launcher::Given => "the launcher",
        }
    }
}

/// A command line, with its program found.
#[derive(Debug)]
pub struct Line {
    /// Every word, as given.
    pub words: Vec<OsString>,
    /// The index of the program's word.
    pub program: usize,
    /// The launcher in front of it, if any.
    pub launcher: Option<Launcher>,
    /// The number of processes the line starts, if it says.
    pub width: Option<u32>,
}

/// Why a line cannot be run with dlfm.
#[derive(Debug, PartialEq, Eq)]
pub struct Unsupported(pub String);

/// The options of one launcher that dlfm must know to find the program.
struct Grammar {
    /// Options whose value is the next word.
    value: &'static [&'static str],
    /// Options that take the next two words (`--mca NAME VALUE`).
    two: &'static [&'static str],
    /// Options that give the number of processes.
    width: &'static [&'static str],
    /// Options after which the line names no single program.
    multi: &'static [&'static str],
    /// Whether a one-letter option may carry its value (`-n8`).
    attached: bool,
}

#[rustfmt::skip]
const SRUN: Grammar = Grammar {
    value: &[
        "-A", "-b", "-c", "-D", "-d", "-e", "-G", "-i", "-J", "-L", "-M", "-m", "-N", "-n", "-o",
        "-p", "-q", "-r", "-S", "-T", "-t", "-W", "-w", "-x", "-B", "-C", "--account",
        "--acctg-freq", "--bb", "--bbf", "--begin", "--chdir", "--cluster-constraint", "--clusters",
        "--comment", "--constraint", "--container", "--container-id", "--core-spec",
        "--cores-per-socket", "--cpu-bind", "--cpu-freq", "--cpus-per-gpu", "--cpus-per-task",
        "--deadline", "--delay-boot", "--dependency", "--distribution", "--epilog", "--error",
        "--exclude", "--export", "--extra-node-info", "--gid", "--gpu-bind", "--gpu-freq", "--gpus",
        "--gpus-per-node", "--gpus-per-socket", "--gpus-per-task", "--gres", "--gres-flags",
        "--het-group", "--hint", "--input", "--job-name", "--jobid", "--licenses", "--mail-type",
        "--mail-user", "--mcs-label", "--mem", "--mem-bind", "--mem-per-cpu", "--mem-per-gpu",
        "--mincpus", "--mpi", "--network", "--nodefile", "--nodelist", "--nodes", "--ntasks",
        "--ntasks-per-core", "--ntasks-per-gpu", "--ntasks-per-node", "--ntasks-per-socket",
        "--open-mode", "--output", "--partition", "--power", "--prefer", "--prolog", "--qos",
        "--reservation", "--segment", "--signal", "--slurmd-debug", "--sockets-per-node",
        "--switches", "--task-epilog", "--task-prolog", "--tasks-per-node", "--thread-spec",
        "--threads-per-core", "--time", "--time-min", "--tmp", "--tres-bind", "--tres-per-task",
        "--uid", "--wait", "--wckey",
    ],
    two: &[],
    width: &[
        "-n", "--ntasks",
    ],
    multi: &[
        "--multi-prog",
    ],
    attached: true,
};

/// Open MPI's and MPICH Hydra's `mpirun`/`mpiexec`, one table: a word that
/// is an option in one is not a program in the other.
#[rustfmt::skip]
const MPIRUN: Grammar = Grammar {
    value: &[
        "-n", "-np", "--np", "-c", "-N", "-H", "-host", "--host", "-hosts", "-hostfile",
        "--hostfile", "-machinefile", "--machinefile", "-f", "-x", "-wdir", "--wdir", "-wd", "--wd",
        "-path", "--path", "--prefix", "-npernode", "--npernode", "-npersocket", "--npersocket",
        "-ppn", "--map-by", "-map-by", "--rank-by", "-rank-by", "--bind-to", "-bind-to",
        "--output-filename", "-output-filename", "--timeout", "-timeout", "--default-hostfile",
        "--preload-files", "--rankfile", "-rf", "--tune", "--cpus-per-proc", "--cpus-per-rank",
        "--cpu-set", "--cpu-list", "--slot-list", "--personality", "--launch-agent", "--hnp",
        "--ompi-server", "--stdin", "-stdin", "--xterm", "--report-uri", "--report-pid", "--output",
        "-genvlist", "-envlist", "-launcher", "-launcher-exec", "-iface", "-rmk", "-demux",
        "-errfile-pattern", "-outfile-pattern", "-profile", "-bootstrap", "-bootstrap-exec",
        "-gdba", "-nameserver", "-ckpointlib", "-ckpoint-prefix", "-ckpoint-num",
        "-ckpoint-interval", "-tmpdir",
    ],
    two: &[
        "-mca", "--mca", "-gmca", "--gmca", "-genv", "-env", "--tune-mca",
    ],
    width: &[
        "-n", "-np", "--np", "-c",
    ],
    multi: &[
        "--app", "-app", "-configfile", "--configfile",
    ],
    attached: false,
};

#[rustfmt::skip]
const FLUX_RUN: Grammar = Grammar {
    value: &[
        "-n", "-c", "-g", "-N", "-t", "-o", "-S", "-q", "-B", "--ntasks", "--cores-per-task",
        "--gpus-per-task", "--nodes", "--time-limit", "--setopt", "--setattr", "--env",
        "--env-remove", "--env-file", "--input", "--output", "--error", "--cwd", "--urgency",
        "--job-name", "--dependency", "--requires", "--queue", "--bank", "--taskmap",
        "--tasks-per-node", "--tasks-per-core", "--gpus-per-node", "--cores", "--conf",
        "--begin-time", "--signal", "--add-file", "--flags", "--log", "--log-stderr",
    ],
    two: &[],
    width: &[
        "-n", "--ntasks",
    ],
    multi: &[],
    attached: true,
};

#[rustfmt::skip]
const APRUN: Grammar = Grammar {
    value: &[
        "-n", "-N", "-d", "-S", "-j", "-cc", "-cp", "-D", "-e", "-L", "-m", "-p", "-r", "-t", "-F",
        "-a", "-sl", "-ss", "--cpu-binding", "--pes", "--pes-per-node", "--cpus-per-pe",
        "--environment-override", "--node-list", "--memory-per-pe", "--access-mode",
    ],
    two: &[],
    width: &[
        "-n", "--pes",
    ],
    multi: &[],
    attached: false,
};

#[rustfmt::skip]
const JSRUN: Grammar = Grammar {
    value: &[
        "-n", "-a", "-c", "-g", "-r", "-d", "-b", "-l", "-E", "-F", "-f", "-h", "-p", "-e", "-K",
        "-M", "-o", "-k", "-i", "-U", "-X", "-D", "--nrs", "--tasks_per_rs", "--cpu_per_rs",
        "--gpu_per_rs", "--rs_per_host", "--launch_distribution", "--bind", "--latency_priority",
        "--env", "--env_no_propagate", "--erf_input", "--chdir", "--np", "--stdio_mode",
        "--stdio_stdout", "--stdio_stderr", "--stdio_input", "--smpiargs", "--use_reservation",
        "--appfile",
    ],
    two: &[],
    width: &[
        "-p", "--np",
    ],
    multi: &[
        "-f", "--appfile", "--erf_input",
    ],
    attached: true,
};

/// The launcher the line's first word names, and where its options start.
fn launcher_of(words: &[OsString]) -> Option<(Launcher, usize)> {
    let first = Path::new(words.first()?).file_name()?.to_str()?;
    let base = first.split('.').next().unwrap_or(first);
    match base {
        "srun" => Some((Launcher::Srun, 1)),
        "mpirun" | "mpiexec" | "orterun" | "prterun" => Some((mpi_kind(&words[0]), 1)),
        "flux" if words.get(1).map(OsString::as_os_str) == Some(OsStr::new("run")) => {
            Some((Launcher::Flux, 2))
        }
        "aprun" => Some((Launcher::Aprun, 1)),
        "jsrun" => Some((Launcher::Jsrun, 1)),
        _ => None,
    }
}

/// Open MPI or Hydra: by the name the launcher resolves to (Debian:
/// `mpirun` -> `mpirun.openmpi` -> `orterun`), else by what `--version`
/// says.
fn mpi_kind(word: &OsStr) -> Launcher {
    let resolved = crate::target::find_in_path(word).and_then(|p| p.canonicalize().ok());
    let name = resolved
        .as_ref()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.contains("openmpi") || name == "orterun" || name == "prterun" {
        return Launcher::OpenMpi;
    }
    if name.contains("mpich") || name.contains("hydra") {
        return Launcher::Hydra;
    }
    let said = std::process::Command::new(word)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if said.contains("Open MPI") || said.contains("Open RTE") || said.contains("OpenRTE") {
        Launcher::OpenMpi
    } else {
        Launcher::Hydra
    }
}

fn grammar(l: Launcher) -> &'static Grammar {
    match l {
        Launcher::Srun => &SRUN,
        Launcher::OpenMpi | Launcher::Hydra => &MPIRUN,
        Launcher::Flux => &FLUX_RUN,
        Launcher::Aprun => &APRUN,
        Launcher::Jsrun => &JSRUN,
        Launcher::Given => &GIVEN,
    }
}

/// `--program-at`: no option is known.
const GIVEN: Grammar = Grammar {
    value: &[],
    two: &[],
    width: &[],
    multi: &[],
    attached: false,
};

/// Finds the program in `words` (see the module doc); `program_at` is
/// `--program-at`'s value.
pub fn parse(words: Vec<OsString>, program_at: Option<usize>) -> Result<Line, Unsupported> {
    if words.is_empty() {
        return Err(Unsupported("no command given".into()));
    }
    if let Some(at) = program_at {
        if at >= words.len() {
            return Err(Unsupported(format!(
                "--program-at {at}: the command has only {} word(s)",
                words.len()
            )));
        }
        let launcher = launcher_of(&words).map(|(l, _)| l);
        return Ok(Line {
            width: launcher.and_then(|l| width_in(&words[1..at], grammar(l))),
            launcher: Some(launcher.unwrap_or(Launcher::Given)),
            program: at,
            words,
        });
    }
    let Some((launcher, start)) = launcher_of(&words) else {
        return Ok(Line {
            words,
            program: 0,
            launcher: None,
            width: None,
        });
    };
    let g = grammar(launcher);
    let mut i = start;
    let program = loop {
        let Some(w) = words.get(i).and_then(|w| w.to_str()) else {
            match words.get(i) {
                // A word that is not UTF-8 is no option of ours: the program.
                Some(_) => break i,
                None => {
                    return Err(Unsupported(format!(
                        "found no program in this {} line (use --program-at N)",
                        launcher.name()
                    )))
                }
            }
        };
        if w == "--" {
            i += 1;
            if i >= words.len() {
                return Err(Unsupported(format!(
                    "found no program after `--` in this {} line",
                    launcher.name()
                )));
            }
            break i;
        }
        if !w.starts_with('-') || w == "-" {
            break i;
        }
        let name = w.split('=').next().unwrap_or(w);
        if g.multi.contains(&name) {
            return Err(Unsupported(format!(
                "`{name}` starts several programs; dlfm runs one program per line"
            )));
        }
        i += if w.contains('=') && w.starts_with("--") {
            1
        } else if g.two.contains(&w) {
            3
        } else if g.value.contains(&w) {
            2
        } else {
            1
        };
    };
    if matches!(
        launcher,
        Launcher::Srun | Launcher::OpenMpi | Launcher::Hydra | Launcher::Aprun
    ) && words[program + 1..].iter().any(|w| w == ":")
    {
        return Err(Unsupported(format!(
            "this {} line starts several programs (`:`); dlfm runs one program per line",
            launcher.name()
        )));
    }
    Ok(Line {
        width: width_in(&words[start..program], g),
        launcher: Some(launcher),
        program,
        words,
    })
}

/// The width the options `opts` give.
fn width_in(opts: &[OsString], g: &Grammar) -> Option<u32> {
    let mut width = None;
    let mut i = 0;
    while i < opts.len() {
        let w = opts[i].to_str().unwrap_or("");
        let (name, inline) = match w.split_once('=') {
            Some((n, v)) if w.starts_with("--") => (n, Some(v)),
            _ => (w, None),
        };
        if g.width.contains(&name) {
            let v = inline.or_else(|| opts.get(i + 1).and_then(|v| v.to_str()));
            width = v.and_then(|v| v.parse().ok()).or(width);
        } else if g.attached && name.len() > 2 && !name.starts_with("--") {
            if let Some(flag) = g
                .width
                .iter()
                .find(|f| f.len() == 2 && name.starts_with(*f))
            {
                width = name[flag.len()..].parse().ok().or(width);
            }
        }
        i += 1;
    }
    width.filter(|&w| w > 0)
}

impl Line {
    /// The line with the program's word replaced by `program` and dlfm's
    /// variables `vars` (name, value) passed through the launcher where it
    /// would not pass them itself: Open MPI's `-x NAME`; srun's `--export`
    /// when it names variables (without it srun passes everything). srun
    /// with `--export=NONE` (or `SLURM_EXPORT_ENV=NONE`) passes none: refused.
    pub fn rewritten(
        &self,
        program: Vec<OsString>,
        vars: &[(&str, OsString)],
    ) -> Result<Vec<OsString>, Unsupported> {
        let mut out: Vec<OsString> = Vec::with_capacity(self.words.len() + program.len() + 8);
        let (before, after) = self.words.split_at(self.program);
        let mut export_seen = false;
        let mut i = 0;
        while i < before.len() {
            let w = &before[i];
            match (self.launcher, w.to_str()) {
                (Some(Launcher::Srun), Some("--export")) if i + 1 < before.len() => {
                    export_seen = true;
                    out.push(w.clone());
                    i += 1;
                    out.push(export_with(&before[i].to_string_lossy(), vars)?);
                }
                (Some(Launcher::Srun), Some(s)) if s.starts_with("--export=") => {
                    export_seen = true;
                    let mut arg = OsString::from("--export=");
                    arg.push(export_with(&s["--export=".len()..], vars)?);
                    out.push(arg);
                }
                _ => out.push(w.clone()),
            }
            if i == 0 && self.launcher == Some(Launcher::OpenMpi) {
                for (name, _) in vars {
                    out.push("-x".into());
                    out.push((*name).into());
                }
            }
            i += 1;
        }
        if self.launcher == Some(Launcher::Srun)
            && !export_seen
            && std::env::var_os("SLURM_EXPORT_ENV").is_some_and(|v| v == "NONE")
        {
            return Err(Unsupported(
                "SLURM_EXPORT_ENV=NONE: srun passes no variable to the ranks".into(),
            ));
        }
        out.extend(program);
        out.extend(after.iter().skip(1).cloned());
        Ok(out)
    }
}

/// srun's `--export` value passing `vars` too: unchanged when it passes the
/// whole environment (`ALL`, `ALL,...`), else with `NAME=value` added.
fn export_with(value: &str, vars: &[(&str, OsString)]) -> Result<OsString, Unsupported> {
    if value == "ALL" || value.starts_with("ALL,") {
        return Ok(value.into());
    }
    if value == "NONE" {
        return Err(Unsupported(
            "srun --export=NONE passes no variable to the ranks".into(),
        ));
    }
    let mut out = OsString::from(value);
    for (name, v) in vars {
        out.push(",");
        out.push(name);
        out.push("=");
        out.push(v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<OsString> {
        s.split_whitespace().map(OsString::from).collect()
    }

    fn program(s: &str) -> (String, Option<u32>) {
        let line = parse(words(s), None).expect(s);
        (
            line.words[line.program].to_string_lossy().into_owned(),
            line.width,
        )
    }

    #[test]
    fn the_program_is_found_after_each_launchers_options() {
        assert_eq!(program("./app -n 3"), ("./app".into(), None));
        assert_eq!(
            program("srun -n 8 -N2 --mpi=pmix python3 app.py -n 2"),
            ("python3".into(), Some(8))
        );
        assert_eq!(program("srun -n8 -c 2 ./app"), ("./app".into(), Some(8)));
        assert_eq!(
            program("srun --ntasks=16 --export ALL -- ./app"),
            ("./app".into(), Some(16))
        );
        assert_eq!(
            program("/usr/bin/srun --ntasks 4 --cpu-bind=cores ./app"),
            ("./app".into(), Some(4))
        );
        assert_eq!(
            program("mpiexec -n 4 --mca btl self,vader -x FOO --oversubscribe ./hello"),
            ("./hello".into(), Some(4))
        );
        assert_eq!(
            program("mpirun -np 2 -genv A 1 -ppn 1 python3 -m mod"),
            ("python3".into(), Some(2))
        );
        assert_eq!(
            program("flux run -N 2 -n 64 --setopt=x=y python3 a.py"),
            ("python3".into(), Some(64))
        );
        assert_eq!(
            program("aprun -n 128 -N 32 -cc depth ./a.out"),
            ("./a.out".into(), Some(128))
        );
        assert_eq!(
            program("jsrun -n 2 -a 4 -p 8 --bind packed:1 ./x"),
            ("./x".into(), Some(8))
        );
    }

    #[test]
    fn lines_with_several_programs_or_none_are_refused() {
        for s in [
            "mpirun -n 1 ./a : -n 3 ./b",
            "srun --multi-prog conf",
            "mpirun --app appfile",
            "srun -n 4",
            "srun -n 4 --",
        ] {
            assert!(parse(words(s), None).is_err(), "{s}");
        }
        assert!(parse(vec![], None).is_err());
    }

    #[test]
    fn program_at_names_the_word() {
        let line = parse(words("mylauncher --np 4 --weird x ./app"), Some(5)).unwrap();
        assert_eq!(line.words[line.program], "./app");
        assert_eq!(line.launcher, Some(Launcher::Given));
        assert!(parse(words("a b"), Some(2)).is_err());
    }

    #[test]
    fn variables_are_passed_where_the_launcher_would_not() {
        let vars = [("DLFM_OP", OsString::from("read-cache"))];
        let prog = || vec![OsString::from("L"), OsString::from("P")];
        let line = Line {
            words: words("mpirun -np 2 ./app x"),
            program: 3,
            launcher: Some(Launcher::OpenMpi),
            width: Some(2),
        };
        assert_eq!(
            line.rewritten(prog(), &vars).unwrap(),
            words("mpirun -x DLFM_OP -np 2 L P x")
        );
        let line = Line {
            words: words("srun --export=HOME ./app"),
            program: 2,
            launcher: Some(Launcher::Srun),
            width: None,
        };
        assert_eq!(
            line.rewritten(prog(), &vars).unwrap(),
            words("srun --export=HOME,DLFM_OP=read-cache L P")
        );
        let line = Line {
            words: words("srun --export=NONE ./app"),
            program: 2,
            launcher: Some(Launcher::Srun),
            width: None,
        };
        assert!(line.rewritten(prog(), &vars).is_err());
        let line = Line {
            words: words("srun --export ALL,X=1 ./app"),
            program: 3,
            launcher: Some(Launcher::Srun),
            width: None,
        };
        assert_eq!(
            line.rewritten(prog(), &vars).unwrap(),
            words("srun --export ALL,X=1 L P")
        );
    }
}
