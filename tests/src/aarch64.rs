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
use crate::scenario::assert_ok;
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
    BUILT.get_or_init(|| build("dlfm-wrap", "libdlfm_wrap.a"))
}

/// FMCaching's interposer built for aarch64 (`libdlfm_fm.so` in
/// `target/aarch64-unknown-linux-gnu/release/`, where `dlfm.pre
/// write-cache` finds it beside the host's), once per test process.
pub fn interposer() -> &'static PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| build("dlfm-fm", "libdlfm_fm.so"))
}

/// Builds `package` for aarch64: the path of its `file`.
fn build(package: &str, file: &str) -> PathBuf {
    let out = cargo("build")
        .args(["--quiet", "-p", package])
        .output()
        .expect("run cargo");
    assert_ok(
        &out,
        &format!("building {package} for aarch64 (rustup target add {TARGET}?)"),
    );
    let built = target_dir().join(TARGET).join("release").join(file);
    assert!(
        built.exists(),
        "{} missing after the build",
        built.display()
    );
    built
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
    qemu_args(dir, prog, &[], env, None)
}

/// [`qemu`] with arguments for `prog`, and a page size for the guest
/// (qemu's `-p`, which its `AT_PAGESZ` then says; default 4 KiB).
fn qemu_args(
    dir: &Path,
    prog: &Path,
    args: &[&std::ffi::OsStr],
    env: &[(&str, &str)],
    page: Option<u64>,
) -> (String, Vec<Call>) {
    let mut cmd = Command::new("qemu-aarch64-static");
    if let Some(p) = page {
        cmd.arg("-p").arg(p.to_string());
    }
    let out = cmd
        .arg("-strace")
        .arg(prog)
        .args(args)
        .current_dir(dir)
        .env_remove("LD_LIBRARY_PATH")
        .envs(env.iter().copied())
        .output()
        .expect("qemu-aarch64-static (qemu-user-static)");
    assert_ok(&out, &prog.display().to_string());
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let complaint = stderr.lines().find(|l| l.starts_with("ERROR: ld.so"));
    assert!(complaint.is_none(), "ld.so complained: {complaint:?}");
    (stdout, parse_qemu(&stderr))
}

/// `dlfm.pre` with `args`, in `dir`: what it printed.
fn pre(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(&artifacts().dlfm_pre)
        .args(args)
        .current_dir(dir)
        .env("DLCACHE_DBG", "1")
        .output()
        .expect("dlfm.pre");
    assert_ok(&out, &format!("dlfm.pre {args:?}"));
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// The generated 20-library program with a dlopen (`Spec::small`, built
/// with the cross compiler) through `loader` patched by dlpatch, the
/// wrapper linked or embedded: baseline, pilot, `dlfm.pre read-cache`,
/// replay, the program under qemu-aarch64-static `-strace`. Checks the
/// expected output each time with no complaint from ld.so, that the replay
/// looks up nothing the baseline did (no ENOENT), and that the trace shows
/// the dlopen'ed library and libc served. Linked, the pilot is given the
/// host's interposer only, which the aarch64 wrapper leaves out (FMCaching
/// off); embedded, it is given this install's two, and preloads the aarch64
/// one.
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
    assert_ok(&out, &format!("{what}: dlpatch"));

    let cache = root.join("dlcache.dat");
    let cache_s = cache.display().to_string();
    let stage = root.join("stage");
    std::fs::create_dir_all(&stage).unwrap();
    let stage_s = stage.display().to_string();
    // The program finds its libc through its RUNPATH; the interposer (which
    // has none) finds libdl.so.2 beside it on this path, as it does in the
    // system's directories on an aarch64 machine.
    let lib_path = format!("{}:{}", w.ld_library_path, loader.libc_dir.display());
    let env = |op: &'static str| {
        vec![
            ("LD_LIBRARY_PATH", lib_path.as_str()),
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

    let aarch64_fm = interposer().display().to_string();
    let host_fm = artifacts().interposer.display().to_string();
    if embed {
        pre(root, &["write-cache", "--cache", &cache_s]);
    } else {
        pre(
            root,
            &["write-cache", "--cache", &cache_s, "--fm", &host_fm],
        );
    }
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

    let traces = traces(root);
    for lib in w.dlopen_libs.iter().chain([&libc]) {
        let line = format!("openat served {}", lib.display());
        assert!(traces.contains(&line), "{what}: no `{line}` in:\n{traces}");
    }
    // (Linked, the pilot left the x86_64 interposer out: ld.so did not
    // complain above.)
    let fm = if embed {
        format!("fmcaching: ld.so preloads {aarch64_fm}")
    } else {
        "fmcaching off: the pilot did not load the interposer".into()
    };
    assert!(traces.contains(&fm), "{what}: no `{fm}` in:\n{traces}");

    // aarch64 kernels run with 16 and 64 KiB pages too: without a node
    // copy, ld.so maps the libraries from the cache file itself, at offsets
    // that must be multiples of the page size.
    for page in [16384u64, 65536] {
        let mut env = env("read-cache");
        env.push(("DLFM_STAGE", "off"));
        let (out, calls) = qemu_args(root, &w.program, &[], &env, Some(page));
        assert_eq!(
            out, w.expected_stdout,
            "{what}: replay with {page}-byte pages"
        );
        let maps = file_maps(&calls);
        assert!(
            maps.len() >= w.all_libs().count(),
            "{what}: {} file mappings with {page}-byte pages",
            maps.len()
        );
        let bad: Vec<&String> = maps
            .iter()
            .filter(|(_, offset, _)| offset % page != 0)
            .map(|(_, _, raw)| raw)
            .collect();
        assert!(
            bad.is_empty(),
            "{what}: mappings off a {page}-byte page:\n{bad:?}"
        );
    }
}

/// The successful mappings of files in `calls` (qemu's `-strace` lines):
/// (descriptor, offset, the line).
fn file_maps(calls: &[Call]) -> Vec<(i64, u64, String)> {
    calls
        .iter()
        .filter(|c| c.name == "mmap" && c.errno.is_none())
        .filter_map(|c| {
            let args = c.raw.split_once('(')?.1.rsplit_once(')')?.0;
            let fields: Vec<&str> = args.split(',').collect();
            let fd = fields.get(4)?.trim().parse::<i64>().ok()?;
            let offset = fields.get(5)?.trim();
            let offset = offset
                .strip_prefix("0x")
                .map_or_else(|| offset.parse().ok(), |h| u64::from_str_radix(h, 16).ok())?;
            (fd >= 0).then(|| (fd, offset, c.raw.clone()))
        })
        .collect()
}

/// The script the aarch64 Python test runs: the package tree's and the
/// extension modules' drivers, standard-library imports in threads and in a
/// forked child, then the job's input file (never served: it is read as it
/// is now).
const PYTHON_APP: &str = r#"import os, runpy, sys, threading
runpy.run_path(sys.argv[1], run_name="__main__")
runpy.run_path(sys.argv[2], run_name="__main__")
errors = []
def load(name):
    try:
        __import__(name)
    except Exception as e:
        errors.append(repr(e))
threads = [threading.Thread(target=load, args=(n,)) for n in ("json", "csv", "string", "textwrap", "difflib", "pprint")]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("threads", "ok" if not errors else errors)
pid = os.fork()
if pid == 0:
    import base64, email.utils
    os._exit(0 if email.utils.quote("a") == "a" and base64.b64encode(b"x") == b"eA==" else 5)
_, status = os.waitpid(pid, 0)
print("child", "ok" if os.waitstatus_to_exitcode(status) == 0 else status)
with open(sys.argv[3]) as f:
    print("input", f.read().strip())
"#;

/// Calls on the recorded trees in one run: those naming a path under one
/// of `trees`, and the ENOENT results among them.
pub struct OnTrees {
    /// Every call naming a path under the trees.
    pub calls: Vec<String>,
    /// Those that failed with ENOENT.
    pub enoent: usize,
}

/// The calls of `calls` on the trees `trees`.
pub fn on_trees(calls: &[Call], trees: &[&Path]) -> OnTrees {
    let under: Vec<&Call> = calls
        .iter()
        .filter(|c| {
            trees.iter().any(|t| {
                c.path
                    .as_deref()
                    .is_some_and(|p| Path::new(p).starts_with(t))
            })
        })
        .collect();
    OnTrees {
        enoent: under
            .iter()
            .filter(|c| c.errno.as_deref() == Some("ENOENT"))
            .count(),
        calls: under.iter().map(|c| c.raw.clone()).collect(),
    }
}

/// Debian 12's arm64 python3.11 (from Debian's packages) through its own
/// loader patched by `dlpatch --embed` (a `dlpatch --embed --program`
/// copy), under qemu-aarch64-static: a generated package tree, extension
/// modules built with the cross compiler, standard-library imports in
/// threads and in a forked child. Baseline, pilot (FMCaching's aarch64
/// interposer preloaded), `dlfm.pre read-cache`, replay: the same output
/// each time; in the replay qemu's `-strace` shows no call on the tree and
/// the modules and no ENOENT on the recorded trees. An input file changed
/// after the pilot is read as it is now; a module changed after packing is
/// named by `dlfm.pre check`. Returns the calls on the trees without dlfm
/// and in the replay.
pub fn python_records_and_replays() -> (OnTrees, OnTrees) {
    let py = crate::debian::python_arm64();
    let fm = interposer();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let copy = program_copy(&py.python(), &py.ldso(), root);

    let tree = dlfm_workload::generate_package_tree(
        &crate::scenario::python(),
        &root.join("py"),
        4,
        3,
        5,
        7,
    )
    .expect("generate the package tree");
    let build = dlfm_workload::ExtensionBuild {
        cc: CC.into(),
        includes: py.includes(),
    };
    let ext = dlfm_workload::generate_extensions(&build, 5, 3, &root.join("ext"))
        .expect("build the extension modules with the cross compiler");
    let job = root.join("job");
    std::fs::create_dir_all(&job).unwrap();
    let input = job.join("input.txt");
    std::fs::write(&input, "first\n").unwrap();
    let app = job.join("app.py");
    std::fs::write(&app, PYTHON_APP).unwrap();
    let expected = |input: &str| {
        format!(
            "{}{}threads ok\nchild ok\ninput {input}\n",
            tree.expected_stdout, ext.expected_stdout
        )
    };

    let cache = root.join("dlcache.dat");
    let cache_s = cache.display().to_string();
    let stage = root.join("stage");
    std::fs::create_dir_all(&stage).unwrap();
    let home = py.home().display().to_string();
    let lib_path = py.lib_path();
    // `page`: the guest's page size, and no node copy (served files come
    // from the cache file).
    let run_with = |op: &str, page: Option<u64>| {
        let stage_s = stage.display().to_string();
        let staging = if page.is_some() { "off" } else { "on" };
        let env = [
            ("LD_LIBRARY_PATH", lib_path.as_str()),
            ("PYTHONHOME", home.as_str()),
            ("DLFM_OP", op),
            ("DLFM_CACHE", cache_s.as_str()),
            ("DLFM_STAGE_DIR", stage_s.as_str()),
            ("DLFM_STAGE", staging),
            ("DLCACHE_DBG", "1"),
        ];
        let args = [
            app.as_os_str(),
            tree.script.as_os_str(),
            ext.script.as_os_str(),
            input.as_os_str(),
        ];
        qemu_args(root, &copy, &args, &env, page)
    };
    let run = |op: &str| run_with(op, None);
    let trees = [tree.root.as_path(), ext.module_dir.as_path(), &py.stdlib()];
    let code_trees = [tree.root.as_path(), ext.module_dir.as_path()];

    let (out, base) = run("off");
    assert_eq!(out, expected("first"), "aarch64 python: baseline");
    let base = on_trees(&base, &trees);
    assert!(
        base.enoent > 0 && base.calls.len() > 100,
        "the baseline made too few calls on the trees to show anything: {}",
        base.calls.len()
    );
    pre(root, &["write-cache", "--cache", &cache_s]);
    let (out, _) = run("write-cache");
    assert_eq!(out, expected("first"), "aarch64 python: pilot");
    let packed = pre(root, &["read-cache", "4", "--cache", &cache_s]);
    assert!(
        packed.contains(&format!("preloads {}", fm.display())),
        "the pack does not name the aarch64 interposer:\n{packed}"
    );
    std::fs::write(&input, "second\n").unwrap();
    let (out, replay) = run("read-cache");
    assert_eq!(out, expected("second"), "aarch64 python: replay");
    let left = on_trees(&replay, &trees);
    let on_code = on_trees(&replay, &code_trees);
    for page in [16384u64, 65536] {
        let (out, calls) = run_with("read-cache", Some(page));
        assert_eq!(out, expected("second"), "aarch64 python: {page}-byte pages");
        let on = on_trees(&calls, &trees);
        assert!(
            on.calls.is_empty(),
            "the replay with {page}-byte pages reached the recorded trees:\n{}",
            on.calls.join("\n")
        );
    }
    let traces = traces(root);
    assert!(
        on_code.calls.is_empty() && left.enoent == 0,
        "the replay reached the recorded trees:\n{}\ntraces:\n{traces}",
        left.calls.join("\n")
    );
    for m in tree.sources.iter().take(3) {
        let stem = m.file_stem().unwrap().to_string_lossy();
        let pyc = m.with_file_name(format!("__pycache__/{stem}.cpython-311.pyc"));
        let line = format!("fm open served {}", pyc.display());
        assert!(traces.contains(&line), "no `{line}` in the traces");
    }

    let module = &tree.sources[tree.sources.len() / 2];
    let text = std::fs::read_to_string(module).unwrap();
    std::fs::write(module, text.replace("VALUE = ", "VALUE = 1 + ")).unwrap();
    let out = Command::new(&artifacts().dlfm_pre)
        .args(["check", "--quick", "--cache", &cache_s])
        .current_dir(root)
        .output()
        .expect("dlfm.pre check");
    let said =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && said.contains(&module.display().to_string()),
        "check did not name the changed module {}:\n{said}",
        module.display()
    );
    let out = Command::new(&artifacts().dlfm_pre)
        .args(["read-cache", "4", "--cache", &cache_s])
        .current_dir(root)
        .output()
        .expect("dlfm.pre read-cache");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && said.contains(&module.display().to_string()),
        "the pack did not refuse the changed module {}:\n{said}",
        module.display()
    );
    (base, left)
}

/// `dlpatch --embed --program`: a copy of the aarch64 `program` in `dir`
/// (`<name>.dlfm`) that loads through `ldso` patched with the aarch64
/// wrapper embedded (`dir/ld.so`).
fn program_copy(program: &Path, ldso: &Path, dir: &Path) -> PathBuf {
    let name = program.file_name().expect("a program file name");
    let copy = dir.join(format!("{}.dlfm", name.to_string_lossy()));
    let out = Command::new(&artifacts().dlpatch)
        .args(["--embed", "--wrapper"])
        .arg(wrapper())
        .arg("--program")
        .arg(program)
        .arg("-o")
        .arg(&copy)
        .arg("--loader")
        .arg(dir.join("ld.so"))
        .arg("--ldso")
        .arg(ldso)
        .output()
        .expect("dlpatch");
    assert_ok(
        &out,
        &format!("dlpatch --embed --program {}", program.display()),
    );
    copy
}

/// Everything in the DLCACHE_DBG trace files under `dir`.
fn traces(dir: &Path) -> String {
    let mut text = String::new();
    for e in std::fs::read_dir(dir.join("dlcache.dbg"))
        .expect("trace directory")
        .flatten()
    {
        text.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
    }
    text
}

/// An aarch64 C program that prints every field of what `stat`, `lstat`,
/// `fstatat`, `fstat`, `statx` (by path and by descriptor) and the old
/// `__xstat` family (version 0, glibc 2.17's) say about its arguments.
const STATS_C: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
extern int __xstat(int, const char *, struct stat *);
extern int __lxstat(int, const char *, struct stat *);
__asm__(".symver __xstat,__xstat@GLIBC_2.17");
__asm__(".symver __lxstat,__lxstat@GLIBC_2.17");
static void show(const char *what, int r, const struct stat *st) {
    if (r != 0) { printf("%s errno=%d\n", what, errno); return; }
    printf("%s ino=%lu size=%ld blocks=%ld blksize=%ld mtime=%ld.%09ld ctime=%ld.%09ld mode=%o "
           "nlink=%lu uid=%u gid=%u dev=%u:%u rdev=%u:%u\n", what,
           (unsigned long)st->st_ino, (long)st->st_size, (long)st->st_blocks, (long)st->st_blksize,
           (long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec, (long)st->st_ctim.tv_sec,
           st->st_ctim.tv_nsec, st->st_mode, (unsigned long)st->st_nlink, st->st_uid, st->st_gid,
           major(st->st_dev), minor(st->st_dev), major(st->st_rdev), minor(st->st_rdev));
}
static void show_x(const char *what, int r, const struct statx *x) {
    if (r != 0) { printf("%s errno=%d\n", what, errno); return; }
    printf("%s basic=%d ino=%llu size=%llu blocks=%llu blksize=%u mtime=%lld.%09u mode=%o "
           "nlink=%u dev=%u:%u\n", what,
           (x->stx_mask & STATX_BASIC_STATS) == STATX_BASIC_STATS,
           (unsigned long long)x->stx_ino, (unsigned long long)x->stx_size,
           (unsigned long long)x->stx_blocks, x->stx_blksize, (long long)x->stx_mtime.tv_sec,
           x->stx_mtime.tv_nsec, x->stx_mode, x->stx_nlink, x->stx_dev_major, x->stx_dev_minor);
}
int main(int argc, char **argv) {
    struct stat st;
    struct statx x;
    for (int i = 1; i < argc; i++) {
        show("stat", stat(argv[i], &st), &st);
        show("lstat", lstat(argv[i], &st), &st);
        show("fstatat", fstatat(AT_FDCWD, argv[i], &st, 0), &st);
        show_x("statx", statx(AT_FDCWD, argv[i], 0, STATX_BASIC_STATS, &x), &x);
        show("xstat", __xstat(0, argv[i], &st), &st);
        show("lxstat", __lxstat(0, argv[i], &st), &st);
    }
    int fd = open(argv[1], O_RDONLY);
    show("fstat", fstat(fd, &st), &st);
    show_x("statx-fd", statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &x), &x);
    return 0;
}
"#;

/// [`STATS_C`] built with the cross compiler against Debian 12's arm64
/// glibc and run through the cross toolchain's loader patched by `dlpatch
/// --embed --program`, on a Python module (code: served), a directory and
/// a missing module, under qemu: baseline, pilot, pack and replay print
/// the same fields, every field of the stored x86_64 `struct stat` moved
/// back into aarch64's, and in the replay no call names those paths.
/// Returns the calls naming them without dlfm.
pub fn stat_calls_are_served() -> usize {
    let loader = Loader::cross_toolchain();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let src = root.join("stats.c");
    std::fs::write(&src, STATS_C).unwrap();
    let prog = root.join("stats");
    let out = Command::new(CC)
        .arg("-O1")
        .arg("-o")
        .arg(&prog)
        .arg(&src)
        .output()
        .expect("aarch64-linux-gnu-gcc");
    assert_ok(&out, &format!("{CC} {}", src.display()));
    let copy = program_copy(&prog, &loader.ldso, root);
    interposer();

    let pkg = root.join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    let module = pkg.join("mod.py");
    std::fs::write(&module, "VALUE = 1\n").unwrap();
    let missing = pkg.join("absent.py");
    let cache = root.join("dlcache.dat");
    let cache_s = cache.display().to_string();
    let lib_path = loader.libc_dir.display().to_string();
    let run = |op: &str| {
        let env = [
            ("LD_LIBRARY_PATH", lib_path.as_str()),
            ("DLFM_OP", op),
            ("DLFM_CACHE", cache_s.as_str()),
            ("DLFM_STAGE_DIR", root.to_str().unwrap()),
        ];
        let args = [module.as_os_str(), pkg.as_os_str(), missing.as_os_str()];
        qemu_args(root, &copy, &args, &env, None)
    };
    let named = |calls: &[Call]| -> Vec<String> {
        calls
            .iter()
            .filter(|c| {
                [&module, &pkg, &missing]
                    .iter()
                    .any(|p| c.path.as_deref() == p.to_str())
            })
            .map(|c| c.raw.clone())
            .collect()
    };
    let (expected, base) = run("off");
    assert!(
        expected.contains("statx-fd basic=1") && expected.contains("xstat errno=2"),
        "{expected}"
    );
    assert!(
        !expected.contains("xstat errno=38"),
        "__xstat is missing in this glibc:\n{expected}"
    );
    let base = named(&base);
    pre(root, &["write-cache", "--cache", &cache_s]);
    assert_eq!(run("write-cache").0, expected, "pilot");
    pre(root, &["read-cache", "4", "--cache", &cache_s]);
    let (got, replay) = run("read-cache");
    assert_eq!(got, expected, "replay");
    let reached = named(&replay);
    assert!(reached.is_empty(), "reached the file system: {reached:#?}");
    base.len()
}
