//! Going back: by a verified restore of a backup, or by the rollback scripts; and the
//! catalogue of a database's backups.

use std::path::{Path, PathBuf};
use std::time::Instant;

use sqlx::SqlitePool;

use crate::backup::ffi::{OpenMode, RawConnection};
use crate::backup::{BackupInfo, LockedRestore, Reason, read_history};
use crate::error::Error;
use crate::history::{self, History};
use crate::plan;
use crate::report::{Action, MigrationOutcome, RollbackReport, RollbackStrategy};
use crate::runner::{
    Migrator, Mode, Session, check_foreign_keys, database_error, database_file, display_name,
    foreign_keys_before, probe_read_only, read_history as read_live_history, run_script,
};

/// How many times a restore starts over when another process commits between the safety
/// backup and the restore's lock.
const RESTORE_ATTEMPTS: usize = 5;

impl Migrator {
    /// Brings the database back to `to_version`: by restoring the newest verified backup that
    /// holds that version ([`RollbackStrategy::Backup`]), or by running the rollback scripts
    /// of the newer migrations, newest first ([`RollbackStrategy::Scripts`]).
    ///
    /// Either way a backup of the current state is taken first (the report's
    /// `safety_backup`), so the rollback can itself be undone. A `to_version` at or above the
    /// current version is not an error: nothing is done and the report says so.
    ///
    /// A restore discards everything written to the database after the restored backup was
    /// taken (see [`RollbackReport::discards_changes_since`]); the safety backup keeps it.
    /// Other connections see the old content or the restored one, never a mix.
    pub async fn rollback(
        &self,
        pool: &SqlitePool,
        to_version: i64,
        strategy: RollbackStrategy,
    ) -> Result<RollbackReport, Error> {
        self.roll_back(pool, to_version, strategy, Mode::Apply)
            .await
    }

    /// Reports what [`rollback`](Self::rollback) would do and changes nothing: for a
    /// restore, which backup would be restored (it is verified like a real restore would
    /// verify it); for the scripts, a rehearsal in a transaction that is rolled back (which
    /// holds the write lock while it runs).
    pub async fn rollback_dry_run(
        &self,
        pool: &SqlitePool,
        to_version: i64,
        strategy: RollbackStrategy,
    ) -> Result<RollbackReport, Error> {
        self.roll_back(pool, to_version, strategy, Mode::Rehearse)
            .await
    }

    /// Takes a backup of the database now, under its write lock (other writers wait while
    /// it is copied; readers do not), and applies retention. Returns the backup's path.
    ///
    /// # Errors
    /// [`Error::Backup`] when backups are off ([`without_backups`](Self::without_backups)),
    /// the database is in memory, or the copy fails; [`Error::Busy`] when the lock cannot be
    /// taken in time.
    pub async fn backup(&self, pool: &SqlitePool) -> Result<PathBuf, Error> {
        let mut session = self.lock(pool, Mode::Apply).await?;
        let taken = async {
            let history = History::read(&mut session.conn).await.map_err(|e| {
                database_error(&session.database, "reading the history under the lock", e)
            })?;
            self.take_backup(&mut session, history.current_version(), Reason::Manual)
                .await?;
            session.backup.clone().ok_or_else(|| Error::Backup {
                database: session.database.clone(),
                path: session.file.clone().unwrap_or_default(),
                reason: "backups are off, or the database has no file".to_owned(),
            })
        }
        .await;
        let file = session.file.clone();
        let path = self.finish(session, taken, false).await?;
        if let Some(file) = file {
            self.prune(&file, &[&path]);
        }
        Ok(path)
    }

    /// Every backup of the pool's database, newest first, with the version each holds (read
    /// from the backup itself).
    pub async fn backups(&self, pool: &SqlitePool) -> Result<Vec<BackupInfo>, Error> {
        let database = display_name(pool);
        let Some(file) = database_file(pool, &database).await? else {
            return Ok(Vec::new());
        };
        let dir = self.backup_dir_of(&file);
        dir.list().await.map_err(|e| Error::Backup {
            database: database.clone(),
            path: dir.path().to_owned(),
            reason: format!("cannot list the backups: {e}"),
        })
    }

    async fn roll_back(
        &self,
        pool: &SqlitePool,
        to: i64,
        strategy: RollbackStrategy,
        mode: Mode,
    ) -> Result<RollbackReport, Error> {
        let database = display_name(pool);
        let history = read_live_history(pool, &database).await?;
        let current = history.current_version();
        let report = RollbackReport {
            database: database.clone(),
            from_version: current,
            to_version: current,
            strategy,
            dry_run: mode == Mode::Rehearse,
            restored_from: None,
            safety_backup: None,
            discards_changes_since: None,
            rolled_back: Vec::new(),
        };
        if to >= current {
            return Ok(report);
        }
        if to < 0 || (to != 0 && history.get(to).is_none()) {
            return Err(Error::VersionNotApplied {
                database,
                version: to,
                applied: history.records.iter().map(|r| r.version).collect(),
            });
        }
        match strategy {
            RollbackStrategy::Scripts => self.rollback_scripts(pool, to, mode, report).await,
            RollbackStrategy::Backup => self.restore(pool, to, &history, mode, report).await,
        }
    }

    async fn rollback_scripts(
        &self,
        pool: &SqlitePool,
        to: i64,
        mode: Mode,
        report: RollbackReport,
    ) -> Result<RollbackReport, Error> {
        let mut session = self.lock(pool, mode).await?;
        let file = session.file.clone();
        let result = self.rollback_locked(&mut session, to, mode, report).await;
        let commit = mode == Mode::Apply && result.as_ref().is_ok_and(|r| !r.is_noop());
        let report = self.finish(session, result, commit).await?;
        if commit {
            tracing::info!(database = %report.database.display(), from = report.from_version, to, "rolled back by scripts");
            if let (Some(file), Some(safety)) = (&file, &report.safety_backup) {
                self.prune(file, &[safety]);
            }
        }
        Ok(report)
    }

    async fn rollback_locked(
        &self,
        session: &mut Session,
        to: i64,
        mode: Mode,
        mut report: RollbackReport,
    ) -> Result<RollbackReport, Error> {
        let database = session.database.clone();
        let history = History::read(&mut session.conn)
            .await
            .map_err(|e| database_error(&database, "reading the history under the lock", e))?;
        // Every migration to undo must be known and unmodified: its rollback script is needed.
        plan::verify(&self.source, &history.applied(), &database)?;
        let current = history.current_version();
        report.from_version = current;
        report.to_version = current;
        if to >= current {
            return Ok(report);
        }
        if mode == Mode::Apply {
            self.take_backup(session, current, Reason::Rollback).await?;
        }
        report.safety_backup = session.backup.clone();
        let conn = &mut session.conn;
        let fk_before = foreign_keys_before(conn, &database).await?;
        let mut undone = Vec::new();
        for record in history.records.iter().rev().filter(|r| r.version > to) {
            let migration = self.source.get(record.version).expect("verified above");
            let started = Instant::now();
            let version = migration.version();
            sqlx::raw_sql("SAVEPOINT backstop_rollback")
                .execute(&mut *conn)
                .await
                .map_err(|e| database_error(&database, "opening a savepoint", e))?;
            tracing::info!(
                version,
                description = migration.description(),
                "rolling back"
            );
            let notices = run_script(conn, version, migration.rollback()).await?;
            let after = probe_read_only(conn, migration, "").await?;
            if after != 0 {
                return Err(Error::ProbeNotConfirmed {
                    version,
                    path: migration.rollback().path.clone(),
                    probe: migration.probe().path.clone(),
                    value: after,
                });
            }
            history::delete(conn, version)
                .await
                .map_err(|e| database_error(&database, "deleting the history row", e))?;
            sqlx::raw_sql("RELEASE backstop_rollback")
                .execute(&mut *conn)
                .await
                .map_err(|e| database_error(&database, "releasing the savepoint", e))?;
            undone.push(MigrationOutcome {
                version,
                description: migration.description().to_owned(),
                action: match mode {
                    Mode::Apply => Action::RolledBack,
                    Mode::Rehearse => Action::WouldRollBack,
                },
                duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                notices,
                sql: (mode == Mode::Rehearse).then(|| migration.rollback_sql().to_owned()),
            });
        }
        if to == 0 {
            history::drop_table(conn)
                .await
                .map_err(|e| database_error(&database, "dropping the empty history table", e))?;
        }
        let versions = undone.iter().map(|m| m.version).collect();
        check_foreign_keys(conn, &database, "", &fk_before, versions).await?;
        report.to_version = to;
        report.rolled_back = undone;
        Ok(report)
    }

    /// The newest backup of this database that holds version `to`, shares the live history up
    /// to `to`, and passes `PRAGMA integrity_check`.
    async fn choose_backup(
        &self,
        file: &Path,
        database: &Path,
        to: i64,
        live: &History,
    ) -> Result<BackupInfo, Error> {
        let dir = self.backup_dir_of(file);
        let backups = dir.list().await.map_err(|e| Error::Backup {
            database: database.to_owned(),
            path: dir.path().to_owned(),
            reason: format!("cannot list the backups: {e}"),
        })?;
        for candidate in backups.iter().filter(|b| b.version == Some(to)) {
            let checked = read_history(&candidate.path, true).await;
            let held = match checked {
                Ok(held) => held,
                Err(reason) => {
                    return Err(Error::Backup {
                        database: database.to_owned(),
                        path: candidate.path.clone(),
                        reason: format!(
                            "the newest backup holding version {to} failed its check and will \
                             not be restored ({reason}); move it away to fall back to an older \
                             one, or roll back with the scripts"
                        ),
                    });
                }
            };
            // A backup of this database's past has the same history up to `to`.
            let same_past = held.records.len()
                == live.records.iter().filter(|r| r.version <= to).count()
                && held.records.iter().all(|b| {
                    live.get(b.version)
                        .is_some_and(|l| l.checksum == b.checksum && l.applied_at == b.applied_at)
                });
            if !same_past {
                tracing::info!(path = %candidate.path.display(), "skipping a backup of another history");
                continue;
            }
            if candidate.size < 512 {
                continue;
            }
            return Ok(candidate.clone());
        }
        Err(Error::NoBackup {
            database: database.to_owned(),
            version: to,
            dir: dir.path().to_owned(),
            available: backups
                .iter()
                .map(|b| (b.path.clone(), b.version))
                .collect(),
        })
    }

    async fn restore(
        &self,
        pool: &SqlitePool,
        to: i64,
        live: &History,
        mode: Mode,
        mut report: RollbackReport,
    ) -> Result<RollbackReport, Error> {
        let database = report.database.clone();
        let Some(file) = database_file(pool, &database).await? else {
            return Err(Error::NoBackup {
                database,
                version: to,
                dir: PathBuf::new(),
                available: Vec::new(),
            });
        };
        let chosen = self.choose_backup(&file, &database, to, live).await?;
        report.to_version = to;
        report.restored_from = Some(chosen.path.clone());
        report.discards_changes_since = Some(chosen.taken_at);
        if mode == Mode::Rehearse {
            return Ok(report);
        }

        for attempt in 1..=RESTORE_ATTEMPTS {
            let mut session = self.lock(pool, Mode::Apply).await?;
            let prepared = self.prepare_restore(&mut session, &file, to).await;
            let safety = session.backup.clone();
            // Release the runner's lock; on an error this also removes the safety backup.
            let Some((current, live_conn, seen)) = self.finish(session, prepared, false).await?
            else {
                // Another process rolled back meanwhile.
                return Ok(RollbackReport {
                    to_version: report.from_version,
                    restored_from: None,
                    discards_changes_since: None,
                    ..report
                });
            };
            let safety = safety.expect("a restore always takes a safety backup");

            // Take the lock again through the restoring connection, and make sure nothing was
            // committed in between (the safety backup would miss it): start over if it was.
            let backup_path = chosen.path.clone();
            let busy_timeout = self.busy_timeout;
            let locked = blocking(move || {
                live_conn.set_busy_timeout(busy_timeout);
                let restore = LockedRestore::lock(live_conn, &backup_path)?;
                let now = restore.data_version()?;
                Ok((restore, now))
            })
            .await;
            let (restore, now) = match locked {
                Ok(locked) => locked,
                Err(reason) => {
                    let _ = std::fs::remove_file(&safety);
                    return Err(self.restore_error(&database, &chosen.path, reason));
                }
            };
            if now != seen {
                restore.abandon();
                let _ = std::fs::remove_file(&safety);
                tracing::info!(
                    attempt,
                    "the database changed before the restore took its lock: starting over"
                );
                continue;
            }
            let progress = self.progress.clone();
            if let Err(reason) = blocking(move || restore.run(progress.as_ref())).await {
                // An unfinished restore rolls back: the database is unchanged.
                let _ = std::fs::remove_file(&safety);
                return Err(self.restore_error(&database, &chosen.path, reason));
            }
            let now_at = read_live_history(pool, &database).await?.current_version();
            if now_at != to {
                return Err(Error::Backup {
                    database: database.clone(),
                    path: chosen.path.clone(),
                    reason: format!(
                        "after the restore the database reports version {now_at}, not {to}; \
                         the state before is in {}",
                        safety.display()
                    ),
                });
            }
            tracing::info!(database = %database.display(), from = current, to, backup = %chosen.path.display(), "restored");
            self.prune(&file, &[&safety, &chosen.path]);
            return Ok(RollbackReport {
                from_version: current,
                safety_backup: Some(safety),
                ..report
            });
        }
        Err(Error::Busy {
            database,
            timeout: self.busy_timeout,
        })
    }

    /// Under the session's write lock: takes the safety backup through a new connection to
    /// the live database, and returns that connection with the data version it saw. `None`:
    /// the database is already at or below `to`.
    async fn prepare_restore(
        &self,
        session: &mut Session,
        file: &Path,
        to: i64,
    ) -> Result<Option<(i64, RawConnection, u32)>, Error> {
        let database = session.database.clone();
        let history = History::read(&mut session.conn)
            .await
            .map_err(|e| database_error(&database, "reading the history under the lock", e))?;
        let current = history.current_version();
        if to >= current {
            return Ok(None);
        }
        let dir = self.backup_dir_of(file);
        if dir.prepare(&database)? {
            session.created_dir = Some(dir.path().to_owned());
        }
        let path = file.to_owned();
        let live_conn = blocking(move || RawConnection::open(&path, OpenMode::Existing))
            .await
            .map_err(|reason| Error::Backup {
                database: database.clone(),
                path: file.to_owned(),
                reason: format!("cannot open the database for the restore: {reason}"),
            })?;
        let (safety, live_conn) = dir
            .take(
                file,
                current,
                Reason::Rollback,
                Some(live_conn),
                self.busy_timeout,
                self.progress.clone(),
            )
            .await?;
        session.backup = Some(safety);
        let live_conn = live_conn.expect("the given connection is handed back");
        let seen = live_conn.data_version().map_err(|reason| Error::Backup {
            database: database.clone(),
            path: file.to_owned(),
            reason,
        })?;
        Ok(Some((current, live_conn, seen)))
    }

    fn restore_error(&self, database: &Path, backup: &Path, reason: String) -> Error {
        if reason.contains("locked") {
            Error::Busy {
                database: database.to_owned(),
                timeout: self.busy_timeout,
            }
        } else {
            Error::Backup {
                database: database.to_owned(),
                path: backup.to_owned(),
                reason: format!("the restore failed and changed nothing: {reason}"),
            }
        }
    }
}

/// Runs blocking FFI work on Tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| format!("the blocking task failed: {e}"))?
}
