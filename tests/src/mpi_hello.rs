//! The MPI tests' program: a hello whose ranks sum their numbers, built
//! with `mpicc` (no dlfm in it), the `mpirun` command line that starts it,
//! and the lines a correct run of N ranks prints.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::scenario::{assert_ok, Scenario};

const HELLO: &str = r#"
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
    int rank, size, sum;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Allreduce(&rank, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    printf("rank %d of %d sum %d\n", rank, size, sum);
    MPI_Finalize();
    return 0;
}
"#;

/// Builds the hello in the scenario's root; returns the program.
pub fn build(s: &Scenario) -> PathBuf {
    let src = s.root.join("hello.c");
    std::fs::write(&src, HELLO).expect("write hello.c");
    let prog = s.root.join("hello");
    let out = Command::new("mpicc")
        .arg("-o")
        .arg(&prog)
        .arg(&src)
        .output()
        .expect("mpicc (apt-get install libopenmpi-dev openmpi-bin)");
    assert_ok(&out, "mpicc");
    prog
}

/// `mpirun -np n program` (oversubscribed, as root) with `DLFM_OP=op` when
/// given, isolated like the scenario's other commands.
pub fn mpirun(s: &Scenario, program: &Path, op: Option<&str>, n: usize) -> Command {
    let mut cmd = s.cmd_for(Path::new("mpirun"), op);
    cmd.args([
        "--allow-run-as-root",
        "--oversubscribe",
        "-np",
        &n.to_string(),
    ])
    .arg(program)
    // Containers often forbid the cross-memory-attach syscalls.
    .env("OMPI_MCA_btl_vader_single_copy_mechanism", "none");
    cmd
}

/// The lines of `stdout`, sorted (ranks print in any order).
pub fn sorted_lines(stdout: &[u8]) -> Vec<String> {
    let mut lines: Vec<String> = String::from_utf8_lossy(stdout)
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

/// What a correct run of `n` ranks prints, sorted.
pub fn expected_lines(n: usize) -> Vec<String> {
    let sum: usize = (0..n).sum();
    let mut lines: Vec<String> = (0..n)
        .map(|r| format!("rank {r} of {n} sum {sum}"))
        .collect();
    lines.sort();
    lines
}
