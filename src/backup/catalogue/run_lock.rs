//! The lock that the runs of one database take turns on before they copy it: a hidden, empty
//! file of the backup directory, `.<db file>.backup-<tag>.lock`, locked with `flock`. Only one
//! run copies a database at a time; the others wait for it, then find the work done.

use std::path::PathBuf;
use std::time::Duration;

use super::BackupDir;
use crate::backup::trust::{check_file, create_file};
use crate::error::{BackupError, Error, LockHolder};

/// How often a run waiting for another run of the same database looks again.
const RUN_LOCK_POLL: Duration = Duration::from_millis(10);

/// The lock of the runs of one database that back it up ([`BackupDir::lock_runs`]), released
/// on drop.
#[derive(Debug)]
pub(crate) struct RunLock {
    file: std::fs::File,
    path: PathBuf,
}

impl RunLock {
    /// Releases the lock and removes its file: for a run that created the backup directory
    /// and leaves it as it found it (absent). A run that opened the file meanwhile holds a lock
    /// on a file no longer in the directory, which costs at most a second copy, never a wrong
    /// backup: the write lock is what makes a backup exact.
    pub fn remove(self) {
        let _ = std::fs::remove_file(&self.path);
        drop(self.file);
    }
}

impl BackupDir {
    /// Waits, up to `timeout`, for the lock that the runs of this database that back it up
    /// take before they copy it (`flock` on a hidden file of the directory, which must exist):
    /// so only one copies at a time, and the others find the work done before copying
    /// anything. Held until the guard is dropped.
    pub async fn lock_runs(&self, timeout: Duration) -> Result<RunLock, Error> {
        let path = self
            .dir
            .join(format!(".{}{}.lock", self.prefix(), self.tag.as_str()));
        let file = match std::fs::OpenOptions::new().read(true).open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Read and written by its owner only: it holds nothing.
                match create_file(&path, 0o600) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => {
                        return Err(self.error(&path, BackupError::io("cannot create the lock")(e)));
                    }
                }
                std::fs::File::open(&path)
                    .map_err(|e| self.error(&path, BackupError::io("cannot open the lock")(e)))?
            }
            Err(e) => return Err(self.error(&path, BackupError::io("cannot open the lock")(e))),
        };
        let meta = file.metadata().map_err(|e| {
            self.error(&path, BackupError::io("cannot read the lock's metadata")(e))
        })?;
        check_file(&path, &meta)?;
        let deadline = std::time::Instant::now() + timeout;
        let mut waited = false;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(RunLock { file, path }),
                Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                    if !waited {
                        tracing::info!(database = %self.database.display(), "another run of this database is taking a backup: waiting for it");
                        waited = true;
                    }
                    tokio::time::sleep(RUN_LOCK_POLL).await;
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(Error::Busy {
                        database: self.database.clone(),
                        timeout,
                        holder: LockHolder::Migrator,
                    });
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(self.error(&path, BackupError::io("cannot take the lock")(e)));
                }
            }
        }
    }
}
