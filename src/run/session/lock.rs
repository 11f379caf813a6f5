//! Taking a session's write lock, with its backup's copy made first, so that neither other
//! writers nor checkpointers ever wait for the copy or for the runner:
//!
//! 1. The runs of one database that will back it up take turns on a lock of their own
//!    ([`BackupDir::lock_runs`]) *before* copying; a run that waited finds the history changed
//!    (another run migrated) and copies nothing before the lock.
//! 2. The copy is made without the write lock (in WAL mode under a read snapshot).
//! 3. The write lock is taken without waiting while that snapshot is held: a checkpointer
//!    (`wal_checkpoint(TRUNCATE)` and the like) holds the write lock while it waits for old
//!    snapshots, so waiting for the lock with one held would deadlock with it until a busy
//!    timeout. When the lock is not free at once (for [`SNAPSHOT_GRACE`]), the snapshot is
//!    released first, and the runner waits with no snapshot held.
//! 4. Under the lock the copy is brought up to date from the log; when the log was restarted
//!    meanwhile (a checkpointer ran), the lock is released and the copy refreshed without it,
//!    up to [`COPY_ROUNDS`] times, the last one under the lock.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sqlx::SqliteConnection;

use super::{Intent, Planned, Session, wanted};
use crate::backup::{self, Fresh, Journal};
use crate::connection::{
    OnDatabase, database_error, execute, is_busy, lock_error, set_busy_timeout,
};
use crate::error::{Error, LockHolder};
use crate::history;
use crate::report::BackupReason;
use crate::run::trace::{self, Step};
use tracing::Instrument;

/// How long the runner tries for the write lock, without waiting in SQLite, while its copy
/// holds a read snapshot: other writers' commits take milliseconds; a checkpointer waiting for
/// that snapshot would hold the lock for as long as the snapshot is held.
const SNAPSHOT_GRACE: Duration = Duration::from_millis(50);

/// How many times the lock is taken to bring a copy up to date before the copy is refreshed
/// under the lock.
const COPY_ROUNDS: usize = 3;

impl Session {
    /// Everything before the session holds the write lock: a journal for
    /// the run, the backup's copy when `intent` wants one, and the lock.
    pub(super) async fn prepare(&mut self, intent: Intent) -> Result<(), Error> {
        self.journal = self.journal_for_the_run().await?;
        if let (Some(file), Some(reason)) =
            (self.file.clone(), wanted(self.mode, intent, &self.config))
        {
            if matches!(intent, Intent::Backup(_)) && self.holds_nothing().await? {
                tracing::info!(database = %self.database.display(), "the database holds nothing yet: no backup");
                self.deferred = Some(reason);
            } else {
                self.copy_before_the_lock(file, reason)
                    .instrument(trace::step(Step::Backup))
                    .await?;
            }
        }
        self.take_write_lock()
            .instrument(trace::step(Step::WriteLock))
            .await
    }

    /// Plans the session's backup and, unless another run changed the history while this one
    /// waited for its turn, copies the database (without the write lock).
    async fn copy_before_the_lock(
        &mut self,
        file: PathBuf,
        reason: BackupReason,
    ) -> Result<(), Error> {
        let busy_timeout = self.config.busy_timeout();
        let seen = self.applied_unlocked().await?;
        let mut planned = self.plan_backup(&file, reason)?;
        self.run_lock = Some(planned.dir.lock_runs(busy_timeout).await?);
        let now = self.applied_unlocked().await?;
        if now == seen {
            let version = now.last().map_or(0, |a| a.0);
            let target = (file.as_path(), planned.journal);
            let created = std::mem::take(&mut planned.created);
            self.copy = Some(
                backup::start(
                    &planned.dir,
                    created,
                    target,
                    (version, reason),
                    self.config.copy_settings(),
                )
                .await?,
            );
        } else {
            tracing::info!(database = %self.database.display(), "another run changed the history while this one waited: no copy before the lock");
        }
        self.planned = Some(planned);
        Ok(())
    }

    /// Where the backup goes (its directory created when missing), and how it is copied.
    fn plan_backup(&mut self, file: &Path, reason: BackupReason) -> Result<Planned, Error> {
        let dir = self.config.backup_dir_of(&self.database, file)?;
        let created = dir.prepare()?;
        self.created_backup_dir = !created.is_empty();
        let journal = match self.journal.eq_ignore_ascii_case("wal") {
            true => Journal::Wal,
            false => Journal::Rollback,
        };
        Ok(Planned {
            dir,
            created,
            reason,
            journal,
        })
    }

    /// Under the lock, for a database that held nothing before it: still nothing (a new or
    /// empty database: there is nothing a backup could give back, and none is written), or
    /// the backup is planned now, and copied under the lock (another process wrote meanwhile).
    pub(super) async fn plan_deferred_backup(&mut self) -> Result<(), Error> {
        let (Some(reason), Some(file)) = (self.deferred.take(), self.file.clone()) else {
            return Ok(());
        };
        if self.holds_nothing().await? {
            return Ok(());
        }
        self.planned = Some(self.plan_backup(&file, reason)?);
        Ok(())
    }

    /// Whether SQLite says the database holds nothing: no table, index, view or trigger, and
    /// no `user_version` or `application_id` (a new file, or one that was never written).
    async fn holds_nothing(&mut self) -> Result<bool, Error> {
        let sql = "SELECT (SELECT count(*) FROM sqlite_schema) + (SELECT user_version FROM \
                   pragma_user_version) + (SELECT application_id FROM pragma_application_id)";
        let held: i64 = sqlx::query_scalar(sql)
            .fetch_one(self.conn.get())
            .await
            .on(
                &self.database,
                "reading whether the database holds anything",
            )?;
        Ok(held == 0)
    }

    /// The applied versions and checksums, read without the lock.
    async fn applied_unlocked(&mut self) -> Result<Vec<(i64, String)>, Error> {
        let applied = history::applied(self.conn.get())
            .await
            .on(&self.database, "reading the history")?;
        Ok(applied
            .into_iter()
            .map(|a| (a.version, a.checksum))
            .collect())
    }

    /// The journal mode the run's transaction uses. A connection without a journal on disk
    /// (`journal_mode` OFF or MEMORY, as a pool's options may set it) journals to a file for
    /// the run: without one, pages spilled before a failure could not be rolled back.
    async fn journal_for_the_run(&mut self) -> Result<String, Error> {
        let read = async |conn: &mut SqliteConnection, sql: &'static str| {
            sqlx::query_scalar::<_, String>(sql).fetch_one(conn).await
        };
        let mode = read(self.conn.get(), "PRAGMA journal_mode")
            .await
            .on(&self.database, "reading the journal mode")?;
        if self.file.is_none() || !matches!(mode.to_ascii_lowercase().as_str(), "off" | "memory") {
            return Ok(mode);
        }
        let set = read(self.conn.get(), "PRAGMA journal_mode = DELETE")
            .await
            .on(&self.database, "setting a journal for the run")?;
        tracing::info!(from = %mode, to = %set, "the runner's connection journals to a file for the run");
        Ok(set)
    }

    /// Takes the write lock and, when the session copied the database, brings the copy up to
    /// date under it.
    async fn take_write_lock(&mut self) -> Result<(), Error> {
        tracing::info!(database = %self.database.display(), "waiting for the write lock");
        for round in 1..=COPY_ROUNDS {
            self.begin_immediate().await?;
            let Some(copy) = self.copy.as_mut() else {
                break;
            };
            match copy.catch_up().await? {
                Fresh::Exact => break,
                Fresh::Stale if round < COPY_ROUNDS => {
                    execute(self.conn.get(), "ROLLBACK").await.map_err(|e| {
                        database_error(&self.database, "releasing the write lock", e)
                    })?;
                    copy.refresh().await?;
                }
                Fresh::Stale => copy.refresh_locked().await?,
            }
        }
        tracing::info!(database = %self.database.display(), "write lock taken");
        Ok(())
    }

    /// `BEGIN IMMEDIATE`. While the copy holds its read snapshot, only without waiting in
    /// SQLite (for [`SNAPSHOT_GRACE`]); then the snapshot is released and the runner waits
    /// for the busy timeout with none held.
    async fn begin_immediate(&mut self) -> Result<(), Error> {
        let busy_timeout = self.config.busy_timeout();
        if self.copy.as_ref().is_some_and(backup::Copy::holds_snapshot) {
            if self.try_begin_for(SNAPSHOT_GRACE).await? {
                return Ok(());
            }
            if let Some(copy) = self.copy.as_mut() {
                copy.release_snapshot();
            }
            tracing::info!("the write lock is held: waiting for it with no snapshot held");
        }
        match execute(self.conn.get(), "BEGIN IMMEDIATE").await {
            Ok(()) => Ok(()),
            Err(e) if is_busy(&e) && self.checkpoint_running().await => Err(Error::Busy {
                database: self.database.clone(),
                timeout: busy_timeout,
                holder: LockHolder::Checkpoint,
            }),
            Err(e) => Err(lock_error(
                &self.database,
                "taking the write lock",
                e,
                busy_timeout,
            )),
        }
    }

    /// After the lock was held past the busy timeout: whether a checkpoint holds it. SQLite
    /// refuses a passive checkpoint at once while another one runs (it never waits for one),
    /// so one is asked for; when none runs, it copies what it can of the log into the
    /// database, as the next commit would.
    async fn checkpoint_running(&mut self) -> bool {
        if !self.journal.eq_ignore_ascii_case("wal") {
            return false;
        }
        let answer: Result<(i64, i64, i64), _> = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(self.conn.get())
            .await;
        matches!(answer, Ok((1, _, _))) || answer.is_err_and(|e| is_busy(&e))
    }

    /// Tries `BEGIN IMMEDIATE` without waiting in SQLite, again and again for `grace`.
    async fn try_begin_for(&mut self, grace: Duration) -> Result<bool, Error> {
        let failed = |e| database_error(&self.database, "taking the write lock", e);
        set_busy_timeout(self.conn.get(), Duration::ZERO)
            .await
            .map_err(failed)?;
        let deadline = Instant::now() + grace;
        let taken = loop {
            match execute(self.conn.get(), "BEGIN IMMEDIATE").await {
                Ok(()) => break Ok(true),
                Err(e) if is_busy(&e) && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err(e) if is_busy(&e) => break Ok(false),
                Err(e) => break Err(e),
            }
        };
        let reset = set_busy_timeout(self.conn.get(), self.config.busy_timeout()).await;
        let taken = taken.map_err(failed)?;
        reset.map_err(failed)?;
        Ok(taken)
    }
}
