//! Bringing a copy up to date: how it is made without the lock (in WAL mode under a read
//! snapshot, otherwise between other writers' commits), and under the lock, whether what
//! changed since is known ([`Copy::catch_up`]) or the copy must be refreshed.

use std::fs::File;
use std::path::Path;

use super::super::ProgressFn;
use super::super::copy::{CopyFailure, copy_pages};
use super::super::raw::{self, Dest, Plan};
use super::super::wal::{self, Committed, LogHeader};
use super::Copy;
use crate::error::{BackupError, Error};
use crate::ffi::RawConnection;

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
pub(super) enum Seen {
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

impl Copy {
    /// Copies the database without the write lock: in WAL mode, the file under a read
    /// snapshot that stays held; otherwise with the backup API between other writers' commits.
    /// The copy is synced, so that under the lock only what catches up is left to sync.
    pub(super) async fn copy(&mut self, journal: Journal, dest: Dest) -> Result<(), Error> {
        let (partial, wal, progress) = (
            self.names.partial.clone(),
            self.wal(),
            self.settings.progress.clone(),
        );
        let (file, allowed) = (self.file.clone(), self.settings.allowed);
        let seen = self
            .on_source(move |source| {
                let seen = match journal {
                    Journal::Wal => {
                        let plan = Plan {
                            held: dest,
                            allowed,
                            progress: progress.as_ref(),
                        };
                        copy_under_snapshot(source, (&file, &wal), &partial, plan)?
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
            self.settings.progress.clone(),
        );
        let (file, allowed) = (self.file.clone(), self.settings.allowed);
        self.on_source(move |source| {
            let plan = Plan {
                held: Dest::Earlier,
                allowed,
                progress: progress.as_ref(),
            };
            raw::copy_file(source, &file, &partial, plan)?;
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
}

/// WAL mode: takes a read snapshot (kept when this returns), copies the file under it, and
/// notes the log's header and the snapshot's data version.
fn copy_under_snapshot(
    source: &RawConnection,
    (file, wal): (&Path, &Path),
    partial: &Path,
    plan: Plan<'_>,
) -> Result<Seen, BackupError> {
    source
        .exec("BEGIN; SELECT count(*) FROM sqlite_master;")
        .map_err(BackupError::sqlite("cannot read a snapshot"))?;
    let seen = (|| {
        let log = wal::header(wal).map_err(BackupError::io("cannot read the log"))?;
        let version = source
            .data_version()
            .map_err(BackupError::sqlite("cannot read the data version"))?;
        raw::copy_file(source, file, partial, plan)?;
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
