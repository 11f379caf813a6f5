//! Taking a new backup: the copy goes to a hidden temporary file, which is synced, checked and
//! only then renamed; the result is a [`NewBackup`] that removes itself unless kept.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::catalogue::{BackupDir, NewNames};
use super::copy::{CopyFailure, copy_to_new_file};
use super::file::{Check, backup_history};
use super::trust::create_file;
use super::{ProgressFn, Reason, blocking};
use crate::error::{BackupError, Error};
use crate::ffi::{OpenMode, RawConnection};

/// A backup written by this run. Dropped without [`keep`](Self::keep), it removes its file,
/// and the directories this run created for it when nothing else is in them: a run that fails
/// leaves nothing behind.
#[derive(Debug)]
pub(crate) struct NewBackup {
    path: PathBuf,
    /// Created for this backup, deepest first.
    created_dirs: Vec<PathBuf>,
    kept: bool,
}

impl NewBackup {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps the backup for good and returns its path.
    pub fn keep(mut self) -> PathBuf {
        self.kept = true;
        std::mem::take(&mut self.path)
    }
}

impl Drop for NewBackup {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        if let Err(err) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), %err, "could not remove the backup of a failed run");
        }
        for dir in &self.created_dirs {
            // Only when empty: nothing but this run's backup was ever in it.
            if std::fs::remove_dir(dir).is_err() {
                break;
            }
        }
    }
}

/// Opens a connection to read the database `file` for a backup.
pub(crate) async fn open_source(
    database: &Path,
    file: &Path,
    busy_timeout: Duration,
) -> Result<RawConnection, Error> {
    let path = file.to_owned();
    blocking(move || {
        let source = RawConnection::open(&path, OpenMode::Existing)?;
        source.set_busy_timeout(busy_timeout);
        Ok(source)
    })
    .await
    .map_err(|failure| Error::Backup {
        database: database.to_owned(),
        path: file.to_owned(),
        cause: BackupError::Sqlite {
            doing: "cannot open the database",
            failure,
        },
    })
}

/// Copies the database read through `source`, which must hold `version`, into a new backup in
/// `dir`, and hands `source` back. The caller holds the write lock and has written nothing
/// yet, so the copy is exactly the committed state.
pub(crate) async fn take(
    dir: &BackupDir,
    source: RawConnection,
    version: i64,
    reason: Reason,
    busy_timeout: Duration,
    progress: Option<ProgressFn>,
) -> Result<(NewBackup, RawConnection), Error> {
    let created_dirs = dir.prepare()?;
    let names = dir.new_names(version, reason);
    tracing::info!(path = %names.complete.display(), version, "taking a backup");
    // Until it is complete, the partial file is what must go on failure.
    let mut guard = NewBackup {
        path: names.partial.clone(),
        created_dirs,
        kept: false,
    };
    let mode = dir.mode().for_file();
    let source = write(&names, mode, &mut guard, source, version, progress)
        .await
        .map_err(|failure| failure.into_error(dir.database(), &guard.path, busy_timeout))?;
    tracing::info!(path = %guard.path.display(), version, "backup taken");
    Ok((guard, source))
}

/// Copies into the partial file, checks the version it holds, renames it to its final name
/// (and points `guard` at it) and syncs the directory.
async fn write(
    names: &NewNames,
    mode: u32,
    guard: &mut NewBackup,
    source: RawConnection,
    version: i64,
    progress: Option<ProgressFn>,
) -> Result<RawConnection, CopyFailure> {
    // Created here, with the mode it keeps: SQLite would create it readable by everyone.
    create_file(&names.partial, mode).map_err(BackupError::io("cannot create the file"))?;
    let partial = names.partial.clone();
    let source = blocking(move || copy_to_new_file(source, &partial, progress.as_ref())).await?;
    let held = backup_history(&names.partial, Check::HistoryOnly)
        .await?
        .current_version();
    if held != version {
        return Err(BackupError::WrongVersion {
            expected: version,
            found: held,
        }
        .into());
    }
    if names.complete.exists() {
        return Err(BackupError::Io {
            doing: "cannot name the backup",
            cause: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{} already exists", names.complete.display()),
            ),
        }
        .into());
    }
    std::fs::rename(&names.partial, &names.complete)
        .map_err(BackupError::io("cannot rename the finished copy"))?;
    guard.path.clone_from(&names.complete);
    if let Some(dir) = names.complete.parent() {
        sync_dir(dir).map_err(BackupError::io("cannot sync the backup directory"))?;
    }
    Ok(source)
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}
