//! The runtime contract's environment: every variable dlfm reads is named
//! here, once, and judged here. The ld.so wrapper (which finds the values
//! on the initial stack), the FMCaching interposer (libc's `getenv`) and
//! `dlfm.pre` (std) all read through these names and functions, each
//! passing its own `getenv`.
//!
//! | variable | read by |
//! |---|---|
//! | `DLFM_OP` ([`OP`]), with the rank variables of [`rank`] | [`mode_of`] |
//! | `DLFM_CACHE` ([`CACHE`]) | [`cache_of`] |
//! | `DLCACHE_DBG` ([`TRACE`]) | [`trace_of`] |
//! | `DLFM_STAGE`, `DLFM_STAGE_DIR`, `DLFM_STAGE_WAIT` ([`STAGE`], [`STAGE_DIR`], [`STAGE_WAIT`]) | `staging_policy::config_of` |
//! | the local rank variables | [`local_rank`] |
//! | the launchers' job variables | [`job_variable`] |
//! | `DLFM_CACHE_DIR`, `DLFM_CONFIG` ([`CACHE_DIR`], [`CONFIG`]) | `dlfm run`'s store (`dlfm/src/store.rs`) |

use dlfm_cache::names::DEFAULT_CACHE;

/// `read-cache` or `write-cache`: what dlfm does in this process.
pub const OP: &str = "DLFM_OP";
/// The cache file (default `./dlcache.dat`); its journal is `<cache>.journal`.
pub const CACHE: &str = "DLFM_CACHE";
/// `on`, `true`, `yes` or `1`: write trace files (`dlcache.dbg/`).
pub const TRACE: &str = "DLCACHE_DBG";
/// `off` (or `0`, `no`, `false`): no node-local copies.
pub const STAGE: &str = "DLFM_STAGE";
/// The node-local directory for copies (default `/dev/shm`).
pub const STAGE_DIR: &str = "DLFM_STAGE_DIR";
/// Seconds a process waits for its node's copy (default 60).
pub const STAGE_WAIT: &str = "DLFM_STAGE_WAIT";
/// `dlfm run`'s store directory (default `~/.cache/dlfm`).
pub const CACHE_DIR: &str = "DLFM_CACHE_DIR";
/// The site's configuration file for `dlfm run` (default `/etc/dlfm.conf`).
pub const CONFIG: &str = "DLFM_CONFIG";

/// The mode `DLFM_OP` asks for in this process, given its rank.
#[inline]
pub fn mode_of<'a>(getenv: impl Fn(&[u8]) -> Option<&'a [u8]>) -> Mode {
    mode(getenv(OP.as_bytes()), rank(&getenv))
}

/// Whether `DLCACHE_DBG` asks for trace files.
#[inline]
pub fn trace_of<'a>(getenv: impl Fn(&[u8]) -> Option<&'a [u8]>) -> bool {
    trace_requested(getenv(TRACE.as_bytes()))
}

/// The cache's path as `DLFM_CACHE` gives it (unset or empty: `dlcache.dat`
/// in the working directory).
#[inline]
pub fn cache_of<'a>(getenv: impl Fn(&[u8]) -> Option<&'a [u8]>) -> &'a [u8] {
    match getenv(CACHE.as_bytes()) {
        Some(v) if !v.is_empty() => v,
        _ => DEFAULT_CACHE.as_bytes(),
    }
}

/// The variable that names the process's job and its value: the first of
/// `SLURM_JOB_ID`, `PMIX_NAMESPACE` (Open MPI's mpirun, PMIx launchers),
/// `PBS_JOBID`, `LSB_JOBID`, `FLUX_JOB_ID` that is set and not empty. (A
/// Slurm step is `SLURM_STEP_ID` within `SLURM_JOB_ID`: [`step_of`].)
#[inline]
pub fn job_variable<'a>(
    getenv: impl Fn(&[u8]) -> Option<&'a [u8]>,
) -> Option<(&'static [u8], &'a [u8])> {
    let set = |name: &'static [u8]| Some((name, getenv(name).filter(|v| !v.is_empty())?));
    set(b"SLURM_JOB_ID")
        .or_else(|| set(b"PMIX_NAMESPACE"))
        .or_else(|| set(b"PBS_JOBID"))
        .or_else(|| set(b"LSB_JOBID"))
        .or_else(|| set(b"FLUX_JOB_ID"))
}

/// The Slurm step within job variable `job` (`SLURM_STEP_ID`, for
/// `SLURM_JOB_ID` only), if set.
#[inline]
pub fn step_of<'a>(job: &[u8], getenv: impl Fn(&[u8]) -> Option<&'a [u8]>) -> Option<&'a [u8]> {
    if !dlfm_bytes::equal(job, b"SLURM_JOB_ID") {
        return None;
    }
    getenv(b"SLURM_STEP_ID").filter(|s| !s.is_empty())
}

/// What dlfm does in this process (the ld.so wrapper with ld.so's calls,
/// the interposer with the program's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// Pass every call to the kernel (no `DLFM_OP`, an unknown value, a
    /// pilot rank other than 0, or replay turned off).
    Off = 0,
    /// `DLFM_OP=write-cache` on the recording process: call, then journal.
    Record = 1,
    /// `DLFM_OP=read-cache`: answer recorded lookups from the cache.
    Replay = 2,
}

impl Mode {
    /// The mode a byte (`Mode as u8`, kept in an atomic) holds; anything
    /// else is `Off`.
    #[inline]
    pub fn from_u8(v: u8) -> Mode {
        match v {
            1 => Mode::Record,
            2 => Mode::Replay,
            _ => Mode::Off,
        }
    }
}

/// The mode `DLFM_OP=op` asks for in a process of MPI rank `rank` (see
/// [`rank`]). In a pilot only rank 0,
/// or the only process when no rank variable is set, records.
#[inline]
pub fn mode(op: Option<&[u8]>, rank: Option<&[u8]>) -> Mode {
    match op {
        Some(v) if dlfm_bytes::equal(v, b"read-cache") => Mode::Replay,
        Some(v) if dlfm_bytes::equal(v, b"write-cache") => match rank {
            Some(r) if !dlfm_bytes::equal(r, b"0") => Mode::Off,
            _ => Mode::Record,
        },
        _ => Mode::Off,
    }
}

/// The MPI rank, from the first rank variable `getenv` finds, consulted in
/// this order: PMI_RANK, PMIX_RANK, OMPI_COMM_WORLD_RANK, SLURM_PROCID,
/// ALPS_APP_PE. (Straight-line code, not a table: a table of string slices
/// would need relocations.)
#[inline]
pub fn rank<'a>(getenv: impl Fn(&[u8]) -> Option<&'a [u8]>) -> Option<&'a [u8]> {
    getenv(b"PMI_RANK")
        .or_else(|| getenv(b"PMIX_RANK"))
        .or_else(|| getenv(b"OMPI_COMM_WORLD_RANK"))
        .or_else(|| getenv(b"SLURM_PROCID"))
        .or_else(|| getenv(b"ALPS_APP_PE"))
}

/// The rank among the job's processes on this node, from the first local
/// rank variable `getenv` finds: SLURM_LOCALID, OMPI_COMM_WORLD_LOCAL_RANK,
/// MPI_LOCALRANKID (MPICH's Hydra), PALS_LOCAL_RANKID (Cray PALS).
#[inline]
pub fn local_rank<'a>(getenv: impl Fn(&[u8]) -> Option<&'a [u8]>) -> Option<&'a [u8]> {
    getenv(b"SLURM_LOCALID")
        .or_else(|| getenv(b"OMPI_COMM_WORLD_LOCAL_RANK"))
        .or_else(|| getenv(b"MPI_LOCALRANKID"))
        .or_else(|| getenv(b"PALS_LOCAL_RANKID"))
}

/// Misses one read-cache process notes at most, in the ld.so wrapper and in
/// the FMCaching interposer each (about 1 MiB of records): a program that
/// looks up data by the million must not fill the shared file system.
pub const MAX_NOTED_MISSES: u32 = 10_000;

/// Whether a read-cache process of local rank `local` records what the
/// cache missed: local rank 0 of each node, or every process when no
/// launcher names local ranks (one miss journal per node, not per rank).
#[inline]
pub fn records_misses(local: Option<&[u8]>) -> bool {
    match local {
        Some(r) => dlfm_bytes::equal(r, b"0"),
        None => true,
    }
}

/// Whether a `DLCACHE_DBG` value asks for trace files ("on", "true", "yes"
/// or "1", as in the original DLFM manual).
#[inline]
pub fn trace_requested(value: Option<&[u8]>) -> bool {
    match value {
        Some(v) => {
            dlfm_bytes::equal(v, b"on")
                || dlfm_bytes::equal(v, b"true")
                || dlfm_bytes::equal(v, b"yes")
                || dlfm_bytes::equal(v, b"1")
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_rank_zero_records_and_every_rank_replays() {
        assert_eq!(mode(Some(b"write-cache"), None), Mode::Record);
        assert_eq!(mode(Some(b"write-cache"), Some(b"0")), Mode::Record);
        assert_eq!(mode(Some(b"write-cache"), Some(b"3")), Mode::Off);
        assert_eq!(mode(Some(b"write-cache"), Some(b"00")), Mode::Off);
        assert_eq!(mode(Some(b"read-cache"), Some(b"3")), Mode::Replay);
        assert_eq!(mode(Some(b"read-cache "), None), Mode::Off);
        assert_eq!(mode(Some(b""), None), Mode::Off);
        assert_eq!(mode(None, Some(b"0")), Mode::Off);
    }

    #[test]
    fn local_rank_zero_of_each_node_records_misses() {
        assert_eq!(local_rank(env(&[])), None);
        assert!(records_misses(None));
        let slurm: &[(&[u8], &[u8])] = &[(b"SLURM_LOCALID", b"3"), (b"MPI_LOCALRANKID", b"0")];
        assert_eq!(local_rank(env(slurm)), Some(&b"3"[..]));
        assert!(!records_misses(local_rank(env(slurm))));
        let ompi: &[(&[u8], &[u8])] = &[(b"OMPI_COMM_WORLD_LOCAL_RANK", b"0")];
        assert!(records_misses(local_rank(env(ompi))));
        assert!(!records_misses(Some(b"00")));
    }

    /// A `getenv` over `vars`.
    fn env(
        vars: &'static [(&'static [u8], &'static [u8])],
    ) -> impl Fn(&[u8]) -> Option<&'static [u8]> {
        move |name: &[u8]| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }

    #[test]
    fn the_first_rank_variable_set_wins() {
        assert_eq!(rank(env(&[])), None);
        assert_eq!(rank(env(&[(b"SLURM_PROCID", b"4")])), Some(&b"4"[..]));
        let both: &[(&[u8], &[u8])] = &[(b"SLURM_PROCID", b"4"), (b"PMIX_RANK", b"2")];
        assert_eq!(rank(env(both)), Some(&b"2"[..]));
    }

    #[test]
    fn trace_values_follow_the_manual() {
        for on in [&b"on"[..], b"true", b"yes", b"1"] {
            assert!(trace_requested(Some(on)));
        }
        for off in [&b"off"[..], b"0", b"", b"ON"] {
            assert!(!trace_requested(Some(off)));
        }
        assert!(!trace_requested(None));
    }
}
