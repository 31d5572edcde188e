//! faultfs through the kernel: real files, real fsyncs, real locks, real power losses.
//!
//! Each test mounts over its own temporary directory. Without `/dev/fuse` the
//! tests say so on stderr and pass without checking anything (CI installs fuse3 and
//! has the device, so there they always run).

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::process::Command;

use faultfs::FaultFs;

fn mounted() -> Option<(tempfile::TempDir, FaultFs)> {
    if !faultfs::available() {
        eprintln!("SKIPPED: /dev/fuse is absent, faultfs cannot be mounted here");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultFs::mount(dir.path()).expect("mount faultfs");
    Some((dir, fs))
}

fn write(path: &Path, bytes: &[u8], sync: bool) {
    let mut f = File::create(path).unwrap();
    f.write_all(bytes).unwrap();
    if sync {
        f.sync_all().unwrap();
    }
}

fn sync_dir(dir: &Path) {
    File::open(dir).unwrap().sync_all().unwrap();
}

#[test]
fn data_not_fsynced_is_lost_at_power_loss_and_fsynced_data_survives() {
    let Some((dir, mut fs)) = mounted() else {
        return;
    };
    let (synced, unsynced) = (dir.path().join("synced"), dir.path().join("unsynced"));
    write(&synced, b"kept", true);
    write(&unsynced, b"lost", false);
    sync_dir(dir.path()); // both names durable; only one file's data
    let loss = fs.power_loss().unwrap();
    assert_eq!(std::fs::read(&synced).unwrap(), b"kept");
    assert_eq!(
        std::fs::read(&unsynced).unwrap(),
        b"",
        "unsynced data must be gone"
    );
    assert_eq!(loss.files_reverted, 1);
    fs.unmount().unwrap();
}

#[test]
fn rename_without_directory_fsync_is_undone_and_with_one_survives() {
    let Some((dir, mut fs)) = mounted() else {
        return;
    };
    let store = dir.path().join("store");
    let tmp = dir.path().join("store.tmp");
    write(&store, b"old", true);
    sync_dir(dir.path());

    write(&tmp, b"new", true);
    std::fs::rename(&tmp, &store).unwrap();
    assert_eq!(std::fs::read(&store).unwrap(), b"new");
    fs.power_loss().unwrap();
    assert_eq!(
        std::fs::read(&store).unwrap(),
        b"old",
        "rename must be undone"
    );
    assert!(
        !tmp.exists(),
        "the temp file's creation was never durable either"
    );

    write(&tmp, b"new", true);
    std::fs::rename(&tmp, &store).unwrap();
    sync_dir(dir.path());
    fs.power_loss().unwrap();
    assert_eq!(
        std::fs::read(&store).unwrap(),
        b"new",
        "rename + dir fsync survives"
    );
    assert_eq!(fs.stats().power_losses, 2);
    fs.unmount().unwrap();
}

#[test]
fn unlink_and_mkdir_are_volatile_until_the_parent_is_fsynced() {
    let Some((dir, mut fs)) = mounted() else {
        return;
    };
    let f = dir.path().join("f");
    write(&f, b"x", true);
    sync_dir(dir.path());
    std::fs::remove_file(&f).unwrap();
    std::fs::create_dir(dir.path().join("d")).unwrap();
    fs.power_loss().unwrap();
    assert_eq!(std::fs::read(&f).unwrap(), b"x", "the unlink is undone");
    assert!(!dir.path().join("d").exists(), "the mkdir is undone");
    fs.unmount().unwrap();
}

#[test]
fn flock_on_the_mount_excludes_another_process() {
    let Some((dir, fs)) = mounted() else {
        return;
    };
    if Command::new("flock").arg("--version").output().is_err() {
        eprintln!("SKIPPED: no `flock` program to take the lock from another process");
        return;
    }
    let lock = dir.path().join("store.lock");
    let held = File::create(&lock).unwrap();
    held.lock().unwrap();
    let other = || {
        Command::new("flock")
            .args(["--nonblock", "--conflict-exit-code", "7"])
            .arg(&lock)
            .arg("true")
            .status()
            .unwrap()
            .code()
    };
    assert_eq!(other(), Some(7), "another process got a lock we hold");
    held.unlock().unwrap();
    assert_eq!(
        other(),
        Some(0),
        "the lock was released, another process must get it"
    );
    drop(held);
    fs.unmount().unwrap();
}

#[test]
fn unmount_writes_the_live_contents_back_and_mount_reads_them_as_durable() {
    let Some((dir, fs)) = mounted() else {
        return;
    };
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    write(
        &dir.path().join("sub/f"),
        b"unsynced but cleanly unmounted",
        false,
    );
    fs.unmount().unwrap();
    let f = dir.path().join("sub/f");
    assert_eq!(
        std::fs::read(&f).unwrap(),
        b"unsynced but cleanly unmounted"
    );

    let mut fs = FaultFs::mount(dir.path()).unwrap();
    fs.power_loss().unwrap();
    assert_eq!(
        std::fs::read(&f).unwrap(),
        b"unsynced but cleanly unmounted"
    );
    fs.unmount().unwrap();
}
