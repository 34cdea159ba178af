//! `bench/startup --nodes N`: the same job on N simulated nodes of a real
//! Slurm cluster (`dlfm_tests::slurm`: each node a network namespace with its
//! own /dev/shm), R ranks per node started by `srun`, the libraries and the
//! cache on the simulated parallel file system. Configurations:
//! - `baseline`: no dlfm;
//! - `dlfm-pfs`: every rank maps the cache on the file system (`DLFM_STAGE=off`);
//! - `dlfm-stage`: automatic staging, node-local storage emptied first: each
//!   node's first rank copies the cache;
//! - `dlfm-sbcast`: `dlfm.pre stage` (sbcast to every node, timed) and then
//!   the ranks, which find the copy in place;
//! - `dlfm-shm`: the cache put on every node's /dev/shm beforehand (untimed),
//!   `DLFM_STAGE=off`: the floor staging is measured against.
//!
//! Reported per configuration: time until every rank is in `main`, metadata
//! requests that reached the simulated file system in the job (per node and
//! per rank), and read requests.
//!
//! Each node is a client of its own: one dlfm-pfs server (one queue of
//! service slots, one set of counts) with one FUSE mount per node, each
//! with the kernel's cache of that node, bind-mounted at the file system's
//! path inside the node's mount namespace. Every measurement starts from
//! cold client caches (the kernel's dentry and inode caches are dropped).

use std::path::Path;
use std::process::Command;
use std::time::{Instant, SystemTime};

use anyhow::{bail, Context, Result};
use dlfm_pfs::{Model, Mount};
use dlfm_tests::slurm::Cluster;

use crate::{ms, ranks_done, Job, Measure};

/// The configurations compared across nodes.
pub const CONFIGS: [&str; 5] = [
    "baseline",
    "dlfm-pfs",
    "dlfm-stage",
    "dlfm-sbcast",
    "dlfm-shm",
];

/// Where `dlfm-shm` puts the cache on each node.
const SHM_CACHE: &str = "/dev/shm/dlfm-bench-cache.dat";

/// One measured row: ranks per node, configuration, the measure (its `ops`:
/// metadata requests), the time the `dlfm.pre stage` step took (sbcast
/// only), and read requests (data, which a parallel file system serves from
/// its storage targets, not its metadata server).
pub type Row = (
    usize,
    &'static str,
    Measure,
    Option<std::time::Duration>,
    u64,
);

/// Where a `--nodes` run's file system lies and how it behaves.
pub struct Place<'a> {
    /// The directory the simulated file system serves.
    pub backing: &'a Path,
    /// Where it is mounted (on the host and, each node's own client, on
    /// every node).
    pub pfs: &'a Path,
    /// The ranks' working directory.
    pub run_dir: &'a Path,
    /// The server's latencies and threads, and each node's client cache.
    pub model: &'a Model,
}

/// Where node `i`'s own client of the server is mounted before the nodes
/// start (their mount namespaces copy it), to be bound at the file
/// system's path inside each.
fn node_mount_dir(i: usize) -> std::path::PathBuf {
    Path::new("/run/dlfm-bench-nodes").join(format!("n{i}"))
}

/// Runs every configuration for each count in `per_node`, on `nodes` nodes.
/// The cache is `pfs/dlcache.dat`; `dlfm_pre` is the tool.
pub fn run(
    nodes: usize,
    per_node: &[usize],
    job: &Job,
    place: &Place<'_>,
    dlfm_pre: &Path,
) -> Result<Vec<Row>> {
    let (pfs, run_dir) = (place.pfs, place.run_dir);
    dlfm_pfs::clean_stale(pfs);
    dlfm_pfs::clean_stale_under("/run/dlfm-bench-nodes/");
    // The host's client (dlfm.pre, sbcast) and one client per node, all of
    // one server.
    let mount = Mount::new(place.backing, pfs, place.model)?;
    let mut node_mounts = Vec::new();
    for i in 1..=nodes {
        let dir = node_mount_dir(i);
        std::fs::create_dir_all(&dir)?;
        node_mounts.push(Mount::on(mount.server(), place.backing, &dir, place.model)?);
    }
    eprintln!("starting a Slurm cluster of {nodes} nodes ...");
    let cluster = Cluster::start(nodes);
    for i in 1..=nodes {
        let script = format!(
            "mount --bind {} {}",
            node_mount_dir(i).display(),
            pfs.display()
        );
        let out = cluster.on_node(i, &script);
        if !out.status.success() {
            bail!(
                "node {i}: {script}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    let cache = pfs.join("dlcache.dat");
    let mut rows = Vec::new();
    for &r in per_node {
        let alloc = Allocation::new(&cluster, nodes, r)?;
        for config in CONFIGS {
            // Untimed preparation: empty node-local storage; for dlfm-shm,
            // the cache placed on every node.
            alloc.srun_ok(1, &[], &[dlfm_pre.to_str().unwrap(), "clean", "--all"])?;
            if config == "dlfm-shm" {
                crate::ok(
                    alloc.cmd("sbcast").arg("-f").arg(&cache).arg(SHM_CACHE),
                    "sbcast",
                )?;
            }
            let mut env: Vec<(&str, String)> = vec![
                ("LD_LIBRARY_PATH", job.ld_library_path.clone()),
                ("DLFM_WORKLOAD_STAMP", "1".into()),
            ];
            let program = if config == "baseline" {
                &job.program
            } else {
                env.push(("DLFM_OP", "read-cache".into()));
                &job.dlfm_program
            };
            match config {
                "dlfm-pfs" => {
                    env.push(("DLFM_CACHE", cache.display().to_string()));
                    env.push(("DLFM_STAGE", "off".into()));
                }
                "dlfm-stage" | "dlfm-sbcast" => {
                    env.push(("DLFM_CACHE", cache.display().to_string()))
                }
                "dlfm-shm" => {
                    env.push(("DLFM_CACHE", SHM_CACHE.into()));
                    env.push(("DLFM_STAGE", "off".into()));
                }
                _ => {}
            }
            drop_client_caches()?;
            mount.reset();
            let t0 = SystemTime::now();
            let start = Instant::now();
            let stage_time = if config == "dlfm-sbcast" {
                let s = Instant::now();
                crate::ok(
                    alloc
                        .cmd(dlfm_pre.to_str().unwrap())
                        .args(["--cache"])
                        .arg(&cache)
                        .arg("stage"),
                    "dlfm.pre stage",
                )?;
                Some(s.elapsed())
            } else {
                None
            };
            let mut cmd = alloc.srun(r, &env, program, run_dir);
            let out = cmd.args(&job.args).output().context("srun")?;
            let m = ranks_done(config, nodes * r, job, &out, t0, start)?;
            let counts = mount.counts();
            let m = Measure {
                ops: counts.metadata(),
                ..m
            };
            eprintln!(
                "N={nodes} R={r:<3} {config:<11} startup {:>9.1} ms, {} metadata requests, {} reads",
                ms(m.startup),
                m.ops,
                counts.get("read")
            );
            rows.push((r, config, m, stage_time, counts.get("read")));
        }
    }
    // The nodes (and their copies of the mounts) go before the mounts.
    drop(cluster);
    drop(node_mounts);
    Ok(rows)
}

/// Empties every client cache (the kernel's unused dentries and inodes,
/// the FUSE mounts' included): each measurement starts cold, as a new job
/// on nodes that have not seen the files.
fn drop_client_caches() -> Result<()> {
    std::fs::write("/proc/sys/vm/drop_caches", "2")
        .context("cannot drop the kernel's dentry and inode caches (/proc/sys/vm/drop_caches)")
}

/// A Slurm allocation of `nodes` nodes, held for a run of configurations.
struct Allocation<'a> {
    cluster: &'a Cluster,
    id: String,
    nodes: usize,
}

impl<'a> Allocation<'a> {
    fn new(cluster: &'a Cluster, nodes: usize, per_node: usize) -> Result<Allocation<'a>> {
        let out = cluster
            .cmd("salloc")
            .args(["--no-shell", "-N", &nodes.to_string(), "--ntasks-per-node"])
            .arg(per_node.to_string())
            .output()
            .context("salloc")?;
        let text = String::from_utf8_lossy(&out.stderr);
        let Some(id) = text
            .split("Granted job allocation ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
        else {
            bail!("salloc gave no allocation: {text}");
        };
        Ok(Allocation {
            cluster,
            id: id.to_string(),
            nodes,
        })
    }

    /// A command run as a step's client of this allocation.
    fn cmd(&self, program: &str) -> Command {
        let mut c = self.cluster.cmd(program);
        c.env("SLURM_JOB_ID", &self.id)
            .env("SLURM_JOB_NUM_NODES", self.nodes.to_string());
        c
    }

    /// `srun` of `program` with `per_node` tasks per node; the tasks get
    /// `env`, srun itself does not (its own loader would search the
    /// simulated file system through LD_LIBRARY_PATH).
    fn srun(&self, per_node: usize, env: &[(&str, String)], program: &Path, dir: &Path) -> Command {
        let mut export = String::from("--export=ALL");
        let mut c = self.cmd("srun");
        // A variable srun has itself would win over --export's value.
        c.env_remove("LD_LIBRARY_PATH");
        for (k, v) in env {
            export.push_str(&format!(",{k}={v}"));
            c.env_remove(k);
        }
        c.args([
            "--jobid",
            &self.id,
            "-N",
            &self.nodes.to_string(),
            "--ntasks-per-node",
        ])
        .arg(per_node.to_string())
        .arg(export)
        .arg(program)
        .current_dir(dir);
        c
    }

    fn srun_ok(&self, per_node: usize, env: &[(&str, String)], argv: &[&str]) -> Result<()> {
        let mut c = self.srun(per_node, env, Path::new(argv[0]), Path::new("/"));
        crate::ok(c.args(&argv[1..]), argv[0])
    }
}

impl Drop for Allocation<'_> {
    fn drop(&mut self) {
        let _ = self.cluster.cmd("scancel").arg(&self.id).output();
    }
}
