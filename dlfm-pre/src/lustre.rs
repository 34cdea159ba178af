//! Lustre striping of the cache file, so that thousands of ranks reading it
//! at once spread over many storage targets. Applied with `lfs setstripe` to
//! the still-empty file, when `lfs` exists.

use std::path::Path;
use std::process::Command;

/// What happened to striping, for the summary.
pub enum Striping {
    /// `lfs` is not installed: not a Lustre client.
    Skipped,
    /// Striped over this many targets (-1: all).
    Set(i64),
    /// `lfs` failed (not a Lustre file system, or another error).
    Failed(String),
}

/// The stripe count for a run of `width` processes: one target per 128
/// processes, all targets (-1) from 4096 processes up.
pub fn stripe_count(width: u32) -> i64 {
    if width >= 4096 {
        -1
    } else {
        i64::from(width.div_ceil(128))
    }
}

/// Stripes the empty file at `path` for `width` processes.
pub fn stripe(path: &Path, width: u32) -> Striping {
    let count = stripe_count(width);
    match Command::new("lfs")
        .arg("setstripe")
        .arg("-c")
        .arg(count.to_string())
        .arg(path)
        .output()
    {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Striping::Skipped,
        Err(e) => Striping::Failed(e.to_string()),
        Ok(out) if out.status.success() => Striping::Set(count),
        Ok(out) => Striping::Failed(String::from_utf8_lossy(&out.stderr).trim().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripe_count_grows_with_width() {
        assert_eq!(stripe_count(1), 1);
        assert_eq!(stripe_count(128), 1);
        assert_eq!(stripe_count(129), 2);
        assert_eq!(stripe_count(24000), -1);
    }
}
