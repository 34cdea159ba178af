//! A pure-Python package tree, the shape of a large application's source:
//! `packages` top-level packages, each with `subpackages` subpackages of
//! `modules` modules, every package with an `__init__.py`, all compiled to
//! `__pycache__` (as an installed package is). A driver imports every module
//! and prints a checksum the generator computes too.

use std::fmt::Write;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::build::run_tool;
use crate::error::Result;
use crate::rng::Rng;

/// A generated package tree and its driver.
#[derive(Clone, Debug)]
pub struct PackageTree {
    /// The directory the packages lie in (put on sys.path by the driver).
    pub root: PathBuf,
    /// The driver script (outside `root`).
    pub script: PathBuf,
    /// Every `.py` file of the tree.
    pub sources: Vec<PathBuf>,
    /// How many modules the driver imports (packages included).
    pub imports: usize,
    /// What the driver prints.
    pub expected_stdout: String,
}

/// Generates the tree in `dir/tree` and its driver `dir/driver_tree.py`,
/// and compiles it with `python -m compileall`.
pub fn generate_package_tree(
    python: &Path,
    dir: &Path,
    packages: usize,
    subpackages: usize,
    modules: usize,
    seed: u64,
) -> Result<PackageTree> {
    let dir = std::path::absolute(dir)?;
    let root = dir.join("tree");
    let mut rng = Rng::new(seed);
    let (mut sources, mut names, mut total) = (Vec::new(), Vec::new(), 0u64);
    let mut write = |path: PathBuf, text: String| -> Result<()> {
        fs::create_dir_all(path.parent().unwrap_or(&dir))?;
        fs::write(&path, text)?;
        sources.push(path);
        Ok(())
    };
    for p in 0..packages {
        let pkg = format!("app{p:02}");
        write(
            root.join(&pkg).join("__init__.py"),
            format!("NAME = {pkg:?}\n"),
        )?;
        for s in 0..subpackages {
            let sub = format!("{pkg}.part{s:02}");
            let sub_dir = root.join(&pkg).join(format!("part{s:02}"));
            write(sub_dir.join("__init__.py"), String::new())?;
            for m in 0..modules {
                let k = rng.below(1000);
                total = total.wrapping_add(k);
                let mut text = format!("\"\"\"Module {m} of {sub}.\"\"\"\nVALUE = {k}\n");
                // Some weight, as real modules have: a function and a class.
                let _ = write!(
                    text,
                    "def f(x):\n    return x * {k} + {m}\n\nclass C:\n    def g(self):\n        return f(VALUE)\n"
                );
                write(sub_dir.join(format!("mod{m:02}.py")), text)?;
                names.push(format!("{sub}.mod{m:02}"));
            }
        }
    }
    let script = dir.join("driver_tree.py");
    let mut text = format!(
        "import sys\nsys.path.insert(0, {:?})\nimport importlib\n",
        root.display().to_string()
    );
    let _ = write!(
        text,
        "names = {names:?}\nprint(sum(importlib.import_module(n).VALUE for n in names))\n"
    );
    fs::write(&script, text)?;
    run_tool(
        Command::new(python)
            .args(["-m", "compileall", "-q"])
            .arg(&root),
    )?;
    Ok(PackageTree {
        root,
        script,
        sources,
        imports: names.len() + packages * (1 + subpackages),
        expected_stdout: format!("{total}\n"),
    })
}
