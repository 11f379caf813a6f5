//! Taking a new backup, in two phases so that other writers never wait for the copy:
//!
//! 1. [`start`], without a lock: the pages of a read snapshot are copied into a hidden
//!    temporary file. In WAL mode the snapshot is held for the whole copy, and writers go on
//!    committing; in rollback-journal mode the copy reads between their commits.
//! 2. [`Copy::finish`], under the caller's write lock, before it writes anything: the copy is
//!    made exactly the database now. When nothing was committed since the snapshot (SQLite's
//!    data version says so), it already is; in WAL mode the pages of the commits since are
//!    written into it from the log; otherwise it is copied again, under the lock. Then it is
//!    synced, checked (it must hold the version the caller read under the lock) and renamed.
//!
//! The temporary file is locked (`flock`) while it is written, so that another run's cleanup
//! of interrupted backups never removes it; a [`NewBackup`] removes itself unless kept.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::catalogue::BackupDir;
use super::copy::{CopyFailure, copy_pages, finish_file};
use super::file::{Check, backup_history};
use super::name::NewNames;
use super::trust::create_file;
use super::wal::Committed;
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
async fn open_source(
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

/// How the live database journals, which decides how a copy catches up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Journal {
    /// WAL: the snapshot is held during the copy; the log has every commit since.
    Wal,
    /// A rollback journal: a commit since the copy means copying again.
    Rollback,
}

/// A copy of a read snapshot of the database, made without the lock, to be finished under it.
pub(crate) struct Copy {
    /// The temporary file (removed on drop until finished).
    partial: NewBackup,
    /// Held while the temporary file is written: another run's cleanup leaves it alone.
    _in_use: File,
    names: NewNames,
    file: PathBuf,
    database: PathBuf,
    source: RawConnection,
    journal: Journal,
    /// The data version of the snapshot copied; `None`: the copy must be made again.
    seen: Option<u32>,
    busy_timeout: Duration,
    progress: Option<ProgressFn>,
}

/// Phase 1, without a lock: copies a read snapshot of the database `file`, journaled as
/// `journal`, into a new temporary file in `dir`. `version` is the version read without the
/// lock (for the file's name).
///
/// The database file itself is never opened but through SQLite: closing another descriptor of
/// it would drop the POSIX locks that this process's connections hold on it.
pub(crate) async fn start(
    dir: &BackupDir,
    (file, journal): (&Path, Journal),
    version: i64,
    reason: Reason,
    busy_timeout: Duration,
    progress: Option<ProgressFn>,
) -> Result<Copy, Error> {
    let database = dir.database().to_owned();
    let created_dirs = dir.prepare()?;
    // Created here, with the mode it keeps (SQLite would make it readable by everyone), and
    // locked while it is written; both under the directory's lock, so that another run's
    // cleanup never finds it created but not yet locked.
    let dir_lock = dir.lock().map_err(|cause| Error::Backup {
        database: database.clone(),
        path: dir.path().to_owned(),
        cause: BackupError::io("cannot lock the backup directory")(cause),
    })?;
    let names = create_partial(dir, version, reason)?;
    let failed = |cause| Error::Backup {
        database: database.clone(),
        path: names.partial.clone(),
        cause,
    };
    let partial = NewBackup {
        path: names.partial.clone(),
        created_dirs,
        kept: false,
    };
    let in_use = File::open(&names.partial)
        .and_then(|f| f.try_lock().map(|()| f).map_err(std::io::Error::other))
        .map_err(|e| failed(BackupError::io("cannot lock the file")(e)))?;
    drop(dir_lock);
    tracing::info!(path = %names.complete_for(version).display(), version, "taking a backup");
    let source = open_source(&database, file, busy_timeout).await?;
    let (path, report) = (names.partial.clone(), progress.clone());
    let (source, seen) = blocking(move || {
        let seen = copy_snapshot(&source, journal, &path, report.as_ref());
        (source, seen)
    })
    .await;
    let seen = seen.map_err(failed)?;
    tracing::info!(path = %names.partial.display(), "backup copied; it is brought up to date under the write lock");
    Ok(Copy {
        partial,
        _in_use: in_use,
        names,
        file: file.to_owned(),
        database,
        source,
        journal,
        seen,
        busy_timeout,
        progress,
    })
}

/// Creates the temporary file of a new backup (under the directory's lock). Another run may
/// have named its own in the same microsecond: then the next name is taken.
fn create_partial(dir: &BackupDir, version: i64, reason: Reason) -> Result<NewNames, Error> {
    let mut attempts = 0;
    loop {
        let names = dir.new_names(version, reason);
        match create_file(&names.partial, dir.mode().for_file()) {
            Ok(()) => return Ok(names),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempts < 100 => {
                attempts += 1;
            }
            Err(e) => {
                return Err(Error::Backup {
                    database: dir.database().to_owned(),
                    path: names.partial,
                    cause: BackupError::io("cannot create the file")(e),
                });
            }
        }
    }
}

/// Copies a read snapshot through `source`; returns the snapshot's data version, or `None`
/// when the copy must be made again under the lock (the database was busy, or changed again
/// and again during a copy in rollback-journal mode). In WAL mode the snapshot stays open (it
/// keeps the commits since in the log) until [`Copy::finish`].
fn copy_snapshot(
    source: &RawConnection,
    journal: Journal,
    partial: &Path,
    progress: Option<&ProgressFn>,
) -> Result<Option<u32>, BackupError> {
    if journal == Journal::Wal {
        source
            .exec("BEGIN; SELECT count(*) FROM sqlite_master;")
            .map_err(BackupError::sqlite("cannot read a snapshot"))?;
    }
    match copy_pages(source, partial, progress) {
        Ok(()) => {
            // Synced now, without the lock: under it, only what catches up is left to sync.
            File::open(partial)
                .and_then(|file| file.sync_data())
                .map_err(BackupError::io("cannot sync the copy"))?;
            Ok(source.data_version().ok())
        }
        Err(CopyFailure::Failed(cause)) => Err(cause),
        Err(CopyFailure::Busy | CopyFailure::Restarted) => Ok(None),
    }
}

impl Copy {
    /// Phase 2, under the caller's write lock, before anything is written: makes the copy
    /// exactly the database now, checks that it holds `version`, syncs it and renames it. Hands
    /// the source connection back (its snapshot ended).
    pub async fn finish(self, version: i64) -> Result<(NewBackup, RawConnection), Error> {
        let Copy {
            mut partial,
            _in_use,
            names,
            file,
            database,
            source,
            journal,
            seen,
            busy_timeout,
            progress,
        } = self;
        let path = names.partial.clone();
        let caught_up =
            blocking(move || catch_up(source, journal, seen, &file, &path, progress.as_ref()))
                .await;
        let source = caught_up
            .map_err(|failure| failure.into_error(&database, &names.partial, busy_timeout))?;
        let failed = |cause| Error::Backup {
            database: database.clone(),
            path: names.partial.clone(),
            cause,
        };
        let held = backup_history(&names.partial, Check::HistoryOnly)
            .await
            .map_err(failed)?
            .current_version();
        if held != version {
            return Err(failed(BackupError::WrongVersion {
                expected: version,
                found: held,
            }));
        }
        let complete = names.complete_for(version);
        if complete.exists() {
            return Err(failed(BackupError::Io {
                doing: "cannot name the backup",
                cause: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    format!("{} already exists", complete.display()),
                ),
            }));
        }
        std::fs::rename(&names.partial, &complete)
            .map_err(|e| failed(BackupError::io("cannot rename the finished copy")(e)))?;
        partial.path.clone_from(&complete);
        if let Some(dir) = complete.parent() {
            sync_dir(dir)
                .map_err(|e| failed(BackupError::io("cannot sync the backup directory")(e)))?;
        }
        tracing::info!(path = %complete.display(), version, "backup taken");
        Ok((partial, source))
    }
}

/// Makes the copy exactly the database as the caller's lock holds it, and syncs it.
fn catch_up(
    source: RawConnection,
    journal: Journal,
    seen: Option<u32>,
    file: &Path,
    partial: &Path,
    progress: Option<&ProgressFn>,
) -> Result<RawConnection, CopyFailure> {
    if journal == Journal::Wal {
        // Ends the snapshot (a no-op when the copy was not made from one).
        let _ = source.exec("COMMIT");
    }
    source
        .exec("SELECT count(*) FROM sqlite_master")
        .map_err(BackupError::sqlite("cannot read the database"))?;
    let now = source
        .data_version()
        .map_err(BackupError::sqlite("cannot read the data version"))?;
    let source = match (seen, journal) {
        (Some(seen), _) if seen == now => source,
        (Some(_), Journal::Wal) => {
            tracing::info!("catching up with the commits made during the copy");
            let wal = PathBuf::from(format!("{}-wal", file.display()));
            match Committed::read(&wal).map_err(BackupError::io("cannot read the log"))? {
                Some(log) => {
                    tracing::info!(
                        pages = log.len(),
                        "writing the pages committed since the snapshot"
                    );
                    log.apply(&wal, partial)
                        .map_err(BackupError::io("cannot bring the copy up to date"))?;
                    source
                }
                None => {
                    copy_pages(&source, partial, progress)?;
                    source
                }
            }
        }
        _ => {
            tracing::info!("copying again under the write lock");
            copy_pages(&source, partial, progress)?;
            source
        }
    };
    finish_file(partial).map_err(BackupError::io("cannot finish the file"))?;
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
