//! A path's canonical form found by walking its components by name: what
//! the FMCaching interposer answers `realpath` with when every component
//! is known not to be a symbolic link (`wrapper-objs/fm/src/realpath.rs`).
//! No lookup here: the caller says what each prefix is.

use crate::fixed_path::FixedPath;

/// What a walk of a path found for one component.
pub enum Step {
    /// A directory (not a link).
    Directory,
    /// Something else that is not a link (the last component may be one).
    Other,
    /// A link, an error, or nothing recorded: the walk stops.
    Stop,
}

/// Walks the components of absolute `path`, resolving `.`, `..` and
/// repeated slashes by name into `out`; `look` says what each prefix is.
/// True if the walk reached the end with every component a directory or,
/// for the last (and without a trailing slash), something else.
#[inline]
pub fn walk(path: &[u8], out: &mut FixedPath, mut look: impl FnMut(&[u8]) -> Step) -> bool {
    out.set(b"");
    // A final `/`, `/.` or `/..` asks for a directory.
    let trailing_slash = path.ends_with(b"/") || path.ends_with(b"/.") || path.ends_with(b"/..");
    let mut parts = path
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".");
    let mut next = parts.next();
    while let Some(c) = next {
        next = parts.next();
        if c == b".." {
            let len = out.as_bytes().iter().rposition(|&b| b == b'/').unwrap_or(0);
            out.truncate(len);
            continue;
        }
        if !(out.push(b"/") && out.push(c)) {
            return false;
        }
        let last = next.is_none();
        match look(out.as_bytes()) {
            Step::Directory => {}
            Step::Other if last && !trailing_slash => {}
            _ => return false,
        }
    }
    !out.is_empty() || out.set(b"/")
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;

    fn resolve_with(path: &[u8], dirs: &[&[u8]], files: &[&[u8]]) -> Option<std::vec::Vec<u8>> {
        let mut out = FixedPath::EMPTY;
        let ok = walk(path, &mut out, |p| {
            if dirs.contains(&p) {
                Step::Directory
            } else if files.contains(&p) {
                Step::Other
            } else {
                Step::Stop
            }
        });
        ok.then(|| out.as_bytes().to_vec())
    }

    #[test]
    fn paths_resolve_by_name_only_through_known_directories() {
        let dirs: &[&[u8]] = &[b"/a", b"/a/b", b"/c"];
        let files: &[&[u8]] = &[b"/a/b/f.py", b"/a/g"];
        let r = |p: &[u8]| resolve_with(p, dirs, files);
        assert_eq!(r(b"/a/b/f.py").as_deref(), Some(&b"/a/b/f.py"[..]));
        assert_eq!(r(b"//a/./b//f.py").as_deref(), Some(&b"/a/b/f.py"[..]));
        assert_eq!(r(b"/a/b/../g").as_deref(), Some(&b"/a/g"[..]));
        assert_eq!(r(b"/a/b/").as_deref(), Some(&b"/a/b"[..]));
        assert_eq!(r(b"/").as_deref(), Some(&b"/"[..]));
        assert_eq!(r(b"/..").as_deref(), Some(&b"/"[..]));
        assert_eq!(r(b"/a/g/"), None, "a file with a trailing slash");
        assert_eq!(r(b"/a/g/."), None, "a file with a trailing /.");
        assert_eq!(r(b"/a/b/..").as_deref(), Some(&b"/a"[..]));
        assert_eq!(r(b"/a/g/x"), None, "a file as a directory");
        assert_eq!(r(b"/a/link/f"), None, "not recorded (or a link)");
        assert_eq!(r(b"/a/missing/../g"), None, "`..` after a missing name");
    }
}
