//! Why a workload could not be generated or built.

use std::io;

/// A failure to generate or build a workload.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// The specification cannot be built.
    #[error("{0}")]
    BadSpec(&'static str),
    /// Writing a source or creating a directory failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// A tool (the compiler, python3) could not be started.
    #[error("cannot run {command}")]
    Run {
        /// The command.
        command: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A tool failed.
    #[error("{command} failed:\n{stderr}")]
    Failed {
        /// The command.
        command: String,
        /// What it printed.
        stderr: String,
    },
    /// Python's headers are missing.
    #[error("no Python.h in {0:?}: install the headers (apt-get install python3-dev)")]
    NoPythonHeaders(String),
}

/// The crate's result.
pub type Result<T> = std::result::Result<T, WorkloadError>;
