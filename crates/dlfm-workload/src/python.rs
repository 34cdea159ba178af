//! Python C-extension modules, in the spirit of Pynamic: each module
//! `ext_NNN` depends on its own shared library `libpyd_NNN.so` (found through
//! an absolute RUNPATH) and exports `value()`; a driver script imports them
//! all and prints a checksum the generator computes too.

use std::fmt::Write;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Result, WorkloadError};

use crate::build::run_tool;
use crate::rng::Rng;

/// Generated extension modules and their driver.
#[derive(Clone, Debug)]
pub struct PythonWorkload {
    /// The directory holding the modules (put on sys.path by the driver).
    pub module_dir: PathBuf,
    /// The driver script.
    pub script: PathBuf,
    /// The extension modules.
    pub modules: Vec<PathBuf>,
    /// The libraries they depend on.
    pub deps: Vec<PathBuf>,
    /// What the driver prints.
    pub expected_stdout: String,
}

/// The include directory of `python` (`sysconfig`'s INCLUDEPY).
fn include_dir(python: &Path) -> Result<String> {
    let out = Command::new(python)
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_config_var('INCLUDEPY'))",
        ])
        .output()
        .map_err(|source| WorkloadError::Run {
            command: python.display().to_string(),
            source,
        })?;
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !Path::new(&dir).join("Python.h").exists() {
        return Err(WorkloadError::NoPythonHeaders(dir));
    }
    Ok(dir)
}

/// How extension modules are built: the C compiler and the include
/// directories that hold Python.h (and the pyconfig.h it includes).
#[derive(Clone, Debug)]
pub struct ExtensionBuild {
    /// The compiler (`cc`, or a cross compiler such as
    /// `aarch64-linux-gnu-gcc`).
    pub cc: String,
    /// Passed as `-I`, in order.
    pub includes: Vec<PathBuf>,
}

impl ExtensionBuild {
    /// Modules for `python`, built with `cc` against its headers.
    pub fn for_python(python: &Path) -> Result<ExtensionBuild> {
        Ok(ExtensionBuild {
            cc: "cc".into(),
            includes: vec![include_dir(python)?.into()],
        })
    }
}

/// Generates and builds `count` extension modules for `python` in `dir`.
pub fn generate_python(
    python: &Path,
    count: usize,
    seed: u64,
    dir: &Path,
) -> Result<PythonWorkload> {
    generate_extensions(&ExtensionBuild::for_python(python)?, count, seed, dir)
}

/// Generates `count` extension modules in `dir` and builds them as `build`
/// says.
pub fn generate_extensions(
    build: &ExtensionBuild,
    count: usize,
    seed: u64,
    dir: &Path,
) -> Result<PythonWorkload> {
    let dir = std::path::absolute(dir)?;
    let module_dir = dir.join("modules");
    let lib_dir = dir.join("pylibs");
    // The C sources live apart, so that the module and library directories
    // hold what an installed package holds: the built objects only.
    let src_dir = dir.join("src");
    fs::create_dir_all(&module_dir)?;
    fs::create_dir_all(&lib_dir)?;
    fs::create_dir_all(&src_dir)?;
    let mut rng = Rng::new(seed);
    let (mut modules, mut deps, mut total) = (Vec::new(), Vec::new(), 0u64);
    for i in 0..count {
        let k = rng.below(1000);
        total = total.wrapping_add(k * 3 + i as u64);
        let dep_c = src_dir.join(format!("pyd_{i:03}.c"));
        fs::write(
            &dep_c,
            format!("unsigned long pyd_{i:03}(void) {{ return {k}UL * 3; }}\n"),
        )?;
        let dep = lib_dir.join(format!("libpyd_{i:03}.so"));
        run_tool(
            Command::new(&build.cc)
                .args(["-shared", "-fPIC", "-O1", "-o"])
                .arg(&dep)
                .arg(&dep_c),
        )?;
        let mut src = String::from("#define PY_SSIZE_T_CLEAN\n#include <Python.h>\n\n");
        let _ = write!(
            src,
            "unsigned long pyd_{i:03}(void);\n\
             static PyObject *value(PyObject *self, PyObject *args) {{ return PyLong_FromUnsignedLong(pyd_{i:03}() + {i}UL); }}\n\
             static PyMethodDef methods[] = {{{{\"value\", value, METH_NOARGS, \"\"}}, {{NULL, NULL, 0, NULL}}}};\n\
             static struct PyModuleDef def = {{PyModuleDef_HEAD_INIT, \"ext_{i:03}\", NULL, -1, methods}};\n\
             PyMODINIT_FUNC PyInit_ext_{i:03}(void) {{ return PyModule_Create(&def); }}\n"
        );
        let c = src_dir.join(format!("ext_{i:03}.c"));
        fs::write(&c, src)?;
        let module = module_dir.join(format!("ext_{i:03}.so"));
        run_tool(
            Command::new(&build.cc)
                .args(["-shared", "-fPIC", "-O1", "-o"])
                .arg(&module)
                .arg(&c)
                .args(build.includes.iter().map(|d| format!("-I{}", d.display())))
                .arg(format!("-L{}", lib_dir.display()))
                .arg(format!("-lpyd_{i:03}"))
                .arg(format!(
                    "-Wl,--enable-new-dtags,-rpath,{}",
                    lib_dir.display()
                )),
        )?;
        modules.push(module);
        deps.push(dep);
    }
    let script = dir.join("driver.py");
    fs::write(
        &script,
        format!(
            "import importlib, sys\nsys.path.insert(0, {:?})\n\
             total = sum(importlib.import_module('ext_%03d' % i).value() for i in range({count}))\n\
             print('checksum', total % (1 << 64))\n",
            module_dir.display().to_string()
        ),
    )?;
    Ok(PythonWorkload {
        module_dir,
        script,
        modules,
        deps,
        expected_stdout: format!("checksum {total}\n"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_imports_the_modules() {
        let python = Path::new("/usr/bin/python3");
        let dir = tempfile::tempdir().unwrap();
        let w = generate_python(python, 5, 1, dir.path()).unwrap();
        let out = Command::new(python).arg(&w.script).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), w.expected_stdout);
    }
}
