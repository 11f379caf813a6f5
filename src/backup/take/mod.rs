//! Taking a new backup, in two phases so that other writers never wait for the copy:
//!
//! 1. [`start`], without a lock: the database is copied into a hidden temporary file. In WAL
//!    mode its file is read under a read snapshot, still held when `start` returns (the caller
//!    releases it before it waits for any lock, [`Copy::release_snapshot`]); writers go on
//!    committing. In rollback-journal mode the backup API reads between their commits.
//! 2. [`Copy::catch_up`], under the caller's write lock, before it writes anything: the copy is
//!    made exactly the database now when what changed since is known: in WAL mode the pages
//!    committed since, from the log, unless the log was restarted meanwhile (its header
//!    changed); otherwise nothing committed since (the data version). A stale copy is
//!    refreshed ([`Copy::refresh`] without the lock, [`Copy::refresh_locked`] under it).
//! 3. [`Copy::finish`]: synced, checked (it must hold the version the caller read under the
//!    lock) and renamed.
//!
//! The temporary file is locked (`flock`) while it is written, so that another run's cleanup
//! of interrupted backups never removes it; a [`NewBackup`] removes itself unless kept.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod fresh;

use fresh::Seen;
pub(crate) use fresh::{Fresh, Journal};

use super::catalogue::BackupDir;
use super::copy::finish_file;
use super::file::read_header;
use super::name::NewNames;
use super::raw::BackupCopy;
use super::raw::Dest;
use super::trust::create_file;
use super::{BackupReason, ProgressFn, blocking};
use crate::error::{BackupError, Error, LockHolder};
use crate::ffi::{OpenMode, RawConnection};
use crate::history::held_version;

/// The connection a backup was read through, handed back with it: holding no lock and no
/// snapshot, it can tell whether the database changed since ([`data_version`](Self::data_version))
/// and restore a backup into it ([`LockedRestore::lock`](super::LockedRestore::lock)).
pub(crate) struct Reader(pub(super) RawConnection);

impl Reader {
    /// The database's data version as this connection last saw it.
    pub fn data_version(&self) -> Result<u32, crate::error::SqliteFailure> {
        self.0.data_version()
    }
}

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
    .map_err(|failure| {
        BackupError::Sqlite {
            doing: "cannot open the database",
            failure,
        }
        .at(database, file)
    })
}

/// How a backup is copied: how long it waits for another writer's lock, who hears of its
/// progress, and the fastest way its file may be copied.
#[derive(Clone)]
pub(crate) struct CopySettings {
    pub busy_timeout: Duration,
    pub progress: Option<ProgressFn>,
    pub allowed: BackupCopy,
}

/// A copy of the database, made without the lock, to be brought up to date and finished under
/// it.
pub(crate) struct Copy {
    /// The temporary file (removed on drop until finished).
    partial: NewBackup,
    /// Held while the temporary file is written: another run's cleanup leaves it alone.
    _in_use: File,
    names: NewNames,
    file: PathBuf,
    database: PathBuf,
    /// The connection the database is read through (always there between two uses).
    source: Option<RawConnection>,
    seen: Seen,
    settings: CopySettings,
}

/// Phase 1, without the write lock: copies the database `file`, journaled as `journal`, into a
/// new temporary file in `dir` (prepared: [`BackupDir::prepare`] created `created_dirs`), as
/// `settings` say. `version` is the version
/// read without the lock (for the file's name). In WAL mode the copy's read snapshot is still
/// held when this returns: release it ([`Copy::release_snapshot`]) before waiting for a lock.
///
/// The database file itself is never opened but through SQLite: closing another descriptor of
/// it would drop the POSIX locks that this process's connections hold on it.
pub(crate) async fn start(
    dir: &BackupDir,
    created_dirs: Vec<PathBuf>,
    (file, journal): (&Path, Journal),
    (version, reason): (i64, BackupReason),
    settings: CopySettings,
) -> Result<Copy, Error> {
    let database = dir.database().to_owned();
    // Created here, with the mode it keeps (SQLite would make it readable by everyone), and
    // locked while it is written; both under the directory's lock, so that another run's
    // cleanup never finds it created but not yet locked.
    let dir_lock = dir.lock().map_err(|cause| {
        dir.error(
            dir.path(),
            BackupError::io("cannot lock the backup directory")(cause),
        )
    })?;
    let names = create_partial(dir, version, reason)?;
    let partial = NewBackup {
        path: names.partial.clone(),
        created_dirs,
        kept: false,
    };
    let in_use = File::open(&names.partial)
        .and_then(|f| f.try_lock().map(|()| f).map_err(std::io::Error::other))
        .map_err(|e| dir.error(&names.partial, BackupError::io("cannot lock the file")(e)))?;
    drop(dir_lock);
    tracing::info!(path = %names.complete_for(version).display(), version, "taking a backup");
    let source = open_source(&database, file, settings.busy_timeout).await?;
    let mut copy = Copy {
        partial,
        _in_use: in_use,
        names,
        file: file.to_owned(),
        database,
        source: Some(source),
        seen: Seen::Rollback { version: None },
        settings,
    };
    copy.copy(journal, Dest::Empty).await?;
    tracing::info!(path = %copy.names.partial.display(), "backup copied; it is brought up to date under the write lock");
    Ok(copy)
}

/// Creates the temporary file of a new backup (under the directory's lock). Another run may
/// have named its own in the same microsecond: then the next name is taken.
fn create_partial(dir: &BackupDir, version: i64, reason: BackupReason) -> Result<NewNames, Error> {
    let mut attempts = 0;
    loop {
        let names = dir.new_names(version, reason);
        match create_file(&names.partial, dir.mode().for_file()) {
            Ok(()) => return Ok(names),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempts < 100 => {
                attempts += 1;
            }
            Err(e) => {
                return Err(dir.error(&names.partial, BackupError::io("cannot create the file")(e)));
            }
        }
    }
}

impl Copy {
    /// The error of a failed step: a lock held past the busy timeout is [`Error::Busy`].
    fn failed(&self, cause: BackupError) -> Error {
        match cause {
            BackupError::Sqlite { failure, .. } if failure.is_busy() => Error::Busy {
                database: self.database.clone(),
                timeout: self.settings.busy_timeout,
                holder: LockHolder::Connection,
            },
            cause => cause.at(&self.database, &self.names.partial),
        }
    }

    /// Runs blocking `work` on the source connection.
    async fn on_source<T: Send + 'static>(
        &mut self,
        work: impl FnOnce(&RawConnection) -> T + Send + 'static,
    ) -> T {
        let source = self
            .source
            .take()
            .expect("the source is back after each use");
        let (source, out) = blocking(move || {
            let out = work(&source);
            (source, out)
        })
        .await;
        self.source = Some(source);
        out
    }

    fn wal(&self) -> PathBuf {
        PathBuf::from(format!("{}-wal", self.file.display()))
    }

    /// Phase 2, under the caller's write lock, once the copy is exact: makes it
    /// self-contained, checks that it holds `version`, syncs it and renames it. Hands the
    /// source connection back.
    pub async fn finish(self, version: i64) -> Result<(NewBackup, Reader), Error> {
        let path = self.names.partial.clone();
        let held = blocking(move || {
            finish_file(&path).map_err(BackupError::io("cannot finish the file"))?;
            read_header(&path)?;
            let copy = RawConnection::open(&path, OpenMode::ReadOnly)
                .map_err(BackupError::sqlite("opening the copy to check it"))?;
            held_version(&copy).map_err(BackupError::sqlite("reading the copy's history"))
        })
        .await
        .map_err(|cause| self.failed(cause))?;
        if held != version {
            return Err(self.failed(BackupError::WrongVersion {
                expected: version,
                found: held,
            }));
        }
        let complete = self.names.complete_for(version);
        if complete.exists() {
            return Err(self.failed(BackupError::Io {
                doing: "cannot name the backup",
                cause: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    format!("{} already exists", complete.display()),
                ),
            }));
        }
        std::fs::rename(&self.names.partial, &complete)
            .map_err(|e| self.failed(BackupError::io("cannot rename the finished copy")(e)))?;
        if let Some(dir) = complete.parent() {
            sync_dir(dir)
                .map_err(|e| self.failed(BackupError::io("cannot sync the backup directory")(e)))?;
        }
        tracing::info!(path = %complete.display(), version, "backup taken");
        let Copy {
            mut partial,
            source,
            ..
        } = self;
        partial.path = complete;
        Ok((
            partial,
            Reader(source.expect("the source is back after each use")),
        ))
    }
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}
