//! The FUSE handlers: each request is counted, waits its latency (on one of
//! the server's bounded service slots, shared by every mount of it, so
//! requests queue), then is answered from the backing directory.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{File, Metadata};
use std::os::unix::fs::{DirEntryExt, FileExt, MetadataExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, UNIX_EPOCH};

use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, LockOwner, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry,
    ReplyOpen, Request,
};

use crate::inodes::Inodes;
use crate::server::Server;
use crate::Model;

/// The simulated file system.
pub struct SimFs {
    model: Model,
    server: Server,
    inodes: Inodes,
    files: Mutex<HashMap<u64, File>>,
    next_fh: AtomicU64,
}

impl SimFs {
    /// Serves `backing` (whose own inode number is `backing_ino`) with
    /// `model`'s latencies, on `server`'s service slots and counts.
    pub fn new(backing: PathBuf, backing_ino: u64, model: Model, server: Server) -> SimFs {
        SimFs {
            model,
            server,
            inodes: Inodes::new(backing, backing_ino),
            files: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
        }
    }

    /// Counts a metadata request and makes it take the model's time.
    fn metadata(&self, kind: &str) {
        self.server.request(kind, self.model.metadata_latency);
    }

    fn attr(&self, ino: u64, m: &Metadata) -> FileAttr {
        let time = |s: i64, ns: i64| UNIX_EPOCH + Duration::new(s.max(0) as u64, ns as u32);
        let ft = m.file_type();
        FileAttr {
            ino: INodeNo(ino),
            size: m.len(),
            blocks: m.blocks(),
            atime: time(m.atime(), m.atime_nsec()),
            mtime: time(m.mtime(), m.mtime_nsec()),
            ctime: time(m.ctime(), m.ctime_nsec()),
            crtime: time(m.ctime(), m.ctime_nsec()),
            kind: if ft.is_dir() {
                FileType::Directory
            } else if ft.is_symlink() {
                FileType::Symlink
            } else {
                FileType::RegularFile
            },
            perm: (m.mode() & 0o7777) as u16,
            nlink: m.nlink() as u32,
            uid: m.uid(),
            gid: m.gid(),
            rdev: m.rdev() as u32,
            blksize: m.blksize() as u32,
            flags: 0,
        }
    }
}

impl Filesystem for SimFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.metadata("lookup");
        let Some(dir) = self.inodes.path(parent.0) else {
            return reply.error(Errno::ENOENT);
        };
        let path = dir.join(name);
        match std::fs::symlink_metadata(&path) {
            Ok(m) => {
                let ino = self.inodes.ino(&path, m.ino());
                reply.entry(
                    &self.model.client.entry_ttl,
                    &self.attr(ino, &m),
                    Generation(0),
                );
            }
            // A negative entry (node id 0) with a timeout: the kernel's
            // client believes the name missing for that long.
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    && !self.model.client.negative_ttl.is_zero() =>
            {
                match std::fs::symlink_metadata(&dir) {
                    Ok(dm) => {
                        let none = self.attr(0, &dm);
                        reply.entry(&self.model.client.negative_ttl, &none, Generation(0));
                    }
                    Err(_) => reply.error(Errno::ENOENT),
                }
            }
            Err(e) => reply.error(Errno::from(e)),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        self.metadata("getattr");
        match self.inodes.path(ino.0).map(std::fs::symlink_metadata) {
            Some(Ok(m)) => reply.attr(&self.model.client.entry_ttl, &self.attr(ino.0, &m)),
            Some(Err(e)) => reply.error(Errno::from(e)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        self.metadata("readlink");
        match self.inodes.path(ino.0).map(std::fs::read_link) {
            Some(Ok(target)) => reply.data(target.as_os_str().as_encoded_bytes()),
            Some(Err(e)) => reply.error(Errno::from(e)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        self.metadata("open");
        match self.inodes.path(ino.0).map(File::open) {
            Some(Ok(f)) => {
                let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
                self.files.lock().expect("file table").insert(fh, f);
                // Keep the node's page cache across opens, as a parallel
                // file system client does while it holds the file's lock.
                reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE);
            }
            Some(Err(e)) => reply.error(Errno::from(e)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        self.server.request("read", self.model.read_latency);
        let files = self.files.lock().expect("file table");
        let Some(f) = files.get(&fh.0) else {
            return reply.error(Errno::EBADF);
        };
        let mut buf = vec![0u8; size as usize];
        match f.read_at(&mut buf, offset) {
            Ok(n) => reply.data(&buf[..n]),
            Err(e) => reply.error(Errno::from(e)),
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.metadata("release");
        self.files.lock().expect("file table").remove(&fh.0);
        reply.ok();
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        self.metadata("readdir");
        let Some(dir) = self.inodes.path(ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        let entries = match std::fs::read_dir(&dir) {
            Ok(rd) => rd.flatten().collect::<Vec<_>>(),
            Err(e) => return reply.error(Errno::from(e)),
        };
        for (i, e) in entries.iter().enumerate().skip(offset as usize) {
            let kind = match e.file_type() {
                Ok(t) if t.is_dir() => FileType::Directory,
                Ok(t) if t.is_symlink() => FileType::Symlink,
                _ => FileType::RegularFile,
            };
            let child = self.inodes.ino(&e.path(), e.ino());
            if reply.add(INodeNo(child), i as u64 + 1, kind, e.file_name()) {
                break;
            }
        }
        reply.ok();
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        self.metadata("access");
        match self.inodes.path(ino.0) {
            Some(p) if p.exists() => reply.ok(),
            _ => reply.error(Errno::ENOENT),
        }
    }
}
