//! Writing a workload's sources and building them with `cc`: every object in
//! parallel, then the libraries in dependency order, then the program.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Result, WorkloadError};

use crate::source::Model;
use crate::{Link, Spec, Workload};

/// Generates and builds the workload `spec` in `dir` (created if needed).
pub fn generate(spec: &Spec, link: &Link, dir: &Path) -> Result<Workload> {
    if spec.libs == 0 || spec.dlopen_libs > spec.libs {
        return Err(WorkloadError::BadSpec(
            "a workload needs at least one library and no more dlopen libraries than libraries",
        ));
    }
    let model = Model::new(spec);
    let dir = std::path::absolute(dir)?;
    let src = dir.join("src");
    fs::create_dir_all(&src)?;
    let dirs: Vec<PathBuf> = (0..spec.runpath_dirs)
        .map(|i| dir.join(format!("rpath{i}")))
        .chain((0..spec.env_dirs).map(|i| dir.join(format!("ldpath{i}"))))
        .collect();
    for d in &dirs {
        fs::create_dir_all(d)?;
    }
    let runpath = dirs[..spec.runpath_dirs]
        .iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let rpath_flag = format!("-Wl,--enable-new-dtags,-rpath,{runpath}");
    let sysroot = link.sysroot_flags();
    let sysroot = &sysroot;

    // Objects, in parallel.
    let objects: Vec<(PathBuf, PathBuf)> = model
        .libs
        .iter()
        .map(|lib| {
            let c = src.join(format!("w{:03}.c", lib.index));
            fs::write(&c, model.lib_source(lib.index))?;
            Ok((c.clone(), c.with_extension("o")))
        })
        .collect::<Result<_>>()?;
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|s| {
        let chunks: Vec<_> = objects.chunks(objects.len().div_ceil(workers)).collect();
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                s.spawn(move || {
                    for (c, o) in chunk {
                        run_tool(
                            Command::new(link.cc())
                                .args(sysroot)
                                .args(["-c", "-O1", "-fPIC", "-o"])
                                .arg(o)
                                .arg(c),
                        )?;
                    }
                    Ok::<_, WorkloadError>(())
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().expect("compiler thread panicked"))
    })?;

    // Libraries, dependencies first (a library depends only on a higher index).
    let lib_path = |i: usize| dirs[model.libs[i].dir].join(model.libs[i].file_name());
    for lib in model.libs.iter().rev() {
        let mut cmd = Command::new(link.cc());
        cmd.args(sysroot)
            .args(["-shared", "-o"])
            .arg(lib_path(lib.index))
            .arg(&objects[lib.index].1)
            .arg(&rpath_flag);
        if let Some(d) = lib.dep {
            cmd.arg(format!("-L{}", dirs[model.libs[d].dir].display()))
                .arg(format!("-l{}", model.libs[d].link_name()));
        }
        run_tool(&mut cmd)?;
    }

    // The program.
    let main_c = src.join("main.c");
    fs::write(&main_c, model.main_source())?;
    let main_o = src.join("main.o");
    let pie = if spec.pie { "-fPIE" } else { "-fno-PIE" };
    run_tool(
        Command::new(link.cc())
            .args(sysroot)
            .args(["-c", "-O1", pie, "-o"])
            .arg(&main_o)
            .arg(&main_c),
    )?;
    let program = dir.join("prog");
    let mut cmd = Command::new(link.cc());
    cmd.args(sysroot)
        .arg(if spec.pie { "-pie" } else { "-no-pie" })
        .arg("-o")
        .arg(&program)
        .arg(&main_o);
    if let Some(a) = &link.wrapper_archive {
        cmd.arg(a);
    }
    for d in &dirs {
        cmd.arg(format!("-L{}", d.display()));
    }
    for lib in model.libs.iter().filter(|l| !l.dlopen) {
        cmd.arg(format!("-l{}", lib.link_name()));
    }
    if spec.dlopen_libs > 0 {
        // glibc before 2.34 keeps dlopen in libdl (later ones: an empty stub).
        cmd.arg("-ldl");
    }
    cmd.arg(&rpath_flag);
    if let Some(d) = &link.libc_dir {
        cmd.arg(format!("-Wl,-rpath,{}", d.display()));
    }
    if let Some(interp) = &link.interp {
        cmd.arg(format!("-Wl,--dynamic-linker={}", interp.display()));
    }
    run_tool(&mut cmd)?;

    Ok(Workload {
        ld_library_path: dirs[spec.runpath_dirs..]
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(":"),
        libs: model
            .libs
            .iter()
            .filter(|l| !l.dlopen)
            .map(|l| lib_path(l.index))
            .collect(),
        dlopen_libs: model
            .libs
            .iter()
            .filter(|l| l.dlopen)
            .map(|l| lib_path(l.index))
            .collect(),
        expected_stdout: model.expected_stdout(),
        program,
        dir,
    })
}

/// Runs a tool (the compiler, python3), failing with its output.
pub(crate) fn run_tool(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().map_err(|source| WorkloadError::Run {
        command: format!("{cmd:?}"),
        source,
    })?;
    if !out.status.success() {
        return Err(WorkloadError::Failed {
            command: format!("{cmd:?}"),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(w: &Workload) -> String {
        let out = Command::new(&w.program)
            .env("LD_LIBRARY_PATH", &w.ld_library_path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn the_test_workloads_have_dependency_chains() {
        for seed in [1, 3, 9] {
            let m = Model::new(&Spec {
                seed,
                ..Spec::small()
            });
            assert!(
                m.libs.iter().any(|l| l.dep.is_some()),
                "seed {seed}: no chain"
            );
        }
    }

    #[test]
    fn small_workload_prints_its_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let w = generate(&Spec::small(), &Link::default(), dir.path()).unwrap();
        assert_eq!(run(&w), w.expected_stdout);
        assert_eq!(w.libs.len() + w.dlopen_libs.len(), 20);
        let in_env = w
            .all_libs()
            .filter(|l| l.to_str().unwrap().contains("/ldpath"))
            .count();
        assert!(in_env > 0, "some libraries must live on LD_LIBRARY_PATH");
    }

    #[test]
    fn non_pie_and_same_seed_same_sources() {
        let spec = Spec {
            pie: false,
            ..Spec::small()
        };
        let (a, b) = (Model::new(&spec), Model::new(&spec));
        assert_eq!(a.main_source(), b.main_source());
        assert_eq!(a.lib_source(3), b.lib_source(3));
        let other = Model::new(&Spec {
            seed: 2,
            ..spec.clone()
        });
        assert_ne!(other.lib_source(3), a.lib_source(3));
        let dir = tempfile::tempdir().unwrap();
        let w = generate(&spec, &Link::default(), dir.path()).unwrap();
        assert_eq!(run(&w), w.expected_stdout);
    }
}
