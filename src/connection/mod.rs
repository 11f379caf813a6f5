//! The runner's connections to the database the pool names: opening them, finding the file
//! behind them, and turning sqlx's errors into ones that name the database.

mod runner;
mod shape;

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Row, Sqlite, SqliteConnection, SqlitePool};

use crate::error::{Error, LockHolder};
use crate::ffi::{OpenMode, RawConnection};
pub(crate) use runner::{Guarded, Judged, RunnerConnection, Use};
pub(crate) use shape::is_read_only;
#[cfg(feature = "cli")]
pub(crate) use shape::names_no_file;

/// The database as the pool names it, for messages and reports.
pub(crate) fn display_name(pool: &SqlitePool) -> PathBuf {
    pool.connect_options().get_filename().to_owned()
}

/// `options` with sqlx's statement logging off (backstop's own events say what matters; a
/// batch of probes would fill a log), unless the subscriber asks for sqlx's queries
/// (`RUST_LOG=sqlx=debug`): for every connection and pool backstop opens itself.
pub(crate) fn quiet(options: SqliteConnectOptions) -> SqliteConnectOptions {
    if tracing::enabled!(target: "sqlx::query", tracing::Level::DEBUG) {
        options.log_statements(log::LevelFilter::Debug)
    } else {
        options.disable_statement_logging()
    }
}

/// Opens a connection of the runner's own with `options` ([`quiet`]).
pub(crate) async fn connect(
    options: &SqliteConnectOptions,
    database: &Path,
) -> Result<SqliteConnection, Error> {
    quiet(options.clone())
        .connect()
        .await
        .on(database, "opening a connection")
}

/// Borrows a connection of the pool.
pub(crate) async fn acquire(
    pool: &SqlitePool,
    database: &Path,
) -> Result<PoolConnection<Sqlite>, Error> {
    pool.acquire().await.on(database, "opening a connection")
}

/// The error of a read on `conn` (a connection with the pool's options, holding no lock of the
/// runner's): a lock held past that connection's busy timeout is [`Error::Busy`], like every
/// other lock wait.
pub(crate) async fn read_error(
    conn: &mut SqliteConnection,
    database: &Path,
    context: &str,
    cause: sqlx::Error,
) -> Error {
    if is_busy(&cause) {
        let ms: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
            .fetch_one(conn)
            .await
            .unwrap_or(0);
        return Error::Busy {
            database: database.to_owned(),
            timeout: Duration::from_millis(u64::try_from(ms).unwrap_or(0)),
            holder: LockHolder::Connection,
        };
    }
    database_error(database, context, cause)
}

/// The file of the pool's main database (`None` in memory), as SQLite resolved it.
pub(crate) async fn database_file(
    pool: &SqlitePool,
    database: &Path,
) -> Result<Option<PathBuf>, Error> {
    let mut conn = acquire(pool, database).await?;
    main_file(&mut conn)
        .await
        .on(database, "locating the database file")
}

/// The file of the connection's `main` database, `None` for an in-memory database.
pub(crate) async fn main_file(conn: &mut SqliteConnection) -> Result<Option<PathBuf>, sqlx::Error> {
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

/// Runs SQL whose rows do not matter.
pub(crate) async fn execute(
    conn: &mut SqliteConnection,
    sql: &'static str,
) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(sql).execute(conn).await.map(drop)
}

/// Opens the database `file` once more and reads it, so that SQLite rolls back a journal that
/// a failed rollback left behind (a hot journal) now rather than at the next open; true when
/// the read succeeded (SQLite reads nothing before a hot journal is rolled back).
pub(crate) async fn recover(file: &Path) -> bool {
    let file = file.to_owned();
    let recovered = tokio::task::spawn_blocking(move || {
        let conn = RawConnection::open(&file, OpenMode::Existing)?;
        conn.exec("SELECT count(*) FROM sqlite_master")
    })
    .await;
    match recovered {
        Ok(Ok(())) => true,
        Ok(Err(failure)) => {
            tracing::warn!(%failure, "could not read the database after a failed rollback");
            false
        }
        Err(_) => false,
    }
}

/// Adds the database and what the runner was doing to a sqlx error: the one way the library
/// turns a failed query into an [`Error`] (see [`database_error`]).
pub(crate) trait OnDatabase<T> {
    /// The error, if any, as an [`Error`] naming `database` and saying what was being `done`.
    fn on(self, database: &Path, done: &str) -> Result<T, Error>;
}

impl<T> OnDatabase<T> for Result<T, sqlx::Error> {
    fn on(self, database: &Path, done: &str) -> Result<T, Error> {
        self.map_err(|e| database_error(database, done, e))
    }
}

/// Wraps a sqlx error with what the runner was doing; recognises files that are not databases.
pub(crate) fn database_error(database: &Path, context: &str, cause: sqlx::Error) -> Error {
    if sqlite_code(&cause).is_some_and(crate::ffi::is_not_a_database_code) {
        return Error::NotADatabase {
            database: database.to_owned(),
            message: cause
                .as_database_error()
                .map(|e| e.message().to_owned())
                .unwrap_or_default(),
        };
    }
    Error::Database {
        database: database.to_owned(),
        context: context.to_owned(),
        cause,
    }
}

/// Like [`database_error`], but a lock held past the busy timeout is [`Error::Busy`].
pub(crate) fn lock_error(
    database: &Path,
    context: &str,
    cause: sqlx::Error,
    busy_timeout: Duration,
) -> Error {
    if is_busy(&cause) {
        Error::Busy {
            database: database.to_owned(),
            timeout: busy_timeout,
            holder: LockHolder::Connection,
        }
    } else {
        database_error(database, context, cause)
    }
}

fn sqlite_code(error: &sqlx::Error) -> Option<i32> {
    error.as_database_error()?.code()?.parse().ok()
}

/// Whether SQLite said another connection held a lock past the busy timeout.
pub(crate) fn is_busy(error: &sqlx::Error) -> bool {
    sqlite_code(error).is_some_and(crate::ffi::is_busy_code)
}

/// SQLite's busy timeout for `timeout`: milliseconds in a C `int`, a longer wait cut to it.
pub(crate) fn busy_timeout_ms(timeout: Duration) -> i32 {
    i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX)
}

/// Sets the connection's busy timeout.
pub(crate) async fn set_busy_timeout(
    conn: &mut SqliteConnection,
    timeout: Duration,
) -> Result<(), sqlx::Error> {
    let ms = busy_timeout_ms(timeout);
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("PRAGMA busy_timeout = {ms}")))
        .execute(conn)
        .await
        .map(drop)
}
