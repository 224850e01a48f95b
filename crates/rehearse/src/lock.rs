//! One rehearsal at a time per work directory (they share the checkout and
//! the run directories): an exclusive lock on `<work dir>/rehearsal.lock`, taken with
//! the operating system's file locking (`flock` on Unix, `LockFileEx` on
//! Windows). The kernel releases it when its holder's file closes, so a
//! rehearsal that crashes or is killed leaves nothing to clean up, and no
//! process id is ever checked.

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};

/// Why the work directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another live process holds the lock.
    #[error(
        "another rehearsal is running in {}; wait for it to finish, or pass --work-dir to use another directory",
        dir.display()
    )]
    Busy { dir: PathBuf },
    /// The lock file cannot be created or locked.
    #[error("cannot lock {}: {source}; check that the work directory is writable", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The held lock of a work directory; released when dropped (or when the
/// process ends, however it ends).
#[derive(Debug)]
pub struct WorkDirLock {
    _file: File,
}

impl WorkDirLock {
    /// The lock file of `work_dir`.
    pub fn path(work_dir: &Path) -> PathBuf {
        work_dir.join("rehearsal.lock")
    }

    /// Takes the lock of `work_dir` (which must exist) if no live process
    /// holds it.
    pub fn try_acquire(work_dir: &Path) -> Result<Self, LockError> {
        let path = Self::path(work_dir);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        // Neither truncated nor removed: the file itself is only a name to
        // lock; whoever holds its lock owns the directory.
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(TryLockError::WouldBlock) => Err(LockError::Busy {
                dir: work_dir.to_path_buf(),
            }),
            Err(TryLockError::Error(source)) => Err(io(source)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_work_dir_is_locked() {
        let dir = tempfile::tempdir().unwrap();
        assert!(WorkDirLock::try_acquire(dir.path()).is_ok());
        assert!(WorkDirLock::path(dir.path()).is_file());
    }

    #[test]
    fn a_held_lock_is_refused_with_the_message_naming_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let _held = WorkDirLock::try_acquire(dir.path()).unwrap();
        let error = WorkDirLock::try_acquire(dir.path()).unwrap_err();
        assert!(matches!(&error, LockError::Busy { dir: d } if d == dir.path()));
        assert!(
            error.to_string().starts_with(&format!(
                "another rehearsal is running in {}",
                dir.path().display()
            )),
            "{error}"
        );
    }

    #[test]
    fn a_dropped_lock_is_free_again() {
        let dir = tempfile::tempdir().unwrap();
        drop(WorkDirLock::try_acquire(dir.path()).unwrap());
        assert!(WorkDirLock::try_acquire(dir.path()).is_ok());
    }
}
