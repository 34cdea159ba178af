//! A simulated parallel file system for the startup benchmark: a FUSE file
//! system that serves a backing directory the way a busy metadata server
//! would. Every metadata request (lookup, getattr, open, readdir, ...) waits
//! a configurable latency, every read another, and requests are served by a
//! bounded number of service threads (one by default), so that requests from
//! many processes queue as they do at a real metadata server. Every request
//! is counted by type.
//!
//! It knows nothing of dlfm: it is a model of the file system dlfm protects.

mod counters;
mod fs;
mod inodes;
mod server;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use counters::Counts;
pub use fs::SimFs;
pub use server::Server;

/// Why the file system could not be mounted.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// The backing directory cannot be resolved.
    #[error("backing directory {}", .path.display())]
    Backing {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The model asks for no service thread.
    #[error("the server needs at least one service thread")]
    NoThreads,
    /// FUSE refused the mount.
    #[error("cannot mount on {} (is fuse3 installed?)", .path.display())]
    Mount {
        /// The mount point.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// How the simulated server behaves.
#[derive(Clone, Debug)]
pub struct Model {
    /// Time each metadata request takes (lookup, getattr, open, readdir,
    /// readlink, release, access).
    pub metadata_latency: Duration,
    /// Time each read request takes.
    pub read_latency: Duration,
    /// Requests served at once.
    pub threads: usize,
    /// The client's cache on this mount (one mount: one node's client).
    pub client: Client,
}

impl Default for Model {
    fn default() -> Model {
        Model {
            metadata_latency: Duration::from_micros(200),
            read_latency: Duration::ZERO,
            threads: 1,
            client: Client::NONE,
        }
    }
}

/// What the node's file-system client caches (the kernel's FUSE client
/// does it, from the timeouts the server gives with each answer). Opens
/// always reach the server, as on every parallel file system's client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Client {
    /// How long a found entry and its attributes are believed without
    /// asking the server again.
    pub entry_ttl: Duration,
    /// How long a missing name is believed missing (0: every failed lookup
    /// reaches the server).
    pub negative_ttl: Duration,
}

impl Client {
    /// No client caching: every lookup reaches the server (a parallel file
    /// system under contention, where the client's locks are called back).
    pub const NONE: Client = Client {
        entry_ttl: Duration::ZERO,
        negative_ttl: Duration::ZERO,
    };
    /// Lustre-like: found entries and attributes stay cached while the
    /// client holds their locks (an hour here: the job), failed lookups are
    /// not cached, opens go to the metadata server.
    pub const LUSTRE: Client = Client {
        entry_ttl: Duration::from_secs(3600),
        negative_ttl: Duration::ZERO,
    };
    /// GPFS-like: found and missing names both cached (tokens held), opens
    /// to the server.
    pub const GPFS: Client = Client {
        entry_ttl: Duration::from_secs(3600),
        negative_ttl: Duration::from_secs(3600),
    };

    /// The named setting: `none`, `lustre` or `gpfs`.
    pub fn named(name: &str) -> Option<Client> {
        match name {
            "none" => Some(Client::NONE),
            "lustre" => Some(Client::LUSTRE),
            "gpfs" => Some(Client::GPFS),
            _ => None,
        }
    }
}

/// A mounted simulated file system (one node's client of its server);
/// unmounted when dropped or by `unmount`.
pub struct Mount {
    session: Option<fuser::BackgroundSession>,
    server: Server,
    /// Where it is mounted.
    pub mountpoint: PathBuf,
}

impl Mount {
    /// Serves `backing` at `mountpoint` (an existing empty directory), from
    /// a server of its own.
    pub fn new(backing: &Path, mountpoint: &Path, model: &Model) -> Result<Mount, MountError> {
        if model.threads == 0 {
            return Err(MountError::NoThreads);
        }
        Mount::on(&Server::new(model.threads), backing, mountpoint, model)
    }

    /// Serves `backing` at `mountpoint` from `server`, which other mounts
    /// (other nodes, each with its own client cache) may share: their
    /// requests queue for its service slots together and are counted
    /// together.
    pub fn on(
        server: &Server,
        backing: &Path,
        mountpoint: &Path,
        model: &Model,
    ) -> Result<Mount, MountError> {
        let backing = backing
            .canonicalize()
            .map_err(|source| MountError::Backing {
                path: backing.to_path_buf(),
                source,
            })?;
        let backing_ino = std::fs::metadata(&backing)
            .map_err(|source| MountError::Backing {
                path: backing.clone(),
                source,
            })?
            .ino();
        let fs = SimFs::new(backing, backing_ino, model.clone(), server.clone());
        let mut config = fuser::Config::default();
        config.mount_options = vec![
            fuser::MountOption::FSName("dlfm-pfs".into()),
            fuser::MountOption::RO,
            fuser::MountOption::Exec,
        ];
        config.acl = fuser::SessionACL::All;
        config.n_threads = Some(model.threads.max(1));
        let session =
            fuser::spawn_mount(fs, mountpoint, &config).map_err(|source| MountError::Mount {
                path: mountpoint.to_path_buf(),
                source,
            })?;
        Ok(Mount {
            session: Some(session),
            server: server.clone(),
            mountpoint: mountpoint.to_path_buf(),
        })
    }

    /// Its server (to mount another node's client of it).
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// The requests its server counted so far (every mount of it).
    pub fn counts(&self) -> Counts {
        self.server.counts()
    }

    /// Sets every count of its server back to zero.
    pub fn reset(&self) {
        self.server.reset();
    }

    /// Unmounts (if still mounted) and returns its server's final counts.
    pub fn unmount(mut self) -> Counts {
        self.stop();
        self.server.counts()
    }

    fn stop(&mut self) {
        if let Some(s) = self.session.take() {
            // Already unmounted from outside: nothing left to undo.
            let _ = s.umount_and_join();
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Unmounts whatever is mounted at `mountpoint` (a stale mount a crashed run
/// left behind); quiet when nothing is.
pub fn clean_stale(mountpoint: &Path) {
    unmount_where(|_, target| Some(target) == mountpoint.to_str());
}

/// Unmounts every dlfm-pfs mount whose mount point starts with `prefix`:
/// what runs killed before they could unmount left behind.
pub fn clean_stale_under(prefix: &str) {
    unmount_where(|source, target| source == "dlfm-pfs" && target.starts_with(prefix));
}

/// Lazily unmounts (`umount2(MNT_DETACH)`, no helper command) every mount
/// for which `hit(source, target)` holds; says on stderr what it could not.
fn unmount_where(hit: impl Fn(&str, &str) -> bool) {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    for line in mounts.lines() {
        let mut f = line.split_whitespace();
        let (source, target) = (f.next().unwrap_or(""), f.next().unwrap_or(""));
        if !hit(source, target) {
            continue;
        }
        // (A mount point with a space is escaped in /proc/self/mounts and
        // never matches: dlfm-pfs's mount points have none.)
        let Ok(path) = std::ffi::CString::new(target) else {
            continue;
        };
        // SAFETY: a NUL-terminated path that lives across the call.
        if unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) } != 0 {
            eprintln!(
                "dlfm-pfs: cannot unmount the stale mount {target}: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}
