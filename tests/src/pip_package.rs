//! A package as pip installs it, for tests: its files under a site
//! directory and a `<name>-1.0.dist-info/RECORD` that names each of them
//! (what dlfm's pack reads to serve package data).

use std::path::Path;

/// Writes `files` (paths relative to `site`, with their contents) and the
/// package's `dist-info` (METADATA, and a RECORD naming every file and
/// itself).
pub fn install(site: &Path, name: &str, files: &[(&str, &str)]) {
    let info = format!("{name}-1.0.dist-info");
    let mut record = String::new();
    let metadata = format!("Name: {name}\nVersion: 1.0\n");
    let meta_path = format!("{info}/METADATA");
    for (rel, body) in files
        .iter()
        .copied()
        .chain([(meta_path.as_str(), metadata.as_str())])
    {
        let path = site.join(rel);
        std::fs::create_dir_all(path.parent().expect("a file in a directory"))
            .expect("make the package's directories");
        std::fs::write(&path, body).expect("write a package file");
        record.push_str(&format!("{rel},sha256=-,{}\n", body.len()));
    }
    record.push_str(&format!("{info}/RECORD,,\n"));
    std::fs::write(site.join(&info).join("RECORD"), record).expect("write RECORD");
}
