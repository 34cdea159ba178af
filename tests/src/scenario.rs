//! A generated program linked with the wrapper, its ld.so patched by
//! dlpatch, and a run directory: the setting of every end-to-end test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dlfm_workload::{generate, Link, Spec, Workload};

use crate::artifacts::{artifacts, Artifacts};
use crate::debian::{self, Glibc};
use crate::strace::{self, Call};

/// Variables a test run must not inherit from the machine it runs on.
pub const ISOLATE: [&str; 18] = [
    "DLFM_OP",
    "DLFM_CACHE",
    "DLCACHE_DBG",
    "DLFM_STAGE",
    "DLFM_STAGE_DIR",
    "DLFM_STAGE_WAIT",
    "SLURM_JOB_ID",
    "SLURM_STEP_ID",
    "PMIX_NAMESPACE",
    "PBS_JOBID",
    "LSB_JOBID",
    "FLUX_JOB_ID",
    "PMI_RANK",
    "PMIX_RANK",
    "OMPI_COMM_WORLD_RANK",
    "SLURM_PROCID",
    "ALPS_APP_PE",
    "LD_PRELOAD",
];

/// One test's world.
pub struct Scenario {
    _tmp: tempfile::TempDir,
    /// The temporary root.
    pub root: PathBuf,
    /// Where the program runs (the cache and journal go here).
    pub run_dir: PathBuf,
    /// The patched ld.so.
    pub ldso: PathBuf,
    /// The program and its libraries.
    pub w: Workload,
    /// The dlfm tools.
    pub art: &'static Artifacts,
    /// The loader dlpatch patches, when not the machine's own.
    system_ldso: Option<PathBuf>,
    /// Where processes stage node-local copies: `<root>/stage`, or a
    /// directory of its own in /dev/shm (`stage_in_memory`).
    stage: PathBuf,
    /// That /dev/shm directory, removed with the scenario.
    _stage_in_memory: Option<tempfile::TempDir>,
}

/// Debian's python3 (its real file, not the symlink).
pub fn python() -> PathBuf {
    Path::new("/usr/bin/python3")
        .canonicalize()
        .expect("/usr/bin/python3 (apt-get install python3)")
}

/// Asserts `out` succeeded, showing its stderr otherwise.
pub fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Scenario {
    /// Generates `spec`, links it with the wrapper and runs dlpatch on it.
    pub fn new(spec: Spec) -> Scenario {
        let s = Scenario::start(spec, true, None);
        s.patch_linked();
        s
    }

    /// Generates `spec` *without* the wrapper and runs
    /// `dlpatch --embed --program`: the scenario's program is the copy that
    /// loads through the ld.so copy carrying the wrapper.
    pub fn embedded(spec: Spec) -> Scenario {
        let mut s = Scenario::start(spec, false, None);
        s.use_program_copy();
        s
    }

    /// Like `new` (or `embedded` with `embed`), with the loader and libc of
    /// `glibc` instead of the machine's; the program is built against the
    /// oldest glibc of the matrix (`debian::sysroot`), which every newer
    /// one runs, and finds `glibc`'s libc through its RUNPATH.
    pub fn on_glibc(spec: Spec, glibc: &Glibc, embed: bool) -> Scenario {
        let mut s = Scenario::start(spec, !embed, Some(glibc));
        if embed {
            s.use_program_copy();
        } else {
            s.patch_linked();
        }
        s
    }

    fn start(spec: Spec, linked: bool, glibc: Option<&Glibc>) -> Scenario {
        let art = artifacts();
        let tmp = tempfile::tempdir().expect("temp dir");
        let root = tmp.path().to_path_buf();
        let ldso = root.join("ld.so");
        let link = Link {
            wrapper_archive: linked.then(|| art.wrapper.clone()),
            interp: linked.then(|| ldso.clone()),
            sysroot: glibc.map(|_| debian::sysroot("amd64")),
            libc_dir: glibc.map(Glibc::libdir),
            cross_cc: None,
        };
        let w = generate(&spec, &link, &root.join("w")).expect("generate the workload");
        let run_dir = root.join("run");
        std::fs::create_dir_all(&run_dir).expect("run dir");
        Scenario {
            _tmp: tmp,
            root: root.clone(),
            run_dir,
            ldso,
            w,
            art,
            system_ldso: glibc.map(Glibc::ldso),
            stage: root.join("stage"),
            _stage_in_memory: None,
        }
    }

    /// `dlpatch PROGRAM -o ld.so` for a program linked with the wrapper.
    fn patch_linked(&self) {
        let mut cmd = Command::new(&self.art.dlpatch);
        cmd.arg(&self.w.program).arg("-o").arg(&self.ldso);
        if let Some(l) = &self.system_ldso {
            cmd.arg("--ldso").arg(l);
        }
        assert_ok(&cmd.output().expect("run dlpatch"), "dlpatch");
    }

    /// Makes the scenario's program a copy that loads through the embedded
    /// wrapper's ld.so copy.
    fn use_program_copy(&mut self) {
        let copy = self.root.join("prog.dlfm");
        self.program_copy(&self.w.program.clone(), &copy);
        self.w.program = copy;
    }

    /// Writes `copy`, a copy of `program` that loads through the scenario's
    /// embedded-wrapper ld.so (`dlpatch --embed --program`).
    pub fn program_copy(&self, program: &Path, copy: &Path) {
        let mut cmd = Command::new(&self.art.dlpatch);
        cmd.args(["--embed", "--program"])
            .arg(program)
            .arg("-o")
            .arg(copy)
            .arg("--loader")
            .arg(&self.ldso);
        if let Some(l) = &self.system_ldso {
            cmd.arg("--ldso").arg(l);
        }
        assert_ok(
            &cmd.output().expect("run dlpatch"),
            "dlpatch --embed --program",
        );
    }

    /// Runs dlpatch with `args`.
    pub fn dlpatch(&self, args: &[&str]) -> Output {
        Command::new(&self.art.dlpatch)
            .args(args)
            .output()
            .expect("run dlpatch")
    }

    /// A scenario with an embedded-wrapper ld.so and a copy of Debian's
    /// python3 (its real file) that loads through it; returns the copy too.
    pub fn python() -> (Scenario, PathBuf) {
        let s = Scenario::embedded(Spec::small());
        let copy = s.root.join("python3.dlfm");
        s.program_copy(&python(), &copy);
        (s, copy)
    }

    /// The program's command line, isolated from the caller's environment,
    /// with `DLFM_OP=op` when given.
    pub fn cmd(&self, op: Option<&str>) -> Command {
        self.cmd_for(&self.w.program, op)
    }

    /// Like `cmd`, for another program.
    pub fn cmd_for(&self, program: &Path, op: Option<&str>) -> Command {
        let mut c = Command::new(program);
        c.current_dir(&self.run_dir)
            .env("LD_LIBRARY_PATH", &self.w.ld_library_path);
        for v in ISOLATE {
            c.env_remove(v);
        }
        // Each scenario stages node-local copies in a directory of its own.
        c.env("DLFM_STAGE_DIR", self.stage_dir());
        if let Some(op) = op {
            c.env("DLFM_OP", op);
        }
        c
    }

    /// Runs `cmd` and checks it succeeds and prints the expected checksum.
    pub fn run_ok(&self, mut cmd: Command) -> Output {
        let out = cmd.output().expect("run the program");
        assert_ok(&out, &format!("{cmd:?}"));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            self.w.expected_stdout,
            "{cmd:?}"
        );
        out
    }

    /// Runs `dlfm.pre` with `args` in the run directory (extra env given).
    pub fn pre(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.pre_cmd(args, env).output().expect("run dlfm.pre")
    }

    /// The command [`Scenario::pre`] runs.
    pub fn pre_cmd(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut c = Command::new(&self.art.dlfm_pre);
        c.args(args).current_dir(&self.run_dir);
        for v in ISOLATE {
            c.env_remove(v);
        }
        for (k, v) in env {
            c.env(k, v);
        }
        c
    }

    /// `dlfm.pre write-cache`, a pilot run, `dlfm.pre read-cache 24`; with
    /// `DLCACHE_DBG=1` on the last step so replay runs find trace files.
    pub fn pilot_and_pack(&self) {
        assert_ok(&self.pre(&["write-cache"], &[]), "dlfm.pre write-cache");
        self.run_ok(self.cmd(Some("write-cache")));
        assert_ok(
            &self.pre(&["read-cache", "24"], &[("DLCACHE_DBG", "1")]),
            "dlfm.pre read-cache",
        );
    }

    /// Where the scenario's processes stage node-local copies of the cache
    /// (`DLFM_STAGE_DIR`; created on first use).
    pub fn stage_dir(&self) -> PathBuf {
        std::fs::create_dir_all(&self.stage).expect("stage dir");
        self.stage.clone()
    }

    /// Stages in a new directory in /dev/shm (memory, where `dlfm run`
    /// stages by default) instead of `<root>/stage` on the disk, for
    /// benchmarks of memory: mapped from a copy on this machine's ext4, a
    /// library showed about 30 KiB more resident per process than from one
    /// in /dev/shm.
    pub fn stage_in_memory(&mut self) -> std::io::Result<()> {
        let dir = tempfile::Builder::new()
            .prefix("dlfm-scenario-")
            .tempdir_in("/dev/shm")?;
        self.stage = dir.path().to_path_buf();
        self._stage_in_memory = Some(dir);
        Ok(())
    }

    /// Whether `c` is on the scenario's node-local stage directory (a
    /// lookup there, or a call on a descriptor of a file there): node-local
    /// storage, not the shared file system the tests watch.
    pub fn is_node_local(&self, c: &Call) -> bool {
        let dir = &self.stage;
        let under =
            |p: &Option<String>| p.as_deref().is_some_and(|p| Path::new(p).starts_with(dir));
        under(&c.path) || under(&c.fd_path)
    }

    /// The calls of `calls` that reached the shared file system (not the
    /// scenario's node-local storage, where staging works by design).
    pub fn shared(&self, calls: &[Call]) -> Vec<Call> {
        calls
            .iter()
            .filter(|c| !self.is_node_local(c))
            .cloned()
            .collect()
    }

    /// A read-cache run with `DLCACHE_DBG` under strace (trace file `name`),
    /// its output checked: the calls that reached the shared file system.
    pub fn replay_on_shared(&self, name: &str) -> Vec<Call> {
        let mut cmd = self.cmd(Some("read-cache"));
        cmd.env("DLCACHE_DBG", "1");
        self.shared(&self.traced(cmd, name))
    }

    /// The node-local copies of the cache staged so far (complete copies:
    /// `.d` directories).
    pub fn staged_copies(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.stage_dir())
            .expect("stage dir")
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "d"))
            .collect();
        v.sort();
        v
    }

    /// Checks that the node copy `copy` holds exactly the cache at `cache`:
    /// its metadata in `cache`, and under `root` each stored file at its
    /// canonical path with the bytes the cache stores, and nothing else.
    pub fn assert_copy_of(&self, copy: &Path, cache: &Path) {
        crate::node_copy::assert_copy_of(copy, cache);
    }

    /// The node copy's file for the library at `path` (its canonical path
    /// under the copy's root).
    pub fn in_copy(copy: &Path, path: &Path) -> PathBuf {
        let real = path.canonicalize().expect("the library exists");
        copy.join("root").join(real.strip_prefix("/").unwrap())
    }

    /// The cache file.
    pub fn cache(&self) -> PathBuf {
        self.run_dir.join("dlcache.dat")
    }

    /// Runs `cmd` under strace (trace file `name` in the root), checks its
    /// output, and returns the calls.
    pub fn traced(&self, cmd: Command, name: &str) -> Vec<Call> {
        let (stdout, calls) = self.traced_output(&cmd, name, &format!("{cmd:?} under strace"));
        assert_eq!(stdout, self.w.expected_stdout);
        calls
    }

    /// Runs `cmd` under strace (trace file `name` in the root), checks that
    /// it succeeds (`what` names it if not), and returns what it printed and
    /// the calls.
    pub fn traced_output(&self, cmd: &Command, name: &str, what: &str) -> (String, Vec<Call>) {
        let log = self.root.join(name);
        let out = strace::run_traced(cmd, &log);
        assert_ok(&out, what);
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            strace::parse(&log),
        )
    }

    /// Everything written to the DLCACHE_DBG trace files so far.
    pub fn trace_text(&self) -> String {
        let mut text = String::new();
        if let Ok(dir) = std::fs::read_dir(self.run_dir.join("dlcache.dbg")) {
            for e in dir.flatten() {
                text.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
        text
    }

    /// Builds a C program linked with the wrapper and the scenario's patched
    /// ld.so, with extra `cc` arguments; it lands in the scenario's root.
    pub fn build_c(&self, name: &str, source: &str, extra: &[&str]) -> PathBuf {
        let src = self.root.join(format!("{name}.c"));
        std::fs::write(&src, source).expect("write the C source");
        let out_path = self.root.join(name);
        let out = Command::new("cc")
            .arg("-o")
            .arg(&out_path)
            .arg(&src)
            .arg(&self.art.wrapper)
            .args(extra)
            .arg(format!("-Wl,--dynamic-linker={}", self.ldso.display()))
            .output()
            .expect("run cc");
        assert_ok(&out, "cc");
        out_path
    }

    /// Builds `lib<name>.so` from `source` in the scenario's `extra-libs/`.
    pub fn shared_lib(&self, name: &str, source: &str) -> PathBuf {
        self.shared_lib_with(name, source, &[])
    }

    /// [`Scenario::shared_lib`] with `extra` arguments for `cc` (a RUNPATH,
    /// libraries to link).
    pub fn shared_lib_with(&self, name: &str, source: &str, extra: &[&str]) -> PathBuf {
        let dir = self.root.join("extra-libs");
        std::fs::create_dir_all(&dir).expect("extra-libs dir");
        let src = dir.join(format!("{name}.c"));
        std::fs::write(&src, source).expect("write the C source");
        let so = dir.join(format!("lib{name}.so"));
        let out = Command::new("cc")
            .args(["-shared", "-fPIC", "-o"])
            .arg(&so)
            .arg(&src)
            .args(extra)
            .output()
            .expect("run cc");
        assert_ok(&out, "cc -shared");
        so
    }
}

/// The `cc` flag that puts `dir` on a program's RUNPATH.
pub fn rpath(dir: &Path) -> String {
    format!("-Wl,--enable-new-dtags,-rpath,{}", dir.display())
}

/// Runs `cmd` to completion, collecting its output; fails the test if it
/// has not finished within `limit` (a hang), after killing it.
pub fn output_within(mut cmd: Command, limit: std::time::Duration) -> Output {
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the program");
    let deadline = std::time::Instant::now() + limit;
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} hung");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().expect("collect the output")
}
