//! The pack's side of FMCaching's scope: which of the program's own
//! lookups in a whole journal go into the cache. The rule itself (names
//! that show code, `--include`/`--exclude`, directories above served paths)
//! is `dlfm_runtime::scope`'s, shared with the noting of misses in
//! replay and with `dlfm.pre report` and the fold: what a replay notes is
//! exactly what the next pack serves. This module applies it to a journal's
//! set of paths and counts what it took in and left out.
//!
//! Anything else the program looked up (its input files, what it writes,
//! configuration) is left to the file system, where it is seen as it is now.

use std::collections::{BTreeMap, BTreeSet};

pub use dlfm_runtime::scope::Class;
use dlfm_runtime::scope::{self as rule, Rules, EXCLUDE, INCLUDE};

use crate::installed::Installed;

/// The user's scope: the default rule, widened by `--include` and narrowed
/// by `--exclude` patterns, held in the encoding the cache stores.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    encoded: Vec<u8>,
}

/// What the scope decided for a whole journal.
#[derive(Debug, Default)]
pub struct Decision {
    /// Program-only paths the pilot looked up that go into the cache, with
    /// their class.
    pub admitted: BTreeMap<Vec<u8>, Class>,
    /// Every ancestor directory of a served path (ld.so's lookups and the
    /// admitted files): served for `stat` and `lstat`, from the pilot's
    /// record where it has one, else from the disk when packing.
    pub ancestors: BTreeSet<Vec<u8>>,
    /// Program-only paths left out, counted by the directory they lie in.
    pub left_out: BTreeMap<Vec<u8>, usize>,
}

impl Decision {
    /// Adds every directory above `path` to [`Decision::ancestors`].
    pub fn serve_ancestors_of(&mut self, path: &[u8]) {
        rule::each_new_ancestor(path, |dir| self.ancestors.insert(dir.to_vec()));
    }

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
    /// The scope with `include` and `exclude` patterns (`*` any run of
    /// characters, `/` included; `?` any one). A pattern cannot hold a NUL
    /// (command-line arguments cannot either); one that does is cut there.
    pub fn new(include: &[String], exclude: &[String]) -> Scope {
        let mut encoded = Vec::new();
        for (kind, patterns) in [(INCLUDE, include), (EXCLUDE, exclude)] {
            for p in patterns {
                encoded.push(kind);
                encoded.extend(p.bytes().take_while(|&b| b != 0));
                encoded.push(0);
            }
        }
        Scope { encoded }
    }

    /// The patterns as the shared rule reads them.
    pub fn rules(&self) -> Rules<'_> {
        Rules::new(&self.encoded).unwrap_or(Rules::NONE)
    }

    /// The encoding the cache stores.
    pub fn encoded(&self) -> &[u8] {
        &self.encoded
    }

    /// Whether a regular file at `path` is one the scope takes (by name,
    /// `--include` or an installed package's manifest, and not
    /// `--exclude`d): what a directory the cache lists may hold.
    pub fn takes_file(&self, path: &[u8], installed: &Installed) -> bool {
        let rules = self.rules();
        rule::takes_file(path, &rules) || (!rules.excludes(path) && installed.owns(path))
    }

    /// Decides for each path only the program looked up (`paths`, with
    /// whether the pilot saw a directory there) whether it is cached.
    /// `by_loader` are the paths ld.so looked up (always cached); a file
    /// that `installed` owns is cached as package data, and a directory
    /// that holds such a file is cached too.
    pub fn decide<'a>(
        &self,
        paths: impl Iterator<Item = (&'a [u8], bool)>,
        by_loader: impl Iterator<Item = &'a [u8]>,
        installed: &Installed,
    ) -> Decision {
        let rules = self.rules();
        let paths: Vec<(&[u8], bool)> = paths.collect();
        let mut d = Decision::default();
        let mut served: Vec<&[u8]> = by_loader.collect();
        for &(p, is_dir) in &paths {
            let class = rule::takes(p, is_dir, &rules).or_else(|| {
                if rules.excludes(p) {
                    None
                } else if !is_dir {
                    installed.owns(p).then_some(Class::PackageData)
                } else {
                    // A directory of an installed package (`lib-dynload`
                    // listed, nothing taken from it): its status and listing.
                    installed.holds_owned(p).then_some(Class::Directory)
                }
            });
            if let Some(c) = class {
                d.admitted.insert(p.to_vec(), c);
                served.push(p);
            }
        }
        for p in served {
            d.serve_ancestors_of(p);
        }
        let excluded = |p: &[u8]| rules.excludes(p);
        // The directories the pilot looked up among them, and a walk's `.`
        // and `..` inside one.
        let walked = |p: &[u8]| {
            (p.ends_with(b"/.") || p.ends_with(b"/.."))
                && rule::parent(p).is_some_and(|dir| d.ancestors.contains(dir))
        };
        let dirs: Vec<&[u8]> = paths
            .iter()
            .filter(|&&(p, is_dir)| {
                is_dir && !excluded(p) && (d.ancestors.contains(p) || walked(p))
            })
            .map(|&(p, _)| p)
            .collect();
        for p in dirs {
            d.admitted.entry(p.to_vec()).or_insert(Class::Directory);
        }
        d.ancestors.retain(|p| !excluded(p));
        for &(p, _) in &paths {
            if !d.admitted.contains_key(p) {
                let dir = rule::parent(p).unwrap_or(b"/").to_vec();
                *d.left_out.entry(dir).or_insert(0) += 1;
            }
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_of_modules_ld_so_loaded_is_in_scope() {
        let none = Installed::default();
        let paths: Vec<(&[u8], bool)> = vec![(b"/app/ext", true), (b"/app", true)];
        let loaded: Vec<&[u8]> = vec![b"/app/ext/mod_a.cpython-311-x86_64-linux-gnu.so"];
        let d = Scope::default().decide(paths.iter().copied(), loaded.iter().copied(), &none);
        assert_eq!(d.admitted.get(&b"/app/ext"[..]), Some(&Class::Directory));
        assert_eq!(d.admitted.get(&b"/app"[..]), Some(&Class::Directory));
        let d = Scope::default().decide(paths.iter().copied(), std::iter::empty(), &none);
        assert!(d.admitted.is_empty(), "{:?}", d.admitted);
        assert!(d.ancestors.is_empty());
    }

    #[test]
    fn every_directory_above_served_paths_is_served_and_globs_adjust() {
        let none = Installed::default();
        let paths: Vec<(&[u8], bool)> = vec![
            (b"/lib/py/pkg/__init__.py", false),
            (b"/lib/py/pkg", true),
            (b"/lib/py", true),
            (b"/lib/py/pkg/.", true),
            (b"/lib/py/pkg/..", true),
            (b"/job/.", true),
            (b"/lib", true),
            (b"/job", true),
            (b"/proc/self", true),
            (b"/job/input.csv", false),
            (b"/job/conf.yaml", false),
            (b"/job/out.log", false),
            (b"/lib/py/pkg/data.bin", false),
        ];
        let d = Scope::default().decide(paths.iter().copied(), std::iter::empty(), &none);
        for dir in [&b"/lib/py/pkg"[..], b"/lib/py", b"/lib"] {
            assert_eq!(d.admitted.get(dir), Some(&Class::Directory));
        }
        let above: Vec<&[u8]> = d.ancestors.iter().map(Vec::as_slice).collect();
        assert_eq!(above, [&b"/"[..], b"/lib", b"/lib/py", b"/lib/py/pkg"]);
        for walked in [&b"/lib/py/pkg/."[..], b"/lib/py/pkg/.."] {
            assert_eq!(d.admitted.get(walked), Some(&Class::Directory));
        }
        for out in [&b"/job/."[..], b"/job", b"/proc/self", b"/job/input.csv"] {
            assert!(!d.admitted.contains_key(out));
        }
        assert_eq!(d.largest_left_out(1), vec![("/job".to_string(), 4)]);

        let scope = Scope::new(&["*.yaml".into()], &["/lib/py/pkg/*".into()]);
        let d = scope.decide(paths.iter().copied(), std::iter::empty(), &none);
        assert_eq!(
            d.admitted.get(&b"/job/conf.yaml"[..]),
            Some(&Class::Included)
        );
        assert!(!d.admitted.contains_key(&b"/lib/py/pkg/__init__.py"[..]));
        assert!(!d.admitted.contains_key(&b"/lib/py/pkg"[..]));
        assert_eq!(d.admitted.get(&b"/job"[..]), Some(&Class::Directory));
    }

    #[test]
    fn the_encoding_is_the_rules() {
        let scope = Scope::new(&["/data/*".into()], &["*.tmp".into()]);
        assert_eq!(scope.encoded(), b"+/data/*\0-*.tmp\0");
        let none = Installed::default();
        assert!(scope.takes_file(b"/data/x.csv", &none));
        assert!(!scope.takes_file(b"/data/x.tmp", &none));
        assert!(scope.takes_file(b"/a/b.py", &none));
    }
}
