//! The locked session: the runner's own connection to the database, holding the write lock
//! (`BEGIN IMMEDIATE`), with the backup it took; and [`run_locked`], the one skeleton of every
//! run that changes the database (lock, work, commit or roll back, retention).
//!
//! When the run will want a backup, its copy is made before the lock is taken, while other
//! writers go on ([`backup::start`]); under the lock the session only brings it up to date.
//!
//! A session that is not committed leaves nothing behind: its transaction is rolled back and
//! its backup, a [`NewBackup`], removes itself. Error paths need no cleanup of their own.

use std::path::{Path, PathBuf};

use sqlx::SqliteConnection;
use tracing::Instrument;

mod lock;

use crate::backup::{self, BackupDir, BackupReason, Copy, Fresh, Journal, NewBackup, RunLock};
use crate::config::{Backups, Config};
use crate::connection::{
    Guarded, OnDatabase, RunnerConnection, Use, database_error, execute, is_read_only, lock_error,
    recover,
};
use crate::error::Error;
use crate::history::{self, Applied, History, Identified, Live, identity};
use crate::run::database::Database;
use crate::run::trace::{self, Step};

/// Whether a run keeps its changes or is a dry run, rolled back whatever happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Apply,
    DryRun,
}

/// Whether a locked run takes a backup of the database, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Intent {
    /// A backup, unless backups are off for the migrator.
    Backup(BackupReason),
    /// A backup even when they are off (a restore's safety backup).
    SafetyBackup(BackupReason),
}

/// What a locked run produced: whether it changed the database, which decides between
/// commit and rollback.
pub(crate) trait Outcome {
    fn changed_database(&self) -> bool;
}

/// The skeleton of every locked run: takes the lock, does `work`, then commits (when applying
/// and the outcome changed the database, or the session gave the database its identity) and
/// applies retention, protecting the session's backup; otherwise rolls back. On an error the
/// session is abandoned: rolled back, its backup removed unless SQLite cannot confirm the
/// rollback.
pub(crate) async fn run_locked<T: Outcome>(
    db: &Database<'_>,
    config: &Config,
    (mode, intent): (Mode, Intent),
    work: impl AsyncFnOnce(&mut Session) -> Result<T, Error>,
) -> Result<T, Error> {
    let mut session = Session::lock(db, config, mode, intent).await?;
    let outcome = match work(&mut session).await {
        Ok(outcome) => outcome,
        Err(error) => {
            session.abandon().await;
            return Err(error);
        }
    };
    if mode == Mode::Apply && (outcome.changed_database() || session.identity_written) {
        session.commit().await?;
    } else {
        session.release().await?;
    }
    Ok(outcome)
}

/// The reason of the backup a run takes, if it takes one.
fn wanted(mode: Mode, intent: Intent, config: &Config) -> Option<BackupReason> {
    match (mode, intent) {
        (Mode::DryRun, _) => None,
        (Mode::Apply, Intent::SafetyBackup(reason)) => Some(reason),
        (Mode::Apply, Intent::Backup(reason)) => {
            (config.backups() == Backups::Take).then_some(reason)
        }
    }
}

/// The runner's own connection, holding the write lock.
pub(crate) struct Session {
    conn: RunnerConnection,
    /// The database as the pool names it.
    database: PathBuf,
    /// Its file (`None` in memory).
    file: Option<PathBuf>,
    config: Config,
    mode: Mode,
    /// The journal mode of the run's transaction, as SQLite reported it at the start.
    journal: String,
    /// Whether scripts or probes may have run in the transaction.
    scripts_ran: bool,
    /// Where and why the session backs the database up, when it does.
    planned: Option<Planned>,
    /// Why the session would back up a database that held nothing before the lock (planned
    /// under the lock if it holds something by then).
    deferred: Option<BackupReason>,
    /// Held while the session backs the database up: other runs of it wait before copying.
    run_lock: Option<RunLock>,
    /// Whether this session created the backup directory (a failed run removes it again).
    created_backup_dir: bool,
    /// The copy made before the lock was taken, brought up to date under it.
    copy: Option<Copy>,
    /// The backup taken in this session.
    backup: Option<NewBackup>,
    /// The database's identity, once the session took a backup.
    identity: Option<Identified>,
    /// Whether the session gave the database its identity (the run commits it).
    identity_written: bool,
}

/// The backup a session takes.
struct Planned {
    dir: BackupDir,
    /// The directories [`BackupDir::prepare`] created for it.
    created: Vec<PathBuf>,
    reason: BackupReason,
    journal: Journal,
}

impl Session {
    /// Opens the runner's connection (its own, with the pool's options, foreign keys off, the
    /// busy timeout, the scripts' authorizer; for a dry run, no spilling of changes to the
    /// file), copies the database when `intent` wants a backup (without the write lock:
    /// writers go on), and takes the write lock with `BEGIN IMMEDIATE` (see [`lock`]).
    pub async fn lock(
        db: &Database<'_>,
        config: &Config,
        mode: Mode,
        intent: Intent,
    ) -> Result<Self, Error> {
        let (pool, database) = (db.pool(), db.name().to_owned());
        if is_read_only(pool) {
            return Err(Error::ReadOnly { database });
        }
        let busy_timeout = config.busy_timeout();
        let work = match mode {
            Mode::Apply => Use::Write { busy_timeout },
            Mode::DryRun => Use::DryRun { busy_timeout },
        };
        let conn = RunnerConnection::open(pool, &database, work, crate::source::judge).await?;
        let mut session = Session {
            conn,
            database,
            file: db.file().map(Path::to_owned),
            config: config.clone(),
            mode,
            journal: String::new(),
            scripts_ran: false,
            planned: None,
            deferred: None,
            run_lock: None,
            created_backup_dir: false,
            copy: None,
            backup: None,
            identity: None,
            identity_written: false,
        };
        match session.prepare(intent).await {
            Ok(()) => Ok(session),
            Err(e) => {
                session.abandon().await;
                Err(e)
            }
        }
    }

    pub fn conn(&mut self) -> &mut SqliteConnection {
        self.conn.get()
    }

    /// The connection with the authorizer that judges scripts and probes on it.
    pub fn guarded(&mut self) -> Guarded<'_> {
        self.scripts_ran = true;
        self.conn.guarded()
    }

    pub fn database(&self) -> &Path {
        &self.database
    }

    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The history, read under the lock.
    pub async fn history(&mut self) -> Result<History, Error> {
        History::read(self.conn.get())
            .await
            .on(&self.database, "reading the history under the lock")
    }

    /// The applied versions and checksums, read under the lock.
    pub async fn applied(&mut self) -> Result<Vec<Applied>, Error> {
        history::applied(self.conn.get())
            .await
            .on(&self.database, "reading the history under the lock")
    }

    /// Takes this session's backup of the database, which holds `version` (read under the
    /// lock): brings the copy made before the lock up to date. Nothing when the session wants
    /// no backup (a dry run, backups off, a database in memory). Call before writing anything.
    pub async fn take_backup(&mut self, version: i64) -> Result<(), Error> {
        let finished = self
            .finish_copy(version)
            .instrument(trace::step(Step::Backup))
            .await?;
        if let Some((backup, _)) = finished {
            self.backup = Some(backup);
        }
        Ok(())
    }

    /// Like [`take_backup`](Self::take_backup), but hands the backup over with the connection
    /// it was read through (for a restore, whose safety backup it is).
    pub async fn finish_copy(
        &mut self,
        version: i64,
    ) -> Result<Option<(NewBackup, backup::Reader)>, Error> {
        self.plan_deferred_backup().await?;
        if let (None, Some(planned), Some(file)) = (&self.copy, &mut self.planned, &self.file) {
            // Another run changed the database while this one waited for it, and this one
            // still has work: the copy is made now, under the lock.
            tracing::info!(database = %self.database.display(), "copying the database under the write lock");
            let created = std::mem::take(&mut planned.created);
            let target = (file.as_path(), planned.journal);
            let mut copy = backup::start(
                &planned.dir,
                created,
                target,
                (version, planned.reason),
                self.config.copy_settings(),
            )
            .await?;
            if copy.catch_up().await? == Fresh::Stale {
                copy.refresh_locked().await?;
            }
            self.copy = Some(copy);
        }
        match self.copy.take() {
            Some(copy) => {
                let (backup, source) = copy.finish(version).await?;
                self.identify(backup.path()).await?;
                Ok(Some((backup, source)))
            }
            None => {
                if self.file.is_none() {
                    tracing::info!("in-memory database: there is no file to back up");
                }
                Ok(None)
            }
        }
    }

    /// After the session's backup (at `backup`) was taken: the database's identity, as it holds
    /// it, or a new one that the session gives it (in its transaction, committed with the run),
    /// naming that backup as the first, which does not hold it.
    async fn identify(&mut self, backup: &Path) -> Result<(), Error> {
        let database = self.database.clone();
        let failed = |e| database_error(&database, "reading the database's identity", e);
        let conn = self.conn.get();
        let identified = match identity::read(conn).await.map_err(failed)? {
            Some(identified) => identified,
            None => {
                let identified = Identified {
                    identity: identity::new(conn).await.map_err(failed)?,
                    first_backup: backup.file_name().map(|n| n.to_string_lossy().into_owned()),
                };
                identity::write(conn, &identified)
                    .await
                    .on(&database, "writing the database's identity")?;
                tracing::info!(database = %database.display(), identity = %identified.identity, "the database gets its identity");
                self.identity_written = true;
                identified
            }
        };
        self.identity = Some(identified);
        Ok(())
    }

    /// The database's identity, once the session took a backup.
    pub fn identity(&self) -> Option<&Identified> {
        self.identity.as_ref()
    }

    /// The path of this session's backup, if it took one.
    pub fn backup(&self) -> Option<&Path> {
        self.backup.as_ref().map(NewBackup::path)
    }

    /// Takes this session's backup out of it: the caller decides whether to keep it.
    pub fn take_out_backup(&mut self) -> Option<NewBackup> {
        self.backup.take()
    }

    /// Commits, then applies retention (protecting this session's backup). The backup is kept
    /// before `COMMIT` is sent: once it is sent, it may reach the disk whatever happens next.
    async fn commit(self) -> Result<(), Error> {
        self.commit_and_prune()
            .instrument(trace::step(Step::Commit))
            .await
    }

    async fn commit_and_prune(mut self) -> Result<(), Error> {
        let backup = self.backup.take().map(NewBackup::keep);
        tracing::info!(database = %self.database.display(), "committing");
        if let Err(e) = execute(self.conn.get(), "COMMIT").await {
            let _ = execute(self.conn.get(), "ROLLBACK").await;
            self.conn.close().await;
            return Err(lock_error(
                &self.database,
                "committing",
                e,
                self.config.busy_timeout(),
            ));
        }
        tracing::info!(database = %self.database.display(), "committed");
        self.conn.close().await;
        if let (Some(planned), Some(backup), Some(identity)) =
            (&self.planned, &backup, self.identity.clone())
        {
            let live = Live::identified(identity);
            self.config.prune(&planned.dir, &[backup], &live).await;
        }
        Ok(())
    }

    /// Ends a dry run, or a run that changed nothing: rolls back, releasing the lock, and
    /// closes the connection; a backup still in the session is removed.
    async fn release(mut self) -> Result<(), Error> {
        let rolled_back = execute(self.conn.get(), "ROLLBACK").await;
        self.conn.close().await;
        rolled_back.on(&self.database, "rolling back")
    }

    /// Rolls back after an error. The backup is removed when the database is provably as it
    /// was (it would only duplicate it): no script ran; or the rollback succeeded on a journal
    /// that undoes everything; or, the rollback having failed (a full disk, an I/O error),
    /// SQLite rolled the journal it left behind (a hot journal) back when the database was
    /// read again. Otherwise the backup is kept and a warning names it.
    async fn abandon(mut self) {
        let rolled_back = execute(self.conn.get(), "ROLLBACK").await.is_ok();
        let journal_kept = rolled_back && self.journal_undoes().await;
        let journals = self.journals();
        self.conn.close().await;
        if let Some(lock) = self.run_lock.take()
            && self.created_backup_dir
        {
            lock.remove();
        }
        let undone = !self.scripts_ran
            || journal_kept
            || match (&self.file, rolled_back) {
                (Some(file), false) => journals && recover(file).await,
                _ => false,
            };
        if undone {
            return;
        }
        if let Some(backup) = self.backup.take() {
            let path = backup.keep();
            tracing::warn!(
                database = %self.database.display(),
                backup = %path.display(),
                "the run failed after its scripts ran, and SQLite cannot confirm that its rollback undid everything: the run's backup is kept"
            );
        }
    }

    /// Whether the run's transaction began on a journal whose rollback undoes every change (a
    /// rollback journal on disk, or the write-ahead log).
    fn journals(&self) -> bool {
        !self.journal.eq_ignore_ascii_case("off") && !self.journal.eq_ignore_ascii_case("memory")
    }

    /// Whether the connection still journals as it did when the run began, in a mode whose
    /// rollback undoes every change.
    async fn journal_undoes(&mut self) -> bool {
        let now: Result<String, _> = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(self.conn.get())
            .await;
        now.is_ok_and(|now| now.eq_ignore_ascii_case(&self.journal)) && self.journals()
    }
}

#[cfg(test)]
mod tests;
