//! What the environment asks of node-local staging (`DLFM_STAGE`,
//! `DLFM_STAGE_DIR`, `DLFM_STAGE_WAIT`), and which job a process belongs
//! to, judged the same way by the ld.so wrapper (which stages), the
//! interposer and `dlfm.pre` (which read or broadcast the copies). The file
//! names and the pointer format are `dlfm_cache::node_files`'s.

use dlfm_cache::hash::{fnv1a64_continue, FNV64_OFFSET};
use dlfm_cache::node_files::{NodeFile, NodeName, Pointer, DEFAULT_DIR};

use crate::env;
use crate::fixed_path::FixedPath;

/// How long a process waits for another one on its node to finish staging
/// when `DLFM_STAGE_WAIT` does not say (seconds).
pub const DEFAULT_WAIT_SECS: u64 = 60;
/// The longest wait `DLFM_STAGE_WAIT` may ask for (seconds).
pub const MAX_WAIT_SECS: u64 = 3600;

/// Staging as the environment asks for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StageConfig<'a> {
    /// The stage directory (absolute).
    pub dir: &'a [u8],
    /// How long to wait for another process's staging, in milliseconds.
    pub wait_ms: u64,
}

/// Why there is no staging.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoStaging {
    /// `DLFM_STAGE` is `off`, `0`, `no` or `false`.
    Off,
    /// `DLFM_STAGE_DIR` is not an absolute path.
    DirNotAbsolute,
}

/// Staging as the environment asks for it (`DLFM_STAGE`, `DLFM_STAGE_DIR`,
/// `DLFM_STAGE_WAIT`).
#[inline]
pub fn config_of<'a>(
    getenv: impl Fn(&[u8]) -> Option<&'a [u8]>,
) -> Result<StageConfig<'a>, NoStaging> {
    config(
        getenv(env::STAGE.as_bytes()),
        getenv(env::STAGE_DIR.as_bytes()),
        getenv(env::STAGE_WAIT.as_bytes()),
    )
}

/// Staging as the values of `DLFM_STAGE`, `DLFM_STAGE_DIR` and
/// `DLFM_STAGE_WAIT` ask for it. An unreadable wait gives the default; a
/// wait is capped at [`MAX_WAIT_SECS`].
#[inline]
pub fn config<'a>(
    stage: Option<&[u8]>,
    dir: Option<&'a [u8]>,
    wait: Option<&[u8]>,
) -> Result<StageConfig<'a>, NoStaging> {
    if let Some(v) = stage {
        if dlfm_bytes::equal(v, b"off")
            || dlfm_bytes::equal(v, b"0")
            || dlfm_bytes::equal(v, b"no")
            || dlfm_bytes::equal(v, b"false")
        {
            return Err(NoStaging::Off);
        }
    }
    let dir = match dir {
        Some(d) if !d.is_empty() => d,
        _ => DEFAULT_DIR.as_bytes(),
    };
    if dir.first() != Some(&b'/') {
        return Err(NoStaging::DirNotAbsolute);
    }
    let secs = wait.and_then(decimal).unwrap_or(DEFAULT_WAIT_SECS);
    Ok(StageConfig {
        dir,
        wait_ms: secs.min(MAX_WAIT_SECS) * 1000,
    })
}

/// Whether a file owned by `uid` with permissions `mode` may be believed by
/// a process of effective user `euid`: its own or root's, and writable by
/// nobody else (the rule for a cache and for every node-local file, whose
/// directory is usually writable by all).
#[inline]
pub fn trusted(uid: u32, mode: u32, euid: u32) -> bool {
    const GROUP_OR_OTHERS_WRITE: u32 = 0o022;
    (uid == euid || uid == 0) && mode & GROUP_OR_OTHERS_WRITE == 0
}

/// Sets `path` to `<dir>/<the name of file for user uid>`; false (path
/// left empty) if it does not fit.
#[inline]
pub fn node_path(path: &mut FixedPath, dir: &[u8], uid: u32, file: NodeFile) -> bool {
    path.set(dir) && path.push(b"/") && path.push(NodeName::new(uid, file).as_bytes())
}

/// A decimal number, if `v` is one (at most 9 digits).
#[inline]
fn decimal(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 9 {
        return None;
    }
    v.iter().try_fold(0u64, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0'))
    })
}

/// The job a process belongs to, as two keys: the whole job, and the part
/// of it started together (a Slurm step; the same as the job for other
/// launchers). A copy checked by a process of the same step, or put in
/// place for the whole job by `dlfm.pre stage`, is used without looking at
/// the shared cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobKeys {
    /// The job, if a launcher said which.
    pub job: Option<u64>,
    /// The step (Slurm), else the job.
    pub step: Option<u64>,
}

impl JobKeys {
    /// Whether `pointer` was written by this job (for the whole job) or by
    /// this step.
    #[inline]
    pub fn accept(&self, pointer: &Pointer) -> bool {
        self.job == Some(pointer.job) || self.step == Some(pointer.job)
    }
}

/// The job keys from the environment: Slurm's `SLURM_JOB_ID` (and
/// `SLURM_STEP_ID` for the step), else the first of `PMIX_NAMESPACE`
/// (Open MPI's mpirun, PMIx launchers), `PBS_JOBID`, `LSB_JOBID`,
/// `FLUX_JOB_ID`. None of them set: no job is known, and every process
/// checks the copy against the shared cache itself.
/// (Straight-line code, not a table: a table of string slices would need
/// relocations.)
#[inline]
pub fn job_keys<'a>(getenv: impl Fn(&[u8]) -> Option<&'a [u8]>) -> JobKeys {
    let Some((name, v)) = env::job_variable(&getenv) else {
        return JobKeys {
            job: None,
            step: None,
        };
    };
    let job = key(name, v, None);
    let step = env::step_of(name, &getenv).map_or(job, |s| key(name, v, Some(s)));
    JobKeys {
        job: Some(job),
        step: Some(step),
    }
}

/// The key of variable `name`'s value `v`, and of a step `s` within it.
#[inline]
fn key(name: &[u8], v: &[u8], step: Option<&[u8]>) -> u64 {
    let mut h = fnv1a64_continue(FNV64_OFFSET, name);
    h = fnv1a64_continue(h, b"=");
    h = fnv1a64_continue(h, v);
    if let Some(s) = step {
        h = fnv1a64_continue(h, b".");
        h = fnv1a64_continue(h, s);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use dlfm_cache::node_files::ContentId;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&[u8]) -> Option<&'a [u8]> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| k.as_bytes() == name)
                .map(|(_, v)| v.as_bytes())
        }
    }

    #[test]
    fn config_defaults_and_refusals() {
        let c = config(None, None, None).unwrap();
        assert_eq!(c.dir, b"/dev/shm");
        assert_eq!(c.wait_ms, DEFAULT_WAIT_SECS * 1000);
        for off in ["off", "0", "no", "false"] {
            assert_eq!(
                config(Some(off.as_bytes()), None, None),
                Err(NoStaging::Off)
            );
        }
        assert!(config(Some(b"on"), None, None).is_ok());
        assert_eq!(
            config(None, Some(b"tmp/x"), None),
            Err(NoStaging::DirNotAbsolute)
        );
        assert_eq!(config(None, Some(b""), None).unwrap().dir, b"/dev/shm");
        let c = config(None, Some(b"/local"), Some(b"2")).unwrap();
        assert_eq!((c.dir, c.wait_ms), (&b"/local"[..], 2000));
        assert_eq!(
            config(None, None, Some(b"x")).unwrap().wait_ms,
            DEFAULT_WAIT_SECS * 1000
        );
        assert_eq!(
            config(None, None, Some(b"999999")).unwrap().wait_ms,
            MAX_WAIT_SECS * 1000
        );
        assert_eq!(config(None, None, Some(b"0")).unwrap().wait_ms, 0);
    }

    #[test]
    fn node_paths_join_the_directory_and_the_name() {
        let mut p = FixedPath::EMPTY;
        assert!(node_path(&mut p, b"/dev/shm", 7, NodeFile::Lock(1)));
        assert_eq!(p.as_bytes(), b"/dev/shm/dlfm-7-0000000000000001.lock");
        let long = [b'd'; 4090];
        assert!(!node_path(&mut p, &long, 7, NodeFile::Lock(1)));
        assert_eq!(p.as_bytes(), b"");
    }

    #[test]
    fn trust_is_owner_or_root_and_nobody_else_writes() {
        assert!(trusted(1000, 0o100444, 1000));
        assert!(trusted(0, 0o100644, 1000));
        assert!(!trusted(1001, 0o100444, 1000));
        assert!(!trusted(1000, 0o100464, 1000));
        assert!(!trusted(0, 0o100646, 1000));
    }

    #[test]
    fn slurm_steps_share_the_job_key() {
        let a = job_keys(env(&[("SLURM_JOB_ID", "17"), ("SLURM_STEP_ID", "0")]));
        let b = job_keys(env(&[("SLURM_JOB_ID", "17"), ("SLURM_STEP_ID", "1")]));
        let batch = job_keys(env(&[("SLURM_JOB_ID", "17")]));
        assert_eq!(a.job, b.job);
        assert_ne!(a.step, b.step);
        assert_eq!(batch.step, batch.job);
        assert_ne!(a.job, job_keys(env(&[("SLURM_JOB_ID", "18")])).job);
        let p = |job| Pointer {
            job,
            content: ContentId {
                checksum: 1,
                file_len: 2,
            },
        };
        assert!(a.accept(&p(a.job.unwrap())));
        assert!(a.accept(&p(a.step.unwrap())));
        assert!(!a.accept(&p(b.step.unwrap())));
    }

    #[test]
    fn other_launchers_and_none() {
        let m = job_keys(env(&[("PMIX_NAMESPACE", "prterun-host-123@1")]));
        assert!(m.job.is_some());
        assert_eq!(m.job, m.step);
        let pbs = job_keys(env(&[("PBS_JOBID", "prterun-host-123@1")]));
        assert_ne!(m.job, pbs.job, "the variable's name is part of the key");
        let none = job_keys(env(&[("SLURM_JOB_ID", "")]));
        assert_eq!(none.job, None);
        assert!(!none.accept(&Pointer {
            job: 0,
            content: ContentId {
                checksum: 0,
                file_len: 0
            }
        }));
    }
}
