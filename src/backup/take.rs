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
use super::raw::{self, Dest};
use super::trust::create_file;
use super::wal::{self, Committed, LogHeader};
use super::{ProgressFn, Reason, blocking};
use crate::error::{BackupError, Error, LockHolder};
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

/// How the live database journals, which decides how a copy is made and caught up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Journal {
    /// WAL: the file is copied under a read snapshot; the log has every commit since.
    Wal,
    /// A rollback journal: copied with the backup API; a commit since means copying again.
    Rollback,
}

/// Whether a copy is the database as the caller's lock holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fresh {
    /// It is: finish it.
    Exact,
    /// It may miss commits that a restart of the log took away: refresh it.
    Stale,
}

/// What a copy knows of the database it copied, to be brought up to date under the lock.
#[derive(Debug, Clone, Copy)]
enum Seen {
    /// WAL: the log's header and the data version of the snapshot copied, and whether that
    /// snapshot is still held (then the log cannot have been restarted).
    Wal {
        log: Option<LogHeader>,
        version: u32,
        held: bool,
    },
    /// A rollback journal: the data version after the copy; `None`: the copy must be made
    /// again under the lock (busy, or restarted again and again).
    Rollback { version: Option<u32> },
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
    busy_timeout: Duration,
    progress: Option<ProgressFn>,
}

/// Phase 1, without the write lock: copies the database `file`, journaled as `journal`, into a
/// new temporary file in `dir` (prepared: [`BackupDir::prepare`] created `created_dirs`). `version` is the version read without the lock (for the file's
/// name). In WAL mode the copy's read snapshot is still held when this returns: release it
/// ([`Copy::release_snapshot`]) before waiting for a lock.
///
/// The database file itself is never opened but through SQLite: closing another descriptor of
/// it would drop the POSIX locks that this process's connections hold on it.
pub(crate) async fn start(
    dir: &BackupDir,
    created_dirs: Vec<PathBuf>,
    (file, journal): (&Path, Journal),
    (version, reason): (i64, Reason),
    busy_timeout: Duration,
    progress: Option<ProgressFn>,
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
    let source = open_source(&database, file, busy_timeout).await?;
    let mut copy = Copy {
        partial,
        _in_use: in_use,
        names,
        file: file.to_owned(),
        database,
        source: Some(source),
        seen: Seen::Rollback { version: None },
        busy_timeout,
        progress,
    };
    copy.copy(journal, Dest::Empty).await?;
    tracing::info!(path = %copy.names.partial.display(), "backup copied; it is brought up to date under the write lock");
    Ok(copy)
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
                timeout: self.busy_timeout,
                holder: LockHolder::Connection,
            },
            cause => Error::Backup {
                database: self.database.clone(),
                path: self.names.partial.clone(),
                cause,
            },
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

    /// Copies the database without the write lock: in WAL mode, the file under a read
    /// snapshot that stays held; otherwise with the backup API between other writers' commits.
    /// The copy is synced, so that under the lock only what catches up is left to sync.
    async fn copy(&mut self, journal: Journal, dest: Dest) -> Result<(), Error> {
        let (partial, wal, progress) = (
            self.names.partial.clone(),
            self.wal(),
            self.progress.clone(),
        );
        let seen = self
            .on_source(move |source| {
                let seen = match journal {
                    Journal::Wal => {
                        copy_under_snapshot(source, &wal, &partial, dest, progress.as_ref())?
                    }
                    Journal::Rollback => copy_between_commits(source, &partial, progress.as_ref())?,
                };
                File::open(&partial)
                    .and_then(|file| file.sync_data())
                    .map_err(BackupError::io("cannot sync the copy"))?;
                Ok(seen)
            })
            .await
            .map_err(|cause| self.failed(cause))?;
        self.seen = seen;
        Ok(())
    }

    /// Whether the copy still holds its read snapshot.
    pub fn holds_snapshot(&self) -> bool {
        matches!(self.seen, Seen::Wal { held: true, .. })
    }

    /// Ends the copy's read snapshot: before waiting for any lock, so that a checkpointer
    /// holding the write lock while it waits for readers never waits for this one.
    pub fn release_snapshot(&mut self) {
        if let (
            Seen::Wal {
                held: held @ true, ..
            },
            Some(source),
        ) = (&mut self.seen, &self.source)
        {
            // Ending a read transaction does no I/O.
            let _ = source.exec("COMMIT");
            *held = false;
        }
    }

    /// Under the caller's write lock, before it writes anything: brings the copy up to date
    /// when what changed since it was made is known, and says whether it is now exactly the
    /// database. In WAL mode that is the pages committed since the snapshot, from the log,
    /// unless the log was restarted since (its header changed); otherwise, nothing committed
    /// since (the data version says so).
    pub async fn catch_up(&mut self) -> Result<Fresh, Error> {
        let (seen, wal, partial) = (self.seen, self.wal(), self.names.partial.clone());
        let fresh = self
            .on_source(move |source| -> Result<Fresh, BackupError> {
                match seen {
                    Seen::Wal { log, version, held } => {
                        let same_log = held
                            || (log.is_some()
                                && wal::header(&wal)
                                    .map_err(BackupError::io("cannot read the log"))?
                                    == log);
                        if same_log {
                            apply_log(&wal, &partial)?;
                            if held {
                                let _ = source.exec("COMMIT");
                            }
                            return Ok(Fresh::Exact);
                        }
                        Ok(match log.is_none() && data_version(source)? == version {
                            true => Fresh::Exact,
                            false => Fresh::Stale,
                        })
                    }
                    Seen::Rollback { version } => Ok(match version {
                        Some(version) if data_version(source)? == version => Fresh::Exact,
                        _ => Fresh::Stale,
                    }),
                }
            })
            .await
            .map_err(|cause| self.failed(cause))?;
        if let Seen::Wal { held, .. } = &mut self.seen {
            *held = false;
        }
        if fresh == Fresh::Stale {
            tracing::info!(
                "the log was restarted (or the database changed) since the copy: it is brought up to date again"
            );
        }
        Ok(fresh)
    }

    /// Without a lock (the caller released it): brings a stale copy up to date again the way
    /// it was made, writing only what differs, to be caught up under the lock once more.
    pub async fn refresh(&mut self) -> Result<(), Error> {
        let journal = self.journal().await?;
        self.copy(journal, Dest::Earlier).await
    }

    /// Under the caller's write lock, the last resort: makes the copy exactly the database by
    /// reading its file, which under the lock changes only by checkpoints of pages in the log
    /// (written over the copy afterwards).
    pub async fn refresh_locked(&mut self) -> Result<(), Error> {
        tracing::info!("bringing the copy up to date under the write lock");
        let (wal, partial, progress) = (
            self.wal(),
            self.names.partial.clone(),
            self.progress.clone(),
        );
        self.on_source(move |source| {
            let page_size = page_size(source)?;
            raw::copy_file(
                source,
                &partial,
                Dest::Earlier,
                page_size,
                progress.as_ref(),
            )?;
            apply_log(&wal, &partial)
        })
        .await
        .map_err(|cause| self.failed(cause))
    }

    /// How the database journals now (it may have changed since the copy was made).
    async fn journal(&mut self) -> Result<Journal, Error> {
        self.on_source(journal_of)
            .await
            .map_err(|cause| self.failed(cause))
    }

    /// Phase 2, under the caller's write lock, once the copy is exact: makes it
    /// self-contained, checks that it holds `version`, syncs it and renames it. Hands the
    /// source connection back.
    pub async fn finish(self, version: i64) -> Result<(NewBackup, RawConnection), Error> {
        let path = self.names.partial.clone();
        blocking(move || finish_file(&path))
            .await
            .map_err(|e| self.failed(BackupError::io("cannot finish the file")(e)))?;
        let held = backup_history(&self.names.partial, Check::HistoryOnly)
            .await
            .map_err(|cause| self.failed(cause))?
            .current_version();
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
        Ok((partial, source.expect("the source is back after each use")))
    }
}

/// WAL mode: takes a read snapshot (kept when this returns), copies the file under it, and
/// notes the log's header and the snapshot's data version.
fn copy_under_snapshot(
    source: &RawConnection,
    wal: &Path,
    partial: &Path,
    dest: Dest,
    progress: Option<&ProgressFn>,
) -> Result<Seen, BackupError> {
    source
        .exec("BEGIN; SELECT count(*) FROM sqlite_master;")
        .map_err(BackupError::sqlite("cannot read a snapshot"))?;
    let seen = (|| {
        let log = wal::header(wal).map_err(BackupError::io("cannot read the log"))?;
        let version = source
            .data_version()
            .map_err(BackupError::sqlite("cannot read the data version"))?;
        let page_size = page_size(source)?;
        let written = raw::copy_file(source, partial, dest, page_size, progress)?;
        tracing::debug!(
            bytes = written,
            "database file copied under a read snapshot"
        );
        Ok(Seen::Wal {
            log,
            version,
            held: true,
        })
    })();
    if seen.is_err() {
        let _ = source.exec("COMMIT");
    }
    seen
}

/// A rollback journal: copies with the backup API, which reads between other writers' commits
/// (and starts over when one commits during the copy).
fn copy_between_commits(
    source: &RawConnection,
    partial: &Path,
    progress: Option<&ProgressFn>,
) -> Result<Seen, BackupError> {
    match copy_pages(source, partial, progress) {
        Ok(()) => Ok(Seen::Rollback {
            version: source.data_version().ok(),
        }),
        Err(CopyFailure::Failed(cause)) => Err(cause),
        Err(CopyFailure::Busy | CopyFailure::Restarted) => Ok(Seen::Rollback { version: None }),
    }
}

/// Writes the pages committed in the log over the copy (nothing when there is no log).
fn apply_log(wal: &Path, partial: &Path) -> Result<(), BackupError> {
    if let Some(log) = Committed::read(wal).map_err(BackupError::io("cannot read the log"))? {
        tracing::info!(
            pages = log.len(),
            "writing the pages committed since the snapshot"
        );
        log.apply(wal, partial)
            .map_err(BackupError::io("cannot bring the copy up to date"))?;
    }
    Ok(())
}

/// The data version of the database now, as `source` sees it in a new read transaction.
fn data_version(source: &RawConnection) -> Result<u32, BackupError> {
    source
        .exec("SELECT count(*) FROM sqlite_master")
        .map_err(BackupError::sqlite("cannot read the database"))?;
    source
        .data_version()
        .map_err(BackupError::sqlite("cannot read the data version"))
}

fn page_size(source: &RawConnection) -> Result<u32, BackupError> {
    source
        .query_int("PRAGMA page_size")
        .map(|size| u32::try_from(size).unwrap_or(4096))
        .map_err(BackupError::sqlite("cannot read the page size"))
}

/// How the database journals, as SQLite says.
pub(crate) fn journal_of(source: &RawConnection) -> Result<Journal, BackupError> {
    let mode = source
        .query_text("PRAGMA journal_mode")
        .map_err(BackupError::sqlite("cannot read the journal mode"))?;
    Ok(match mode.eq_ignore_ascii_case("wal") {
        true => Journal::Wal,
        false => Journal::Rollback,
    })
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}
