//! The PyPI packages some tests import (numpy, scipy, pandas, matplotlib), installed by
//! `.ci/run` into `target/pydeps`.

use std::path::PathBuf;
use std::process::Command;

/// The modules `.ci/run` installs.
pub const MODULES: [&str; 4] = ["numpy", "scipy", "pandas", "matplotlib"];

/// `target/pydeps` when Debian's python3 imports every one of [`MODULES`]
/// from it. Without them: a panic when `DLFM_REQUIRE_NUMPY` is set (as in
/// `.ci/run`), else `None` and a line saying the test checks nothing.
pub fn pydeps() -> Option<PathBuf> {
    let dir = crate::artifacts::workspace_root().join("target/pydeps");
    let have = Command::new("/usr/bin/python3")
        .args(["-c", &format!("import {}", MODULES.join(", "))])
        .env("PYTHONPATH", &dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .status()
        .is_ok_and(|s| s.success());
    let install = format!(
        "python3 -m pip install --target target/pydeps {}",
        MODULES.join(" ")
    );
    if have {
        return Some(dir);
    }
    assert!(
        std::env::var_os("DLFM_REQUIRE_NUMPY").is_none(),
        "numpy, scipy, pandas and matplotlib are required here: {install}"
    );
    eprintln!("numpy, scipy, pandas or matplotlib missing ({install}): not checked");
    None
}
