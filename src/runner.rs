//! The [`Migrator`]: it sequences the lock, the backup, the savepoints, the probes, the checks
//! and the commit.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::sqlite::{SqliteConnectOptions, SqliteRow};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Row, SqliteConnection, SqlitePool};
use sqlx::{TypeInfo, ValueRef};

use crate::backup::{BackupDir, BackupProgress, ProgressFn, Reason};
use crate::error::{Error, ForeignKeyViolation, shorten};
use crate::history::{self, History, Method, NewRecord};
use crate::plan;
use crate::report::{Action, MigrateReport, MigrationOutcome, StatusReport};
use crate::source::{Migration, Script, Source};

/// Default number of backups kept per database.
pub const DEFAULT_KEEP_BACKUPS: usize = 10;
/// Default time to wait for another writer to release the database.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Migrates a SQLite database with the migrations of a [`Source`].
///
/// A `Migrator` holds only configuration; it is cheap to clone and every method takes the pool
/// to work on. See the [crate documentation](crate) for the guarantees and the order of the
/// steps.
#[derive(Clone)]
pub struct Migrator {
    pub(crate) source: Source,
    backup_dir: Option<PathBuf>,
    keep_backups: usize,
    pub(crate) busy_timeout: Duration,
    backups: bool,
    pub(crate) progress: Option<ProgressFn>,
}

impl std::fmt::Debug for Migrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Migrator")
            .field("migrations", &self.source.migrations().len())
            .field("backup_dir", &self.backup_dir)
            .field("keep_backups", &self.keep_backups)
            .field("busy_timeout", &self.busy_timeout)
            .field("backups", &self.backups)
            .finish_non_exhaustive()
    }
}

/// Whether a run keeps its changes or rehearses them in a transaction that is rolled back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Apply,
    Rehearse,
}

/// The runner's own connection, holding the write lock (`BEGIN IMMEDIATE`).
pub(crate) struct Session {
    pub conn: SqliteConnection,
    /// The database as the pool names it.
    pub database: PathBuf,
    /// Its file (`None` in memory).
    pub file: Option<PathBuf>,
    /// The backup taken in this session.
    pub backup: Option<PathBuf>,
    /// The backup directory, when this session created it.
    pub created_dir: Option<PathBuf>,
}

impl Migrator {
    /// A migrator with the default options: backups in `backups/` beside the database file,
    /// the newest [`DEFAULT_KEEP_BACKUPS`] kept, a busy timeout of [`DEFAULT_BUSY_TIMEOUT`].
    pub fn new(source: Source) -> Self {
        Migrator {
            source,
            backup_dir: None,
            keep_backups: DEFAULT_KEEP_BACKUPS,
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            backups: true,
            progress: None,
        }
    }

    /// Where backups are written (created when missing).
    pub fn backup_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.backup_dir = Some(dir.into());
        self
    }

    /// How many backups of the database to keep; older ones are removed after a successful
    /// run. The backup a run depends on is never removed. At least 1.
    pub fn keep_backups(mut self, keep: usize) -> Self {
        self.keep_backups = keep.max(1);
        self
    }

    /// How long to wait for other writers before giving up with [`Error::Busy`].
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Runs without taking backups. This gives up the way back by restore: meant for
    /// throw-away databases (tests, benchmarks), never for data that matters.
    pub fn without_backups(mut self) -> Self {
        self.backups = false;
        self
    }

    /// Calls `report` after each step of a backup (for a progress bar).
    pub fn on_backup_progress(
        mut self,
        report: impl Fn(BackupProgress) + Send + Sync + 'static,
    ) -> Self {
        self.progress = Some(Arc::new(report));
        self
    }

    /// The migrations this migrator applies.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// Applies every pending migration, all or nothing.
    ///
    /// Returns at once, taking no lock and writing nothing, when nothing is pending. Otherwise
    /// takes the write lock, backs the database up, runs each pending migration (adopting
    /// those whose probe says their effect is present) and commits; on any error the
    /// database is exactly as it was and the backup of this run is removed.
    pub async fn migrate(&self, pool: &SqlitePool) -> Result<MigrateReport, Error> {
        self.run(pool, None, Mode::Apply).await
    }

    /// Like [`migrate`](Self::migrate), but stops at `target`, which must be a version of the
    /// source at or above the current one.
    pub async fn migrate_to(&self, pool: &SqlitePool, target: i64) -> Result<MigrateReport, Error> {
        self.run(pool, Some(target), Mode::Apply).await
    }

    /// Rehearses [`migrate_to`](Self::migrate_to) (or [`migrate`](Self::migrate) when `target`
    /// is `None`): runs the pending migrations and their probes for real, in a transaction that
    /// is always rolled back, and reports what would happen.
    ///
    /// It writes no backup and never changes the database's content. It does take the write
    /// lock (`BEGIN IMMEDIATE`) for as long as the rehearsal runs, so other writers wait as
    /// they would for a real run; readers are not blocked in WAL mode. Its connection does not
    /// spill changes to the database file mid-transaction (`cache_spill = OFF`), so a large
    /// rehearsal holds its changes in memory.
    pub async fn dry_run(
        &self,
        pool: &SqlitePool,
        target: Option<i64>,
    ) -> Result<MigrateReport, Error> {
        self.run(pool, target, Mode::Rehearse).await
    }

    /// Reports the version, each migration's state, whether its checksum matches and what its
    /// probe says now. Reads only: its connection is `query_only`, and it takes no lock beyond
    /// a read transaction.
    pub async fn status(&self, pool: &SqlitePool) -> Result<StatusReport, Error> {
        let database = display_name(pool);
        let options = (*pool.connect_options())
            .clone()
            .create_if_missing(false)
            .pragma("query_only", "ON");
        let mut conn = connect(&options, &database).await?;
        let db_err = |context: &str| {
            let database = database.clone();
            let context = context.to_owned();
            move |source| database_error(&database, &context, source)
        };
        execute(&mut conn, "BEGIN")
            .await
            .map_err(db_err("starting a read transaction"))?;
        let history = History::read(&mut conn)
            .await
            .map_err(db_err("reading the history"))?;
        let probes = match all_probes(&mut conn, &self.source).await {
            Some(answers) => answers,
            // One of them failed: run them one by one to say which, and why.
            None => {
                let mut answers = Vec::with_capacity(self.source.migrations().len());
                for migration in self.source.migrations() {
                    let answer = answer(&mut conn, migration, probe_sql(migration)).await;
                    answers.push(answer.map_err(|e| match e {
                        Error::Probe { reason, .. } => reason,
                        other => other.to_string(),
                    }));
                }
                answers
            }
        };
        let _ = execute(&mut conn, "ROLLBACK").await;
        let _ = conn.close().await;
        Ok(StatusReport {
            database,
            current_version: history.current_version(),
            latest_version: self.source.latest_version(),
            migrations: plan::status(&self.source, &history, probes),
        })
    }

    async fn run(
        &self,
        pool: &SqlitePool,
        target: Option<i64>,
        mode: Mode,
    ) -> Result<MigrateReport, Error> {
        let database = display_name(pool);
        // 1. Without a lock: refuse what cannot be built on; return at once when up to date.
        let applied = {
            let mut conn = pool
                .acquire()
                .await
                .map_err(|e| database_error(&database, "opening a connection", e))?;
            history::applied(&mut conn)
                .await
                .map_err(|e| database_error(&database, "reading the history", e))?
        };
        let first = plan::plan(&self.source, &applied, target, &database)?;
        if first.pending.is_empty() {
            tracing::debug!(database = %database.display(), version = first.current, "up to date");
            return Ok(MigrateReport::up_to_date(
                database,
                first.current,
                mode == Mode::Rehearse,
            ));
        }

        // 2. to 5., under the write lock.
        let mut session = self.lock(pool, mode).await?;
        let file = session.file.clone();
        let result = self.migrate_locked(&mut session, target, mode).await;
        let commit = mode == Mode::Apply && result.as_ref().is_ok_and(|r| !r.migrations.is_empty());
        let report = self.finish(session, result, commit).await?;
        if commit {
            tracing::info!(
                database = %database.display(),
                from = report.from_version,
                to = report.to_version,
                "migrated"
            );
            if let (Some(file), Some(backup)) = (&file, &report.backup) {
                self.prune(file, &[backup]);
            }
        }
        Ok(report)
    }

    /// Opens the runner's own connection (the pool's options, foreign keys off, the busy
    /// timeout) and takes the write lock with `BEGIN IMMEDIATE`.
    pub(crate) async fn lock(&self, pool: &SqlitePool, mode: Mode) -> Result<Session, Error> {
        let database = display_name(pool);
        let mut options = (*pool.connect_options())
            .clone()
            .create_if_missing(false)
            .foreign_keys(false)
            .busy_timeout(self.busy_timeout);
        if mode == Mode::Rehearse {
            options = options.pragma("cache_spill", "OFF");
        }
        let mut conn = connect(&options, &database).await?;
        let file = main_file(&mut conn)
            .await
            .map_err(|e| database_error(&database, "locating the database file", e))?;
        tracing::info!(database = %database.display(), "waiting for the write lock");
        execute(&mut conn, "BEGIN IMMEDIATE")
            .await
            .map_err(|e| self.busy(database_error(&database, "taking the write lock", e)))?;
        tracing::info!(database = %database.display(), "write lock taken");
        Ok(Session {
            conn,
            database,
            file,
            backup: None,
            created_dir: None,
        })
    }

    /// Ends a locked session: commits when `commit` and all went well, else rolls back; on an
    /// error, removes the backup the session took (the database is unchanged, so it would
    /// only duplicate it), and the backup directory if the session created it.
    pub(crate) async fn finish<T>(
        &self,
        mut session: Session,
        result: Result<T, Error>,
        commit: bool,
    ) -> Result<T, Error> {
        let conn = &mut session.conn;
        if commit && result.is_ok() {
            tracing::info!(database = %session.database.display(), "committing");
        }
        let finished = match result {
            Ok(value) if commit => match execute(conn, "COMMIT").await {
                Ok(()) => {
                    tracing::info!(database = %session.database.display(), "committed");
                    Ok(value)
                }
                Err(e) => {
                    // The commit may or may not have reached the disk: keep the backup.
                    let _ = execute(conn, "ROLLBACK").await;
                    Err(self.busy(database_error(&session.database, "committing", e)))
                }
            },
            Ok(value) => execute(conn, "ROLLBACK")
                .await
                .map(|()| value)
                .map_err(|e| database_error(&session.database, "rolling back", e)),
            Err(e) => {
                let _ = execute(conn, "ROLLBACK").await;
                if let Some(path) = &session.backup
                    && let Err(err) = std::fs::remove_file(path)
                {
                    tracing::warn!(path = %path.display(), %err, "could not remove the backup of a failed run");
                }
                if let Some(dir) = &session.created_dir {
                    // Only when empty: nothing but this run's backup was ever in it.
                    let _ = std::fs::remove_dir(dir);
                }
                Err(e)
            }
        };
        let _ = session.conn.close().await;
        finished
    }

    /// Takes the session's backup of the database (which holds `version`), unless backups
    /// are off or the database is in memory. Call before writing anything.
    pub(crate) async fn take_backup(
        &self,
        session: &mut Session,
        version: i64,
        reason: Reason,
    ) -> Result<(), Error> {
        if !self.backups {
            return Ok(());
        }
        let Some(file) = session.file.clone() else {
            tracing::info!("in-memory database: there is no file to back up");
            return Ok(());
        };
        let dir = self.backup_dir_of(&file);
        if dir.prepare(&session.database)? {
            session.created_dir = Some(dir.path().to_owned());
        }
        let (path, _) = dir
            .take(
                &file,
                version,
                reason,
                None,
                self.busy_timeout,
                self.progress.clone(),
            )
            .await?;
        session.backup = Some(path);
        Ok(())
    }

    pub(crate) fn backup_dir_of(&self, file: &Path) -> BackupDir {
        BackupDir::new(file, self.backup_dir.as_deref())
    }

    /// Applies retention to the backups of the database `file` after a successful run,
    /// keeping `protect`. Failures are logged, not returned: the run itself succeeded.
    pub(crate) fn prune(&self, file: &Path, protect: &[&Path]) {
        let dir = self.backup_dir_of(file);
        if let Err(err) = dir.prune(self.keep_backups, protect) {
            tracing::warn!(dir = %dir.path().display(), %err, "could not prune old backups");
        }
    }

    /// Steps 2 to 5 under the write lock. A report without migrations: another process
    /// migrated while this one waited for the lock.
    async fn migrate_locked(
        &self,
        session: &mut Session,
        target: Option<i64>,
        mode: Mode,
    ) -> Result<MigrateReport, Error> {
        let database = session.database.clone();
        let db_err = |context: &'static str| {
            let database = database.clone();
            move |e| database_error(&database, context, e)
        };
        let applied = history::applied(&mut session.conn)
            .await
            .map_err(db_err("reading the history under the lock"))?;
        let plan = plan::plan(&self.source, &applied, target, &database)?;
        if plan.pending.is_empty() {
            tracing::info!(database = %database.display(), "another process migrated meanwhile");
            return Ok(MigrateReport::up_to_date(
                database,
                plan.current,
                mode == Mode::Rehearse,
            ));
        }

        // 3. The backup, before anything is written.
        if mode == Mode::Apply {
            self.take_backup(session, plan.current, Reason::Migrate)
                .await?;
        }
        let backup_name = session
            .backup
            .as_deref()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned());
        let conn = &mut session.conn;
        let fk_before = foreign_keys_before(conn, &database).await?;
        history::ensure_table(conn)
            .await
            .map_err(db_err("creating the history table"))?;

        // 4. Each migration inside a savepoint. Opening one releases the one before, in the
        // same round trip to the connection as the first probe (round trips are most of the
        // cost of a small migration).
        let mut outcomes = Vec::with_capacity(plan.pending.len());
        for (i, migration) in plan.pending.iter().enumerate() {
            let open = if i == 0 {
                "SAVEPOINT backstop_migration;\n"
            } else {
                "RELEASE backstop_migration;\nSAVEPOINT backstop_migration;\n"
            };
            let outcome = self
                .run_one(
                    conn,
                    migration,
                    mode,
                    open,
                    backup_name.as_deref(),
                    &database,
                )
                .await?;
            outcomes.push(outcome);
        }

        // 5. No new foreign-key violation (the last savepoint is released first).
        let versions: Vec<i64> = plan.pending.iter().map(|m| m.version()).collect();
        check_foreign_keys(
            conn,
            &database,
            "RELEASE backstop_migration;\n",
            &fk_before,
            versions,
        )
        .await?;

        Ok(MigrateReport {
            database,
            from_version: plan.current,
            to_version: plan.target(),
            dry_run: mode == Mode::Rehearse,
            backup: session.backup.clone(),
            migrations: outcomes,
        })
    }

    /// Runs one migration; `open` is the SQL that opens its savepoint.
    async fn run_one(
        &self,
        conn: &mut SqliteConnection,
        migration: &Migration,
        mode: Mode,
        open: &str,
        backup: Option<&str>,
        database: &Path,
    ) -> Result<MigrationOutcome, Error> {
        let started = Instant::now();
        let version = migration.version();
        let (method, notices) = if probe_read_only(conn, migration, open).await? == 1 {
            tracing::info!(version, "effect already present: adopting");
            (Method::Adopted, Vec::new())
        } else {
            tracing::info!(version, description = migration.description(), "applying");
            let notices = run_script(conn, version, migration.forward()).await?;
            let after = probe_read_only(conn, migration, "").await?;
            if after != 1 {
                return Err(Error::ProbeNotConfirmed {
                    version,
                    path: migration.path().to_owned(),
                    probe: migration.probe().path.clone(),
                    value: after,
                });
            }
            for notice in &notices {
                tracing::info!(version, notice = %notice, "migration notice");
            }
            (Method::Applied, notices)
        };
        let execution_ms = started.elapsed().as_millis();
        history::insert(
            conn,
            &NewRecord {
                version,
                description: migration.description(),
                checksum: &migration.checksum().to_hex(),
                execution_ms: i64::try_from(execution_ms).unwrap_or(i64::MAX),
                method,
                backup,
            },
        )
        .await
        .map_err(|e| database_error(database, "recording the migration", e))?;
        let action = match (mode, method) {
            (Mode::Apply, Method::Applied) => Action::Applied,
            (Mode::Apply, Method::Adopted) => Action::Adopted,
            (Mode::Rehearse, Method::Applied) => Action::WouldApply,
            (Mode::Rehearse, Method::Adopted) => Action::WouldAdopt,
        };
        Ok(MigrationOutcome {
            version,
            description: migration.description().to_owned(),
            action,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            notices,
            sql: (mode == Mode::Rehearse).then(|| migration.sql().to_owned()),
        })
    }

    /// Turns a lock timeout into [`Error::Busy`].
    pub(crate) fn busy(&self, error: Error) -> Error {
        match error {
            Error::Database {
                database, cause, ..
            } if is_busy(&cause) => Error::Busy {
                database,
                timeout: self.busy_timeout,
            },
            other => other,
        }
    }
}

/// Runs a script statement by statement; returns the values of its top-level `SELECT`s.
pub(crate) async fn run_script(
    conn: &mut SqliteConnection,
    version: i64,
    script: &Script,
) -> Result<Vec<String>, Error> {
    let mut notices = Vec::new();
    for statement in script.statements.iter() {
        let failed = |cause| Error::Statement {
            version,
            path: script.path.clone(),
            line: statement.line,
            statement: shorten(&statement.sql),
            cause,
        };
        let query = sqlx::raw_sql(AssertSqlSafe(statement.sql.as_str()));
        if statement.keyword == "SELECT" {
            let rows = query.fetch_all(&mut *conn).await.map_err(failed)?;
            notices.extend(rows.iter().filter_map(|row| value_text(row, 0)));
        } else {
            query.execute(&mut *conn).await.map_err(failed)?;
        }
    }
    Ok(notices)
}

/// Runs a migration's probe with writes forbidden (`PRAGMA query_only`), in one round trip to
/// the connection, after `before` (statements that return no rows, such as opening a
/// savepoint).
pub(crate) async fn probe_read_only(
    conn: &mut SqliteConnection,
    migration: &Migration,
    before: &str,
) -> Result<i64, Error> {
    let probe = probe_sql(migration);
    let probe = probe.strip_suffix(';').unwrap_or(probe);
    // The newline ends a trailing `--` comment of the probe before its `;`.
    let sql = format!("{before}PRAGMA query_only = ON;\n{probe}\n;\nPRAGMA query_only = OFF;");
    answer(conn, migration, &sql).await
}

/// A probe's statement.
fn probe_sql(migration: &Migration) -> &str {
    &migration.probe().statements[0].sql
}

/// The row that separates the answers of two probes run in one round trip.
const BOUNDARY: &str = "backstop: the rows of the next probe follow";

/// Runs every probe of the source in one round trip (the caller made the connection
/// read-only), each preceded by a boundary row, and checks each answer. `None` when the batch
/// failed (a probe's query failed and stopped it): the caller runs them one by one.
async fn all_probes(
    conn: &mut SqliteConnection,
    source: &Source,
) -> Option<Vec<Result<i64, String>>> {
    let mut sql = String::new();
    for migration in source.migrations() {
        let probe = probe_sql(migration);
        let probe = probe.strip_suffix(';').unwrap_or(probe);
        sql.push_str(&format!("SELECT '{BOUNDARY}', NULL;\n{probe}\n;\n"));
    }
    let rows = sqlx::raw_sql(AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .ok()?;
    let is_boundary = |row: &SqliteRow| {
        row.len() == 2
            && row
                .try_get::<Option<String>, _>(0)
                .ok()
                .flatten()
                .as_deref()
                == Some(BOUNDARY)
    };
    let mut groups: Vec<&[SqliteRow]> = Vec::with_capacity(source.migrations().len());
    let mut rest = rows.as_slice();
    while let Some(first) = rest.first() {
        if !is_boundary(first) {
            return None;
        }
        let end = rest[1..]
            .iter()
            .position(is_boundary)
            .map_or(rest.len(), |i| i + 1);
        groups.push(&rest[1..end]);
        rest = &rest[end..];
    }
    (groups.len() == source.migrations().len())
        .then(|| groups.into_iter().map(check_answer).collect())
}

/// Runs `sql`, in which only the probe returns rows, and checks the probe's answer: one row,
/// one integer column, 0 or 1.
async fn answer(
    conn: &mut SqliteConnection,
    migration: &Migration,
    sql: &str,
) -> Result<i64, Error> {
    let fail = |reason: String| Error::Probe {
        version: migration.version(),
        path: migration.probe().path.clone(),
        reason,
    };
    let rows = sqlx::raw_sql(AssertSqlSafe(sql))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| fail(format!("the query failed: {e}")))?;
    check_answer(&rows).map_err(fail)
}

/// A probe's answer from its rows: one row, one integer column, 0 or 1.
fn check_answer(rows: &[SqliteRow]) -> Result<i64, String> {
    let [row] = rows else {
        return Err(format!(
            "returned {} rows; a probe returns exactly one row",
            rows.len()
        ));
    };
    if row.len() != 1 {
        return Err(format!(
            "returned {} columns; a probe returns exactly one integer column",
            row.len()
        ));
    }
    let value = row
        .try_get_raw(0)
        .map_err(|e| format!("cannot read its value: {e}"))?;
    if value.is_null() {
        return Err("returned NULL; a probe returns 0 or 1".to_owned());
    }
    let type_name = value.type_info().name().to_owned();
    if type_name != "INTEGER" {
        let shown = value_text(row, 0).unwrap_or_default();
        return Err(format!(
            "returned {type_name} {shown:?}; a probe returns the integer 0 or 1"
        ));
    }
    match row.try_get::<i64, _>(0) {
        Ok(v @ (0 | 1)) => Ok(v),
        Ok(v) => Err(format!("returned {v}; a probe returns 0 or 1")),
        Err(e) => Err(format!("cannot read its value: {e}")),
    }
}

/// A column's value as text, `None` for NULL.
fn value_text(row: &SqliteRow, index: usize) -> Option<String> {
    let raw = row.try_get_raw(index).ok()?;
    if raw.is_null() {
        return None;
    }
    match raw.type_info().name() {
        "INTEGER" => row.try_get::<i64, _>(index).ok().map(|v| v.to_string()),
        "REAL" => row.try_get::<f64, _>(index).ok().map(|v| v.to_string()),
        "BLOB" => row
            .try_get::<Vec<u8>, _>(index)
            .ok()
            .map(|v| format!("<{} bytes>", v.len())),
        _ => row.try_get::<String, _>(index).ok(),
    }
}

/// The foreign-key violations present before a run (none are looked for when no table has a
/// foreign key, which spares a scan of every table).
pub(crate) async fn foreign_keys_before(
    conn: &mut SqliteConnection,
    database: &Path,
) -> Result<Vec<ForeignKeyViolation>, Error> {
    let has = has_foreign_keys(conn)
        .await
        .map_err(|e| database_error(database, "listing foreign keys", e))?;
    if !has {
        return Ok(Vec::new());
    }
    foreign_key_violations(conn, "")
        .await
        .map_err(|e| database_error(database, "checking foreign keys before the run", e))
}

/// Fails when the run left foreign-key violations that were not there `before`; `first` is
/// SQL that returns no rows, run first in the same round trip (releasing a savepoint).
pub(crate) async fn check_foreign_keys(
    conn: &mut SqliteConnection,
    database: &Path,
    first: &'static str,
    before: &[ForeignKeyViolation],
    versions: Vec<i64>,
) -> Result<(), Error> {
    let after = foreign_key_violations(conn, first)
        .await
        .map_err(|e| database_error(database, "checking foreign keys after the run", e))?;
    let introduced = new_violations(before, after);
    if introduced.is_empty() {
        Ok(())
    } else {
        Err(Error::ForeignKeyViolation {
            versions,
            violations: introduced,
        })
    }
}

async fn has_foreign_keys(conn: &mut SqliteConnection) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar::<_, i64>(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master AS m, pragma_foreign_key_list(m.name)
                        WHERE m.type = 'table')",
    )
    .fetch_one(conn)
    .await
    .map(|n| n != 0)
}

async fn foreign_key_violations(
    conn: &mut SqliteConnection,
    first: &'static str,
) -> Result<Vec<ForeignKeyViolation>, sqlx::Error> {
    let sql = format!("{first}PRAGMA foreign_key_check");
    let rows = sqlx::raw_sql(AssertSqlSafe(sql)).fetch_all(conn).await?;
    rows.iter()
        .map(|row| {
            Ok(ForeignKeyViolation {
                table: row.try_get(0)?,
                rowid: row.try_get(1)?,
                parent: row.try_get(2)?,
            })
        })
        .collect()
}

/// Violations of `after` that were not there `before`, compared as counts per (table,
/// parent): a table rebuild may renumber rows, so row ids do not identify a violation.
fn new_violations(
    before: &[ForeignKeyViolation],
    after: Vec<ForeignKeyViolation>,
) -> Vec<ForeignKeyViolation> {
    let mut budget: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for v in before {
        *budget.entry((&v.table, &v.parent)).or_default() += 1;
    }
    let mut grown: BTreeMap<(String, String), bool> = BTreeMap::new();
    let mut counts: BTreeMap<(String, String), usize> = BTreeMap::new();
    for v in &after {
        *counts
            .entry((v.table.clone(), v.parent.clone()))
            .or_default() += 1;
    }
    for (key, count) in &counts {
        let allowed = budget
            .get(&(key.0.as_str(), key.1.as_str()))
            .copied()
            .unwrap_or(0);
        grown.insert(key.clone(), *count > allowed);
    }
    after
        .into_iter()
        .filter(|v| grown[&(v.table.clone(), v.parent.clone())])
        .take(20)
        .collect()
}

async fn execute(conn: &mut SqliteConnection, sql: &'static str) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(sql).execute(conn).await.map(drop)
}

async fn connect(
    options: &SqliteConnectOptions,
    database: &Path,
) -> Result<SqliteConnection, Error> {
    options
        .connect()
        .await
        .map_err(|e| database_error(database, "opening a connection", e))
}

/// The file of the `main` database, `None` for an in-memory database.
async fn main_file(conn: &mut SqliteConnection) -> Result<Option<PathBuf>, sqlx::Error> {
    let rows = sqlx::raw_sql("PRAGMA database_list")
        .fetch_all(conn)
        .await?;
    for row in rows {
        let name: String = row.try_get(1)?;
        if name == "main" {
            let file: Option<String> = row.try_get(2)?;
            return Ok(file.filter(|f| !f.is_empty()).map(PathBuf::from));
        }
    }
    Ok(None)
}

/// The database as the pool names it, for messages and reports.
pub(crate) fn display_name(pool: &SqlitePool) -> PathBuf {
    pool.connect_options().get_filename().to_owned()
}

/// Wraps a sqlx error with what the runner was doing; recognises files that are not databases.
pub(crate) fn database_error(database: &Path, context: &str, cause: sqlx::Error) -> Error {
    if let Some(code) = sqlite_code(&cause) {
        // SQLITE_CORRUPT (11), SQLITE_NOTADB (26)
        if code & 0xff == 11 || code & 0xff == 26 {
            return Error::NotADatabase {
                database: database.to_owned(),
                message: cause
                    .as_database_error()
                    .map(|e| e.message().to_owned())
                    .unwrap_or_default(),
            };
        }
    }
    Error::Database {
        database: database.to_owned(),
        context: context.to_owned(),
        cause,
    }
}

fn sqlite_code(error: &sqlx::Error) -> Option<i32> {
    error.as_database_error()?.code()?.parse().ok()
}

/// SQLITE_BUSY (5) or SQLITE_LOCKED (6), with any extended code.
fn is_busy(error: &sqlx::Error) -> bool {
    sqlite_code(error).is_some_and(|c| c & 0xff == 5 || c & 0xff == 6)
}

/// Reads the history on a pool connection, without a lock.
pub(crate) async fn read_history(pool: &SqlitePool, database: &Path) -> Result<History, Error> {
    let mut conn = pool
        .acquire()
        .await
        .map_err(|e| database_error(database, "opening a connection", e))?;
    History::read(&mut conn)
        .await
        .map_err(|e| database_error(database, "reading the history", e))
}

/// The file of the pool's main database (`None` in memory), as SQLite resolved it.
pub(crate) async fn database_file(
    pool: &SqlitePool,
    database: &Path,
) -> Result<Option<PathBuf>, Error> {
    let mut conn = pool
        .acquire()
        .await
        .map_err(|e| database_error(database, "opening a connection", e))?;
    main_file(&mut conn)
        .await
        .map_err(|e| database_error(database, "locating the database file", e))
}
