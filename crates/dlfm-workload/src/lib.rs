//! Generates dynamically linked C programs with many shared libraries, in the
//! spirit of LLNL's Pynamic benchmark: libraries spread over several RUNPATH
//! and LD_LIBRARY_PATH directories (so ld.so makes a realistic storm of
//! failed probes), dependency chains between libraries, some libraries loaded
//! with dlopen after `main` starts, and a `main` that prints a checksum that
//! the generator computes too, so every run's output is checked.
//!
//! `generate_python` makes Python C-extension modules and a driver that
//! imports them. Everything is deterministic from the seed. It knows nothing of dlfm beyond
//! an optional archive to link and an optional dynamic loader to name.

mod build;
mod error;
mod package_tree;
mod python;
mod rng;
mod source;

use std::path::{Path, PathBuf};

pub use build::generate;
pub use error::WorkloadError;
pub use package_tree::{generate_package_tree, PackageTree};
pub use python::{generate_extensions, generate_python, ExtensionBuild, PythonWorkload};

/// The shape of a workload.
#[derive(Clone, Debug)]
pub struct Spec {
    /// Shared libraries in all.
    pub libs: usize,
    /// Functions per library.
    pub funcs_per_lib: usize,
    /// Directories on the program's RUNPATH.
    pub runpath_dirs: usize,
    /// Directories on LD_LIBRARY_PATH (searched before RUNPATH).
    pub env_dirs: usize,
    /// Libraries loaded with dlopen after `main` starts (the last ones).
    pub dlopen_libs: usize,
    /// Seed for every choice.
    pub seed: u64,
    /// Link the program as a PIE.
    pub pie: bool,
    /// Load the dlopen libraries only in a run of more than 4 ranks
    /// (`OMPI_COMM_WORLD_SIZE`), as plugins chosen by the width: a narrow
    /// pilot never sees them. `expected_stdout` is the wide run's.
    pub dlopen_when_wide: bool,
}

impl Spec {
    /// The end-to-end tests' workload: 20 libraries over 4 RUNPATH and 2
    /// LD_LIBRARY_PATH directories, one loaded with dlopen.
    pub fn small() -> Spec {
        Spec {
            libs: 20,
            funcs_per_lib: 8,
            runpath_dirs: 4,
            env_dirs: 2,
            dlopen_libs: 1,
            seed: 1,
            pie: true,
            dlopen_when_wide: false,
        }
    }

    /// The benchmarks' workload: `libs` libraries of 300 functions.
    pub fn bench(libs: usize) -> Spec {
        Spec {
            libs,
            funcs_per_lib: 300,
            runpath_dirs: 4,
            env_dirs: 2,
            dlopen_libs: (libs / 20).max(1),
            seed: 7,
            pie: true,
            dlopen_when_wide: false,
        }
    }
}

/// What to link the program with.
#[derive(Clone, Debug, Default)]
pub struct Link {
    /// A static archive to link after `main.o` (the dlfm wrapper).
    pub wrapper_archive: Option<PathBuf>,
    /// The dynamic loader to name in PT_INTERP.
    pub interp: Option<PathBuf>,
    /// Build against the glibc unpacked in this directory (a Debian
    /// multiarch tree holding libc6, libc6-dev and linux-libc-dev) instead
    /// of the machine's own: programs built against the oldest glibc run
    /// with every newer one.
    pub sysroot: Option<PathBuf>,
    /// A directory appended to the program's RUNPATH: where the libc it
    /// runs with lives, when that is not the machine's (LD_LIBRARY_PATH
    /// would hand it to every other program of the run, strace included).
    pub libc_dir: Option<PathBuf>,
    /// A cross compiler to build with instead of `cc`: one of Debian's,
    /// named `<multiarch>-gcc` (`aarch64-linux-gnu-gcc`).
    pub cross_cc: Option<String>,
}

impl Link {
    /// The C compiler.
    fn cc(&self) -> &str {
        self.cross_cc.as_deref().unwrap_or("cc")
    }

    /// The compiler and linker flags that select `sysroot`, if set.
    fn sysroot_flags(&self) -> Vec<String> {
        let Some(root) = &self.sysroot else {
            return Vec::new();
        };
        let r = root.display();
        // Debian's multiarch name: the machine's `cc` builds for x86_64, a
        // cross compiler for its name's prefix.
        let multiarch = self
            .cross_cc
            .as_deref()
            .and_then(|cc| cc.strip_suffix("-gcc"))
            .unwrap_or("x86_64-linux-gnu");
        vec![
            format!("--sysroot={r}"),
            format!("-B{r}/usr/lib/{multiarch}/"),
            format!("-L{r}/usr/lib/{multiarch}"),
            format!("-L{r}/lib/{multiarch}"),
        ]
    }
}

/// A generated, built workload.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Its root directory.
    pub dir: PathBuf,
    /// The program.
    pub program: PathBuf,
    /// The LD_LIBRARY_PATH it must run with.
    pub ld_library_path: String,
    /// The libraries linked to the program (directly or through a chain).
    pub libs: Vec<PathBuf>,
    /// The libraries it loads with dlopen.
    pub dlopen_libs: Vec<PathBuf>,
    /// What a correct run prints.
    pub expected_stdout: String,
}

impl Workload {
    /// Every library, linked or dlopen'ed.
    pub fn all_libs(&self) -> impl Iterator<Item = &Path> {
        self.libs
            .iter()
            .chain(&self.dlopen_libs)
            .map(PathBuf::as_path)
    }
}
