//! The entry's lock: at most one run records or folds into an entry at a
//! time. It is a directory (`mkdir` is atomic on every file system a store
//! lives on, NFS and Lustre included) holding `owner`: `<host> <pid>
//! <seconds>`. The holder touches `owner` every [`BEAT`]; a lock is stale,
//! and taken over, when its holder ran on this host and is gone, or when it
//! was not touched for [`STALE_AFTER`] (a job killed on another node).
//!
//! A takeover renames the stale lock away before making its own, so two
//! runs that both judged it stale cannot both hold it; a holder that lost
//! its lock anyway (it was judged stale while alive) sees that in
//! [`Lock::held`] before it replaces the entry, and gives its recording up.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

/// How often the holder touches its lock.
pub const BEAT: Duration = Duration::from_secs(30);
/// A lock untouched for this long is stale.
pub const STALE_AFTER: Duration = Duration::from_secs(300);

/// A held lock; released on drop.
pub struct Lock {
    dir: PathBuf,
    owner: String,
    stop: Arc<AtomicBool>,
    beat: Option<JoinHandle<()>>,
}

/// What trying to take the lock gave.
pub enum Taken {
    /// This run holds it.
    Yes(Lock),
    /// Another run does: who.
    Held(String),
}

/// This host's name.
pub fn host() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    if ok {
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "unknown-host".into()
    }
}

/// Tries once to take the lock of the entry in `entry_dir`, taking over a
/// stale one.
pub fn try_take(entry_dir: &Path) -> std::io::Result<Taken> {
    let dir = entry_dir.join("lock");
    let owner = format!("{} {} {}", host(), std::process::id(), crate::store::now());
    for _ in 0..2 {
        match fs::create_dir(&dir) {
            Ok(()) => {
                fs::write(dir.join("owner"), &owner)?;
                return Ok(Taken::Yes(Lock::start(dir, owner)));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let (who, stale) = judge(&dir);
                if !stale {
                    return Ok(Taken::Held(who));
                }
                let away = entry_dir.join(format!(
                    ".lock-stale-{}-{}",
                    std::process::id(),
                    crate::store::now()
                ));
                if fs::rename(&dir, &away).is_ok() {
                    let _ = fs::remove_dir_all(&away);
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Taken::Held("another run that took it over just now".into()))
}

/// Who holds the lock in `dir` and whether it is stale.
fn judge(dir: &Path) -> (String, bool) {
    let owner_file = dir.join("owner");
    let text = fs::read_to_string(&owner_file).unwrap_or_default();
    let touched = fs::metadata(&owner_file)
        .or_else(|_| fs::metadata(dir))
        .and_then(|m| m.modified())
        .ok();
    let age = touched
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .unwrap_or_default();
    let mut parts = text.split_whitespace();
    let (h, pid) = (
        parts.next(),
        parts.next().and_then(|p| p.parse::<i32>().ok()),
    );
    let who = match (h, pid) {
        (Some(h), Some(p)) => format!("process {p} on {h}"),
        _ => "a run that is starting".into(),
    };
    let gone_here = matches!((h, pid), (Some(h), Some(p)) if h == host() && !alive(p));
    (who, gone_here || age > STALE_AFTER)
}

/// Whether process `pid` of this host exists.
fn alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

impl Lock {
    /// Starts the heartbeat of a lock just taken.
    fn start(dir: PathBuf, owner: String) -> Lock {
        let stop = Arc::new(AtomicBool::new(false));
        let beat = {
            let (stop, file, owner) = (stop.clone(), dir.join("owner"), owner.clone());
            std::thread::Builder::new()
                .name("dlfm-lock".into())
                .spawn(move || {
                    while !stop.load(Ordering::Acquire) {
                        std::thread::park_timeout(BEAT);
                        if stop.load(Ordering::Acquire) {
                            break;
                        }
                        // Touch only a lock that is still ours.
                        if fs::read_to_string(&file).is_ok_and(|t| t == owner) {
                            let _ = fs::write(&file, &owner);
                        }
                    }
                })
                .ok()
        };
        Lock {
            dir,
            owner,
            stop,
            beat,
        }
    }

    /// Whether this run still holds the lock.
    pub fn held(&self) -> bool {
        fs::read_to_string(self.dir.join("owner")).is_ok_and(|t| t == self.owner)
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(beat) = self.beat.take() {
            beat.thread().unpark();
            let _ = beat.join();
        }
        if self.held() {
            let _ = fs::remove_file(self.dir.join("owner"));
            let _ = fs::remove_dir(&self.dir);
        }
    }
}
