//! `dlfm ls`, `dlfm gc`, `dlfm rm`: the store seen and pruned by its user.

use std::path::PathBuf;

use anyhow::{bail, Result};
use dlfm_cli::human;
use serde::Serialize;

use crate::store::{self, Entry};

/// One entry as `ls` shows it.
#[derive(Serialize)]
struct Listed {
    key: String,
    program: String,
    bytes: u64,
    last_used: u64,
    runs: u64,
    learned: usize,
    paths: usize,
    state: String,
    environment: Vec<(String, String)>,
}

fn listed(e: &Entry) -> Listed {
    let key = e
        .dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (runs, last_used) = e.uses();
    let (program, learned, paths, state, environment) = match e.info() {
        Ok(Some(i)) => (
            i.program,
            i.learned,
            i.paths,
            match (&i.refused, &i.current) {
                (Some(r), _) => format!("refused: {r}"),
                (None, Some(_)) => "ready".into(),
                (None, None) => "recording".into(),
            },
            i.environment,
        ),
        Ok(None) => (String::new(), 0, 0, "recording".into(), vec![]),
        Err(e) => (String::new(), 0, 0, format!("damaged: {e:#}"), vec![]),
    };
    Listed {
        key,
        program,
        bytes: e.size(),
        last_used,
        runs,
        learned,
        paths,
        state,
        environment,
    }
}

/// "3 d ago", "5 min ago".
fn ago(t: u64) -> String {
    if t == 0 {
        return "never".into();
    }
    let s = store::now().saturating_sub(t);
    match s {
        0..=119 => format!("{s} s ago"),
        120..=7199 => format!("{} min ago", s / 60),
        7200..=172_799 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86400),
    }
}

/// `dlfm ls`.
pub fn ls(store_dir: Option<PathBuf>, json: bool) -> Result<()> {
    let (dir, from) = store::store_dir(store_dir)?;
    let all: Vec<Listed> = store::entries(&dir)?.iter().map(listed).collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(());
    }
    println!(
        "store {} (from {from}): {} entries",
        dir.display(),
        all.len()
    );
    if all.is_empty() {
        return Ok(());
    }
    println!(
        "{:<16}  {:>9}  {:>12}  {:>5}  {:>7}  PROGRAM",
        "KEY", "SIZE", "LAST USE", "RUNS", "LEARNED"
    );
    for l in &all {
        let program = if l.state == "ready" {
            l.program.clone()
        } else {
            format!("{} ({})", l.program, l.state)
        };
        println!(
            "{:<16}  {:>9}  {:>12}  {:>5}  {:>7}  {}",
            l.key,
            human(l.bytes),
            ago(l.last_used),
            l.runs,
            l.learned,
            program
        );
    }
    Ok(())
}

/// `30d`, `12h`, `90m`, `600s` (or plain seconds) as seconds.
pub fn parse_age(s: &str) -> Result<u64, String> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, ""), |i| s.split_at(i));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not an age such as 30d, 12h, 90m or 600s"))?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        "w" => 7 * 86400,
        _ => return Err(format!("`{s}`: the unit must be s, m, h, d or w")),
    };
    Ok(n.saturating_mul(scale))
}

/// What `gc` and `rm` removed.
#[derive(Serialize, Default)]
struct Removed {
    removed: Vec<String>,
    bytes: u64,
    skipped: Vec<String>,
}

/// `dlfm gc --older-than AGE`: entries unused for AGE seconds, except one
/// a run holds locked.
pub fn gc(store_dir: Option<PathBuf>, age: u64, dry_run: bool, json: bool) -> Result<()> {
    let (dir, _) = store::store_dir(store_dir)?;
    let mut out = Removed::default();
    let now = store::now();
    for e in store::entries(&dir)? {
        let (_, last) = e.uses();
        let last = if last == 0 {
            e.info().ok().flatten().map_or(0, |i| i.created)
        } else {
            last
        };
        if now.saturating_sub(last) < age {
            continue;
        }
        remove_one(&e, dry_run, &mut out);
    }
    report(&out, dry_run, json, "gc")
}

fn remove_one(e: &Entry, dry_run: bool, out: &mut Removed) {
    let key = e
        .dir
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    if e.dir.join("lock").exists() {
        out.skipped.push(format!("{key} (a run holds it)"));
        return;
    }
    let bytes = e.size();
    if !dry_run {
        if let Err(err) = e.remove() {
            out.skipped.push(format!("{key} ({err:#})"));
            return;
        }
    }
    out.removed.push(key);
    out.bytes += bytes;
}

fn report(out: &Removed, dry_run: bool, json: bool, what: &str) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(out)?);
    } else {
        println!(
            "dlfm {what}: {} {} entr{} ({})",
            if dry_run { "would remove" } else { "removed" },
            out.removed.len(),
            if out.removed.len() == 1 { "y" } else { "ies" },
            human(out.bytes)
        );
        for k in &out.removed {
            println!("  {k}");
        }
        for s in &out.skipped {
            println!("  kept {s}");
        }
    }
    Ok(())
}

/// `dlfm rm KEY...`: each a key or the prefix of exactly one.
pub fn rm(store_dir: Option<PathBuf>, keys: &[String], json: bool) -> Result<()> {
    let (dir, _) = store::store_dir(store_dir)?;
    let all = store::entries(&dir)?;
    let mut out = Removed::default();
    for k in keys {
        let matching: Vec<&Entry> = all
            .iter()
            .filter(|e| {
                e.dir
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(k.as_str()))
            })
            .collect();
        match matching.as_slice() {
            [one] => remove_one(one, false, &mut out),
            [] => bail!("no entry's key starts with `{k}` in {}", dir.display()),
            _ => bail!(
                "`{k}` is the start of {} keys: give more of it",
                matching.len()
            ),
        }
    }
    report(&out, false, json, "rm")
}
