//! The FUSE side: each kernel request becomes one call on the shared [`Tree`].
//!
//! A session belongs to one *generation* of the tree. A power loss bumps the
//! generation, so a request still arriving on the old, unmounted session (from a
//! process that escaped the kill) is refused with `EIO` instead of writing into
//! the state after the crash.
//!
//! Locks: the session does not announce `FUSE_POSIX_LOCKS` or `FUSE_FLOCK_LOCKS`,
//! so the kernel keeps `flock` and `fcntl` locks itself, per inode of this mount:
//! two processes' locks on one file exclude each other exactly as on a local disk.

use std::ffi::OsStr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner, OpenFlags,
    RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry,
    ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use crate::tree::{Body, Ino, Tree};

/// How long the kernel may cache names and attributes. Every change goes through
/// this mount, so the kernel's caches stay right; a power loss remounts, which
/// empties them.
const TTL: Duration = Duration::from_secs(1);

/// One mounted session over the shared tree.
pub(crate) struct Fs {
    pub(crate) tree: Arc<Mutex<Tree>>,
    pub(crate) generation: u64,
}

type R<T> = std::result::Result<T, Errno>;

impl Fs {
    /// The tree, if this session is still the current one.
    fn tree(&self) -> R<MutexGuard<'_, Tree>> {
        let t = self.tree.lock().map_err(|_| Errno::EIO)?;
        if t.generation == self.generation {
            Ok(t)
        } else {
            Err(Errno::EIO)
        }
    }

    fn entry(&self, reply: ReplyEntry, f: impl FnOnce(&mut Tree) -> R<Ino>) {
        match self
            .tree()
            .and_then(|mut t| f(&mut t).and_then(|ino| t.attr(ino)))
        {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn empty(&self, reply: ReplyEmpty, f: impl FnOnce(&mut Tree) -> R<()>) {
        match self.tree().and_then(|mut t| f(&mut t)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }
}

fn time(t: TimeOrNow) -> SystemTime {
    match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    }
}

fn file() -> Body {
    Body::File {
        data: Vec::new(),
        durable: None,
    }
}

fn perm(mode: u32, umask: u32) -> u16 {
    (mode & !umask & 0o7777) as u16
}

impl Filesystem for Fs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.entry(reply, |t| t.lookup(parent.0, name));
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.tree().and_then(|t| t.attr(ino.0)) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let result = self.tree().and_then(|mut t| {
            if let Some(size) = size {
                t.truncate(ino.0, size)?;
            }
            let n = t.node_mut_pub(ino.0)?;
            if let Some(mode) = mode {
                n.perm = perm(mode, 0);
            }
            if let Some(uid) = uid {
                n.uid = uid;
            }
            if let Some(gid) = gid {
                n.gid = gid;
            }
            if let Some(a) = atime {
                n.atime = time(a);
            }
            if let Some(m) = mtime {
                n.mtime = time(m);
            }
            n.ctime = SystemTime::now();
            t.attr(ino.0)
        });
        match result {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        use std::os::unix::ffi::OsStrExt;
        match self.tree() {
            Ok(t) => match t.readlink(ino.0) {
                Ok(p) => reply.data(p.as_os_str().as_bytes()),
                Err(e) => reply.error(e),
            },
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        if mode & libc::S_IFMT != libc::S_IFREG {
            reply.error(Errno::EPERM); // only regular files: a store needs no devices
            return;
        }
        self.entry(reply, |t| {
            t.make(
                parent.0,
                name,
                file(),
                perm(mode, umask),
                req.uid(),
                req.gid(),
            )
        });
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let body = Body::Dir {
            entries: Default::default(),
            durable: Default::default(),
        };
        self.entry(reply, |t| {
            t.make(
                parent.0,
                name,
                body,
                perm(mode, umask),
                req.uid(),
                req.gid(),
            )
        });
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.empty(reply, |t| t.unlink(parent.0, name));
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.empty(reply, |t| t.rmdir(parent.0, name));
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let body = Body::Symlink {
            target: target.to_owned(),
        };
        self.entry(reply, |t| {
            t.make(parent.0, link_name, body, 0o777, req.uid(), req.gid())
        });
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        self.empty(reply, |t| {
            t.rename(parent.0, name, newparent.0, newname, flags.bits())
        });
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        self.entry(reply, |t| {
            t.link(ino.0, newparent.0, newname).map(|()| ino.0)
        });
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let result = self.tree().and_then(|mut t| {
            t.open(ino.0)?;
            if flags.0 & libc::O_TRUNC != 0 {
                t.truncate(ino.0, 0)?;
            }
            Ok(())
        });
        match result {
            Ok(()) => reply.opened(FileHandle(ino.0), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.tree() {
            Ok(t) => match t.read(ino.0, offset, size) {
                Ok(bytes) => reply.data(bytes),
                Err(e) => reply.error(e),
            },
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.tree().and_then(|mut t| t.write(ino.0, offset, data)) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok(); // close(2) makes nothing durable
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        if let Ok(mut t) = self.tree() {
            t.release(ino.0);
        }
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.empty(reply, |t| t.sync_file(ino.0));
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.tree().and_then(|t| t.attr(ino.0)) {
            Ok(a) if a.kind == FileType::Directory => {
                reply.opened(FileHandle(ino.0), FopenFlags::empty());
            }
            Ok(_) => reply.error(Errno::ENOTDIR),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let list = match self.tree().and_then(|t| t.list(ino.0)) {
            Ok(list) => list,
            Err(e) => return reply.error(e),
        };
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        for (i, (child, kind, name)) in list.into_iter().enumerate().skip(skip) {
            if reply.add(INodeNo(child), i as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.empty(reply, |t| t.sync_dir(ino.0));
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // Plenty of room: a store must not refuse to write for lack of space here.
        let blocks = 1 << 24;
        reply.statfs(blocks, blocks, blocks, 1 << 20, 1 << 20, 4096, 255, 4096);
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        self.empty(reply, |t| t.attr(ino.0).map(|_| ()));
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let result = self.tree().and_then(|mut t| {
            let ino = match t.lookup(parent.0, name) {
                Ok(_) if flags & libc::O_EXCL != 0 => return Err(Errno::EEXIST),
                Ok(ino) => {
                    if flags & libc::O_TRUNC != 0 {
                        t.truncate(ino, 0)?;
                    }
                    ino
                }
                Err(_) => t.make(
                    parent.0,
                    name,
                    file(),
                    perm(mode, umask),
                    req.uid(),
                    req.gid(),
                )?,
            };
            t.open(ino)?;
            t.attr(ino)
        });
        match result {
            Ok(attr) => reply.created(
                &TTL,
                &attr,
                Generation(0),
                FileHandle(attr.ino.0),
                FopenFlags::empty(),
            ),
            Err(e) => reply.error(e),
        }
    }
}
