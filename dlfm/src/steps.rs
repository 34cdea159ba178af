//! The manual's steps, run underneath `dlfm run` as the tools themselves
//! (`dlpatch`, `dlfm.pre ... --json`), so that both ways of using dlfm do
//! the same thing: every step here is one a job script can run by hand.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, Context, Result};
use dlfm_cli::install;
use serde_json::Value;

/// Where the tools and libraries `dlfm run` uses lie.
pub struct Tools {
    dlpatch: PathBuf,
    dlfm_pre: PathBuf,
    wrapper: PathBuf,
    interposers: Vec<PathBuf>,
}

impl Tools {
    /// The tools beside `dlfm` and the libraries beside it or in `../lib`.
    pub fn find() -> Result<Tools> {
        let missing = |what: &str| {
            anyhow!(
                "{what} is not installed beside dlfm ({})",
                install::bin_dir().map_or_else(|| "?".into(), |d| d.display().to_string())
            )
        };
        let tools = Tools {
            dlpatch: install::tool(&[install::DLPATCH]).ok_or_else(|| missing("dlpatch"))?,
            dlfm_pre: install::tool(&install::DLFM_PRE).ok_or_else(|| missing("dlfm.pre"))?,
            wrapper: install::library(install::WRAPPER_ARCHIVE),
            interposers: install::interposers(),
        };
        for lib in [&tools.wrapper].into_iter().chain(&tools.interposers) {
            if !lib.is_file() {
                return Err(missing(&lib.display().to_string()));
            }
        }
        Ok(tools)
    }

    /// Writes the patched copy of `ldso` (the wrapper embedded) to `out`,
    /// through a temporary file renamed at the end.
    pub fn patch_loader(&self, ldso: &str, out: &Path) -> Result<()> {
        let tmp = out.with_extension(format!("tmp{}", std::process::id()));
        let o = Command::new(&self.dlpatch)
            .args(["--embed", "--ldso", ldso, "--wrapper"])
            .arg(&self.wrapper)
            .arg("-o")
            .arg(&tmp)
            .stdin(Stdio::null())
            .output()
            .context("cannot run dlpatch")?;
        if !o.status.success() {
            let _ = std::fs::remove_file(&tmp);
            bail!("{}", last_line(&o.stderr, "dlpatch failed"));
        }
        std::fs::rename(&tmp, out).with_context(|| format!("cannot write {}", out.display()))
    }

    /// Why dlpatch refuses the loader `ldso` (`--dry-run`: nothing is
    /// written), None if it takes it: tells a refusal, which holds for
    /// every later run, from a failure to write the copy (a full disk).
    pub fn loader_refusal(&self, ldso: &str) -> Option<String> {
        let o = Command::new(&self.dlpatch)
            .args(["--embed", "--dry-run", "--ldso", ldso, "--wrapper"])
            .arg(&self.wrapper)
            .stdin(Stdio::null())
            .output()
            .ok()?;
        (!o.status.success()).then(|| last_line(&o.stderr, "dlpatch refused it"))
    }

    /// `dlfm.pre --json --cache CACHE ARGS...`: its JSON summary, or its
    /// error (with the JSON it printed, if any).
    fn pre(&self, cache: &Path, args: &[&str]) -> Result<Value, StepError> {
        let o = Command::new(&self.dlfm_pre)
            .arg("--json")
            .arg("--cache")
            .arg(cache)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| StepError::plain(format!("cannot run dlfm.pre: {e}")))?;
        let json: Option<Value> = serde_json::from_slice(&o.stdout).ok();
        if o.status.success() {
            return json.ok_or_else(|| StepError::plain("dlfm.pre printed no summary".into()));
        }
        let message = json
            .as_ref()
            .and_then(|j| j["error"].as_str())
            .map(str::to_string)
            .unwrap_or_else(|| last_line(&o.stderr, "dlfm.pre failed"));
        Err(StepError {
            message,
            json: json.unwrap_or(Value::Null),
        })
    }

    /// `dlfm.pre write-cache` naming the interposers (one per machine): a
    /// new journal beside `cache`.
    pub fn write_cache(&self, cache: &Path) -> Result<()> {
        let mut args = vec!["write-cache".to_string()];
        for fm in &self.interposers {
            args.push("--fm".into());
            args.push(fm.to_string_lossy().into_owned());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.pre(cache, &args)?;
        Ok(())
    }

    /// `dlfm.pre read-cache WIDTH --no-stage`: packs (and folds misses in).
    pub fn read_cache(&self, cache: &Path, width: u32) -> Result<Packed> {
        let w = width.to_string();
        let j = self.pre(cache, &["read-cache", &w, "--no-stage"])?;
        Ok(Packed {
            paths: j["paths"].as_u64().unwrap_or(0) as usize,
            bytes: j["bytes"].as_u64().unwrap_or(0),
            learned: j["folded"]["lookups"].as_u64().unwrap_or(0) as usize,
        })
    }

    /// `dlfm.pre check --quick`: Ok, or the problems it found.
    pub fn check(&self, cache: &Path) -> Result<(), Vec<String>> {
        match self.pre(cache, &["check", "--quick"]) {
            Ok(_) => Ok(()),
            Err(e) => Err(e.json["problems"]
                .as_array()
                .map(|p| {
                    p.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .filter(|p: &Vec<String>| !p.is_empty())
                .unwrap_or_else(|| vec![e.message])),
        }
    }

    /// `dlfm.pre stage`: how the cache reaches the nodes, for the start line.
    pub fn stage(&self, cache: &Path) -> Result<String> {
        let j = self.pre(cache, &["stage"])?;
        Ok(match j["outcome"].as_str() {
            Some("broadcast") => format!(
                "staged by sbcast to {} node(s)",
                j["nodes"]
                    .as_u64()
                    .map_or("every".into(), |n| n.to_string())
            ),
            Some("present") => "staged by sbcast earlier in this job".into(),
            _ => staged_by_ranks(),
        })
    }
}

/// How the cache reaches the nodes when nothing broadcast it.
pub fn staged_by_ranks() -> String {
    use dlfm_runtime::staging_policy::{config, NoStaging};
    let stage = std::env::var_os(dlfm_runtime::env::STAGE);
    let stage = stage.as_deref().map(std::os::unix::ffi::OsStrExt::as_bytes);
    match config(stage, None, None) {
        Err(NoStaging::Off) => "mapped from the store by every rank (DLFM_STAGE=off)".into(),
        _ => "staged by each node's first rank".into(),
    }
}

/// What a pack gave.
pub struct Packed {
    /// Paths the cache answers.
    pub paths: usize,
    /// Its size.
    pub bytes: u64,
    /// Lookups folded in from misses.
    pub learned: usize,
}

/// A failed `dlfm.pre` step: its one-line message and its JSON.
#[derive(Debug)]
struct StepError {
    message: String,
    json: Value,
}

impl StepError {
    fn plain(message: String) -> StepError {
        StepError {
            message,
            json: Value::Null,
        }
    }
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StepError {}

/// The last non-empty line of a tool's stderr, without its `tool: error:`
/// prefix; `default` if it printed none.
fn last_line(stderr: &[u8], default: &str) -> String {
    let text = String::from_utf8_lossy(stderr);
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(default);
    let line = line.split_once(": error: ").map_or(line, |(_, rest)| rest);
    line.to_string()
}

/// Whether the loader at `path` takes `--argv0` (glibc ≥ 2.33 says so in
/// its `--help` text, which lies in its read-only data).
pub fn loader_takes_argv0(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|b| b.windows(8).any(|w| w == b"--argv0 "))
}

/// The words of a command, for messages.
pub fn shown(words: &[OsString]) -> String {
    words
        .iter()
        .map(|w| w.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}
