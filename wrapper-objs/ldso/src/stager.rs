//! Node-local staging (read-cache): one copy of the cache per node, in
//! node-local storage (`/dev/shm` unless `DLFM_STAGE_DIR` says otherwise),
//! so that the node's processes map that copy instead of each asking the
//! shared file system. Names and the pointer format: `dlfm_cache::node_files`;
//! what the environment asks: `dlfm_runtime::staging_policy`.
//!
//! At replay's start, before anything else is opened:
//! 1. this job's pointer names a copy this job (or this Slurm step) already
//!    checked, and the copy is complete: use it. No call reaches the shared
//!    file system.
//! 2. Else take the node's lock for this cache (`flock`, polled on the
//!    node-local file with short sleeps, for at most `DLFM_STAGE_WAIT`
//!    seconds), read the pointer again (another process may just have
//!    written it). If it names a copy this job may use but only its
//!    broadcast form exists (`sbcast` delivered the whole cache as `.dat`),
//!    unpack that into the copy: node-local work only. Otherwise open the
//!    shared cache, read its header (the content id), and either find a
//!    complete copy of that content, unpack a broadcast one, or write one
//!    from the shared cache: `<copy>.part`, checked for room first, each
//!    file copied in the kernel (`sendfile`) and made read-only, the whole
//!    renamed at the end (see `tree`). Then point the job's pointer (and
//!    the pointer of no job, which says which copy is current) at it and
//!    remove the copy that was current before. The lock dies with its
//!    holder, so a stager killed half way only leaves a `.part` that the
//!    next one writes over.
//!    A cache that is itself on tmpfs or ramfs is copied too: only the
//!    copy's tree gives each file its own name in the program's mappings.
//! 3. Anything that fails (staging off, no space, no permission, someone
//!    else's file under our name, the wait ran out) leaves the shared cache
//!    to replay, as without staging; the trace says why.
//!
//! Every file is opened `O_NOFOLLOW | O_NONBLOCK`, checked to be a regular
//! file, and used only if its owner is this process's effective user (or
//! root, for copies and pointers) and nobody else may write it: the stage
//! directory is usually world-writable (and sticky). Replay then checks the
//! copy's metadata as it checks any cache (checksum, ids), and falls back to
//! the shared cache if it is refused. This runs once, at the process's
//! first ld.so call, before any other thread exists.

use dlfm_cache::layout::HEADER_LEN;
use dlfm_cache::node_files::{path_key, ContentId, NodeFile, Pointer, PointerKey, TREE_CACHE};
use dlfm_cache::read::Cache;
use dlfm_runtime::fixed_path::FixedPath;
use dlfm_runtime::staging_policy::{self, node_path, trusted, JobKeys, NoStaging, StageConfig};

use crate::initial_stack::InitialStack;
use crate::own_file::open_regular_mode;
use crate::sys::{self, errno, nr};
use crate::tree;

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
    /// This process wrote it from the shared cache (bytes, ms).
    Staged(u64, u64),
    /// This process unpacked it from the node's broadcast copy (bytes, ms).
    Unpacked(u64, u64),
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
    /// The stage directory does not exist (or is not a directory).
    NoDir,
    /// Another process held the lock for the whole wait.
    WaitRanOut,
    /// The shared cache could not be opened or has no valid header.
    Shared,
    /// The shared cache is another user's, or others may write it.
    Untrusted,
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
            Skip::NoDir => b"the stage directory (DLFM_STAGE_DIR) does not exist",
            Skip::WaitRanOut => b"another process was still staging when DLFM_STAGE_WAIT ran out",
            Skip::Shared => b"cannot read the shared cache's header",
            Skip::Untrusted => b"the shared cache is not trusted",
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
    /// The node-local copy (a directory, `dlfm_cache::node_files`) replay
    /// should use, once [`Stager::stage`] succeeded.
    pub copy: FixedPath,
    /// Room for directory entries when a copy is removed.
    list: tree::ListBuf,
}

impl Stager {
    /// Nothing built (all zero, in `.bss`).
    pub const EMPTY: Stager = Stager {
        shared: FixedPath::EMPTY,
        scratch: FixedPath::EMPTY,
        target: FixedPath::EMPTY,
        copy: FixedPath::EMPTY,
        list: [0; 1024],
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
                    self.name_copy(&cfg, euid, p.content)?;
                    if self.copy_is_complete(euid, p.content) {
                        return Ok(How::Pointed);
                    }
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
        if let Some(p) = before.filter(|p| jobs.accept(p)) {
            self.name_copy(cfg, euid, p.content)?;
            if self.copy_is_complete(euid, p.content) {
                return Ok(How::Waited(waited));
            }
            // The job's broadcast copy: node-local work only.
            if let Some(how) = self.unpack_broadcast(cfg, euid, p.content)? {
                return Ok(how);
            }
        }
        let (shared, id) = open_shared(&self.shared, euid)?;
        let how = self.name_copy(cfg, euid, id).and_then(|()| {
            if self.copy_is_complete(euid, id) {
                return Ok(How::Checked);
            }
            if let Some(how) = self.unpack_broadcast(cfg, euid, id)? {
                return Ok(how);
            }
            let started = sys::now_ms();
            self.build_copy(cfg, euid, shared, id, false)
                .map(|bytes| How::Staged(bytes, sys::now_ms().saturating_sub(started)))
        });
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
        // it go (processes that mapped its files keep their pages; a process
        // of a job whose pointer still names it finds it gone and maps the
        // shared cache).
        if let Some(old) = was.filter(|p| p.content != id) {
            if self.name(cfg, euid, NodeFile::Tree(old.content)) {
                tree::remove(&self.scratch, &mut self.list);
            }
            if self.name(cfg, euid, NodeFile::Copy(old.content)) {
                sys::unlink(&self.scratch);
            }
        }
        Ok(how)
    }

    /// Unpacks the node's broadcast copy of content `id` (`sbcast`'s
    /// `.dat`), if there is a complete, trusted one, into the copy
    /// ([`Stager::copy`]), freeing its pages as it goes and removing it
    /// after.
    fn unpack_broadcast(
        &mut self,
        cfg: &StageConfig<'_>,
        euid: u32,
        id: ContentId,
    ) -> Result<Option<How>, Skip> {
        if !self.name(cfg, euid, NodeFile::Copy(id)) {
            return Err(Skip::PathTooLong);
        }
        let Some((fd, punch)) = open_broadcast(&self.scratch, euid, id) else {
            return Ok(None);
        };
        let started = sys::now_ms();
        let built = self.build_copy(cfg, euid, fd, id, punch);
        sys::close(fd);
        let bytes = built?;
        if self.name(cfg, euid, NodeFile::Copy(id)) {
            sys::unlink(&self.scratch);
        }
        Ok(Some(How::Unpacked(
            bytes,
            sys::now_ms().saturating_sub(started),
        )))
    }

    /// Writes the copy of content `id` from the cache open on `src` into
    /// `<copy>.part` and renames it onto [`Stager::copy`]; a copy that
    /// fails half way is removed. Returns the bytes written.
    fn build_copy(
        &mut self,
        cfg: &StageConfig<'_>,
        euid: u32,
        src: i32,
        id: ContentId,
        punch: bool,
    ) -> Result<u64, Skip> {
        if !node_path(&mut self.target, cfg.dir, euid, NodeFile::TreePart(id)) {
            return Err(Skip::PathTooLong);
        }
        let r = tree::build(
            &self.target,
            &mut self.scratch,
            src,
            id.file_len,
            punch,
            euid,
        )
        .and_then(
            |built| match sys::errno_of(sys::rename(&self.target, &self.copy)) {
                None => Ok(built.bytes),
                Some(e) => Err(Skip::Copy(e)),
            },
        );
        if r.is_err() {
            tree::remove(&self.target, &mut self.list);
        }
        r
    }

    /// Whether [`Stager::copy`] is a complete, trusted copy of content `id`.
    fn copy_is_complete(&mut self, euid: u32, id: ContentId) -> bool {
        copy_is_complete(&self.copy, &mut self.scratch, euid, id)
    }

    /// `scratch` = `<dir>/<name of file>`; false if it does not fit.
    fn name(&mut self, cfg: &StageConfig<'_>, euid: u32, file: NodeFile) -> bool {
        node_path(&mut self.scratch, cfg.dir, euid, file)
    }

    /// `copy` = the path of the copy of `id`.
    fn name_copy(&mut self, cfg: &StageConfig<'_>, euid: u32, id: ContentId) -> Result<(), Skip> {
        if node_path(&mut self.copy, cfg.dir, euid, NodeFile::Tree(id)) {
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
        let target = &mut self.target;
        let (fd, st) = open_regular_mode(&self.scratch, flags, 0o600).map_err(|_| {
            // The usual reason: the stage directory does not exist (say so:
            // staging would otherwise be off without a word).
            if !target.set(cfg.dir) {
                return Skip::PathTooLong;
            }
            let dir = nr::O_RDONLY | nr::O_DIRECTORY | nr::O_CLOEXEC;
            // SAFETY: a FixedPath is NUL-terminated.
            let fd = unsafe { sys::open(target.as_ptr(), dir, 0) };
            match sys::errno_of(fd) {
                Some(errno::ENOENT) | Some(errno::ENOTDIR) => Skip::NoDir,
                Some(_) => Skip::Lock,
                None => {
                    sys::close(fd as i32);
                    Skip::Lock
                }
            }
        })?;
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

/// Whether `copy` is a complete, trusted copy of content `id`: a directory
/// (never a link) of this user's (or root's) that nobody else may write,
/// whose metadata `<copy>/cache` is trusted too and holds that content's
/// header and exactly its metadata. `scratch` is room for a path.
pub fn copy_is_complete(
    copy: &FixedPath,
    scratch: &mut FixedPath,
    euid: u32,
    id: ContentId,
) -> bool {
    let flags = nr::O_RDONLY | nr::O_DIRECTORY | nr::O_NOFOLLOW | nr::O_CLOEXEC;
    // SAFETY: a FixedPath is NUL-terminated.
    let dir = unsafe { sys::open(copy.as_ptr(), flags, 0) };
    if sys::errno_of(dir).is_some() {
        return false;
    }
    let dir_ok = sys::status(dir as i32, false).is_some_and(|st| trusted(st.uid, st.mode, euid));
    sys::close(dir as i32);
    if !(dir_ok
        && scratch.set(copy.as_bytes())
        && scratch.push(b"/")
        && scratch.push(TREE_CACHE.as_bytes()))
    {
        return false;
    }
    let Ok((fd, st)) = open_regular_mode(scratch, nr::O_RDONLY | nr::O_NOFOLLOW, 0) else {
        return false;
    };
    let mut h = [0u8; HEADER_LEN];
    // SAFETY: `h` is writable for its length.
    let n = unsafe { sys::pread(fd, h.as_mut_ptr(), HEADER_LEN, 0) };
    sys::close(fd);
    n == HEADER_LEN as i64
        && trusted(st.uid, st.mode, euid)
        && ContentId::of_header(&h) == Some(id)
        && Cache::meta_len(&h) == Some(st.size)
}

/// Opens the node's broadcast copy at `path` if it is a complete, trusted
/// copy of content `id`: read-write when it can (to free its pages as they
/// are unpacked), else read-only. Returns the descriptor and whether it is
/// writable.
fn open_broadcast(path: &FixedPath, euid: u32, id: ContentId) -> Option<(i32, bool)> {
    let (opened, writable) = match open_regular_mode(path, nr::O_RDWR | nr::O_NOFOLLOW, 0) {
        Ok(opened) => (opened, true),
        Err(_) => (
            open_regular_mode(path, nr::O_RDONLY | nr::O_NOFOLLOW, 0).ok()?,
            false,
        ),
    };
    let (fd, st) = opened;
    if trusted(st.uid, st.mode, euid) && st.size == id.file_len && header_id(fd) == Some(id) {
        Some((fd, writable))
    } else {
        sys::close(fd);
        None
    }
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
