//! Building and running for aarch64 on this x86_64 machine: Rust's
//! `aarch64-unknown-linux-gnu` target (`rustup target add`), Debian's cross
//! toolchain (`gcc-aarch64-linux-gnu`, which brings the arm64 libc6 in
//! `/usr/aarch64-linux-gnu`) and `qemu-aarch64-static` to run the results;
//! and the end-to-end run of a small program through a patched aarch64
//! loader ([`records_and_replays`]).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::artifacts::{artifacts, target_dir, workspace_root};
use crate::strace::{looked_up, parse_qemu, touches, Call};

/// Rust's name for the target.
pub const TARGET: &str = "aarch64-unknown-linux-gnu";
/// The cross C compiler.
pub const CC: &str = "aarch64-linux-gnu-gcc";
/// Where the cross toolchain keeps arm64's libc (qemu's `-L` prefix).
pub const SYSROOT: &str = "/usr/aarch64-linux-gnu";

/// Environment that makes cargo link with the cross compiler and run test
/// binaries under qemu.
pub fn cargo_env(cmd: &mut Command) -> &mut Command {
    cmd.env("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER", CC)
        .env(
            "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER",
            format!("qemu-aarch64-static -L {SYSROOT}"),
        )
}

/// `cargo` with the arguments of a release build for aarch64.
pub fn cargo(subcommand: &str) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root()).args([
        subcommand,
        "--locked",
        "--release",
        "--target",
        TARGET,
    ]);
    cargo_env(&mut cmd);
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

/// `main`: values from two linked libraries (in two RUNPATH directories,
/// so ld.so probes the first for the second's library) and one dlopen'ed.
const PROGRAM: &str = "#include <dlfcn.h>\n#include <stdio.h>\n\
int a_value(void); int b_value(void);\n\
int main(void) {\n\
  void *h = dlopen(\"libplug.so\", RTLD_NOW);\n\
  if (!h) { fprintf(stderr, \"dlopen: %s\\n\", dlerror()); return 3; }\n\
  int (*p)(void) = (int (*)(void))dlsym(h, \"plug_value\");\n\
  printf(\"a=%d b=%d plug=%d\\n\", a_value(), b_value(), p());\n\
  return 0;\n\
}\n";

/// Runs the cross `cc` with `flags` and `args`, failing the test on error.
fn cc(flags: &[String], args: &[&OsStr]) {
    let out = Command::new(CC)
        .args(flags)
        .args(args)
        .output()
        .expect("aarch64-linux-gnu-gcc");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A library `lib<name>.so` in `dir` whose `<name>_value` returns `body`.
fn library(flags: &[String], dir: &Path, name: &str, body: &str, extra: &[&str]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let src = dir.join(format!("{name}.c"));
    std::fs::write(
        &src,
        format!("int {name}_value(void) {{ return {body}; }}\n"),
    )
    .unwrap();
    let so = dir.join(format!("lib{name}.so"));
    let mut args: Vec<&OsStr> = vec!["-shared".as_ref(), "-fPIC".as_ref(), "-o".as_ref()];
    args.push(so.as_os_str());
    args.push(src.as_os_str());
    args.extend(extra.iter().map(OsStr::new));
    cc(flags, &args);
    so
}

/// Runs `prog` under qemu with `-strace` and `env`, in `dir`: its stdout
/// and the calls it made.
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

    /// `cc` flags that build against `sysroot`, if set.
    fn sysroot_flags(&self) -> Vec<String> {
        let Some(root) = &self.sysroot else {
            return Vec::new();
        };
        let (r, m) = (root.display(), "aarch64-linux-gnu");
        vec![
            format!("--sysroot={r}"),
            format!("-B{r}/usr/lib/{m}/"),
            format!("-L{r}/usr/lib/{m}"),
            format!("-L{r}/lib/{m}"),
        ]
    }
}

/// A small program (two libraries in two RUNPATH directories, a dlopen)
/// through `loader` patched by dlpatch, the wrapper linked or embedded:
/// baseline, pilot, `dlfm.pre read-cache`, replay, the program under
/// qemu-aarch64-static `-strace`. Checks the same output each time with no
/// complaint from ld.so, that the replay looks up nothing the baseline did
/// (no ENOENT), and that the trace shows the dlopen'ed library and libc
/// served, and FMCaching off (its interposer is an x86_64 library).
pub fn records_and_replays(loader: &Loader, embed: bool) {
    let what = format!(
        "{} ({})",
        loader.what,
        if embed { "--embed" } else { "linked" }
    );
    let flags = loader.sysroot_flags();
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let (one, two) = (root.join("one"), root.join("two"));
    let liba = library(&flags, &one, "a", "1", &[]);
    let rpath = |dirs: &[&Path]| {
        let list: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        format!("-Wl,--enable-new-dtags,-rpath,{}", list.join(":"))
    };
    let libb = library(
        &flags,
        &two,
        "b",
        "a_value() + 2",
        &[&format!("-L{}", one.display()), "-la", &rpath(&[&one])],
    );
    let plug = library(&flags, &two, "plug", "7", &[]);
    let libc_dir = &loader.libc_dir;
    let patched = root.join("ld.so");
    let prog = root.join("prog");
    let src = root.join("prog.c");
    std::fs::write(&src, PROGRAM).unwrap();
    let mut args: Vec<String> = vec![
        "-o".into(),
        prog.display().to_string(),
        src.display().to_string(),
    ];
    if !embed {
        args.push(wrapper().display().to_string());
    }
    args.extend([
        format!("-L{}", one.display()),
        format!("-L{}", two.display()),
        "-la".into(),
        "-lb".into(),
        // glibc < 2.34 keeps dlopen in libdl (later ones keep a stub).
        "-ldl".into(),
        rpath(&[&one, &two, libc_dir]),
        format!("-Wl,--dynamic-linker={}", patched.display()),
    ]);
    let os: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    cc(&flags, &os);

    let mut dlpatch = Command::new(&artifacts().dlpatch);
    if embed {
        dlpatch.arg("--embed").arg("--wrapper").arg(wrapper());
    } else {
        dlpatch.arg(&prog);
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
            ("DLFM_OP", op),
            ("DLFM_CACHE", cache_s.as_str()),
            ("DLFM_STAGE_DIR", stage_s.as_str()),
            ("DLCACHE_DBG", "1"),
        ]
    };
    let expected = "a=1 b=3 plug=7\n";
    let (base_out, base) = qemu(root, &prog, &[]);
    assert_eq!(base_out, expected, "{what}: baseline");
    let recorded = looked_up(&base);
    for lib in [&liba, &libb, &plug, &libc_dir.join("libc.so.6")] {
        assert!(
            recorded.contains(&lib.display().to_string()),
            "{what}: the baseline did not look up {}: {recorded:?}",
            lib.display()
        );
    }
    assert!(
        base.iter().any(|c| c.errno.as_deref() == Some("ENOENT")),
        "{what}: the baseline made no ENOENT probe"
    );

    // FMCaching's interposer is built for x86_64 only: the aarch64 wrapper
    // must leave it out (ld.so would print an error), and say so.
    pre(root, &["write-cache", "--cache", &cache_s]);
    let (pilot_out, _) = qemu(root, &prog, &env("write-cache"));
    assert_eq!(pilot_out, expected, "{what}: pilot");
    pre(root, &["read-cache", "4", "--cache", &cache_s]);
    let (replay_out, replay) = qemu(root, &prog, &env("read-cache"));
    assert_eq!(replay_out, expected, "{what}: replay");
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
    for lib in [&plug, &libc_dir.join("libc.so.6")] {
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
