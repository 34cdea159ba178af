//! A real Slurm cluster on this machine, for the job-script tests: `munged`
//! and `slurmctld` in the machine's network namespace, on a bridge of the
//! test's own; and one `slurmd` per node, each in its own network namespace
//! (a veth pair on the bridge), with its own
//! host name (`unshare --uts`) and its own `/dev/shm` (`unshare --mount`
//! and a tmpfs), so that node-local copies are really per node.
//!
//! Debian's slurm-wlm 22.05 with `SlurmUser=root`, `proctrack/linuxproc`,
//! `task/none` and `cgroup/v1`; `SlurmdParameters=config_overrides` lets
//! each node claim 16 CPUs on a 2-core machine. Everything is torn down when
//! the [`Cluster`] is dropped (a failing test included), and [`Cluster::start`]
//! first removes what a killed earlier run left (fixed names: one cluster
//! at a time).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::sys;

/// The bridge the nodes hang on.
const BRIDGE: &str = "dlfmsbr0";
/// Network namespaces are `<NS_PREFIX><node>`.
const NS_PREFIX: &str = "dlfm-sl-";
/// The controller's address on the bridge; node `i` (from 1) is `.10 + i`.
const NET: &str = "10.213.0";
/// Where the cluster keeps its configuration, state and logs.
const DIR: &str = "/tmp/dlfm-slurm";

/// A running cluster of `nodes` nodes named `n1`, `n2`, ...
pub struct Cluster {
    /// Node names.
    pub nodes: Vec<String>,
    /// `slurm.conf`; commands need `SLURM_CONF` set to it ([`Cluster::cmd`]).
    pub conf: PathBuf,
    dir: PathBuf,
}

/// Runs a command, returning its output; panics if it cannot be started
/// (for set-up only: teardown uses [`try_run`]).
fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

/// For teardown: runs a command and reports (never panics) when it cannot
/// be started or fails.
fn try_run(program: &str, args: &[&str]) {
    match Command::new(program).args(args).output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => eprintln!(
            "teardown: {program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => eprintln!("teardown: cannot run {program}: {e}"),
    }
}

/// Runs a command that must succeed.
fn must(program: &str, args: &[&str]) {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Cluster {
    /// Starts munged, slurmctld and `nodes` slurmd, and waits until every
    /// node is idle. Mounts the nodes must see (a FUSE file system) must be
    /// made before this: each node's mount namespace is a copy taken now.
    pub fn start(nodes: usize) -> Cluster {
        // Every tool first: nothing is made when one is missing.
        for tool in [
            "munged",
            "slurmctld",
            "slurmd",
            "sbatch",
            "srun",
            "sbcast",
            "scancel",
            "ip",
            "nsenter",
            "unshare",
        ] {
            assert!(
                Command::new("which")
                    .arg(tool)
                    .output()
                    .is_ok_and(|o| o.status.success()),
                "{tool} is missing: scripts/setup-debian.sh test installs it"
            );
        }
        teardown(nodes.max(8));
        let dir = PathBuf::from(DIR);
        let _ = std::fs::remove_dir_all(&dir);
        for d in ["state", "spool", "log", "munge"] {
            std::fs::create_dir_all(dir.join(d)).expect("cluster dirs");
        }
        let names: Vec<String> = (1..=nodes).map(|i| format!("n{i}")).collect();
        let c = Cluster {
            nodes: names,
            conf: dir.join("slurm.conf"),
            dir,
        };
        c.start_munge();
        c.write_config();
        c.network();
        must("slurmctld", &["-f", c.conf.to_str().unwrap(), "-i"]);
        for (i, n) in c.nodes.iter().enumerate() {
            std::fs::create_dir_all(c.dir.join("spool").join(n)).expect("spool");
            // Its own host name and /dev/shm; slurmd daemonises.
            must(
                "ip",
                &[
                    "netns",
                    "exec",
                    &ns(i + 1),
                    "unshare",
                    "--uts",
                    "--mount",
                    "sh",
                    "-c",
                    &format!(
                        "hostname {n} && mount -t tmpfs tmpfs /dev/shm && exec slurmd -f {} -N {n}",
                        c.conf.display()
                    ),
                ],
            );
        }
        c.wait_idle();
        c
    }

    fn start_munge(&self) {
        let m = self.dir.join("munge");
        std::fs::copy("/etc/munge/munge.key", m.join("key"))
            .expect("/etc/munge/munge.key (installed with munge)");
        must(
            "munged",
            &[
                "--force",
                &format!("--socket={}", m.join("sock").display()),
                &format!("--key-file={}", m.join("key").display()),
                &format!("--pid-file={}", m.join("pid").display()),
                &format!("--log-file={}", m.join("log").display()),
                &format!("--seed-file={}", m.join("seed").display()),
            ],
        );
    }

    fn write_config(&self) {
        let host = String::from_utf8(run("hostname", &[]).stdout).expect("hostname");
        let d = self.dir.display();
        let n = self.nodes.len();
        let conf = format!(
            "ClusterName=dlfmtest
SlurmctldHost={host}({NET}.1)
SlurmctldPort=16817
SlurmdPort=16818
SrunPortRange=60001-63000
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={d}/munge/sock
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool/%n
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.%n.pid
SlurmctldLogFile={d}/log/slurmctld.log
SlurmdLogFile={d}/log/slurmd.%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
KillWait=5
NodeName=n[1-{n}] CPUs=16 State=UNKNOWN NodeAddr={NET}.[11-{last}]
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
",
            host = host.trim(),
            last = 10 + n
        );
        std::fs::write(&self.conf, conf).expect("slurm.conf");
        std::fs::write(
            self.dir.join("cgroup.conf"),
            "CgroupPlugin=cgroup/v1\nIgnoreSystemd=yes\n",
        )
        .expect("cgroup.conf");
    }

    fn network(&self) {
        must("ip", &["link", "add", BRIDGE, "type", "bridge"]);
        must(
            "ip",
            &["addr", "add", &format!("{NET}.1/24"), "dev", BRIDGE],
        );
        must("ip", &["link", "set", BRIDGE, "up"]);
        for i in 1..=self.nodes.len() {
            let (ns, veth) = (ns(i), format!("dlfmsv{i}"));
            must("ip", &["netns", "add", &ns]);
            must(
                "ip",
                &[
                    "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
                ],
            );
            must("ip", &["link", "set", &veth, "master", BRIDGE, "up"]);
            let addr = format!("{NET}.{}/24", 10 + i);
            must("ip", &["-n", &ns, "addr", "add", &addr, "dev", "eth0"]);
            must("ip", &["-n", &ns, "link", "set", "eth0", "up"]);
            must("ip", &["-n", &ns, "link", "set", "lo", "up"]);
            must(
                "ip",
                &[
                    "-n",
                    &ns,
                    "route",
                    "add",
                    "default",
                    "via",
                    &format!("{NET}.1"),
                ],
            );
        }
    }

    /// Waits (at most a minute) until `sinfo` reports every node idle.
    fn wait_idle(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = self
                .cmd("sinfo")
                .args(["-h", "-o", "%t %D"])
                .output()
                .expect("sinfo");
            let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if text == format!("idle {}", self.nodes.len()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not come up: sinfo says {text:?}; logs in {}",
                self.dir.join("log").display()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// A Slurm client command (`sbatch`, `srun`, ...) for this cluster.
    pub fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("SLURM_CONF", &self.conf);
        c
    }

    /// Runs `sh -c script` in node `node`'s (1-based) namespaces: its
    /// network, host name and /dev/shm (the slurmd's mount namespace, and its
    /// root, so that a test run in a chroot stays in it).
    pub fn on_node(&self, node: usize, script: &str) -> Output {
        let pid = self.slurmd_pid(node);
        Command::new("nsenter")
            .args([
                "--target",
                &pid.to_string(),
                "--mount",
                "--root",
                "--uts",
                "--net",
                "sh",
                "-c",
                script,
            ])
            .output()
            .expect("nsenter")
    }

    /// The pid of node `node`'s slurmd.
    fn slurmd_pid(&self, node: usize) -> u32 {
        let f = self.dir.join(format!("slurmd.n{node}.pid"));
        std::fs::read_to_string(&f)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| panic!("no pid in {}", f.display()))
    }

    /// The cluster's log directory (for failure messages).
    pub fn logs(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        teardown(self.nodes.len());
        // The logs stay after a failure, for the message that names them.
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn ns(i: usize) -> String {
    format!("{NS_PREFIX}n{i}")
}

/// Stops everything a cluster of up to `nodes` nodes may have left: jobs,
/// daemons, namespaces (with every process in them), the bridge. Never
/// panics; a step that fails is reported and the rest still done.
fn teardown(nodes: usize) {
    let conf = format!("{DIR}/slurm.conf");
    if Path::new(&conf).exists() {
        match Command::new("scancel")
            .args(["--full", "-u", "root"])
            .env("SLURM_CONF", &conf)
            .output()
        {
            Ok(_) => {}
            Err(e) => eprintln!("teardown: cannot run scancel: {e}"),
        }
    }
    for i in 1..=nodes {
        let file = PathBuf::from(format!("/run/netns/{}", ns(i)));
        if !file.exists() {
            continue;
        }
        for pid in pids_in_netns(&file) {
            sys::or_report(&format!("kill {pid}"), sys::kill(pid, libc::SIGKILL));
        }
        // What `ip netns del` does: the namespace lives while its file is
        // mounted; unmounted and gone, it goes with its veth pair once its
        // processes are dead.
        sys::or_report(&format!("unmount {}", file.display()), sys::unmount(&file));
        if let Err(e) = std::fs::remove_file(&file) {
            eprintln!("teardown: remove {}: {e}", file.display());
        }
    }
    for pidfile in ["slurmctld.pid", "munge/pid"] {
        if let Some(pid) = std::fs::read_to_string(format!("{DIR}/{pidfile}"))
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
        {
            match sys::kill(pid, libc::SIGKILL) {
                Err(e) if e.raw_os_error() != Some(libc::ESRCH) => {
                    eprintln!("teardown: kill {pid} ({pidfile}): {e}")
                }
                _ => {}
            }
        }
    }
    if Path::new(&format!("/sys/class/net/{BRIDGE}")).exists() {
        try_run("ip", &["link", "del", BRIDGE]);
    }
    // Wait for the killed daemons to let go of their ports.
    std::thread::sleep(Duration::from_millis(200));
}

/// The processes whose network namespace is the one bound at `file`
/// (`/proc/<pid>/ns/net` names the same namespace: same device and inode).
fn pids_in_netns(file: &Path) -> Vec<i32> {
    use std::os::unix::fs::MetadataExt;
    let Ok(target) = std::fs::metadata(file) else {
        return Vec::new();
    };
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::metadata(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|m| m.dev() == target.dev() && m.ino() == target.ino())
        })
        .collect()
}
