//! FMCaching's scope: which of the program's own lookups go into the cache.
//! Code and its metadata are cached, data is not. ld.so's lookups are always
//! cached (they are libraries and the loader's own files); a lookup only the
//! program made is cached when its path is in scope:
//!
//! - by default, when its name shows code or package metadata (`.py`,
//!   `.pyc`, `.so` and `.so.N`, `.la`, `.pth`, `.egg-link`, `pyvenv.cfg`,
//!   anything inside a `*.dist-info` or `*.egg-info` directory, and the
//!   files Python's start-up probes for: `pythonNN.zip`, `*._pth`,
//!   `pybuilddir.txt`, and `pyproject.toml` / `setup.cfg`), type stubs and
//!   declarations beside code (`.pyi`, `.pxd`, `.pyx`, `.h`, `py.typed`),
//!   whatever the result (so the ENOENT probes of such names are cached
//!   too); the directories that directly hold such a file or a library
//!   ld.so looked up (an extension module's directory); and the
//!   directories that hold such a directory (a `sys.path` entry holding
//!   only packages, which importlib stats before every import), with the
//!   `.` and `..` entries a walk of such a directory stats (Open MPI's
//!   component search does);
//! - `--include GLOB` adds paths, `--exclude GLOB` removes them (exclusion
//!   wins). In a glob `*` matches any run of characters, `/` included, and
//!   `?` any one character.
//!
//! Anything else the program looked up (its input files, what it writes,
//! configuration) is left to the file system, where it is seen as it is now.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// What kind of path a lookup was about, for the summary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    /// `.py`.
    PythonSource,
    /// `.pyc`.
    Bytecode,
    /// `.so`, `.so.N`, `.la`: shared objects, Python extension modules, MPI
    /// components.
    SharedObject,
    /// Package metadata: `.dist-info`, `.egg-info`, `.pth`, `pyvenv.cfg`,
    /// and Python's start-up files (`pythonNN.zip`, `._pth`,
    /// `pybuilddir.txt`).
    PackageMetadata,
    /// Type stubs, Cython declarations and C headers beside code: `.pyi`,
    /// `.pxd`, `.pyx`, `.h`, `py.typed`.
    Declarations,
    /// A directory that holds code, or holds a directory that does.
    Directory,
    /// An `--include` glob took it in.
    Included,
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Class::PythonSource => "python sources",
            Class::Bytecode => "bytecode (.pyc)",
            Class::SharedObject => "shared objects",
            Class::PackageMetadata => "package metadata",
            Class::Declarations => "stubs and headers",
            Class::Directory => "directories",
            Class::Included => "--include",
        })
    }
}

/// The class a name shows, if it shows code or metadata.
pub fn class_of_name(path: &[u8]) -> Option<Class> {
    let name = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
    let in_metadata_dir = path
        .split(|&b| b == b'/')
        .any(|c| c.ends_with(b".dist-info") || c.ends_with(b".egg-info"));
    if name.ends_with(b".py") {
        Some(Class::PythonSource)
    } else if name.ends_with(b".pyc") {
        Some(Class::Bytecode)
    } else if name.ends_with(b".so") || contains(name, b".so.") || name.ends_with(b".la") {
        Some(Class::SharedObject)
    } else if [&b".pyi"[..], b".pxd", b".pyx", b".h"]
        .iter()
        .any(|s| name.ends_with(s))
        || name == b"py.typed"
    {
        Some(Class::Declarations)
    } else if in_metadata_dir
        || name.ends_with(b".pth")
        || name.ends_with(b".egg-link")
        || name.ends_with(b"._pth")
        || name == b"pyvenv.cfg"
        || name == b"pybuilddir.txt"
        || name == b"pyproject.toml"
        || name == b"setup.cfg"
        || is_python_zip(name)
    {
        Some(Class::PackageMetadata)
    } else {
        None
    }
}

/// `pythonNN.zip`, the standard library's zip that `sys.path` names.
fn is_python_zip(name: &[u8]) -> bool {
    name.strip_prefix(b"python")
        .and_then(|r| r.strip_suffix(b".zip"))
        .is_some_and(|v| !v.is_empty() && v.iter().all(u8::is_ascii_digit))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A `--include` / `--exclude` pattern.
#[derive(Clone, Debug)]
pub struct Glob(Vec<u8>);

impl Glob {
    /// The pattern `text` (`*` any run, `?` one character).
    pub fn new(text: &str) -> Glob {
        Glob(text.as_bytes().to_vec())
    }

    /// Whether `path` matches the whole pattern.
    pub fn matches(&self, path: &[u8]) -> bool {
        // Iterative wildcard matching with one backtrack point.
        let (p, s) = (&self.0, path);
        let (mut pi, mut si) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while si < s.len() {
            match p.get(pi) {
                Some(b'*') => {
                    star = Some((pi, si));
                    pi += 1;
                }
                Some(&c) if c == b'?' || c == s[si] => {
                    pi += 1;
                    si += 1;
                }
                _ => match star {
                    Some((sp, ss)) => {
                        pi = sp + 1;
                        si = ss + 1;
                        star = Some((sp, ss + 1));
                    }
                    None => return false,
                },
            }
        }
        p[pi..].iter().all(|&c| c == b'*')
    }
}

/// The user's scope: default classes, widened and narrowed by globs.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// `--include` patterns.
    pub include: Vec<Glob>,
    /// `--exclude` patterns.
    pub exclude: Vec<Glob>,
}

/// What the scope decided for a whole journal.
#[derive(Debug, Default)]
pub struct Decision {
    /// Program-only paths that go into the cache, with their class.
    pub admitted: BTreeMap<Vec<u8>, Class>,
    /// Program-only paths left out, counted by the directory they lie in.
    pub left_out: BTreeMap<Vec<u8>, usize>,
}

impl Decision {
    /// How many admitted paths there are of each class.
    pub fn counts(&self) -> BTreeMap<Class, usize> {
        let mut out = BTreeMap::new();
        for c in self.admitted.values() {
            *out.entry(*c).or_insert(0) += 1;
        }
        out
    }

    /// The `n` directories with the most paths left out, largest first.
    pub fn largest_left_out(&self, n: usize) -> Vec<(String, usize)> {
        let mut v: Vec<_> = self
            .left_out
            .iter()
            .map(|(d, c)| (String::from_utf8_lossy(d).into_owned(), *c))
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v.truncate(n);
        v
    }
}

impl Scope {
    /// Whether a regular file at `path` is one the scope takes (by name or
    /// `--include`, and not `--exclude`d): what a directory of code holds.
    pub fn takes_file(&self, path: &[u8]) -> bool {
        !self.exclude.iter().any(|g| g.matches(path))
            && (self.include.iter().any(|g| g.matches(path)) || class_of_name(path).is_some())
    }

    /// Decides for each path only the program looked up (`paths`, with
    /// whether the pilot saw a directory there) whether it is cached.
    /// `by_loader` are the paths ld.so looked up (always cached): the
    /// directories holding them hold code too (importlib stats the
    /// directory of the extension modules it then has ld.so load).
    pub fn decide<'a>(
        &self,
        paths: impl Iterator<Item = (&'a [u8], bool)>,
        by_loader: impl Iterator<Item = &'a [u8]>,
    ) -> Decision {
        let paths: Vec<(&[u8], bool)> = paths.collect();
        let excluded = |p: &[u8]| self.exclude.iter().any(|g| g.matches(p));
        let mut d = Decision::default();
        let mut code_dirs: BTreeSet<Vec<u8>> = by_loader
            .filter(|p| class_of_name(p).is_some())
            .filter_map(parent)
            .map(<[u8]>::to_vec)
            .collect();
        for &(p, is_dir) in &paths {
            if excluded(p) {
                continue;
            }
            let class = if self.include.iter().any(|g| g.matches(p)) {
                Some(Class::Included)
            } else if is_dir {
                None
            } else {
                class_of_name(p)
            };
            if let Some(c) = class {
                d.admitted.insert(p.to_vec(), c);
                if let Some(parent) = parent(p) {
                    code_dirs.insert(parent.to_vec());
                }
            }
        }
        // Directories holding code, then (one level up, not further) the
        // directories holding those.
        let mut holders = BTreeSet::new();
        for &(p, is_dir) in &paths {
            if is_dir && !excluded(p) && !d.admitted.contains_key(p) && code_dirs.contains(p) {
                d.admitted.insert(p.to_vec(), Class::Directory);
                if let Some(parent) = parent(p) {
                    holders.insert(parent.to_vec());
                }
            }
        }
        for &(p, is_dir) in &paths {
            if is_dir && !excluded(p) && holders.contains(p) {
                d.admitted.entry(p.to_vec()).or_insert(Class::Directory);
            }
        }
        // A walk of a directory of code stats its `.` and `..` entries too.
        let walked = |p: &[u8]| {
            (p.ends_with(b"/.") || p.ends_with(b"/.."))
                && parent(p).is_some_and(|dir| d.admitted.get(dir) == Some(&Class::Directory))
        };
        let dots: Vec<&[u8]> = paths
            .iter()
            .filter(|&&(p, is_dir)| is_dir && !excluded(p) && walked(p))
            .map(|&(p, _)| p)
            .collect();
        for p in dots {
            d.admitted.entry(p.to_vec()).or_insert(Class::Directory);
        }
        for &(p, _) in &paths {
            if !d.admitted.contains_key(p) {
                let dir = parent(p).unwrap_or(b"/").to_vec();
                *d.left_out.entry(dir).or_insert(0) += 1;
            }
        }
        d
    }
}

/// The directory `path` lies in.
fn parent(path: &[u8]) -> Option<&[u8]> {
    let i = path.iter().rposition(|&b| b == b'/')?;
    Some(if i == 0 { b"/" } else { &path[..i] })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_show_code_and_metadata() {
        let cases: &[(&[u8], Option<Class>)] = &[
            (b"/x/os.py", Some(Class::PythonSource)),
            (b"/x/__pycache__/os.cpython-311.pyc", Some(Class::Bytecode)),
            (
                b"/x/_m.cpython-311-x86_64-linux-gnu.so",
                Some(Class::SharedObject),
            ),
            (b"/usr/lib/libz.so.1.2.13", Some(Class::SharedObject)),
            (
                b"/usr/lib/openmpi/mca_btl_tcp.la",
                Some(Class::SharedObject),
            ),
            (
                b"/sp/numpy-1.26.dist-info/METADATA",
                Some(Class::PackageMetadata),
            ),
            (b"/sp/easy.pth", Some(Class::PackageMetadata)),
            (b"/venv/pyvenv.cfg", Some(Class::PackageMetadata)),
            (b"/usr/lib/python311.zip", Some(Class::PackageMetadata)),
            (b"/usr/bin/python3._pth", Some(Class::PackageMetadata)),
            (b"/sp/pandas/pyproject.toml", Some(Class::PackageMetadata)),
            (b"/sp/numpy/__init__.pyi", Some(Class::Declarations)),
            (b"/sp/numpy/py.typed", Some(Class::Declarations)),
            (
                b"/sp/scipy/linalg/cython_blas.pxd",
                Some(Class::Declarations),
            ),
            (b"/job/LICENSE", None),
            (b"/job/data.zip", None),
            (b"/job/input.csv", None),
            (b"/job/results.h5", None),
            (b"/job/py", None),
            (b"/job/notes.pyx.txt", None),
        ];
        for (p, c) in cases {
            assert_eq!(class_of_name(p), *c, "{}", String::from_utf8_lossy(p));
        }
    }

    #[test]
    fn globs_match_whole_paths() {
        assert!(Glob::new("/data/*").matches(b"/data/a/b.csv"));
        assert!(Glob::new("*.csv").matches(b"/a/b.csv"));
        assert!(!Glob::new("*.csv").matches(b"/a/b.csv.gz"));
        assert!(Glob::new("/a/?.py").matches(b"/a/x.py"));
        assert!(!Glob::new("/a/?.py").matches(b"/a/xy.py"));
        assert!(Glob::new("*").matches(b""));
    }

    #[test]
    fn a_directory_of_modules_ld_so_loaded_is_in_scope() {
        let paths: Vec<(&[u8], bool)> = vec![(b"/app/ext", true), (b"/app", true)];
        let loaded: Vec<&[u8]> = vec![b"/app/ext/mod_a.cpython-311-x86_64-linux-gnu.so"];
        let d = Scope::default().decide(paths.iter().copied(), loaded.iter().copied());
        assert_eq!(d.admitted.get(&b"/app/ext"[..]), Some(&Class::Directory));
        assert_eq!(d.admitted.get(&b"/app"[..]), Some(&Class::Directory));
        let d = Scope::default().decide(paths.iter().copied(), std::iter::empty());
        assert!(d.admitted.is_empty(), "{:?}", d.admitted);
    }

    #[test]
    fn directories_are_in_scope_when_they_hold_code_and_globs_adjust() {
        let paths: Vec<(&[u8], bool)> = vec![
            (b"/lib/py/pkg/__init__.py", false),
            (b"/lib/py/pkg", true),
            (b"/lib/py", true),
            (b"/lib/py/pkg/.", true),
            (b"/lib/py/pkg/..", true),
            (b"/job/.", true),
            (b"/lib", true),
            (b"/job", true),
            (b"/job/input.csv", false),
            (b"/job/conf.yaml", false),
            (b"/job/out.log", false),
            (b"/lib/py/pkg/data.bin", false),
        ];
        let d = Scope::default().decide(paths.iter().copied(), std::iter::empty());
        assert_eq!(d.admitted.get(&b"/lib/py/pkg"[..]), Some(&Class::Directory));
        assert_eq!(
            d.admitted.get(&b"/lib/py"[..]),
            Some(&Class::Directory),
            "holds a package"
        );
        assert!(
            !d.admitted.contains_key(&b"/lib"[..]),
            "two levels above code"
        );
        for walked in [&b"/lib/py/pkg/."[..], b"/lib/py/pkg/.."] {
            assert_eq!(d.admitted.get(walked), Some(&Class::Directory));
        }
        assert!(!d.admitted.contains_key(&b"/job/."[..]));
        assert!(!d.admitted.contains_key(&b"/job/input.csv"[..]));
        assert_eq!(d.largest_left_out(1), vec![("/job".to_string(), 4)]);

        let scope = Scope {
            include: vec![Glob::new("*.yaml")],
            exclude: vec![Glob::new("/lib/py/pkg/*")],
        };
        let d = scope.decide(paths.iter().copied(), std::iter::empty());
        assert_eq!(
            d.admitted.get(&b"/job/conf.yaml"[..]),
            Some(&Class::Included)
        );
        assert!(!d.admitted.contains_key(&b"/lib/py/pkg/__init__.py"[..]));
        assert!(!d.admitted.contains_key(&b"/lib/py/pkg"[..]));
        assert_eq!(d.admitted.get(&b"/job"[..]), Some(&Class::Directory));
    }
}
