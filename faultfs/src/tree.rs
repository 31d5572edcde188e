//! The file system's state, kept twice: as processes see it (*live*) and as a disk
//! would hold it after a power loss (*durable*).
//!
//! The durability rules, one per system call (the strict reading of POSIX that
//! careful stores code against; ext4 and xfs often persist more, never less):
//!
//! | call | becomes durable |
//! | --- | --- |
//! | `fsync`/`fdatasync` of a file | that inode's contents, size and mode — not any name of it |
//! | `fsync` of a directory | that directory's whole entry list as it is now (names → inodes) |
//! | `write`, `truncate`, `chmod` | nothing until the file's fsync |
//! | `create`, `mkdir`, `symlink`, `link`, `unlink`, `rmdir` | nothing until the parent directory's fsync |
//! | `rename(a/x, b/y)` | the removal of `x` at `fsync(a)`, the new `y` at `fsync(b)`; within one directory (`a == b`, the usual temp-file replace) the rename is all or nothing at `fsync(a)` |
//!
//! A power loss sets every directory's entries back to its durable list, every
//! file's contents to its last fsynced contents (empty if it was never fsynced: a
//! name made durable before its data is found empty, as on a real disk), and drops
//! every inode no durable name reaches. A symlink's target is fixed at creation, so
//! it is durable with the name that reaches it.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use fuser::{Errno, FileAttr, FileType, INodeNo};

use crate::error::{Error, Result};

/// An inode number (1 is the root).
pub(crate) type Ino = u64;
/// The root directory's inode number (FUSE's convention).
pub(crate) const ROOT: Ino = 1;

/// What an inode holds.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    File {
        data: Vec<u8>,
        /// Contents and mode at the last fsync; `None` if never fsynced.
        durable: Option<(Vec<u8>, u16)>,
    },
    Dir {
        entries: BTreeMap<OsString, Ino>,
        /// The entry list at the last directory fsync.
        durable: BTreeMap<OsString, Ino>,
    },
    Symlink {
        target: PathBuf,
    },
}

/// One inode.
#[derive(Debug, Clone)]
pub(crate) struct Inode {
    pub(crate) body: Body,
    pub(crate) perm: u16,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) atime: SystemTime,
    pub(crate) mtime: SystemTime,
    pub(crate) ctime: SystemTime,
    /// Live names of this inode.
    nlink: u32,
    /// Durable names of this inode (it must be kept while any exists).
    durable_refs: u32,
    /// Open file handles.
    open: u32,
}

impl Inode {
    fn new(body: Body, perm: u16, uid: u32, gid: u32) -> Self {
        let now = SystemTime::now();
        Inode {
            body,
            perm,
            uid,
            gid,
            atime: now,
            mtime: now,
            ctime: now,
            nlink: 0,
            durable_refs: 0,
            open: 0,
        }
    }

    fn kind(&self) -> FileType {
        match self.body {
            Body::File { .. } => FileType::RegularFile,
            Body::Dir { .. } => FileType::Directory,
            Body::Symlink { .. } => FileType::Symlink,
        }
    }

    fn size(&self) -> u64 {
        match &self.body {
            Body::File { data, .. } => data.len() as u64,
            Body::Dir { entries, .. } => entries.len() as u64,
            Body::Symlink { target } => target.as_os_str().len() as u64,
        }
    }
}

/// What one power loss threw away.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Loss {
    /// Files whose contents went back to their last fsync (or to empty).
    pub files_reverted: usize,
    /// Directories whose entries went back to their last fsync.
    pub dirs_reverted: usize,
    /// Inodes no durable name reached any more, dropped.
    pub inodes_dropped: usize,
}

/// Counters of the durability calls the file system has served.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// `fsync`/`fdatasync` calls on files.
    pub file_syncs: u64,
    /// `fsync` calls on directories.
    pub dir_syncs: u64,
    /// Power losses so far.
    pub power_losses: u64,
}

/// The whole file system.
#[derive(Debug)]
pub(crate) struct Tree {
    inodes: HashMap<Ino, Inode>,
    next: Ino,
    pub(crate) stats: Stats,
    /// Bumped at every power loss: a session of an older generation is dead and
    /// must not touch the tree.
    pub(crate) generation: u64,
}

type R<T> = std::result::Result<T, Errno>;

/// Largest file the tree accepts (a store that grows past it has a bug of its own).
const MAX_FILE: u64 = 1 << 32;

impl Tree {
    /// An empty file system (root only), everything durable.
    pub(crate) fn new() -> Self {
        let mut root = Inode::new(
            Body::Dir {
                entries: BTreeMap::new(),
                durable: BTreeMap::new(),
            },
            0o755,
            0,
            0,
        );
        root.nlink = 1;
        root.durable_refs = 1;
        let mut inodes = HashMap::new();
        inodes.insert(ROOT, root);
        Tree {
            inodes,
            next: ROOT + 1,
            stats: Stats::default(),
            generation: 0,
        }
    }

    /// A tree holding a copy of `dir`'s contents, all of it durable (it is on disk).
    pub(crate) fn load(dir: &Path) -> Result<Self> {
        let mut tree = Tree::new();
        let meta = std::fs::metadata(dir).map_err(|e| io("read", dir, e))?;
        set_meta_from(tree.inodes.get_mut(&ROOT).expect("root"), &meta);
        tree.load_dir(ROOT, dir)?;
        tree.sync_everything();
        Ok(tree)
    }

    fn load_dir(&mut self, ino: Ino, dir: &Path) -> Result<()> {
        let rd = std::fs::read_dir(dir).map_err(|e| io("list", dir, e))?;
        for entry in rd {
            let entry = entry.map_err(|e| io("list", dir, e))?;
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).map_err(|e| io("read", &path, e))?;
            let ft = meta.file_type();
            let body = if ft.is_file() {
                let data = std::fs::read(&path).map_err(|e| io("read", &path, e))?;
                Body::File {
                    data,
                    durable: None,
                }
            } else if ft.is_dir() {
                Body::Dir {
                    entries: BTreeMap::new(),
                    durable: BTreeMap::new(),
                }
            } else if ft.is_symlink() {
                let target = std::fs::read_link(&path).map_err(|e| io("read", &path, e))?;
                Body::Symlink { target }
            } else {
                return Err(Error::Unsupported { path });
            };
            let mut inode = Inode::new(body, 0, 0, 0);
            set_meta_from(&mut inode, &meta);
            let child = self.alloc(inode);
            self.add_entry(ino, entry.file_name(), child);
            if ft.is_dir() {
                self.load_dir(child, &path)?;
            }
        }
        Ok(())
    }

    /// Make every inode's contents and every directory's entries durable.
    fn sync_everything(&mut self) {
        let inos: Vec<Ino> = self.inodes.keys().copied().collect();
        for ino in inos {
            match self.inodes[&ino].body {
                Body::File { .. } => {
                    let _ = self.sync_file(ino);
                }
                Body::Dir { .. } => {
                    let _ = self.sync_dir(ino);
                }
                Body::Symlink { .. } => {}
            }
        }
    }

    /// Write the live tree into `dir` (which must be empty of anything we loaded).
    pub(crate) fn store(&self, dir: &Path) -> Result<()> {
        self.store_dir(ROOT, dir)
    }

    fn store_dir(&self, ino: Ino, dir: &Path) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let Body::Dir { entries, .. } = &self.inodes[&ino].body else {
            return Ok(());
        };
        for (name, &child) in entries {
            let path = dir.join(name);
            let node = &self.inodes[&child];
            match &node.body {
                Body::File { data, .. } => {
                    std::fs::write(&path, data).map_err(|e| io("write", &path, e))?;
                }
                Body::Dir { .. } => {
                    std::fs::create_dir(&path).map_err(|e| io("create", &path, e))?;
                    self.store_dir(child, &path)?;
                }
                Body::Symlink { target } => {
                    std::os::unix::fs::symlink(target, &path)
                        .map_err(|e| io("create", &path, e))?;
                    continue;
                }
            }
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(node.perm.into()))
                .map_err(|e| io("chmod", &path, e))?;
        }
        Ok(())
    }

    fn alloc(&mut self, inode: Inode) -> Ino {
        let ino = self.next;
        self.next += 1;
        self.inodes.insert(ino, inode);
        ino
    }

    fn node(&self, ino: Ino) -> R<&Inode> {
        self.inodes.get(&ino).ok_or(Errno::ENOENT)
    }

    fn node_mut(&mut self, ino: Ino) -> R<&mut Inode> {
        self.inodes.get_mut(&ino).ok_or(Errno::ENOENT)
    }

    fn entries(&self, dir: Ino) -> R<&BTreeMap<OsString, Ino>> {
        match &self.node(dir)?.body {
            Body::Dir { entries, .. } => Ok(entries),
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn entries_mut(&mut self, dir: Ino) -> R<&mut BTreeMap<OsString, Ino>> {
        let node = self.node_mut(dir)?;
        node.mtime = SystemTime::now();
        node.ctime = node.mtime;
        match &mut node.body {
            Body::Dir { entries, .. } => Ok(entries),
            _ => Err(Errno::ENOTDIR),
        }
    }

    /// Link `child` as `dir/name` (live only). The caller checked the name is free.
    fn add_entry(&mut self, dir: Ino, name: OsString, child: Ino) {
        if let Ok(entries) = self.entries_mut(dir) {
            entries.insert(name, child);
            if let Some(c) = self.inodes.get_mut(&child) {
                c.nlink += 1;
            }
        }
    }

    /// Unlink `dir/name` (live only) and free the inode if nothing holds it.
    fn remove_entry(&mut self, dir: Ino, name: &OsStr) -> R<Ino> {
        let child = self.entries_mut(dir)?.remove(name).ok_or(Errno::ENOENT)?;
        let c = self.node_mut(child)?;
        c.nlink = c.nlink.saturating_sub(1);
        c.ctime = SystemTime::now();
        self.maybe_free(child);
        Ok(child)
    }

    /// Drop an inode that has no live name, no open handle and no durable name.
    fn maybe_free(&mut self, ino: Ino) {
        let Some(n) = self.inodes.get(&ino) else {
            return;
        };
        if ino == ROOT || n.nlink > 0 || n.open > 0 || n.durable_refs > 0 {
            return;
        }
        if let Some(Inode {
            body: Body::Dir { durable, .. },
            ..
        }) = self.inodes.remove(&ino)
        {
            for child in durable.into_values() {
                if let Some(c) = self.inodes.get_mut(&child) {
                    c.durable_refs = c.durable_refs.saturating_sub(1);
                }
                self.maybe_free(child);
            }
        }
    }

    /// The attributes the kernel sees.
    pub(crate) fn attr(&self, ino: Ino) -> R<FileAttr> {
        let n = self.node(ino)?;
        let size = n.size();
        Ok(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: n.atime,
            mtime: n.mtime,
            ctime: n.ctime,
            crtime: n.ctime,
            kind: n.kind(),
            perm: n.perm,
            nlink: if matches!(n.body, Body::Dir { .. }) {
                2
            } else {
                n.nlink
            },
            uid: n.uid,
            gid: n.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }

    pub(crate) fn lookup(&self, dir: Ino, name: &OsStr) -> R<Ino> {
        self.entries(dir)?.get(name).copied().ok_or(Errno::ENOENT)
    }

    /// Create `dir/name` holding `body`; `EEXIST` if the name is taken.
    pub(crate) fn make(
        &mut self,
        dir: Ino,
        name: &OsStr,
        body: Body,
        perm: u16,
        uid: u32,
        gid: u32,
    ) -> R<Ino> {
        if self.entries(dir)?.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        let child = self.alloc(Inode::new(body, perm, uid, gid));
        self.add_entry(dir, name.to_owned(), child);
        Ok(child)
    }

    pub(crate) fn link(&mut self, ino: Ino, dir: Ino, name: &OsStr) -> R<()> {
        if matches!(self.node(ino)?.body, Body::Dir { .. }) {
            return Err(Errno::EPERM);
        }
        if self.entries(dir)?.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        self.add_entry(dir, name.to_owned(), ino);
        Ok(())
    }

    pub(crate) fn unlink(&mut self, dir: Ino, name: &OsStr) -> R<()> {
        let child = self.lookup(dir, name)?;
        if matches!(self.node(child)?.body, Body::Dir { .. }) {
            return Err(Errno::EISDIR);
        }
        self.remove_entry(dir, name).map(|_| ())
    }

    pub(crate) fn rmdir(&mut self, dir: Ino, name: &OsStr) -> R<()> {
        let child = self.lookup(dir, name)?;
        if !self.entries(child)?.is_empty() {
            return Err(Errno::ENOTEMPTY);
        }
        self.remove_entry(dir, name).map(|_| ())
    }

    /// `rename(2)` with `RENAME_NOREPLACE` (1) and `RENAME_EXCHANGE` (2).
    pub(crate) fn rename(
        &mut self,
        dir: Ino,
        name: &OsStr,
        newdir: Ino,
        newname: &OsStr,
        flags: u32,
    ) -> R<()> {
        const NOREPLACE: u32 = 1;
        const EXCHANGE: u32 = 2;
        let src = self.lookup(dir, name)?;
        self.entries(newdir)?;
        let existing = self.entries(newdir)?.get(newname).copied();
        if flags & EXCHANGE != 0 {
            let dst = existing.ok_or(Errno::ENOENT)?;
            self.entries_mut(dir)?.insert(name.to_owned(), dst);
            self.entries_mut(newdir)?.insert(newname.to_owned(), src);
            return Ok(());
        }
        if let Some(dst) = existing {
            if dst == src {
                return Ok(()); // two names of one inode: POSIX says do nothing
            }
            if flags & NOREPLACE != 0 {
                return Err(Errno::EEXIST);
            }
            let src_dir = matches!(self.node(src)?.body, Body::Dir { .. });
            match (&self.node(dst)?.body, src_dir) {
                (Body::Dir { entries, .. }, true) if !entries.is_empty() => {
                    return Err(Errno::ENOTEMPTY);
                }
                (Body::Dir { .. }, false) => return Err(Errno::EISDIR),
                (_, true) if !matches!(self.node(dst)?.body, Body::Dir { .. }) => {
                    return Err(Errno::ENOTDIR);
                }
                _ => {}
            }
            self.remove_entry(newdir, newname)?;
        }
        if matches!(self.node(src)?.body, Body::Dir { .. }) && self.is_ancestor(src, newdir) {
            return Err(Errno::EINVAL);
        }
        self.entries_mut(dir)?.remove(name);
        self.entries_mut(newdir)?.insert(newname.to_owned(), src);
        self.node_mut(src)?.ctime = SystemTime::now();
        Ok(())
    }

    /// Whether `a` is `b` or contains it.
    fn is_ancestor(&self, a: Ino, b: Ino) -> bool {
        let mut queue = VecDeque::from([a]);
        while let Some(d) = queue.pop_front() {
            if d == b {
                return true;
            }
            if let Ok(entries) = self.entries(d) {
                queue.extend(entries.values().copied());
            }
        }
        false
    }

    pub(crate) fn read(&self, ino: Ino, offset: u64, size: u32) -> R<&[u8]> {
        match &self.node(ino)?.body {
            Body::File { data, .. } => {
                let start = usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                let end = start.saturating_add(size as usize).min(data.len());
                Ok(&data[start..end])
            }
            Body::Dir { .. } => Err(Errno::EISDIR),
            Body::Symlink { .. } => Err(Errno::EINVAL),
        }
    }

    pub(crate) fn write(&mut self, ino: Ino, offset: u64, bytes: &[u8]) -> R<u32> {
        let end = offset.saturating_add(bytes.len() as u64);
        if end > MAX_FILE {
            return Err(Errno::EFBIG);
        }
        let node = self.node_mut(ino)?;
        node.mtime = SystemTime::now();
        node.ctime = node.mtime;
        let Body::File { data, .. } = &mut node.body else {
            return Err(Errno::EISDIR);
        };
        let (start, end) = (offset as usize, end as usize);
        if data.len() < end {
            data.resize(end, 0);
        }
        data[start..end].copy_from_slice(bytes);
        u32::try_from(bytes.len()).map_err(|_| Errno::EINVAL)
    }

    pub(crate) fn truncate(&mut self, ino: Ino, size: u64) -> R<()> {
        if size > MAX_FILE {
            return Err(Errno::EFBIG);
        }
        let node = self.node_mut(ino)?;
        node.mtime = SystemTime::now();
        node.ctime = node.mtime;
        match &mut node.body {
            Body::File { data, .. } => {
                data.resize(size as usize, 0);
                Ok(())
            }
            Body::Dir { .. } => Err(Errno::EISDIR),
            Body::Symlink { .. } => Err(Errno::EINVAL),
        }
    }

    pub(crate) fn node_mut_pub(&mut self, ino: Ino) -> R<&mut Inode> {
        self.node_mut(ino)
    }

    pub(crate) fn readlink(&self, ino: Ino) -> R<&Path> {
        match &self.node(ino)?.body {
            Body::Symlink { target } => Ok(target),
            _ => Err(Errno::EINVAL),
        }
    }

    /// `(inode, type, name)` of every live entry, `.` and `..` first.
    pub(crate) fn list(&self, dir: Ino) -> R<Vec<(Ino, FileType, OsString)>> {
        let entries = self.entries(dir)?;
        let mut out = vec![
            (dir, FileType::Directory, OsString::from(".")),
            (dir, FileType::Directory, OsString::from("..")),
        ];
        for (name, &child) in entries {
            if let Ok(n) = self.node(child) {
                out.push((child, n.kind(), name.clone()));
            }
        }
        Ok(out)
    }

    pub(crate) fn open(&mut self, ino: Ino) -> R<()> {
        self.node_mut(ino)?.open += 1;
        Ok(())
    }

    pub(crate) fn release(&mut self, ino: Ino) {
        if let Some(n) = self.inodes.get_mut(&ino) {
            n.open = n.open.saturating_sub(1);
        }
        self.maybe_free(ino);
    }

    /// `fsync` of a file: its contents and mode become durable (not its names).
    pub(crate) fn sync_file(&mut self, ino: Ino) -> R<()> {
        self.stats.file_syncs += 1;
        let node = self.node_mut(ino)?;
        let perm = node.perm;
        match &mut node.body {
            Body::File { data, durable } => *durable = Some((data.clone(), perm)),
            // fsync through a directory's file handle arrives as fsyncdir; a
            // symlink has nothing volatile.
            Body::Dir { .. } | Body::Symlink { .. } => {}
        }
        Ok(())
    }

    /// `fsync` of a directory: its entry list becomes durable as it is now.
    pub(crate) fn sync_dir(&mut self, ino: Ino) -> R<()> {
        self.stats.dir_syncs += 1;
        let (old, new) = match &mut self.node_mut(ino)?.body {
            Body::Dir { entries, durable } => {
                let old = std::mem::replace(durable, entries.clone());
                (old, entries.clone())
            }
            _ => return Err(Errno::ENOTDIR),
        };
        for child in new.values() {
            if let Some(c) = self.inodes.get_mut(child) {
                c.durable_refs += 1;
            }
        }
        for child in old.into_values() {
            if let Some(c) = self.inodes.get_mut(&child) {
                c.durable_refs = c.durable_refs.saturating_sub(1);
            }
            self.maybe_free(child);
        }
        Ok(())
    }

    /// Throw away everything not durable, as a power cut would.
    pub(crate) fn power_loss(&mut self) -> Loss {
        let mut loss = Loss::default();
        for node in self.inodes.values_mut() {
            node.open = 0;
            match &mut node.body {
                Body::File { data, durable } => {
                    let (d, perm) = durable.clone().unwrap_or((Vec::new(), node.perm));
                    if *data != d || node.perm != perm {
                        loss.files_reverted += 1;
                    }
                    *data = d;
                    node.perm = perm;
                }
                Body::Dir { entries, durable } => {
                    if entries != durable {
                        loss.dirs_reverted += 1;
                    }
                    entries.clone_from(durable);
                }
                Body::Symlink { .. } => {}
            }
        }
        // Keep what the root reaches; recount names (live == durable now).
        let mut reached = HashSet::from([ROOT]);
        let mut counts: HashMap<Ino, u32> = HashMap::from([(ROOT, 1)]);
        let mut queue = VecDeque::from([ROOT]);
        while let Some(d) = queue.pop_front() {
            if let Ok(entries) = self.entries(d) {
                for &child in entries.values() {
                    *counts.entry(child).or_default() += 1;
                    if reached.insert(child) {
                        queue.push_back(child);
                    }
                }
            }
        }
        let before = self.inodes.len();
        self.inodes.retain(|ino, _| reached.contains(ino));
        loss.inodes_dropped = before - self.inodes.len();
        for (ino, node) in &mut self.inodes {
            let c = counts.get(ino).copied().unwrap_or(0);
            node.nlink = c;
            node.durable_refs = c;
        }
        self.stats.power_losses += 1;
        self.generation += 1;
        loss
    }
}

fn set_meta_from(inode: &mut Inode, meta: &std::fs::Metadata) {
    use std::os::unix::fs::MetadataExt;
    inode.perm = (meta.mode() & 0o7777) as u16;
    inode.uid = meta.uid();
    inode.gid = meta.gid();
    if let Ok(t) = meta.modified() {
        inode.mtime = t;
        inode.ctime = t;
    }
}

fn io(op: &'static str, path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> Body {
        Body::File {
            data: Vec::new(),
            durable: None,
        }
    }

    fn dir() -> Body {
        Body::Dir {
            entries: BTreeMap::new(),
            durable: BTreeMap::new(),
        }
    }

    fn contents(t: &Tree, path: &[&str]) -> Option<Vec<u8>> {
        let mut ino = ROOT;
        for name in path {
            ino = t.lookup(ino, OsStr::new(name)).ok()?;
        }
        t.read(ino, 0, u32::MAX).ok().map(<[u8]>::to_vec)
    }

    fn new_file(t: &mut Tree, dir: Ino, name: &str, bytes: &[u8]) -> Ino {
        let ino = t.make(dir, OsStr::new(name), file(), 0o600, 0, 0).unwrap();
        t.write(ino, 0, bytes).unwrap();
        ino
    }

    #[test]
    fn unsynced_data_is_lost_and_synced_data_survives() {
        let mut t = Tree::new();
        let a = new_file(&mut t, ROOT, "a", b"one");
        t.sync_file(a).unwrap();
        t.sync_dir(ROOT).unwrap();
        t.write(a, 0, b"two").unwrap();
        let loss = t.power_loss();
        assert_eq!(contents(&t, &["a"]).unwrap(), b"one");
        assert_eq!(loss.files_reverted, 1);
    }

    #[test]
    fn a_durable_name_whose_data_was_never_synced_is_found_empty() {
        let mut t = Tree::new();
        new_file(&mut t, ROOT, "a", b"data");
        t.sync_dir(ROOT).unwrap();
        t.power_loss();
        assert_eq!(contents(&t, &["a"]).unwrap(), b"");
    }

    #[test]
    fn a_created_file_without_a_directory_fsync_disappears_even_if_fsynced() {
        let mut t = Tree::new();
        let a = new_file(&mut t, ROOT, "a", b"data");
        t.sync_file(a).unwrap();
        let loss = t.power_loss();
        assert_eq!(contents(&t, &["a"]), None);
        assert_eq!((loss.dirs_reverted, loss.inodes_dropped), (1, 1));
    }

    #[test]
    fn rename_without_directory_fsync_is_undone_and_with_one_survives() {
        for sync_dir in [false, true] {
            let mut t = Tree::new();
            let old = new_file(&mut t, ROOT, "store", b"old");
            t.sync_file(old).unwrap();
            t.sync_dir(ROOT).unwrap();
            let tmp = new_file(&mut t, ROOT, "store.tmp", b"new");
            t.sync_file(tmp).unwrap();
            t.rename(ROOT, OsStr::new("store.tmp"), ROOT, OsStr::new("store"), 0)
                .unwrap();
            if sync_dir {
                t.sync_dir(ROOT).unwrap();
            }
            t.power_loss();
            let want: &[u8] = if sync_dir { b"new" } else { b"old" };
            assert_eq!(
                contents(&t, &["store"]).unwrap(),
                want,
                "sync_dir={sync_dir}"
            );
            assert_eq!(contents(&t, &["store.tmp"]), None, "sync_dir={sync_dir}");
        }
    }

    #[test]
    fn cross_directory_rename_is_durable_per_directory() {
        let mut t = Tree::new();
        let a = t.make(ROOT, OsStr::new("a"), dir(), 0o755, 0, 0).unwrap();
        let b = t.make(ROOT, OsStr::new("b"), dir(), 0o755, 0, 0).unwrap();
        let f = new_file(&mut t, a, "f", b"x");
        t.sync_file(f).unwrap();
        for d in [ROOT, a, b] {
            t.sync_dir(d).unwrap();
        }
        t.rename(a, OsStr::new("f"), b, OsStr::new("g"), 0).unwrap();
        t.sync_dir(b).unwrap(); // the new name only: both names survive
        t.power_loss();
        assert_eq!(contents(&t, &["a", "f"]).unwrap(), b"x");
        assert_eq!(contents(&t, &["b", "g"]).unwrap(), b"x");
    }

    #[test]
    fn unlink_without_directory_fsync_is_undone() {
        let mut t = Tree::new();
        let a = new_file(&mut t, ROOT, "a", b"keep");
        t.sync_file(a).unwrap();
        t.sync_dir(ROOT).unwrap();
        t.unlink(ROOT, OsStr::new("a")).unwrap();
        assert_eq!(contents(&t, &["a"]), None);
        t.power_loss();
        assert_eq!(contents(&t, &["a"]).unwrap(), b"keep");
        t.unlink(ROOT, OsStr::new("a")).unwrap();
        t.sync_dir(ROOT).unwrap();
        t.power_loss();
        assert_eq!(contents(&t, &["a"]), None);
    }

    #[test]
    fn a_mkdir_is_durable_at_its_parents_fsync_and_its_entries_at_its_own() {
        let mut t = Tree::new();
        let d = t.make(ROOT, OsStr::new("d"), dir(), 0o755, 0, 0).unwrap();
        let f = new_file(&mut t, d, "f", b"x");
        t.sync_file(f).unwrap();
        t.sync_dir(ROOT).unwrap();
        t.power_loss();
        let d = t.lookup(ROOT, OsStr::new("d")).expect("d is durable");
        assert!(
            t.entries(d).unwrap().is_empty(),
            "d's entry f was never synced"
        );
    }

    #[test]
    fn replaced_inodes_are_freed_once_no_durable_name_needs_them() {
        let mut t = Tree::new();
        for i in 0..100u8 {
            let tmp = new_file(&mut t, ROOT, "tmp", &[i; 1000]);
            t.sync_file(tmp).unwrap();
            t.rename(ROOT, OsStr::new("tmp"), ROOT, OsStr::new("store"), 0)
                .unwrap();
            t.sync_dir(ROOT).unwrap();
        }
        assert_eq!(t.inodes.len(), 2, "root and the current store only");
        t.power_loss();
        assert_eq!(contents(&t, &["store"]).unwrap(), vec![99u8; 1000]);
    }

    #[test]
    fn load_and_store_round_trip_a_directory() {
        let src = tempfile::tempdir().unwrap();
        std::fs::create_dir(src.path().join("sub")).unwrap();
        std::fs::write(src.path().join("sub/f"), b"hello").unwrap();
        std::os::unix::fs::symlink("sub/f", src.path().join("link")).unwrap();
        let mut t = Tree::load(src.path()).unwrap();
        t.power_loss(); // all of it was on disk: all of it is durable
        let dst = tempfile::tempdir().unwrap();
        t.store(dst.path()).unwrap();
        assert_eq!(std::fs::read(dst.path().join("sub/f")).unwrap(), b"hello");
        assert_eq!(std::fs::read(dst.path().join("link")).unwrap(), b"hello");
    }
}
