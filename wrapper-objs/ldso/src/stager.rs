//! Node-local staging (read-cache): one copy of the cache per node, in
//! node-local storage (`/dev/shm` unless `DLFM_STAGE_DIR` says otherwise),
//! so that the node's processes map that copy instead of each asking the
//! shared file system. Names and the pointer format: `dlfm_cache::node_files`;
//! what the environment asks: `dlfm_runtime::staging_policy`.
//!
//! At replay's start, before anything else is opened:
//! 1. the pointer file names a copy this job (or this Slurm step) already
//!    checked: use it. No call reaches the shared file system.
//! 2. Else take the node's lock for this cache (`flock`, polled on the
//!    node-local file with short sleeps, for at most `DLFM_STAGE_WAIT`
//!    seconds), read the pointer again (another process may just have
//!    written it), and only then open the shared cache, read its header
//!    (the content id), and either find a complete copy of that content
//!    or write one: `<copy>.part`, space reserved first, copied in the
//!    kernel (`sendfile`), made read-only and renamed; then point the
//!    pointer at it and remove the copy it pointed at before. The lock
//!    dies with its holder, so a stager killed half way only leaves a
//!    `.part` that the next stager truncates.
//!    A cache that is itself on tmpfs or ramfs is not copied (it is in the
//!    node's memory already).
//! 3. Anything that fails (staging off, no space, no permission, someone
//!    else's file under our name, the wait ran out) leaves the shared cache
//!    to replay, as without staging; the trace says why.
//!
//! Every file is opened `O_NOFOLLOW | O_NONBLOCK`, checked to be a regular
//! file, and used only if its owner is this process's effective user (or
//! root, for copies and pointers) and nobody else may write it: the stage
//! directory is usually world-writable. Replay then checks the copy as it
//! checks any cache (checksum, ids), and falls back to the shared cache if
//! it is refused. This runs once, at the process's first ld.so call, before
//! any other thread exists.

use dlfm_cache::layout::HEADER_LEN;
use dlfm_cache::node_files::{path_key, ContentId, NodeFile, Pointer, PointerKey};
use dlfm_runtime::fixed_path::FixedPath;
use dlfm_runtime::staging_policy::{self, node_path, trusted, JobKeys, NoStaging, StageConfig};

use crate::initial_stack::InitialStack;
use crate::own_file::open_regular_mode;
use crate::sys::{self, errno, nr};

/// How the node-local copy was had.
#[derive(Clone, Copy)]
pub enum How {
    /// The pointer said this job had checked it.
    Pointed,
    /// Another process of the node checked or staged it while this one
    /// waited for the lock (the wait, in ms).
    Waited(u64),
    /// This process found a complete copy of the shared cache's content.
    Checked,
    /// This process wrote it (bytes, ms).
    Staged(u64, u64),
}

/// Why there is no node-local copy.
#[derive(Clone, Copy)]
pub enum Skip {
    /// Staging is off or its directory is not absolute.
    Config(NoStaging),
    /// A path did not fit in PATH_MAX.
    PathTooLong,
    /// The lock file could not be opened, or is someone else's.
    Lock,
    /// Another process held the lock for the whole wait.
    WaitRanOut,
    /// The shared cache could not be opened or has no valid header.
    Shared,
    /// The shared cache is another user's, or others may write it.
    Untrusted,
    /// The cache itself is on tmpfs or ramfs: node-local memory already.
    InMemory,
    /// The stage directory has no room for the copy.
    NoSpace,
    /// Writing the copy failed (the errno).
    Copy(u32),
}

impl Skip {
    /// The text a trace line gives for it.
    pub fn text(self) -> &'static [u8] {
        match self {
            Skip::Config(NoStaging::Off) => b"DLFM_STAGE=off",
            Skip::Config(NoStaging::DirNotAbsolute) => b"DLFM_STAGE_DIR is not an absolute path",
            Skip::PathTooLong => b"a path is too long",
            Skip::Lock => b"cannot use the node's lock file (no permission, or another user's)",
            Skip::WaitRanOut => b"another process was still staging when DLFM_STAGE_WAIT ran out",
            Skip::Shared => b"cannot read the shared cache's header",
            Skip::Untrusted => b"the shared cache is not trusted",
            Skip::InMemory => b"the cache is in node-local memory already (tmpfs)",
            Skip::NoSpace => b"no room in the stage directory",
            Skip::Copy(_) => b"writing the copy failed",
        }
    }
}

/// Paths staging builds, in the wrapper's static state.
pub struct Stager {
    /// The shared cache's absolute path.
    shared: FixedPath,
    /// A node-local file's path, being built.
    scratch: FixedPath,
    /// A second one, where a rename needs two.
    target: FixedPath,
    /// The node-local copy replay should use, once [`Stager::stage`]
    /// succeeded.
    pub copy: FixedPath,
}

impl Stager {
    /// Nothing built (all zero, in `.bss`).
    pub const EMPTY: Stager = Stager {
        shared: FixedPath::EMPTY,
        scratch: FixedPath::EMPTY,
        target: FixedPath::EMPTY,
        copy: FixedPath::EMPTY,
    };

    /// Finds or makes the node-local copy of the cache at `cache` for a
    /// process of effective user `euid`; on success [`Stager::copy`] names it.
    pub fn stage(
        &mut self,
        stack: &InitialStack,
        cache: &FixedPath,
        euid: u32,
    ) -> Result<How, Skip> {
        let cfg = staging_policy::config_of(|name| stack.getenv(name)).map_err(Skip::Config)?;
        if !(self.shared.set(b"") && self.shared.push_absolute(cache.as_bytes(), sys::getcwd)) {
            return Err(Skip::PathTooLong);
        }
        let key = path_key(self.shared.as_bytes());
        let jobs = staging_policy::job_keys(|name| stack.getenv(name));
        let pointer = PointerKey {
            path: key,
            job: jobs.job.unwrap_or(0),
        };
        // Without a job there is no pointer to believe: skip the look.
        if jobs.step.is_some() {
            if let Some(p) = self.pointer(&cfg, euid, pointer) {
                if jobs.accept(&p) {
                    return self.name_copy(&cfg, euid, p.content).map(|()| How::Pointed);
                }
            }
        }
        let started = sys::now_ms();
        let lock = self.lock(&cfg, euid, key)?;
        let waited = sys::now_ms().saturating_sub(started);
        let r = self.under_lock(&cfg, euid, pointer, &jobs, waited);
        // Closing the only descriptor of the lock file releases the lock.
        sys::close(lock);
        r
    }

    /// The work done holding the lock (see the module doc, step 2).
    fn under_lock(
        &mut self,
        cfg: &StageConfig<'_>,
        euid: u32,
        key: PointerKey,
        jobs: &JobKeys,
        waited: u64,
    ) -> Result<How, Skip> {
        let before = self.pointer(cfg, euid, key);
        if let Some(p) = before {
            if jobs.accept(&p) {
                return self
                    .name_copy(cfg, euid, p.content)
                    .map(|()| How::Waited(waited));
            }
        }
        let (shared, id) = open_shared(&self.shared, euid)?;
        if sys::in_memory(shared) {
            // Already node-local memory (the cache put on /dev/shm by
            // hand): a copy would only double the memory it takes.
            sys::close(shared);
            return Err(Skip::InMemory);
        }
        let started = sys::now_ms();
        let how = match self.name_copy(cfg, euid, id) {
            Ok(()) if copy_is_complete(&self.copy, euid, id) => Ok(How::Checked),
            Ok(()) => self
                .write_copy(cfg, euid, shared, id)
                .map(|bytes| How::Staged(bytes, sys::now_ms().saturating_sub(started))),
            Err(e) => Err(e),
        };
        sys::close(shared);
        let how = how?;
        // Tell the rest of this job (or step) where the copy is, in the
        // job's own pointer; and every later stager of this cache which
        // copy is current, in the pointer of no job (believed by nobody).
        let current = PointerKey {
            path: key.path,
            job: 0,
        };
        let was = if key == current {
            before
        } else {
            let was = self.pointer(cfg, euid, current);
            let step = jobs.step.unwrap_or(0);
            self.write_pointer(
                cfg,
                euid,
                key,
                Pointer {
                    job: step,
                    content: id,
                },
            );
            was
        };
        self.write_pointer(
            cfg,
            euid,
            current,
            Pointer {
                job: 0,
                content: id,
            },
        );
        // The copy that was current is not the shared cache's any more: let
        // it go (processes that mapped it keep their pages; a process of a
        // job whose pointer still names it finds it gone and maps the
        // shared cache).
        if let Some(old) = was.filter(|p| p.content != id) {
            if self.name(cfg, euid, NodeFile::Copy(old.content)) {
                sys::unlink(&self.scratch);
            }
        }
        Ok(how)
    }

    /// `scratch` = `<dir>/<name of file>`; false if it does not fit.
    fn name(&mut self, cfg: &StageConfig<'_>, euid: u32, file: NodeFile) -> bool {
        node_path(&mut self.scratch, cfg.dir, euid, file)
    }

    /// `copy` = the path of the copy of `id`.
    fn name_copy(&mut self, cfg: &StageConfig<'_>, euid: u32, id: ContentId) -> Result<(), Skip> {
        if node_path(&mut self.copy, cfg.dir, euid, NodeFile::Copy(id)) {
            Ok(())
        } else {
            Err(Skip::PathTooLong)
        }
    }

    /// The pointer `key` names, if there is a valid one that only its owner
    /// (this user or root) can write.
    fn pointer(&mut self, cfg: &StageConfig<'_>, euid: u32, key: PointerKey) -> Option<Pointer> {
        if !self.name(cfg, euid, NodeFile::Pointer(key)) {
            return None;
        }
        let (fd, st) = open_regular_mode(&self.scratch, nr::O_RDONLY | nr::O_NOFOLLOW, 0).ok()?;
        let mut b = [0u8; Pointer::LEN + 1];
        // SAFETY: `b` is writable for its length.
        let n = unsafe { sys::pread(fd, b.as_mut_ptr(), b.len(), 0) };
        sys::close(fd);
        if !trusted(st.uid, st.mode, euid) {
            return None;
        }
        Pointer::read(b.get(..usize::try_from(n).ok()?)?)
    }

    /// Replaces the pointer (written to its `.part`, then renamed).
    fn write_pointer(&mut self, cfg: &StageConfig<'_>, euid: u32, key: PointerKey, p: Pointer) {
        let mut b = [0u8; Pointer::LEN];
        p.write(&mut b);
        if !(node_path(&mut self.target, cfg.dir, euid, NodeFile::Pointer(key))
            && self.name(cfg, euid, NodeFile::PointerPart(key)))
        {
            return;
        }
        let flags = nr::O_WRONLY | nr::O_CREAT | nr::O_TRUNC | nr::O_NOFOLLOW;
        let Ok((fd, st)) = open_regular_mode(&self.scratch, flags, 0o644) else {
            return;
        };
        let written = st.uid == euid
            && sys::write(fd, &b) == Pointer::LEN as i64
            && sys::fchmod(fd, 0o644) == 0;
        sys::close(fd);
        if st.uid != euid {
            return;
        }
        if !written || sys::errno_of(sys::rename(&self.scratch, &self.target)).is_some() {
            sys::unlink(&self.scratch);
        }
    }

    /// Opens (creating it if needed) and takes the lock of the cache with
    /// path key `key`, waiting at most the configured time. Returns the
    /// lock's descriptor.
    fn lock(&mut self, cfg: &StageConfig<'_>, euid: u32, key: u64) -> Result<i32, Skip> {
        if !self.name(cfg, euid, NodeFile::Lock(key)) {
            return Err(Skip::PathTooLong);
        }
        let flags = nr::O_RDWR | nr::O_CREAT | nr::O_NOFOLLOW;
        let (fd, st) = open_regular_mode(&self.scratch, flags, 0o600).map_err(|_| Skip::Lock)?;
        if st.uid != euid {
            sys::close(fd);
            return Err(Skip::Lock);
        }
        let deadline = sys::now_ms().saturating_add(cfg.wait_ms);
        let mut pause = 1;
        loop {
            let r = sys::flock(fd, nr::LOCK_EX | nr::LOCK_NB);
            match sys::errno_of(r) {
                None => return Ok(fd),
                Some(errno::EWOULDBLOCK) | Some(errno::EINTR) => {}
                Some(_) => {
                    sys::close(fd);
                    return Err(Skip::Lock);
                }
            }
            let now = sys::now_ms();
            if now >= deadline {
                sys::close(fd);
                return Err(Skip::WaitRanOut);
            }
            sys::sleep_ms(pause.min(deadline - now));
            pause = (pause * 2).min(16);
        }
    }

    /// Writes the copy of the shared cache open on `shared` (content `id`)
    /// to `copy`, through its `.part`; returns the bytes copied.
    fn write_copy(
        &mut self,
        cfg: &StageConfig<'_>,
        euid: u32,
        shared: i32,
        id: ContentId,
    ) -> Result<u64, Skip> {
        if !self.name(cfg, euid, NodeFile::CopyPart(id)) {
            return Err(Skip::PathTooLong);
        }
        let flags = nr::O_WRONLY | nr::O_CREAT | nr::O_TRUNC | nr::O_NOFOLLOW;
        let (fd, st) = open_regular_mode(&self.scratch, flags, 0o600)
            .map_err(|_| Skip::Copy(errno::EACCES))?;
        if st.uid != euid {
            // Someone else's file under our name: leave it alone.
            sys::close(fd);
            return Err(Skip::Copy(errno::EPERM));
        }
        let r = copy_all(fd, shared, id.file_len);
        let r = match r {
            Ok(()) if sys::fchmod(fd, 0o444) == 0 => {
                match sys::errno_of(sys::rename(&self.scratch, &self.copy)) {
                    None => Ok(id.file_len),
                    Some(e) => Err(Skip::Copy(e)),
                }
            }
            Ok(()) => Err(Skip::Copy(errno::EPERM)),
            Err(e) => Err(e),
        };
        sys::close(fd);
        if r.is_err() {
            sys::unlink(&self.scratch);
        }
        r
    }
}

/// Opens the shared cache and reads its content id; the file's length must
/// be the one its header gives. A cache replay would not trust is never
/// copied: the copy would be ours, and trusted.
fn open_shared(path: &FixedPath, euid: u32) -> Result<(i32, ContentId), Skip> {
    let (fd, st) = open_regular_mode(path, nr::O_RDONLY, 0).map_err(|_| Skip::Shared)?;
    if !trusted(st.uid, st.mode, euid) {
        sys::close(fd);
        return Err(Skip::Untrusted);
    }
    match header_id(fd) {
        Some(id) if id.file_len == st.size => Ok((fd, id)),
        _ => {
            sys::close(fd);
            Err(Skip::Shared)
        }
    }
}

/// Whether `path` is a complete, trusted copy of content `id`.
fn copy_is_complete(path: &FixedPath, euid: u32, id: ContentId) -> bool {
    let Ok((fd, st)) = open_regular_mode(path, nr::O_RDONLY | nr::O_NOFOLLOW, 0) else {
        return false;
    };
    let found = header_id(fd);
    sys::close(fd);
    trusted(st.uid, st.mode, euid) && st.size == id.file_len && found == Some(id)
}

/// The content id in the header of the cache open on `fd`.
fn header_id(fd: i32) -> Option<ContentId> {
    let mut h = [0u8; HEADER_LEN];
    // SAFETY: `h` is writable for its length.
    let n = unsafe { sys::pread(fd, h.as_mut_ptr(), HEADER_LEN, 0) };
    if n == HEADER_LEN as i64 {
        ContentId::of_header(&h)
    } else {
        None
    }
}

/// Copies `len` bytes from `input` to `out` (both at offset 0), after
/// reserving the room for them.
fn copy_all(out: i32, input: i32, len: u64) -> Result<(), Skip> {
    match sys::errno_of(sys::reserve(out, len)) {
        Some(errno::ENOSPC) | Some(errno::EDQUOT) => return Err(Skip::NoSpace),
        // A file system without fallocate: find out while copying.
        _ => {}
    }
    let mut offset = 0u64;
    while offset < len {
        let count = (len - offset).min(1 << 30);
        let r = sys::sendfile(out, input, &mut offset, count);
        match sys::errno_of(r) {
            None if r > 0 => {}
            None => return Err(Skip::Copy(errno::EIO)),
            Some(errno::EINTR) => {}
            Some(errno::ENOSPC) | Some(errno::EDQUOT) => return Err(Skip::NoSpace),
            Some(e) => return Err(Skip::Copy(e)),
        }
    }
    Ok(())
}
