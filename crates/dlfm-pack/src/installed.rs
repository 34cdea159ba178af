//! Installed package content: the files that package managers' manifests
//! say an installed package owns. Such a file is as fixed as the package's
//! code (a style sheet, a font, a config file shipped with the package), so
//! FMCaching serves it too, with the same stale checks as code.
//!
//! Manifests read, each only once per pack:
//! - pip: `<site>/<name>.dist-info/RECORD` (CSV; paths relative to `<site>`);
//! - setuptools: `<site>/<name>.egg-info/installed-files.txt` (paths
//!   relative to the `.egg-info` directory);
//! - conda: `<prefix>/conda-meta/*.json` (`"files"`, relative to `<prefix>`);
//! - Spack: `<prefix>/.spack/install_manifest.json` (keys: absolute paths);
//! - Debian: `/var/lib/dpkg/info/*.list` (absolute paths).
//!
//! pip, setuptools, conda and Spack manifests are found in the directories
//! the pilot's lookups lie in and above (one listing each); dpkg's are read
//! from its database. Paths are compared after resolving `.`, `..` and
//! repeated slashes, and under both the name a manifest's directory was
//! found by and its canonical name (a site directory reached through a
//! link; `/lib` being `/usr/lib`).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use dlfm_runtime::scope::{each_new_ancestor, parent};

/// Where Debian's package database keeps each package's list of files.
pub const DPKG_INFO: &str = "/var/lib/dpkg/info";

/// A kind of manifest, for the pack's summary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Manifest {
    /// pip's `*.dist-info/RECORD`.
    PipRecord,
    /// setuptools' `*.egg-info/installed-files.txt`.
    EggInfo,
    /// conda's `conda-meta/*.json`.
    Conda,
    /// Spack's `.spack/install_manifest.json`.
    Spack,
    /// dpkg's `/var/lib/dpkg/info/*.list`.
    Dpkg,
}

impl Manifest {
    /// Its name in summaries.
    pub fn name(self) -> &'static str {
        match self {
            Manifest::PipRecord => "pip RECORD",
            Manifest::EggInfo => "egg-info",
            Manifest::Conda => "conda-meta",
            Manifest::Spack => "spack",
            Manifest::Dpkg => "dpkg",
        }
    }
}

/// The files installed packages own, as their manifests say.
#[derive(Debug, Default)]
pub struct Installed {
    owned: HashSet<Vec<u8>>,
    /// Directories that directly hold an owned file.
    holding: HashSet<Vec<u8>>,
    /// Manifests read, by kind.
    read: BTreeMap<Manifest, usize>,
}

impl Installed {
    /// The manifests found in and above the directories of `looked_up`
    /// (absolute paths), and dpkg's from `dpkg_info` (skipped when it does
    /// not exist).
    pub fn gather<'a>(looked_up: impl Iterator<Item = &'a [u8]>, dpkg_info: &Path) -> Installed {
        let mut dirs = BTreeSet::new();
        for p in looked_up.filter(|p| !in_pseudo_file_system(p)) {
            each_new_ancestor(&normalise(p), |dir| dirs.insert(dir.to_vec()));
        }
        let mut me = Installed::default();
        for dir in &dirs {
            me.read_manifests_in(dir);
        }
        me.read_dpkg(dpkg_info);
        me
    }

    /// Whether a manifest names `path` as a file (or a link; the
    /// directories dpkg lists are not files).
    pub fn owns(&self, path: &[u8]) -> bool {
        !self.owned.is_empty() && self.owned.contains(&normalise(path))
    }

    /// Whether `dir` directly holds a file a manifest names: a directory of
    /// an installed package (a job's own directory is not one).
    pub fn holds_owned(&self, dir: &[u8]) -> bool {
        self.holding.contains(&normalise(dir))
    }

    /// The manifests read, by kind.
    pub fn manifests(&self) -> &BTreeMap<Manifest, usize> {
        &self.read
    }

    /// How many paths the manifests name (under each name they are known by).
    pub fn paths(&self) -> usize {
        self.owned.len()
    }

    fn add(&mut self, path: Vec<u8>) {
        if let Some(dir) = parent(&path) {
            if !self.holding.contains(dir) {
                self.holding.insert(dir.to_vec());
            }
        }
        self.owned.insert(path);
    }

    /// Adds `rel` (relative to `base`, or absolute) under `base` and, if it
    /// differs, under `canonical_base`.
    fn add_relative(&mut self, base: &[u8], canonical_base: Option<&[u8]>, rel: &[u8]) {
        if rel.is_empty() {
            return;
        }
        for b in std::iter::once(base).chain(canonical_base) {
            let mut full = b.to_vec();
            full.push(b'/');
            full.extend_from_slice(rel);
            self.add(normalise(&full));
        }
    }

    fn count(&mut self, kind: Manifest) {
        *self.read.entry(kind).or_insert(0) += 1;
    }

    /// Reads the manifests that `dir` holds: its `*.dist-info`,
    /// `*.egg-info`, `conda-meta` and `.spack`.
    fn read_manifests_in(&mut self, dir: &[u8]) {
        let dir_path = Path::new(OsStr::from_bytes(dir));
        let Ok(entries) = std::fs::read_dir(dir_path) else {
            return;
        };
        let canonical = std::fs::canonicalize(dir_path)
            .ok()
            .map(|c| c.as_os_str().as_bytes().to_vec())
            .filter(|c| c.as_slice() != dir);
        let canonical = canonical.as_deref();
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.as_bytes();
            let sub = dir_path.join(OsStr::from_bytes(name));
            if name.ends_with(b".dist-info") {
                if let Ok(text) = std::fs::read(sub.join("RECORD")) {
                    self.count(Manifest::PipRecord);
                    for line in text.split(|&b| b == b'\n') {
                        let rel = first_csv_field(line);
                        self.add_relative(dir, canonical, &rel);
                    }
                }
            } else if name.ends_with(b".egg-info") {
                if let Ok(text) = std::fs::read(sub.join("installed-files.txt")) {
                    self.count(Manifest::EggInfo);
                    let base = sub.as_os_str().as_bytes().to_vec();
                    let canonical_base = canonical.map(|c| [c, b"/", name].concat());
                    for line in text.split(|&b| b == b'\n') {
                        self.add_relative(&base, canonical_base.as_deref(), trim_cr(line));
                    }
                }
            } else if name == b"conda-meta" {
                self.read_conda(dir, canonical, &sub);
            } else if name == b".spack" {
                self.read_spack(&sub.join("install_manifest.json"));
            }
        }
    }

    /// conda's `conda-meta/*.json`: each package's `"files"`, relative to
    /// the prefix `prefix`.
    fn read_conda(&mut self, prefix: &[u8], canonical: Option<&[u8]>, meta: &Path) {
        let Ok(entries) = std::fs::read_dir(meta) else {
            return;
        };
        for e in entries.flatten() {
            if !e.file_name().as_bytes().ends_with(b".json") {
                continue;
            }
            let Ok(text) = std::fs::read(e.path()) else {
                continue;
            };
            let Ok(serde_json::Value::Object(record)) = serde_json::from_slice(&text) else {
                continue;
            };
            let Some(serde_json::Value::Array(files)) = record.get("files") else {
                continue;
            };
            self.count(Manifest::Conda);
            for f in files {
                if let Some(rel) = f.as_str() {
                    self.add_relative(prefix, canonical, rel.as_bytes());
                }
            }
        }
    }

    /// Spack's `install_manifest.json`: an object whose keys are the
    /// installed paths.
    fn read_spack(&mut self, manifest: &Path) {
        let Ok(text) = std::fs::read(manifest) else {
            return;
        };
        let Ok(serde_json::Value::Object(paths)) = serde_json::from_slice(&text) else {
            return;
        };
        self.count(Manifest::Spack);
        for p in paths.keys() {
            if p.starts_with('/') {
                self.add(normalise(p.as_bytes()));
            }
        }
    }

    /// dpkg's `*.list` files: absolute paths, one per line; a path under a
    /// top-level link (`/lib` on a merged-/usr system) is added under the
    /// link's target too.
    fn read_dpkg(&mut self, info: &Path) {
        let Ok(entries) = std::fs::read_dir(info) else {
            return;
        };
        let mut tops: HashMap<Vec<u8>, Option<Vec<u8>>> = HashMap::new();
        for e in entries.flatten() {
            if !e.file_name().as_bytes().ends_with(b".list") {
                continue;
            }
            let Ok(text) = std::fs::read(e.path()) else {
                continue;
            };
            self.count(Manifest::Dpkg);
            let lines: Vec<Vec<u8>> = text
                .split(|&b| b == b'\n')
                .map(trim_cr)
                .filter(|l| l.starts_with(b"/") && *l != b"/.")
                .map(normalise)
                .collect();
            // A list names directories too: those some other line lies in.
            let mut dirs: HashSet<&[u8]> = HashSet::new();
            for l in &lines {
                each_new_ancestor(l, |dir| dirs.insert(dir));
            }
            let files: Vec<&Vec<u8>> = lines
                .iter()
                .filter(|l| !dirs.contains(l.as_slice()))
                .collect();
            for path in files {
                let top_end = path[1..]
                    .iter()
                    .position(|&b| b == b'/')
                    .map_or(path.len(), |i| i + 1);
                let target = tops.entry(path[..top_end].to_vec()).or_insert_with(|| {
                    let top = Path::new(OsStr::from_bytes(&path[..top_end]));
                    let is_link = std::fs::symlink_metadata(top).is_ok_and(|m| m.is_symlink());
                    is_link
                        .then(|| std::fs::canonicalize(top).ok())
                        .flatten()
                        .map(|c| c.as_os_str().as_bytes().to_vec())
                });
                if let Some(t) = target {
                    let moved = [t.as_slice(), &path[top_end..]].concat();
                    self.add(moved);
                }
                self.add(path.clone());
            }
        }
    }
}

/// Whether `path` lies in `/proc`, `/sys` or `/dev`, which hold no
/// package's manifest (and listing `/proc` would be work for nothing).
fn in_pseudo_file_system(path: &[u8]) -> bool {
    [&b"/proc"[..], b"/sys", b"/dev"]
        .iter()
        .any(|top| path.starts_with(top) && matches!(path.get(top.len()), None | Some(b'/')))
}

/// `path` with repeated slashes, `.` and `..` resolved by name (no lookup),
/// absolute if it started with `/`.
pub fn normalise(path: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in path.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            _ => parts.push(c),
        }
    }
    let mut out = Vec::with_capacity(path.len());
    for c in &parts {
        out.push(b'/');
        out.extend_from_slice(c);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

/// The first field of a CSV row (RECORD's path), unquoted: `"a,b",...`
/// gives `a,b` and a doubled quote inside quotes is one quote.
fn first_csv_field(line: &[u8]) -> Vec<u8> {
    let line = trim_cr(line);
    let Some(rest) = line.strip_prefix(b"\"") else {
        return line
            .split(|&b| b == b',')
            .next()
            .unwrap_or_default()
            .to_vec();
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < rest.len() {
        match (rest[i], rest.get(i + 1)) {
            (b'"', Some(b'"')) => {
                out.push(b'"');
                i += 2;
            }
            (b'"', _) => break,
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalised_by_name() {
        assert_eq!(normalise(b"/a//b/./c/../d"), b"/a/b/d");
        assert_eq!(normalise(b"/a/../../b"), b"/b");
        assert_eq!(normalise(b"/"), b"/");
        assert_eq!(normalise(b"/site/../../bin/x"), b"/bin/x");
    }

    #[test]
    fn pseudo_file_systems_are_not_searched_for_manifests() {
        assert!(in_pseudo_file_system(b"/proc/self/maps"));
        assert!(in_pseudo_file_system(b"/sys"));
        assert!(in_pseudo_file_system(b"/dev/shm/x"));
        assert!(!in_pseudo_file_system(b"/devel/x"));
        assert!(!in_pseudo_file_system(b"/usr/lib/x"));
    }

    #[test]
    fn record_fields_are_unquoted() {
        assert_eq!(first_csv_field(b"pkg/a.py,sha256=x,12"), b"pkg/a.py");
        assert_eq!(
            first_csv_field(b"\"pkg/a,b.txt\",sha256=x,1"),
            b"pkg/a,b.txt"
        );
        assert_eq!(first_csv_field(b"\"q\"\"uote\",,"), b"q\"uote");
        assert_eq!(first_csv_field(b"pkg/RECORD,,\r"), b"pkg/RECORD");
    }

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn every_kind_of_manifest_is_read_from_the_directories_looked_up_in() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().canonicalize().unwrap();
        let site = root.join("site");
        write(
            &site.join("pkg-1.0.dist-info/RECORD"),
            "pkg/__init__.py,sha256=a,1\n\"pkg/data,1.txt\",sha256=b,2\n../bin/tool,,\npkg-1.0.dist-info/RECORD,,\n",
        );
        write(
            &site.join("old-2.0.egg-info/installed-files.txt"),
            "../old/style.css\nPKG-INFO\n",
        );
        let conda = root.join("conda");
        write(
            &conda.join("conda-meta/zlib-1.3.json"),
            r#"{"name": "zlib", "files": ["lib/libz.so.1", "share/zlib/README"]}"#,
        );
        let spack = root.join("spack");
        let fonts = spack.join("share/fonts/a.ttf");
        write(
            &spack.join(".spack/install_manifest.json"),
            &format!(r#"{{"{}": {{"type": "file"}}}}"#, fonts.display()),
        );
        let dpkg = root.join("dpkg");
        write(&dpkg.join("demo.list"), "/.\n/etc\n/etc/demo/demo.conf\n");
        let looked_up = [
            site.join("pkg/data,1.txt"),
            conda.join("share/zlib/README"),
            spack.join("share/fonts"),
        ];
        let owned = Installed::gather(looked_up.iter().map(|p| p.as_os_str().as_bytes()), &dpkg);
        let b = |p: &Path| p.as_os_str().as_bytes().to_vec();
        for p in [
            site.join("pkg/__init__.py"),
            site.join("pkg/data,1.txt"),
            site.join("pkg/./sub/../data,1.txt"),
            root.join("bin/tool"),
            site.join("old/style.css"),
            site.join("old-2.0.egg-info/PKG-INFO"),
            conda.join("lib/libz.so.1"),
            conda.join("share/zlib/README"),
            fonts.clone(),
        ] {
            assert!(owned.owns(&b(&p)), "{}", p.display());
        }
        assert!(owned.owns(b"/etc/demo/demo.conf"));
        assert!(!owned.owns(&b(&site.join("pkg/output.csv"))));
        assert!(!owned.owns(b"/etc"), "a listed directory is not a file");
        assert!(owned.holds_owned(&b(&site.join("pkg"))));
        assert!(!owned.holds_owned(&b(&root)));
        let kinds: Vec<(Manifest, usize)> =
            owned.manifests().iter().map(|(k, n)| (*k, *n)).collect();
        assert_eq!(
            kinds,
            [
                (Manifest::PipRecord, 1),
                (Manifest::EggInfo, 1),
                (Manifest::Conda, 1),
                (Manifest::Spack, 1),
                (Manifest::Dpkg, 1)
            ]
        );
    }
}
