//! Where a traced command is in the lock/write life cycle that [`Point`]s name, and
//! whether a stopped call is the one a `pct` point waits for.
//!
//! The tracer sees a call at its entry, before it runs, with its raw arguments.
//! Two facts need more than the arguments, and are read from `/proc` (see
//! [`ProcFds`]) only while a point is still waiting, so they cost nothing after
//! the delay: whether a descriptor names a file (a write to a pipe, socket, event
//! descriptor or `/dev/null` is not a write-back), and whether a locked descriptor
//! is still open (a `close` releases a `flock`; the filter does not stop `close`,
//! which a Python start-up calls hundreds of times, so a release by `close` is
//! noticed when the next `unlink` comes: the locked descriptor is gone or names
//! another file).

use std::os::unix::fs::MetadataExt;

use nix::unistd::Pid;

use crate::calls::Call;
use crate::schedule::Point;

/// What the life cycle needs to know about a thread's descriptors.
pub(crate) trait Fds {
    /// The descriptor names a regular file.
    fn is_file(&self, fd: u64) -> bool;
    /// The (device, inode) the descriptor refers to, if it is open.
    fn identity(&self, fd: u64) -> Option<FileId>;
}

/// A stopped thread's descriptors, through `/proc/TID/fd` (threads of a process
/// share one table).
pub(crate) struct ProcFds(pub(crate) Pid);

impl Fds for ProcFds {
    fn is_file(&self, fd: u64) -> bool {
        // A regular file, reached through a path: not a pipe, socket, device or
        // anonymous inode (an eventfd). A file on a tmpfs under /dev/shm counts.
        let link = format!("/proc/{}/fd/{fd}", self.0);
        std::fs::read_link(&link).is_ok_and(|target| target.is_absolute())
            && std::fs::metadata(&link).is_ok_and(|m| m.file_type().is_file())
    }

    fn identity(&self, fd: u64) -> Option<FileId> {
        std::fs::metadata(format!("/proc/{}/fd/{fd}", self.0))
            .ok()
            .map(|m| (m.dev(), m.ino()))
    }
}

/// A file's (device, inode).
type FileId = (u64, u64);

/// A lock-taking call: `flock` without `LOCK_UN`, or an `fcntl` lock command.
fn is_lock_attempt(call: Call, args: [u64; 3]) -> bool {
    (call == Call::Flock && args[1] & u64::from(libc::LOCK_UN.unsigned_abs()) == 0)
        || call == Call::FcntlLock
}

/// One command's progress through its lock/write life cycle.
#[derive(Debug, Default)]
pub(crate) struct Lifecycle {
    /// A lock was released explicitly (`flock(LOCK_UN)`, or `close` of a locked
    /// descriptor when `close` is stopped).
    released: bool,
    /// Descriptors a lock was taken on, with the file each named then.
    locked: Vec<(u64, Option<FileId>)>,
    /// A lock was attempted (`flock` or an `fcntl` lock command).
    lock_attempted: bool,
    /// The plan's one delay has been spent.
    pub(crate) fired: bool,
}

impl Lifecycle {
    /// If `call` (with `args`, stopped in a thread whose descriptors `fds` shows) is
    /// where `point`'s delay lands, the name to report it under.
    pub(crate) fn matches(
        &self,
        point: Point,
        call: Call,
        args: [u64; 3],
        fds: &dyn Fds,
    ) -> Option<&'static str> {
        let file_write = || call.is_write() && args[0] > 2 && fds.is_file(args[0]);
        // The fallback of the lock points: a write-back before any lock attempt.
        let no_lock = || {
            if self.lock_attempted {
                None
            } else if call.is_rename() {
                Some("before-rename (no lock)")
            } else if file_write() {
                Some("before-write (no lock)")
            } else {
                None
            }
        };
        match point {
            Point::BeforeRename => call.is_rename().then_some(point.name()),
            Point::BeforeWrite => file_write().then_some(point.name()),
            Point::UnlockUnlink => {
                if call.is_unlink() && self.is_released(fds) {
                    Some(point.name())
                } else {
                    no_lock()
                }
            }
            Point::OpenLock => {
                if is_lock_attempt(call, args) {
                    Some(point.name())
                } else {
                    no_lock()
                }
            }
        }
    }

    /// Has a lock been released: explicitly, or by closing (or reusing) a
    /// descriptor that was locked?
    fn is_released(&self, fds: &dyn Fds) -> bool {
        self.released
            || self
                .locked
                .iter()
                .any(|(fd, then)| fds.identity(*fd) != *then)
    }

    /// Record what `call` does to the life cycle (after [`Lifecycle::matches`]).
    pub(crate) fn observe(&mut self, call: Call, args: [u64; 3], fds: &dyn Fds) {
        match call {
            Call::Flock if args[1] & u64::from(libc::LOCK_UN.unsigned_abs()) != 0 => {
                self.released = true;
                self.locked.retain(|l| l.0 != args[0]);
            }
            Call::Flock | Call::FcntlLock => {
                self.lock_attempted = true;
                if !self.fired {
                    self.locked.push((args[0], fds.identity(args[0])));
                }
            }
            Call::Close => {
                let before = self.locked.len();
                self.locked.retain(|l| l.0 != args[0]);
                if self.locked.len() < before {
                    self.released = true;
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// Descriptors as a test says: fd -> (is a file, identity).
    #[derive(Default)]
    struct Fake(HashMap<u64, (bool, (u64, u64))>);

    impl Fds for Fake {
        fn is_file(&self, fd: u64) -> bool {
            self.0.get(&fd).is_some_and(|d| d.0)
        }
        fn identity(&self, fd: u64) -> Option<(u64, u64)> {
            self.0.get(&fd).map(|d| d.1)
        }
    }

    fn lock(fd: u64) -> [u64; 3] {
        [fd, u64::from(libc::LOCK_EX.unsigned_abs()), 0]
    }

    #[test]
    fn unlock_then_unlink_matches_only_after_a_release() {
        let fds = Fake(HashMap::from([(5, (true, (1, 50)))]));
        let mut life = Lifecycle::default();
        let unlink = |life: &Lifecycle, fds: &Fake| {
            life.matches(Point::UnlockUnlink, Call::Unlinkat, [0; 3], fds)
        };
        assert_eq!(unlink(&life, &fds), None);
        assert_eq!(
            life.matches(Point::OpenLock, Call::Flock, lock(5), &fds),
            Some("open-lock")
        );
        life.observe(Call::Flock, lock(5), &fds);
        assert_eq!(unlink(&life, &fds), None, "still locked");
        life.observe(Call::Close, [5, 0, 0], &fds);
        assert_eq!(unlink(&life, &fds), Some("unlock-unlink"));
    }

    #[test]
    fn a_close_the_filter_did_not_stop_is_seen_as_a_release_at_the_unlink() {
        let mut fds = Fake(HashMap::from([(5, (true, (1, 50)))]));
        let mut life = Lifecycle::default();
        life.observe(Call::Flock, lock(5), &fds);
        assert_eq!(
            life.matches(Point::UnlockUnlink, Call::Unlink, [0; 3], &fds),
            None
        );
        // Closed: fd 5 no longer open.
        fds.0.remove(&5);
        assert_eq!(
            life.matches(Point::UnlockUnlink, Call::Unlink, [0; 3], &fds),
            Some("unlock-unlink")
        );
        // Closed and reused for another file: released as well.
        fds.0.insert(5, (true, (1, 99)));
        assert_eq!(
            life.matches(Point::UnlockUnlink, Call::Unlink, [0; 3], &fds),
            Some("unlock-unlink")
        );
    }

    #[test]
    fn writes_to_standard_streams_pipes_and_devices_are_not_a_write_back() {
        // fd 3: a pipe (not a file); fd 4: a file.
        let fds = Fake(HashMap::from([(3, (false, (9, 3))), (4, (true, (1, 4)))]));
        let life = Lifecycle::default();
        let write = |fd| life.matches(Point::BeforeWrite, Call::Write, [fd, 0, 0], &fds);
        assert_eq!(write(1), None);
        assert_eq!(write(3), None);
        assert_eq!(write(4), Some("before-write"));
        let unlock = [3, u64::from(libc::LOCK_UN.unsigned_abs()), 0];
        assert_eq!(
            life.matches(Point::OpenLock, Call::Flock, unlock, &fds),
            None
        );
    }

    #[test]
    fn a_lock_point_in_a_command_that_takes_no_lock_falls_back_to_its_first_write_back() {
        let fds = Fake(HashMap::from([(3, (false, (9, 3))), (4, (true, (1, 4)))]));
        for point in [Point::UnlockUnlink, Point::OpenLock] {
            let life = Lifecycle::default();
            let at = |call, fd| life.matches(point, call, [fd, 0, 0], &fds);
            assert_eq!(at(Call::Write, 1), None, "{point}");
            assert_eq!(at(Call::Write, 3), None, "{point}: a pipe");
            assert_eq!(
                at(Call::Write, 4),
                Some("before-write (no lock)"),
                "{point}"
            );
            assert_eq!(
                at(Call::Renameat2, 0),
                Some("before-rename (no lock)"),
                "{point}"
            );
        }
        // Once a lock was attempted, a write-back is no longer a fallback.
        let mut life = Lifecycle::default();
        life.observe(Call::Flock, lock(6), &fds);
        for point in [Point::UnlockUnlink, Point::OpenLock] {
            assert_eq!(life.matches(point, Call::Rename, [0; 3], &fds), None);
            assert_eq!(life.matches(point, Call::Write, [4, 0, 0], &fds), None);
        }
    }

    #[test]
    fn proc_fds_tells_a_file_from_a_pipe_and_a_device() {
        use std::os::fd::AsRawFd;
        let dir = tempfile::tempdir().unwrap();
        let file = std::fs::File::create(dir.path().join("f")).unwrap();
        let null = std::fs::File::open("/dev/null").unwrap();
        let (r, _w) = std::io::pipe().unwrap();
        let me = ProcFds(nix::unistd::getpid());
        let fd = |f: &dyn AsRawFd| u64::try_from(f.as_raw_fd()).unwrap();
        assert!(me.is_file(fd(&file)));
        assert!(!me.is_file(fd(&null)));
        assert!(!me.is_file(fd(&r)));
        if std::path::Path::new("/dev/shm").is_dir() {
            let shm = tempfile::tempfile_in("/dev/shm").unwrap();
            assert!(me.is_file(fd(&shm)), "a file on /dev/shm is a file");
        }
        assert!(me.identity(fd(&file)).is_some());
        assert_ne!(me.identity(fd(&file)), me.identity(fd(&null)));
    }
}
