//! Building and running for aarch64 on this x86_64 machine: Rust's
//! `aarch64-unknown-linux-gnu` target (`rustup target add`), Debian's cross
//! toolchain (`gcc-aarch64-linux-gnu`, which brings the arm64 libc6 in
//! `/usr/aarch64-linux-gnu`) and `qemu-aarch64-static` to run the results;
//! and the end-to-end run of the generated program through a patched
//! aarch64 loader ([`records_and_replays`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use dlfm_workload::{generate, Link, Spec};

use crate::artifacts::{artifacts, target_dir, workspace_root};
use crate::strace::{looked_up, parse_qemu, touches, Call};

/// Rust's name for the target.
pub const TARGET: &str = "aarch64-unknown-linux-gnu";
/// The cross C compiler.
pub const CC: &str = "aarch64-linux-gnu-gcc";
/// Where the cross toolchain keeps arm64's libc (qemu's `-L` prefix).
pub const SYSROOT: &str = "/usr/aarch64-linux-gnu";

/// `cargo SUBCOMMAND` for a release build for aarch64, linking with the
/// cross compiler and running test binaries under qemu.
pub fn cargo(subcommand: &str) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root())
        .args([subcommand, "--locked", "--release", "--target", TARGET])
        .env("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER", CC)
        .env(
            "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER",
            format!("qemu-aarch64-static -L {SYSROOT}"),
        );
    cmd
}

/// The wrapper built for aarch64 (`libdlfm_wrap.a`), once per test process.
pub fn wrapper() -> &'static PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = cargo("build")
            .args(["--quiet", "-p", "dlfm-wrap"])
            .output()
            .expect("run cargo");
        assert!(
            out.status.success(),
            "building the aarch64 wrapper failed (rustup target add {TARGET}?):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let a = target_dir().join(TARGET).join("release/libdlfm_wrap.a");
        assert!(a.exists(), "{} missing after the build", a.display());
        a
    })
}

/// An aarch64 loader and the glibc it belongs to.
pub struct Loader {
    /// The loader to patch.
    pub ldso: PathBuf,
    /// The directory of its libc.so.6 (on the program's RUNPATH).
    pub libc_dir: PathBuf,
    /// A sysroot of an older glibc to build against (else the cross
    /// toolchain's own).
    pub sysroot: Option<PathBuf>,
    /// How messages name it.
    pub what: String,
}

impl Loader {
    /// The cross toolchain's own glibc (Debian 12's).
    pub fn cross_toolchain() -> Loader {
        let libc_dir = Path::new(SYSROOT).join("lib");
        Loader {
            ldso: libc_dir.join("ld-linux-aarch64.so.1"),
            libc_dir,
            sysroot: None,
            what: "the cross toolchain's glibc".into(),
        }
    }
}

/// Runs `prog` under qemu with `-strace` and `env`, in `dir`: its stdout
/// and the calls it made. Fails on a failed run or a complaint from ld.so.
fn qemu(dir: &Path, prog: &Path, env: &[(&str, &str)]) -> (String, Vec<Call>) {
    let out = Command::new("qemu-aarch64-static")
        .arg("-strace")
        .arg(prog)
        .current_dir(dir)
        .env_remove("LD_LIBRARY_PATH")
        .envs(env.iter().copied())
        .output()
        .expect("qemu-aarch64-static (qemu-user-static)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{} failed:\n{stdout}\n{stderr}",
        prog.display()
    );
    let complaint = stderr.lines().find(|l| l.starts_with("ERROR: ld.so"));
    assert!(complaint.is_none(), "ld.so complained: {complaint:?}");
    (stdout, parse_qemu(&stderr))
}

/// `dlfm.pre` with `args`, in `dir`.
fn pre(dir: &Path, args: &[&str]) {
    let out = Command::new(&artifacts().dlfm_pre)
        .args(args)
        .current_dir(dir)
        .env("DLCACHE_DBG", "1")
        .output()
        .expect("dlfm.pre");
    assert!(
        out.status.success(),
        "dlfm.pre {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The generated 20-library program with a dlopen (`Spec::small`, built
/// with the cross compiler) through `loader` patched by dlpatch, the
/// wrapper linked or embedded: baseline, pilot, `dlfm.pre read-cache`,
/// replay, the program under qemu-aarch64-static `-strace`. Checks the
/// expected output each time with no complaint from ld.so, that the replay
/// looks up nothing the baseline did (no ENOENT), and that the trace shows
/// the dlopen'ed library and libc served, and FMCaching off (its
/// interposer is an x86_64 library).
pub fn records_and_replays(loader: &Loader, embed: bool) {
    let what = format!(
        "{} ({})",
        loader.what,
        if embed { "--embed" } else { "linked" }
    );
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let patched = root.join("ld.so");
    let link = Link {
        wrapper_archive: (!embed).then(|| wrapper().clone()),
        interp: Some(patched.clone()),
        sysroot: loader.sysroot.clone(),
        libc_dir: Some(loader.libc_dir.clone()),
        cross_cc: Some(CC.into()),
    };
    let w = generate(&Spec::small(), &link, &root.join("w"))
        .unwrap_or_else(|e| panic!("{what}: generate the workload: {e}"));

    let mut dlpatch = Command::new(&artifacts().dlpatch);
    if embed {
        dlpatch.arg("--embed").arg("--wrapper").arg(wrapper());
    } else {
        dlpatch.arg(&w.program);
    }
    let out = dlpatch
        .arg("--ldso")
        .arg(&loader.ldso)
        .arg("-o")
        .arg(&patched)
        .output()
        .expect("dlpatch");
    assert!(
        out.status.success(),
        "{what}: dlpatch: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let cache = root.join("dlcache.dat");
    let cache_s = cache.display().to_string();
    let stage = root.join("stage");
    std::fs::create_dir_all(&stage).unwrap();
    let stage_s = stage.display().to_string();
    let env = |op: &'static str| {
        vec![
            ("LD_LIBRARY_PATH", w.ld_library_path.as_str()),
            ("DLFM_OP", op),
            ("DLFM_CACHE", cache_s.as_str()),
            ("DLFM_STAGE_DIR", stage_s.as_str()),
            ("DLCACHE_DBG", "1"),
        ]
    };
    let (base_out, base) = qemu(root, &w.program, &env("off"));
    assert_eq!(base_out, w.expected_stdout, "{what}: baseline");
    let recorded = looked_up(&base);
    let libc = loader.libc_dir.join("libc.so.6");
    for lib in w.all_libs().chain([libc.as_path()]) {
        assert!(
            recorded.contains(&lib.display().to_string()),
            "{what}: the baseline did not look up {}",
            lib.display()
        );
    }
    assert!(
        base.iter().any(|c| c.errno.as_deref() == Some("ENOENT")),
        "{what}: the baseline made no ENOENT probe"
    );

    // FMCaching's interposer is built for x86_64 only: the aarch64 wrapper
    // must leave it out (ld.so would print an error).
    pre(root, &["write-cache", "--cache", &cache_s]);
    let (pilot_out, _) = qemu(root, &w.program, &env("write-cache"));
    assert_eq!(pilot_out, w.expected_stdout, "{what}: pilot");
    pre(root, &["read-cache", "4", "--cache", &cache_s]);
    let (replay_out, replay) = qemu(root, &w.program, &env("read-cache"));
    assert_eq!(replay_out, w.expected_stdout, "{what}: replay");
    let shared: Vec<Call> = replay
        .into_iter()
        .filter(|c| !c.path.as_deref().is_some_and(|p| p.starts_with(&stage_s)))
        .collect();
    let bad = touches(&shared, &recorded);
    assert!(
        bad.is_empty(),
        "{what}: the replay reached the file system:\n{}",
        bad.join("\n")
    );

    let mut traces = String::new();
    for e in std::fs::read_dir(root.join("dlcache.dbg"))
        .expect("trace directory")
        .flatten()
    {
        traces.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
    }
    for lib in w.dlopen_libs.iter().chain([&libc]) {
        let line = format!("openat served {}", lib.display());
        assert!(traces.contains(&line), "{what}: no `{line}` in:\n{traces}");
    }
    // (The pilot left the interposer out: ld.so did not complain above.)
    let fm_off = "fmcaching off: the pilot did not load the interposer";
    assert!(
        traces.contains(fm_off),
        "{what}: no `{fm_off}` in:\n{traces}"
    );
}
