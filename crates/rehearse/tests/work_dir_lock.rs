//! The work directory's lock across processes: a lock held by a live
//! process is refused, and one whose holder died is free, with nothing to
//! clean up. The other process is this test binary, started with
//! `REHEARSE_LOCK_HOLDER=<dir>` so that its ignored `lock_holder_main` entry
//! point takes the lock.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use rehearse::lock::{LockError, WorkDirLock};

/// What the holder prints once it holds the lock.
const LOCKED: &str = "<lock taken>";

/// Entry point of the holder process: takes the lock of
/// `$REHEARSE_LOCK_HOLDER`, says "locked", then exits at once without
/// releasing it (`REHEARSE_LOCK_THEN=exit`) or holds it until its standard
/// input closes.
#[test]
#[ignore = "entry point of the lock holder process, started by the other tests"]
fn lock_holder_main() {
    let Ok(dir) = std::env::var("REHEARSE_LOCK_HOLDER") else {
        return;
    };
    let lock = WorkDirLock::try_acquire(Path::new(&dir)).expect("the holder takes the lock");
    println!("{LOCKED}");
    if std::env::var("REHEARSE_LOCK_THEN").as_deref() == Ok("exit") {
        // Ends the process without running destructors: as a crash would.
        std::process::exit(0);
    }
    let _ = std::io::stdin().read_line(&mut String::new());
    drop(lock);
}

fn holder(dir: &Path, then: &str) -> Child {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "lock_holder_main",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("REHEARSE_LOCK_HOLDER", dir)
        .env("REHEARSE_LOCK_THEN", then)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let locked = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        // libtest writes "test lock_holder_main ... " on the same line first.
        .any(|line| line.ends_with(LOCKED));
    assert!(locked, "the holder process did not take the lock");
    child
}

#[test]
fn a_lock_held_by_a_live_process_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut live = holder(dir.path(), "hold");
    let refused = WorkDirLock::try_acquire(dir.path());
    let _ = live.kill();
    let _ = live.wait();
    assert!(
        matches!(refused, Err(LockError::Busy { .. })),
        "{refused:?}"
    );
}

#[test]
fn a_lock_left_by_a_dead_process_is_taken() {
    let dir = tempfile::tempdir().unwrap();
    let mut dead = holder(dir.path(), "exit");
    assert!(dead.wait().unwrap().success());
    assert!(
        WorkDirLock::path(dir.path()).exists(),
        "the dead holder left its lock file behind"
    );
    let taken = WorkDirLock::try_acquire(dir.path());
    assert!(taken.is_ok(), "{taken:?}");
}

#[test]
fn a_lock_whose_holder_is_killed_is_taken() {
    let dir = tempfile::tempdir().unwrap();
    let mut killed = holder(dir.path(), "hold");
    killed.kill().unwrap();
    let _ = killed.wait();
    let taken = WorkDirLock::try_acquire(dir.path());
    assert!(taken.is_ok(), "{taken:?}");
}
