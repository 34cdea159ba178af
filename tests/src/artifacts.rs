//! The dlfm artifacts the tests drive, built on first use by running cargo
//! (with `--release` when the tests themselves are a release build).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Paths of the built tools.
#[derive(Debug)]
pub struct Artifacts {
    /// `dlfm` (`dlfm run`).
    pub dlfm: PathBuf,
    /// `dlpatch`.
    pub dlpatch: PathBuf,
    /// `dlfm-pre` (what `dlfm.pre` links to).
    pub dlfm_pre: PathBuf,
    /// `libdlfm_wrap.a`.
    pub wrapper: PathBuf,
    /// `libdlfm_fm.so`, FMCaching's interposer (`dlfm.pre write-cache`
    /// names it from beside itself).
    pub interposer: PathBuf,
}

/// The workspace's root directory.
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lies in the workspace")
}

/// Cargo's target directory (CARGO_TARGET_DIR, else the workspace's).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from)
}

/// Builds the tools once per test process and returns where they are.
pub fn artifacts() -> &'static Artifacts {
    static BUILT: OnceLock<Artifacts> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = workspace_root();
        let release = !cfg!(debug_assertions);
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        // The same packages as the Makefile's `build`: cargo unifies
        // features over the packages named, so another set would build
        // libdlfm_fm.so again and replace it under the tests running beside
        // the `make install` test.
        cmd.current_dir(root).args([
            "build",
            "--quiet",
            "-p",
            "dlfm",
            "-p",
            "dlpatch",
            "-p",
            "dlfm-pre",
            "-p",
            "dlfm-pfs",
            "-p",
            "dlfm-wrap",
            "-p",
            "dlfm-fm",
        ]);
        if release {
            cmd.arg("--release");
        }
        let out = cmd
            .output()
            .expect("cannot run cargo to build the dlfm tools");
        assert!(
            out.status.success(),
            "building the dlfm tools failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dir = target_dir().join(if release { "release" } else { "debug" });
        let a = Artifacts {
            dlfm: dir.join("dlfm"),
            dlpatch: dir.join("dlpatch"),
            // `dlfm.pre` is a link to this binary (README); the tests run it directly.
            dlfm_pre: dir.join("dlfm-pre"),
            wrapper: dir.join("libdlfm_wrap.a"),
            interposer: dir.join("libdlfm_fm.so"),
        };
        for p in [&a.dlfm, &a.dlpatch, &a.dlfm_pre, &a.wrapper, &a.interposer] {
            assert!(p.exists(), "{} missing after the build", p.display());
        }
        a
    })
}
