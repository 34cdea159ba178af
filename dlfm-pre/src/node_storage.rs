//! Node-local copies of the cache from the job script's side: broadcasting
//! the cache to every node of a Slurm allocation with `sbcast` (so that no
//! rank reads the shared copy at all), and removing node-local copies
//! (`dlfm.pre clean`, for an epilog). The names and the pointer format are
//! `dlfm_cache::node_files`'s; the wrapper stages by itself where this is not
//! done (see `wrapper-objs/ldso/src/stager.rs`).

use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use dlfm_cache::layout::HEADER_LEN;
use dlfm_cache::node_files::{
    parse_name, path_key, ContentId, NodeFile, NodeName, Pointer, PointerKey,
};
use dlfm_runtime::fixed_path::FixedPath;
use dlfm_runtime::staging_policy::{self, NoStaging};
use serde::Serialize;

/// What `stage` did.
#[derive(Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Staged {
    /// The cache was broadcast to every node of the allocation.
    Broadcast {
        /// The node-local copy's path on every node.
        copy: String,
        /// The job the pointer names.
        job: String,
        /// How many nodes (`SLURM_JOB_NUM_NODES`), if Slurm said.
        nodes: Option<u32>,
    },
    /// This job broadcast this cache before (its pointer on this node, a
    /// node of the allocation, names it): nothing was sent again.
    Present {
        /// The node-local copy's path on every node.
        copy: String,
        /// The job the pointer names.
        job: String,
    },
    /// Nothing was broadcast; the ranks stage the cache themselves.
    Skipped {
        /// Why.
        reason: String,
    },
}

/// The process's environment, for the judges in `dlfm_runtime::staging_policy`.
struct Env(Vec<(Vec<u8>, Vec<u8>)>);

impl Env {
    fn read() -> Env {
        Env(std::env::vars_os()
            .map(|(k, v)| (k.into_vec(), v.into_vec()))
            .collect())
    }

    fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The stage directory the ranks will use (`DLFM_STAGE_DIR`, else
    /// `/dev/shm`), or why there is none; with `ignore_off`, even when
    /// `DLFM_STAGE=off`.
    fn stage_dir(&self, ignore_off: bool) -> std::result::Result<PathBuf, NoStaging> {
        let cfg = staging_policy::config_of(|name| {
            if ignore_off && name == dlfm_runtime::env::STAGE.as_bytes() {
                None
            } else {
                self.get(name)
            }
        })?;
        Ok(PathBuf::from(OsStr::from_bytes(cfg.dir)))
    }
}

/// Broadcasts `cache` to every node's stage directory with `sbcast`, and a
/// pointer that lets every step of this job use it, when inside a Slurm
/// allocation; otherwise says what it skipped.
pub fn stage(cache: &Path) -> Result<Staged> {
    let env = Env::read();
    let dir = match env.stage_dir(false) {
        Ok(d) => d,
        Err(NoStaging::Off) => return Ok(skipped("DLFM_STAGE=off")),
        Err(NoStaging::DirNotAbsolute) => {
            bail!("DLFM_STAGE_DIR must be an absolute path (the ranks would not stage either)")
        }
    };
    if !dir.is_dir() {
        return Ok(skipped(&format!(
            "the stage directory {} does not exist: every rank will map the shared cache (create it, or unset DLFM_STAGE_DIR for /dev/shm)",
            dir.display()
        )));
    }
    let Some(job_id) = std::env::var("SLURM_JOB_ID").ok().filter(|v| !v.is_empty()) else {
        return Ok(skipped(
            "not inside a Slurm allocation (SLURM_JOB_ID unset): the first process on each node stages the cache itself",
        ));
    };
    if !sbcast_exists() {
        return Ok(skipped(
            "sbcast not found: the first process on each node stages the cache itself",
        ));
    }
    let id = content_id(cache)?;
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    // The pointer names the whole job (no step): every later step uses the copy.
    let keys = staging_policy::job_keys(|name| env.get(name));
    let job = keys
        .job
        .context("SLURM_JOB_ID is set but gave no job key")?;
    let key = PointerKey {
        path: path_key(&absolute_like_the_wrapper(cache)?),
        job,
    };
    let copy = dir.join(OsStr::from_bytes(
        NodeName::new(uid, NodeFile::Copy(id)).as_bytes(),
    ));
    let pointer_path = dir.join(OsStr::from_bytes(
        NodeName::new(uid, NodeFile::Pointer(key)).as_bytes(),
    ));
    let mut bytes = [0u8; Pointer::LEN];
    Pointer { job, content: id }.write(&mut bytes);
    if fs::read(&pointer_path).is_ok_and(|b| b == bytes) {
        return Ok(Staged::Present {
            copy: copy.display().to_string(),
            job: job_id,
        });
    }
    let tmp = tempfile::NamedTempFile::new().context("cannot write the pointer file")?;
    fs::write(tmp.path(), bytes)?;
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o644))?;
    // The copy first: a node that has the pointer has the whole copy.
    sbcast(cache, &copy)?;
    sbcast(tmp.path(), &pointer_path)?;
    Ok(Staged::Broadcast {
        copy: copy.display().to_string(),
        job: job_id,
        nodes: std::env::var("SLURM_JOB_NUM_NODES")
            .ok()
            .and_then(|n| n.parse().ok()),
    })
}

fn skipped(reason: &str) -> Staged {
    Staged::Skipped {
        reason: reason.to_string(),
    }
}

/// Whether `sbcast` is on PATH.
fn sbcast_exists() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("sbcast").is_file()))
}

/// `sbcast --force --preserve FROM TO` (modes kept: the copy read-only,
/// the pointer writable by its owner only).
fn sbcast(from: &Path, to: &Path) -> Result<()> {
    let out = Command::new("sbcast")
        .args(["--force", "--preserve"])
        .arg(from)
        .arg(to)
        .output()
        .context("cannot run sbcast")?;
    if !out.status.success() {
        bail!(
            "sbcast {} {} failed: {}",
            from.display(),
            to.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The content id in the header of the cache at `cache`.
fn content_id(cache: &Path) -> Result<ContentId> {
    let mut h = [0u8; HEADER_LEN];
    fs::File::open(cache)
        .and_then(|mut f| f.read_exact(&mut h))
        .with_context(|| format!("cannot read the cache {}", cache.display()))?;
    ContentId::of_header(&h).with_context(|| {
        format!(
            "{} is not a dlfm cache of this version: run dlfm.pre read-cache first",
            cache.display()
        )
    })
}

/// The cache's absolute path as the wrapper makes it from `DLFM_CACHE`
/// (the working directory, `/`, the value: no other normalisation), so
/// that both compute the same pointer name.
fn absolute_like_the_wrapper(cache: &Path) -> Result<Vec<u8>> {
    let mut p = FixedPath::EMPTY;
    let cwd = std::env::current_dir().context("cannot read the working directory")?;
    let ok = p.push_absolute(cache.as_os_str().as_bytes(), |buf| {
        let c = cwd.as_os_str().as_bytes();
        let dst = buf.get_mut(..=c.len())?;
        dst[..c.len()].copy_from_slice(c);
        dst[c.len()] = 0;
        Some(c.len() + 1)
    });
    if !ok {
        bail!("the cache's path is too long: {}", cache.display());
    }
    Ok(p.as_bytes().to_vec())
}

/// What `clean` removed.
#[derive(Serialize)]
pub struct Cleaned {
    /// The stage directory.
    pub dir: String,
    /// Whose files: "job <id>" (an epilog) or "all".
    pub scope: String,
    /// Files removed.
    pub removed: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Copies kept because another job's pointer still names them.
    pub kept: usize,
    /// Files that could not be removed, with why.
    pub failed: Vec<String>,
}

/// One of dlfm's node-local files that `clean` may remove.
struct Found {
    path: PathBuf,
    file: NodeFile,
    len: u64,
}

/// Removes dlfm's node-local files from the stage directory. In a job
/// (`SLURM_JOB_ID` or another launcher's job variable set) and without
/// `all`: that job's pointers, and the copies no other job's pointer names
/// (another job on the node keeps what it uses). Otherwise, or with `all`:
/// every file of dlfm's. Only this user's files, or every user's as root.
pub fn clean(all: bool) -> Result<Cleaned> {
    let env = Env::read();
    let Ok(dir) = env.stage_dir(true) else {
        bail!("DLFM_STAGE_DIR must be an absolute path");
    };
    let keys = staging_policy::job_keys(|name| env.get(name));
    let job = keys.job.filter(|_| !all);
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    let mut done = Cleaned {
        dir: dir.display().to_string(),
        scope: match job {
            Some(_) => dlfm_runtime::env::job_variable(|name| env.get(name)).map_or_else(
                || "job".to_string(),
                |(name, v)| {
                    format!(
                        "job {}={}",
                        String::from_utf8_lossy(name),
                        String::from_utf8_lossy(v)
                    )
                },
            ),
            None => "all".to_string(),
        },
        removed: 0,
        bytes: 0,
        kept: 0,
        failed: Vec::new(),
    };
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(done),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
    };
    let mut found = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name();
        let Some((owner, file)) = parse_name(name.as_bytes()) else {
            continue;
        };
        let Ok(meta) = e.path().symlink_metadata() else {
            continue;
        };
        // Only regular files (directories for copies) owned by the user
        // the name says (an impostor's file is left for its owner), and
        // only one's own unless root.
        let is_copy = matches!(file, NodeFile::Tree(_) | NodeFile::TreePart(_));
        let right_kind = if is_copy {
            meta.is_dir()
        } else {
            meta.is_file()
        };
        if !right_kind || meta.uid() != owner || (uid != 0 && owner != uid) {
            continue;
        }
        let path = e.path();
        let len = if is_copy {
            bytes_under(&path)
        } else {
            meta.len()
        };
        found.push(Found { path, file, len });
    }
    let doomed: Vec<&Found> = match job {
        None => found.iter().collect(),
        Some(job) => {
            let mine = |f: &Found| match f.file {
                NodeFile::Pointer(k) | NodeFile::PointerPart(k) => k.job == job,
                _ => false,
            };
            // The copies the other live jobs' pointers still name (the
            // pointer of no job only says which copy is current).
            let named: Vec<ContentId> = found
                .iter()
                .filter(|f| matches!(f.file, NodeFile::Pointer(k) if k.job != 0 && k.job != job))
                .filter_map(|f| Pointer::read(&fs::read(&f.path).ok()?).map(|p| p.content))
                .collect();
            let current = |f: &Found| {
                matches!(f.file, NodeFile::Pointer(k) if k.job == 0)
                    && fs::read(&f.path)
                        .ok()
                        .and_then(|b| Pointer::read(&b))
                        .is_none_or(|p| !named.contains(&p.content))
            };
            found
                .iter()
                .filter(|f| match f.file {
                    NodeFile::Tree(id) | NodeFile::TreePart(id) | NodeFile::Copy(id)
                        if named.contains(&id) =>
                    {
                        done.kept += 1;
                        false
                    }
                    NodeFile::Tree(_) | NodeFile::TreePart(_) | NodeFile::Copy(_) => true,
                    _ => mine(f) || current(f),
                })
                .collect()
        }
    };
    for f in doomed {
        let removed = match f.file {
            // A copy is a directory tree of regular files and directories
            // (remove_dir_all never follows a link).
            NodeFile::Tree(_) | NodeFile::TreePart(_) => fs::remove_dir_all(&f.path),
            _ => fs::remove_file(&f.path),
        };
        match removed {
            Ok(()) => {
                done.removed += 1;
                done.bytes += f.len;
            }
            Err(err) => done.failed.push(format!("{}: {err}", f.path.display())),
        }
    }
    Ok(done)
}

/// The bytes of the regular files under `dir` (never following a link).
fn bytes_under(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => bytes_under(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}
