//! The keyed store: one directory per key under the store directory, the
//! one owner of its layout:
//!
//! ```text
//! <store>/<key>/entry.json      what the entry holds (written under the lock, by rename)
//! <store>/<key>/uses            one byte per run: r recorded, p replayed, - plain
//! <store>/<key>/bin/<name>      the patched copy of the program's loader
//! <store>/<key>/<generation>/   dlcache.dat, its journal and misses (one per recording)
//! <store>/<key>/lock/owner      while a run records or folds (see `lock`)
//! ```
//!
//! The store directory is `DLFM_CACHE_DIR`, else the `cache_dir` line of the
//! site's configuration file (`DLFM_CONFIG`, default `/etc/dlfm.conf`),
//! else `$XDG_CACHE_HOME/dlfm`, else `~/.cache/dlfm`. It must be a
//! directory every node of a job can read (home or scratch), as the ranks
//! read the cache from there unless it is staged.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// The entry description's format; an entry of another format is recorded
/// again.
pub const ENTRY_FORMAT: u32 = 1;
/// The cache file's name inside a generation.
pub const CACHE_FILE: &str = dlfm_cache::names::DEFAULT_CACHE;

/// The store directory (see the module doc) and where that choice came from.
pub fn store_dir(given: Option<PathBuf>) -> Result<(PathBuf, &'static str)> {
    if let Some(d) = given {
        return Ok((d, "--store"));
    }
    if let Some(d) = std::env::var_os(dlfm_runtime::env::CACHE_DIR).filter(|d| !d.is_empty()) {
        return Ok((d.into(), dlfm_runtime::env::CACHE_DIR));
    }
    let config = std::env::var_os(dlfm_runtime::env::CONFIG)
        .filter(|c| !c.is_empty())
        .map_or_else(|| PathBuf::from("/etc/dlfm.conf"), PathBuf::from);
    if let Some(d) = configured(&config)? {
        return Ok((d, "the site's configuration"));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Ok((PathBuf::from(d).join("dlfm"), "XDG_CACHE_HOME"));
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(h) => Ok((PathBuf::from(h).join(".cache/dlfm"), "HOME")),
        None => bail!(
            "no store directory: set {} (HOME is not set)",
            dlfm_runtime::env::CACHE_DIR
        ),
    }
}

/// The `cache_dir = PATH` line of the configuration file `config`, with
/// `$USER` and `$HOME` (or a leading `~`) expanded; None when the file does
/// not exist or has no such line.
fn configured(config: &Path) -> Result<Option<PathBuf>> {
    let text = match fs::read_to_string(config) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", config.display())),
    };
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        if k.trim() != "cache_dir" {
            continue;
        }
        let home = std::env::var("HOME").unwrap_or_default();
        let user = std::env::var("USER").unwrap_or_else(|_| {
            // SAFETY: getuid cannot fail.
            unsafe { libc::getuid() }.to_string()
        });
        let v = v.trim();
        let v = match v.strip_prefix('~') {
            Some(rest) => format!("{home}{rest}"),
            None => v.to_string(),
        };
        let v = v.replace("$USER", &user).replace("$HOME", &home);
        if !v.starts_with('/') {
            bail!(
                "{}: cache_dir must be an absolute path, not `{v}`",
                config.display()
            );
        }
        return Ok(Some(PathBuf::from(v)));
    }
    Ok(None)
}

/// What an entry holds (its `entry.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EntryInfo {
    /// [`ENTRY_FORMAT`].
    pub format: u32,
    /// The key.
    pub key: String,
    /// The program as the command named it (found in PATH).
    pub program: String,
    /// The ELF program that runs (the program, or a script's interpreter).
    pub elf: String,
    /// The program's loader (PT_INTERP).
    pub loader: String,
    /// Whether the patched loader takes `--argv0` (glibc ≥ 2.33).
    pub argv0: bool,
    /// The key's variables that were set.
    pub environment: Vec<(String, String)>,
    /// Everything the key was computed from.
    pub material: Vec<String>,
    /// When the entry was made (seconds since the epoch).
    pub created: u64,
    /// When the cache in use was recorded.
    pub recorded: u64,
    /// The generation directory holding the cache in use (None: none yet).
    pub current: Option<String>,
    /// Paths the cache answers.
    pub paths: usize,
    /// The cache's size in bytes.
    pub bytes: u64,
    /// Lookups learned from replays' misses since it was recorded.
    pub learned: usize,
    /// Why dlfm cannot run this program (its loader was refused), if so:
    /// every run is then plain, without trying again.
    pub refused: Option<String>,
}

/// One entry of the store.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its directory.
    pub dir: PathBuf,
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Creates the store directory (mode 0700: only its user reads it) if
/// needed and checks it is a writable directory.
pub fn open(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create the store {}", dir.display()))?;
    // SAFETY: access reads the NUL-terminated path and touches nothing else.
    let writable = unsafe {
        let c = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(dir.as_os_str()))?;
        libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) == 0
    };
    if !writable {
        bail!("the store {} is not writable", dir.display());
    }
    Ok(())
}

impl Entry {
    /// The entry of `key` in the store `store` (it may not exist yet).
    pub fn new(store: &Path, key: &str) -> Entry {
        Entry {
            dir: store.join(key),
        }
    }

    /// Its `entry.json`.
    fn info_path(&self) -> PathBuf {
        self.dir.join("entry.json")
    }

    /// What it holds: None when it has no `entry.json` yet; an error when
    /// that is unreadable or of another format (the caller records again).
    pub fn info(&self) -> Result<Option<EntryInfo>> {
        let path = self.info_path();
        let text = match fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let info: EntryInfo = serde_json::from_slice(&text)
            .with_context(|| format!("{} is damaged", path.display()))?;
        if info.format != ENTRY_FORMAT {
            bail!(
                "{} is of format {} (this dlfm writes {ENTRY_FORMAT})",
                path.display(),
                info.format
            );
        }
        Ok(Some(info))
    }

    /// Replaces `entry.json` (write, then rename: readers see the old or
    /// the new one whole).
    pub fn write_info(&self, info: &EntryInfo) -> Result<()> {
        let tmp = self.dir.join(format!(".entry.json.{}", std::process::id()));
        let text = serde_json::to_vec_pretty(info)?;
        fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
        fs::rename(&tmp, self.info_path())
            .with_context(|| format!("cannot replace {}", self.info_path().display()))
    }

    /// Creates the entry's directory.
    pub fn create(&self) -> Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(self.dir.join("bin"))
            .with_context(|| format!("cannot create {}", self.dir.display()))
    }

    /// The patched loader's path, named `name` (the program's own name, so
    /// that `ps` and `pgrep` show it).
    pub fn loader(&self, name: &std::ffi::OsStr) -> PathBuf {
        self.dir.join("bin").join(name)
    }

    /// The cache of generation `generation`.
    pub fn cache(&self, generation: &str) -> PathBuf {
        self.dir.join(generation).join(CACHE_FILE)
    }

    /// A new generation's name, unique to this process: r<seconds>-<pid>.
    pub fn new_generation(&self) -> Result<String> {
        let name = format!("r{}-{}", now(), std::process::id());
        fs::DirBuilder::new()
            .mode(0o700)
            .create(self.dir.join(&name))
            .with_context(|| format!("cannot create {}", self.dir.join(&name).display()))?;
        Ok(name)
    }

    /// Removes every generation but `keep`.
    pub fn remove_generations_but(&self, keep: &str) {
        let Ok(dir) = fs::read_dir(&self.dir) else {
            return;
        };
        for e in dir.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('r') && name != keep && e.path().is_dir() {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }

    /// Notes one run (`r`, `p` or `-`) in `uses`: one appended byte, so
    /// that concurrent runs never lose a count.
    pub fn note_use(&self, what: u8) {
        let _ = fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(self.dir.join("uses"))
            .and_then(|mut f| f.write_all(&[what]));
    }

    /// Runs so far and the last one's time (seconds since the epoch).
    pub fn uses(&self) -> (u64, u64) {
        match fs::metadata(self.dir.join("uses")) {
            Ok(m) => (
                m.len(),
                m.modified()
                    .ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_secs()),
            ),
            Err(_) => (0, 0),
        }
    }

    /// Bytes the entry takes on disk.
    pub fn size(&self) -> u64 {
        fn walk(p: &Path) -> u64 {
            let Ok(m) = fs::symlink_metadata(p) else {
                return 0;
            };
            if !m.is_dir() {
                return std::os::unix::fs::MetadataExt::blocks(&m) * 512;
            }
            fs::read_dir(p)
                .map(|d| d.flatten().map(|e| walk(&e.path())).sum())
                .unwrap_or(0)
        }
        walk(&self.dir)
    }

    /// Removes the entry: renamed away first, so that no run finds half
    /// of it.
    pub fn remove(&self) -> Result<()> {
        let gone = self
            .dir
            .with_file_name(format!(".removing-{}-{}", std::process::id(), now()));
        fs::rename(&self.dir, &gone)
            .with_context(|| format!("cannot remove {}", self.dir.display()))?;
        fs::remove_dir_all(&gone).with_context(|| format!("cannot remove {}", gone.display()))
    }
}

/// Every entry of the store (directories whose names are keys).
pub fn entries(store: &Path) -> Result<Vec<Entry>> {
    let dir = match fs::read_dir(store) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", store.display())),
    };
    let mut out: Vec<Entry> = dir
        .flatten()
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.len() == 16 && n.bytes().all(|b| b.is_ascii_hexdigit()) && e.path().is_dir()
        })
        .map(|e| Entry { dir: e.path() })
        .collect();
    out.sort_by(|a, b| a.dir.cmp(&b.dir));
    Ok(out)
}
