//! FMCaching's scope, the one rule for which lookups a cache serves: the
//! pack applies it to the pilot's journal, the FMCaching interposer and the
//! ld.so wrapper apply it before noting a miss, and `dlfm.pre report` and
//! the fold apply it to the miss journals. What is noted is exactly what
//! the next pack serves, so a miss journal never grows with lookups the
//! fold would drop.
//!
//! - Every lookup ld.so makes is served (libraries, their probes, the
//!   loader's own files).
//! - A lookup only the program made ([`takes`]) is served when its path is
//!   `--include`d, or when it is not a directory and its name shows code or
//!   package metadata ([`class_of_name`]), whatever the result (so the
//!   ENOENT probes of such names are served too); an `--exclude` wins over
//!   both.
//! - The pack widens this with what it alone can know (`dlfm-pack`'s
//!   `installed`): files an installed package's manifest names
//!   ([`Class::PackageData`]) and names missing in a directory of an
//!   installed package ([`Class::Absent`]). The noting side cannot read
//!   manifests, but the cache holds the listing of a directory only when
//!   the pack takes every regular file in it: a replay notes a file it
//!   missed in such a directory ([`in_listed_directory`]; package data the
//!   pilot did not read), and the fold, which reads the manifests through
//!   the pack, takes it in. Package data elsewhere is taken in by the next
//!   pilot.
//! - Directories: every existing ancestor directory of a served path is
//!   served for `stat` and `lstat` (importlib's directory checks, a
//!   `realpath` walk up to `/`); the pack takes their status from the pilot
//!   or, when the pilot did not look, from the disk when it packs. So a
//!   missed directory is never noted: the next pack serves it if, and only
//!   if, it lies above a served path. A `.` or `..` the pilot looked up in a
//!   served directory is served too (Open MPI's component walk).
//!
//! Everything else the program looks up (its input, what it writes,
//! configuration, `/proc`, `/sys`) stays with the file system, where it is
//! seen as it is now, and is never noted.
//!
//! The `--include`/`--exclude` patterns travel in the cache ([`Rules`]'s
//! encoding) so that the noting side applies the same ones as the pack. In
//! a pattern `*` matches any run of characters, `/` included, and `?` any
//! one character.
//!
//! No std, no allocation: the wrapper's rules apply (see the crate doc).

use dlfm_cache::layout::Outcome;
use dlfm_cache::read::Cache;

/// What kind of path a served lookup was about.
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
    /// A file an installed package's manifest names (pip's `RECORD`, dpkg's
    /// lists, ...; the pack reads them): package data, shipped config.
    PackageData,
    /// A name found missing in a directory of an installed package (site's
    /// `dist-packages`, a config file's `-override` variant).
    Absent,
    /// A directory above a served path.
    Directory,
    /// An `--include` pattern took it in.
    Included,
}

impl Class {
    /// The class's name in summaries.
    #[inline]
    pub fn name(self) -> &'static str {
        match self {
            Class::PythonSource => "python sources",
            Class::Bytecode => "bytecode (.pyc)",
            Class::SharedObject => "shared objects",
            Class::PackageMetadata => "package metadata",
            Class::Declarations => "stubs and headers",
            Class::PackageData => "package data (manifests)",
            Class::Absent => "absent names in package directories",
            Class::Directory => "directories",
            Class::Included => "--include",
        }
    }
}

/// The class a name shows, if it shows code or metadata: `.py`, `.pyc`,
/// `.so` and `.so.N`, `.la`, `.pth`, `.egg-link`, `pyvenv.cfg`, anything
/// inside a `*.dist-info` or `*.egg-info` directory, the files Python's
/// start-up probes for (`pythonNN.zip`, `*._pth`, `pybuilddir.txt`), and
/// `pyproject.toml` / `setup.cfg`; type stubs and declarations beside code
/// (`.pyi`, `.pxd`, `.pyx`, `.h`, `py.typed`).
#[inline]
pub fn class_of_name(path: &[u8]) -> Option<Class> {
    let name = last_component(path);
    if ends(name, b".py") {
        Some(Class::PythonSource)
    } else if ends(name, b".pyc") {
        Some(Class::Bytecode)
    } else if ends(name, b".so") || contains(name, b".so.") || ends(name, b".la") {
        Some(Class::SharedObject)
    } else if ends(name, b".pyi")
        || ends(name, b".pxd")
        || ends(name, b".pyx")
        || ends(name, b".h")
        || dlfm_bytes::equal(name, b"py.typed")
    {
        Some(Class::Declarations)
    } else if in_metadata_dir(path)
        || ends(name, b".pth")
        || ends(name, b".egg-link")
        || ends(name, b"._pth")
        || dlfm_bytes::equal(name, b"pyvenv.cfg")
        || dlfm_bytes::equal(name, b"pybuilddir.txt")
        || dlfm_bytes::equal(name, b"pyproject.toml")
        || dlfm_bytes::equal(name, b"setup.cfg")
        || is_python_zip(name)
    {
        Some(Class::PackageMetadata)
    } else {
        None
    }
}

/// Who made a lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Maker {
    /// ld.so (DLCaching): always served.
    Ldso,
    /// The program through libc (FMCaching): served when [`takes`] says so.
    Program,
}

/// Whether a lookup of `path` by `maker`, which found a directory there if
/// `is_dir`, is one the cache serves after the next pack, and so worth
/// noting when a replay missed it: by the rules, or, given the `cache` the
/// replay used, because that cache lists the path's directory. Directories
/// never are: the pack serves the ones above served paths by itself (see
/// the module doc).
#[inline]
pub fn worth_noting(
    maker: Maker,
    path: &[u8],
    is_dir: bool,
    rules: &Rules<'_>,
    cache: Option<&Cache<'_>>,
) -> bool {
    match maker {
        Maker::Ldso => true,
        Maker::Program => {
            !is_dir
                && !rules.excludes(path)
                && (takes(path, false, rules).is_some()
                    || cache.is_some_and(|c| in_listed_directory(path, c)))
        }
    }
}

/// Whether `cache` holds the listing of the directory that holds `path`.
/// The pack lists a directory only when it takes every regular file in it
/// (code, package metadata, a file an installed package's manifest names),
/// so a file there is one the next pack serves.
#[inline]
pub fn in_listed_directory(path: &[u8], cache: &Cache<'_>) -> bool {
    parent(path)
        .and_then(|dir| cache.lookup(dir))
        .is_some_and(|e| matches!(e.list, Outcome::Ok(_)))
}

/// Of a lookup only the program made of `path` (a directory if `is_dir`),
/// the class under which the cache serves it, if it does.
#[inline]
pub fn takes(path: &[u8], is_dir: bool, rules: &Rules<'_>) -> Option<Class> {
    if rules.excludes(path) {
        None
    } else if rules.includes(path) {
        Some(Class::Included)
    } else if is_dir {
        None
    } else {
        class_of_name(path)
    }
}

/// Whether a regular file at `path` is one the scope takes (by name or
/// `--include`, and not `--exclude`d): what a directory of code holds.
#[inline]
pub fn takes_file(path: &[u8], rules: &Rules<'_>) -> bool {
    takes(path, false, rules).is_some()
}

/// The `--include` and `--exclude` patterns, as the cache stores them: a
/// sequence of `+pattern\0` (include) and `-pattern\0` (exclude).
#[derive(Clone, Copy, Debug, Default)]
pub struct Rules<'a> {
    encoded: &'a [u8],
}

/// The byte that starts an `--include` pattern in [`Rules`]' encoding.
pub const INCLUDE: u8 = b'+';
/// The byte that starts an `--exclude` pattern.
pub const EXCLUDE: u8 = b'-';

impl<'a> Rules<'a> {
    /// No pattern: the default scope.
    pub const NONE: Rules<'static> = Rules { encoded: &[] };

    /// The rules encoded in `encoded`, if well formed (every pattern starts
    /// with [`INCLUDE`] or [`EXCLUDE`] and ends with a NUL).
    #[inline]
    pub fn new(encoded: &'a [u8]) -> Option<Rules<'a>> {
        let r = Rules { encoded };
        let mut at = 0;
        while at < encoded.len() {
            let (_, _, next) = r.pattern_at(at)?;
            at = next;
        }
        Some(r)
    }

    /// The encoded bytes (what the cache stores).
    #[inline]
    pub fn as_bytes(&self) -> &'a [u8] {
        self.encoded
    }

    /// Whether an `--include` pattern matches `path`.
    #[inline]
    pub fn includes(&self, path: &[u8]) -> bool {
        self.any(INCLUDE, path)
    }

    /// Whether an `--exclude` pattern matches `path`.
    #[inline]
    pub fn excludes(&self, path: &[u8]) -> bool {
        self.any(EXCLUDE, path)
    }

    #[inline]
    fn any(&self, kind: u8, path: &[u8]) -> bool {
        let mut at = 0;
        while let Some((k, pattern, next)) = self.pattern_at(at) {
            if k == kind && glob_matches(pattern, path) {
                return true;
            }
            at = next;
        }
        false
    }

    /// The pattern starting at `at`: its kind byte, its text and where the
    /// next one starts.
    #[inline]
    fn pattern_at(&self, at: usize) -> Option<(u8, &'a [u8], usize)> {
        let kind = *self.encoded.get(at)?;
        if kind != INCLUDE && kind != EXCLUDE {
            return None;
        }
        let rest = self.encoded.get(at + 1..)?;
        let mut len = 0;
        while len < rest.len() && rest[len] != 0 {
            len += 1;
        }
        if len == rest.len() {
            return None;
        }
        Some((kind, &rest[..len], at + 1 + len + 1))
    }
}

/// Whether `path` matches the whole `pattern` (`*` any run, `?` any one
/// character). Iterative, with one backtrack point.
#[inline]
pub fn glob_matches(pattern: &[u8], path: &[u8]) -> bool {
    let (p, s) = (pattern, path);
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
    let mut rest = pi;
    while rest < p.len() {
        if p[rest] != b'*' {
            return false;
        }
        rest += 1;
    }
    true
}

/// The directory `path` lies in (`/` for a path directly under the root),
/// `None` for a path without a `/`.
#[inline]
pub fn parent(path: &[u8]) -> Option<&[u8]> {
    // (No indexing: the wrapper calls this and may not carry a panic path.)
    let i = path.iter().rposition(|&b| b == b'/')?;
    Some(if i == 0 { b"/" } else { path.get(..i)? })
}

/// Calls `insert` with each directory above `path`, nearest first, until it
/// returns false (that directory, and so every one above it, was already
/// known): how a set of every ancestor of many paths is filled.
#[inline]
pub fn each_new_ancestor<'p>(path: &'p [u8], mut insert: impl FnMut(&'p [u8]) -> bool) {
    let mut at = path;
    // (`/` is its own parent: the walk ends there.)
    while let Some(dir) = parent(at).filter(|&dir| dir != at) {
        if !insert(dir) {
            break;
        }
        at = dir;
    }
}

/// The last component of `path`.
#[inline]
fn last_component(path: &[u8]) -> &[u8] {
    let mut i = path.len();
    while i > 0 && path[i - 1] != b'/' {
        i -= 1;
    }
    &path[i..]
}

/// Whether some component of `path` ends with `.dist-info` or `.egg-info`.
#[inline]
fn in_metadata_dir(path: &[u8]) -> bool {
    let mut start = 0;
    for end in 0..=path.len() {
        if end == path.len() || path[end] == b'/' {
            let c = &path[start..end];
            if ends(c, b".dist-info") || ends(c, b".egg-info") {
                return true;
            }
            start = end + 1;
        }
    }
    false
}

/// `pythonNN.zip`, the standard library's zip that `sys.path` names.
#[inline]
fn is_python_zip(name: &[u8]) -> bool {
    let (pre, suf) = (b"python".len(), b".zip".len());
    name.len() > pre + suf
        && dlfm_bytes::equal(&name[..pre], b"python")
        && ends(name, b".zip")
        && name[pre..name.len() - suf].iter().all(u8::is_ascii_digit)
}

#[inline]
fn ends(hay: &[u8], suffix: &[u8]) -> bool {
    hay.len() >= suffix.len() && dlfm_bytes::equal(&hay[hay.len() - suffix.len()..], suffix)
}

#[inline]
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    let mut i = 0;
    while i + needle.len() <= hay.len() {
        if dlfm_bytes::equal(&hay[i..i + needle.len()], needle) {
            return true;
        }
        i += 1;
    }
    false
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

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
            (b"/usr/lib/python3.11/dist-packages", None),
            (b"/proc/self/maps", None),
        ];
        for (p, c) in cases {
            assert_eq!(
                class_of_name(p),
                *c,
                "{}",
                std::string::String::from_utf8_lossy(p)
            );
        }
    }

    #[test]
    fn globs_match_whole_paths() {
        assert!(glob_matches(b"/data/*", b"/data/a/b.csv"));
        assert!(glob_matches(b"*.csv", b"/a/b.csv"));
        assert!(!glob_matches(b"*.csv", b"/a/b.csv.gz"));
        assert!(glob_matches(b"/a/?.py", b"/a/x.py"));
        assert!(!glob_matches(b"/a/?.py", b"/a/xy.py"));
        assert!(glob_matches(b"*", b""));
        assert!(glob_matches(b"a**", b"a"));
    }

    fn encode(rules: &[(u8, &str)]) -> Vec<u8> {
        let mut v = Vec::new();
        for (k, p) in rules {
            v.push(*k);
            v.extend_from_slice(p.as_bytes());
            v.push(0);
        }
        v
    }

    #[test]
    fn rules_round_trip_and_refuse_bad_encodings() {
        let enc = encode(&[(INCLUDE, "*.yaml"), (EXCLUDE, "/lib/py/pkg/*")]);
        let r = Rules::new(&enc).unwrap();
        assert!(r.includes(b"/job/conf.yaml"));
        assert!(!r.includes(b"/job/conf.yml"));
        assert!(r.excludes(b"/lib/py/pkg/x.py"));
        assert_eq!(takes(b"/lib/py/pkg/x.py", false, &r), None);
        assert_eq!(takes(b"/job/conf.yaml", false, &r), Some(Class::Included));
        assert_eq!(takes(b"/job/d.yaml", true, &r), Some(Class::Included));
        assert_eq!(takes(b"/job/pkg.py", true, &r), None);
        assert!(Rules::new(b"+abc").is_none(), "no NUL");
        assert!(Rules::new(b"xabc\0").is_none(), "no kind");
        assert!(Rules::new(b"").is_some());
    }

    #[test]
    fn only_what_the_next_pack_serves_is_worth_noting() {
        let none = Rules::NONE;
        assert!(worth_noting(Maker::Ldso, b"/proc/x", false, &none, None));
        assert!(worth_noting(
            Maker::Program,
            b"/sp/new/mod.py",
            false,
            &none,
            None
        ));
        assert!(worth_noting(
            Maker::Program,
            b"/sp/new/__init__.cpython-311.pyc",
            false,
            &none,
            None
        ));
        for p in [
            &b"/proc/self/maps"[..],
            b"/sys/devices/system/cpu/online",
            b"/etc/openmpi/openmpi-mca-params.conf",
            b"/job/input.csv",
            b"/usr/lib/python3.11/dist-packages",
            b"/tmp/run/Modules/Setup.local",
        ] {
            assert!(!worth_noting(Maker::Program, p, false, &none, None));
        }
        assert!(!worth_noting(Maker::Program, b"/usr", true, &none, None));
        assert!(!worth_noting(
            Maker::Program,
            b"/sp/pkg.py",
            true,
            &none,
            None
        ));
        let enc = encode(&[(INCLUDE, "/job/*.csv")]);
        assert!(worth_noting(
            Maker::Program,
            b"/job/input.csv",
            false,
            &Rules::new(&enc).unwrap(),
            None
        ));
    }

    #[test]
    fn parents() {
        assert_eq!(parent(b"/a/b"), Some(&b"/a"[..]));
        assert_eq!(parent(b"/a"), Some(&b"/"[..]));
        assert_eq!(parent(b"a"), None);
    }

    #[test]
    fn ancestors_stop_at_the_first_known_one() {
        let mut seen: Vec<&[u8]> = Vec::new();
        each_new_ancestor(b"/a/b/c", |d| {
            seen.push(d);
            true
        });
        assert_eq!(seen, [&b"/a/b"[..], b"/a", b"/"]);
        seen.clear();
        each_new_ancestor(b"/a/b/c", |d| {
            seen.push(d);
            d != b"/a"
        });
        assert_eq!(seen, [&b"/a/b"[..], b"/a"]);
    }
}
