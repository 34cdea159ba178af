//! Cargo cannot name a binary `dlfm.pre` (a dot is not allowed in target
//! names), but that is the command's name in the DLFM interface. This script
//! places a `dlfm.pre -> dlfm-pre` symlink beside the binary in the target
//! directory (`target/<profile>/`), the directory cargo builds it into.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let Some(out) = std::env::var_os("OUT_DIR").map(PathBuf::from) else {
        return;
    };
    // OUT_DIR is <target>/<profile>/build/dlfm-pre-<hash>/out.
    let Some(profile_dir) = out.ancestors().nth(3) else {
        return;
    };
    let link = profile_dir.join("dlfm.pre");
    if link.symlink_metadata().is_err() {
        if let Err(e) = std::os::unix::fs::symlink("dlfm-pre", &link) {
            println!("cargo:warning=could not create {}: {e}", link.display());
        }
    }
}
