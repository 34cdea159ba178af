//! The job scripts under a real Slurm cluster (`dlfm_tests::slurm`): four
//! nodes, each with its own /dev/shm, a generated program whose libraries
//! live on the simulated parallel file system (`dlfm-pfs`) mounted for all
//! nodes. `sbatch jobscripts/pilot.slurm`, then `sbatch
//! jobscripts/large.slurm` (which packs, broadcasts the cache to every
//! node with sbcast, checks, and runs 16 ranks). Then the node-local copies,
//! the requests that reached the simulated file system, and automatic
//! staging after `dlfm.pre clean`.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use dlfm_pfs::{Model, Mount};
use dlfm_tests::scenario::{assert_ok, output_within};
use dlfm_tests::slurm::Cluster;
use dlfm_tests::{artifacts, artifacts::workspace_root};
use dlfm_workload::{generate, Link, Spec};

const NODES: usize = 4;
const PER_NODE: usize = 4;

/// One cluster at a time (its bridge, namespaces and directory have fixed
/// names): each test holds this while its cluster lives.
static ONE_CLUSTER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Takes [`ONE_CLUSTER`], also after another test failed holding it.
fn one_cluster() -> std::sync::MutexGuard<'static, ()> {
    ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner())
}

/// Everything the test set up, in the order it must be undone (the cluster
/// before the mount its nodes use).
struct World {
    cluster: Option<Cluster>,
    mount: Option<Mount>,
    job: PathBuf,
    install: PathBuf,
    ld_library_path: String,
    expected: String,
    _root: tempfile::TempDir,
}

impl Drop for World {
    fn drop(&mut self) {
        drop(self.cluster.take());
        drop(self.mount.take());
    }
}

fn world() -> World {
    let art = artifacts();
    let root = tempfile::Builder::new()
        .prefix("dlfm-slurm-")
        .tempdir_in("/tmp")
        .unwrap();
    let (pfs, backing, job, install) = (
        root.path().join("pfs"),
        root.path().join("backing"),
        root.path().join("job"),
        root.path().join("install"),
    );
    for d in [&pfs, &job, &install] {
        std::fs::create_dir_all(d).unwrap();
    }
    // The job scripts call $DLFM_INSTALL_DIR/dlfm.pre; it finds the
    // interposer beside its real path.
    std::os::unix::fs::symlink(&art.dlfm_pre, install.join("dlfm.pre")).unwrap();
    let ldso = job.join("ld.so");
    let w = generate(
        &Spec::small(),
        &Link {
            wrapper_archive: Some(art.wrapper.clone()),
            interp: Some(ldso.clone()),
            ..Link::default()
        },
        &pfs.join("w"),
    )
    .unwrap();
    assert_ok(
        &Command::new(&art.dlpatch)
            .arg(&w.program)
            .arg("-o")
            .arg(&ldso)
            .output()
            .unwrap(),
        "dlpatch",
    );
    std::fs::rename(&w.program, job.join("myapp")).unwrap();
    // Libraries on the simulated parallel file system; the program, its
    // loader and the job's files on ordinary shared storage.
    std::fs::rename(&pfs, &backing).unwrap();
    std::fs::create_dir_all(&pfs).unwrap();
    let mount = Mount::new(&backing, &pfs, &Model::default()).expect("mount dlfm-pfs");
    let cluster = Cluster::start(NODES);
    World {
        cluster: Some(cluster),
        mount: Some(mount),
        job,
        install,
        ld_library_path: w.ld_library_path,
        expected: w.expected_stdout,
        _root: root,
    }
}

impl World {
    fn cluster(&self) -> &Cluster {
        self.cluster.as_ref().unwrap()
    }

    fn mount(&self) -> &Mount {
        self.mount.as_ref().unwrap()
    }

    /// A Slurm command run in the job directory with the job's environment.
    fn slurm(&self, program: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = self.cluster().cmd(program);
        // The tasks get LD_LIBRARY_PATH, srun itself does not: its own
        // loader would search the simulated file system once per launch.
        c.arg(format!(
            "--export=ALL,LD_LIBRARY_PATH={}",
            self.ld_library_path
        ))
        .args(args)
        .current_dir(&self.job)
        .env("DLFM_INSTALL_DIR", &self.install)
        .env("DLFM_APP", self.job.join("myapp"));
        for v in [
            "DLFM_OP",
            "DLFM_CACHE",
            "DLCACHE_DBG",
            "DLFM_STAGE",
            "DLFM_STAGE_DIR",
            "LD_LIBRARY_PATH",
        ] {
            c.env_remove(v);
        }
        for (k, v) in env {
            c.env(k, v);
        }
        let out = output_within(c, Duration::from_secs(300));
        assert!(
            out.status.success(),
            "{program} {args:?}: {}\n{}\n(cluster logs in {})",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.cluster().logs().display()
        );
        out
    }

    /// `sbatch -W` of a job script; returns the job's output file's text.
    fn sbatch(&self, script: &str, args: &[&str], env: &[(&str, &str)]) -> String {
        let out_file = self.job.join(format!("{script}.out"));
        let script = workspace_root().join("jobscripts").join(script);
        let mut a = vec!["-W", "-o", out_file.to_str().unwrap()];
        a.extend_from_slice(args);
        a.push(script.to_str().unwrap());
        self.slurm("sbatch", &a, env);
        std::fs::read_to_string(&out_file).unwrap()
    }

    /// How many complete copies of the program's output `text` holds.
    fn outputs(&self, text: &str) -> usize {
        text.matches(self.expected.as_str()).count()
    }

    /// dlfm's files in node `i`'s /dev/shm.
    fn shm(&self, i: usize) -> Vec<String> {
        let out = self.cluster().on_node(i, "ls /dev/shm");
        assert_ok(&out, "ls /dev/shm on a node");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("dlfm-"))
            .map(String::from)
            .collect()
    }

    /// Fresh, empty trace files for every node and core (DLCACHE_DBG).
    fn fresh_traces(&self) {
        let dir = self.job.join("dlcache.dbg");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        for n in 1..=NODES {
            for core in 0..cores.min(dlfm_cache::names::CORE_LETTERS) {
                let letter = char::from(dlfm_cache::names::core_letter(core));
                std::fs::write(dir.join(format!("dlcache.dbg.n{n}.{letter}")), b"").unwrap();
            }
        }
    }

    /// Every trace file's lines, by node.
    fn trace_lines(&self, node: usize) -> Vec<String> {
        let mut lines = Vec::new();
        for e in std::fs::read_dir(self.job.join("dlcache.dbg")).unwrap() {
            let p = e.unwrap().path();
            if p.file_name()
                .unwrap()
                .to_string_lossy()
                .contains(&format!(".n{node}."))
            {
                lines.extend(
                    std::fs::read_to_string(&p)
                        .unwrap()
                        .lines()
                        .map(String::from),
                );
            }
        }
        lines
    }
}

/// Lines of `lines` containing `what`.
fn count(lines: &[String], what: &str) -> usize {
    lines.iter().filter(|l| l.contains(what)).count()
}

#[test]
fn job_scripts_run_on_a_slurm_cluster_with_one_copy_per_node() {
    let _one = one_cluster();
    let w = world();
    let cache = w.job.join("dlcache.dat");

    // The pilot: one node, two ranks; rank 0 records.
    let text = w.sbatch("pilot.slurm", &["-N", "1", "-n", "2"], &[]);
    assert_eq!(w.outputs(&text), 2, "{text}");
    assert!(w.job.join("dlcache.dat.journal").metadata().unwrap().len() > 1000);

    // The large job: packs, broadcasts to every node with sbcast, checks,
    // runs 16 ranks on 4 nodes. Every rank finds its node's copy in place.
    w.fresh_traces();
    let per_node = PER_NODE.to_string();
    let text = w.sbatch(
        "large.slurm",
        &["-N", &NODES.to_string(), "--ntasks-per-node", &per_node],
        &[("DLCACHE_DBG", "1")],
    );
    assert_eq!(w.outputs(&text), NODES * PER_NODE, "{text}");
    assert!(
        text.contains(&format!("sbcast to {NODES} node(s)")),
        "{text}"
    );
    let cache_bytes = std::fs::read(&cache).unwrap();
    let meta_len = dlfm_cache::read::Cache::meta_len(&cache_bytes).unwrap();
    for n in 1..=NODES {
        // sbcast delivered the whole cache; the node's first rank unpacked
        // it into the node's copy (node-local work) and removed it.
        let files = w.shm(n);
        let copies: Vec<&String> = files.iter().filter(|f| f.ends_with(".d")).collect();
        assert_eq!(copies.len(), 1, "node n{n}: {files:?}");
        assert!(
            !files.iter().any(|f| f.ends_with(".dat")),
            "n{n}: {files:?}"
        );
        assert_eq!(
            files.iter().filter(|f| f.ends_with(".job")).count(),
            1,
            "n{n}: {files:?}"
        );
        let same = w.cluster().on_node(
            n,
            &format!(
                "head -c {meta_len} {} | cmp - /dev/shm/{}/cache",
                cache.display(),
                copies[0]
            ),
        );
        assert_ok(&same, "the node's copy holds the cache's metadata");
        let lines = w.trace_lines(n);
        assert_eq!(count(&lines, "unpacked here"), 1, "n{n}: {lines:#?}");
        assert_eq!(
            count(&lines, "(checked by this job before)")
                + count(&lines, "(made or checked by another process"),
            PER_NODE - 1,
            "n{n}: {lines:#?}"
        );
        assert_eq!(count(&lines, "staged here"), 0, "n{n}: {lines:#?}");
    }
    assert_eq!(cache_bytes.len() as u64, cache.metadata().unwrap().len());

    // What reaches the simulated file system: every rank's lookups without
    // dlfm, none with replay.
    let srun = |env: &[(&str, &str)]| {
        w.mount().reset();
        let out = w.slurm(
            "srun",
            &[
                "-N",
                &NODES.to_string(),
                "--ntasks-per-node",
                &per_node,
                "./myapp",
            ],
            env,
        );
        assert_eq!(
            w.outputs(&String::from_utf8_lossy(&out.stdout)),
            NODES * PER_NODE
        );
        let counts = w.mount().counts();
        eprintln!("srun {env:?}: {}", counts.report());
        counts.total()
    };
    let without = srun(&[]);
    let cache_env = cache.to_str().unwrap();
    w.fresh_traces();
    let with = srun(&[
        ("DLFM_OP", "read-cache"),
        ("DLFM_CACHE", cache_env),
        ("DLCACHE_DBG", "1"),
    ]);
    assert!(
        without > 50 * (NODES * PER_NODE) as u64,
        "{without} requests without dlfm"
    );
    let missed: Vec<String> = (1..=NODES)
        .flat_map(|n| w.trace_lines(n))
        .filter(|l| l.contains(" missed ") || l.contains(" passed "))
        .collect();
    assert_eq!(
        with, 0,
        "requests to the simulated file system with replay; missed and passed: {missed:#?}"
    );

    // An administrator's `dlfm.pre clean --all` frees every node (run in a
    // job of its own: without --all it would remove only that job's files,
    // which `--test staging` checks); the next job stages automatically:
    // exactly one process per node copies the cache.
    let out = w.slurm(
        "srun",
        &[
            "-N",
            &NODES.to_string(),
            "--ntasks-per-node",
            "1",
            w.install.join("dlfm.pre").to_str().unwrap(),
            "clean",
            "--all",
        ],
        &[],
    );
    let said: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(count(&said, "removed"), NODES, "{said:#?}");
    for n in 1..=NODES {
        let left = w.shm(n);
        assert!(left.is_empty(), "n{n} after clean: {left:?}");
    }
    w.fresh_traces();
    let with = srun(&[
        ("DLFM_OP", "read-cache"),
        ("DLFM_CACHE", cache_env),
        ("DLCACHE_DBG", "1"),
    ]);
    assert_eq!(
        with, 0,
        "requests to the simulated file system with automatic staging"
    );
    for n in 1..=NODES {
        let lines = w.trace_lines(n);
        assert_eq!(count(&lines, "staged here"), 1, "n{n}: {lines:#?}");
        assert_eq!(
            count(&lines, "read-cache: node-local copy"),
            PER_NODE,
            "n{n}: {lines:#?}"
        );
        assert_eq!(w.shm(n).iter().filter(|f| f.ends_with(".d")).count(), 1);
    }
}

/// `sbatch --wrap "dlfm run srun -n 8 python3 app.py"`, then the same by
/// `jobscripts/run.slurm`, with a Python package tree on the simulated parallel file system: the first job
/// records (rank 0) while every rank runs; the second checks once, sbcasts
/// the cache once to the four nodes, and its ranks make no request on the
/// tree (the simulated file system sees only the check's).
#[test]
fn dlfm_run_in_a_batch_job_records_then_replays_with_one_broadcast() {
    let _one = one_cluster();
    let art = artifacts();
    let root = tempfile::Builder::new()
        .prefix("dlfm-slurm-run-")
        .tempdir_in("/tmp")
        .unwrap();
    let (pfs, backing, job) = (
        root.path().join("pfs"),
        root.path().join("backing"),
        root.path().join("job"),
    );
    for d in [&pfs, &job] {
        std::fs::create_dir_all(d).unwrap();
    }
    let tree = dlfm_workload::generate_package_tree(
        &dlfm_tests::scenario::python(),
        &pfs.join("py"),
        3,
        3,
        6,
        3,
    )
    .unwrap();
    let app = job.join("app.py");
    std::fs::copy(&tree.script, &app).unwrap();
    std::fs::rename(&pfs, &backing).unwrap();
    std::fs::create_dir_all(&pfs).unwrap();
    let mount = Mount::new(&backing, &pfs, &Model::default()).expect("mount dlfm-pfs");
    let files = walk(&backing).len();
    let cluster = Cluster::start(NODES);
    let ranks = 2 * NODES;
    // The first job by `--wrap`, the second by the job script users copy.
    let sbatch = |name: &str, wrapped: bool| {
        let out_file = job.join(format!("{name}.out"));
        let mut c = cluster.cmd("sbatch");
        c.args([
            "-W",
            "-N",
            &NODES.to_string(),
            "--ntasks-per-node",
            &(ranks / NODES).to_string(),
            "-o",
        ])
        .arg(&out_file);
        if wrapped {
            let wrap = format!(
                "{} run srun -n {ranks} python3 {}",
                art.dlfm.display(),
                app.display()
            );
            c.args(["--wrap", &wrap]);
        } else {
            c.arg(workspace_root().join("jobscripts/run.slurm"))
                .arg(&app)
                .env("DLFM_INSTALL_DIR", art.dlfm.parent().unwrap())
                .env("DLFM_APP", "python3");
        }
        c.current_dir(&job)
            .env("DLFM_CACHE_DIR", job.join("store"))
            .env("PATH", "/usr/bin:/bin:/usr/sbin:/sbin");
        for v in dlfm_tests::scenario::ISOLATE {
            c.env_remove(v);
        }
        mount.reset();
        let shown = format!("{c:?}");
        let out = output_within(c, Duration::from_secs(300));
        assert_ok(
            &out,
            &format!("{shown} (logs in {})", cluster.logs().display()),
        );
        let text = std::fs::read_to_string(&out_file).unwrap();
        assert_eq!(
            text.matches(tree.expected_stdout.as_str()).count(),
            ranks,
            "{name}: {text}"
        );
        (text, mount.counts().total())
    };
    let (first, requests_first) = sbatch("first", true);
    assert!(first.contains("recording"), "{first}");
    assert!(!first.contains("sbcast"), "{first}");
    let (second, requests_second) = sbatch("second", false);
    assert_eq!(
        second
            .matches(&format!("staged by sbcast to {NODES} node(s)"))
            .count(),
        1,
        "{second}"
    );
    assert!(second.contains("replaying"), "{second}");
    for n in 1..=NODES {
        let out = cluster.on_node(n, "ls /dev/shm");
        let copies = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("dlfm-") && l.ends_with(".d"))
            .count();
        assert_eq!(copies, 1, "node n{n} holds the cache once");
    }
    // The replaying job's requests are the one check's (a status per file
    // and a listing per directory): the same check alone makes as many.
    let cache = walk(&job.join("store"))
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n == "dlcache.dat"))
        .expect("the store holds the cache");
    mount.reset();
    assert_ok(
        &Command::new(&art.dlfm_pre)
            .arg("--cache")
            .arg(&cache)
            .args(["check", "--quick"])
            .output()
            .unwrap(),
        "dlfm.pre check --quick",
    );
    let check_alone = mount.counts().total();
    eprintln!(
        "dlfm run srun -n {ranks}: requests on the simulated file system {requests_first} \
         (recording job) -> {requests_second} (replaying job; the check alone {check_alone}, \
         {files} files and directories in the tree)"
    );
    assert_eq!(
        requests_second, check_alone,
        "the replaying job's ranks reached the simulated file system"
    );
    assert!(
        requests_first > (ranks * tree.imports) as u64,
        "{requests_first} requests while recording"
    );
    drop(cluster);
    drop(mount);
}

/// Every file and directory under `dir`.
fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}
