//! Writing the history table, and bringing a table of an older build up to the current
//! definition (without a word: it is backstop's own table).

use sqlx::SqliteConnection;
use time::OffsetDateTime;

use crate::report::MigrationState;

/// The DDL of the history table (idempotent).
const DDL: &str = include_str!("history.sql");

/// The column the current definition added last: a table without it is an older build's.
const NEWEST_COLUMN: &str = "probe_sql";

/// Whether the table has the current definition (false also when it does not exist).
pub(super) async fn is_current(conn: &mut SqliteConnection) -> Result<bool, sqlx::Error> {
    let found: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pragma_table_info('_backstop_migrations') WHERE name = ?",
    )
    .bind(NEWEST_COLUMN)
    .fetch_one(conn)
    .await?;
    Ok(found == 1)
}

/// Creates the table when it is missing, and rebuilds an older build's table to the current
/// definition, keeping every row (in the caller's transaction).
pub(crate) async fn ensure_current(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    let exists: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_backstop_migrations'",
    )
    .fetch_one(&mut *conn)
    .await?;
    if exists == 1 && !is_current(conn).await? {
        let new_table = DDL.replace(
            "CREATE TABLE IF NOT EXISTS _backstop_migrations (",
            "CREATE TABLE _backstop_migrations_current (",
        );
        let rebuild = format!(
            "{new_table}
             INSERT INTO _backstop_migrations_current
                 (version, description, checksum, applied_at, execution_ms, method, backup)
             SELECT version, description, checksum, applied_at, execution_ms, method, backup
             FROM _backstop_migrations;
             DROP TABLE _backstop_migrations;
             ALTER TABLE _backstop_migrations_current RENAME TO _backstop_migrations;"
        );
        tracing::debug!("bringing the history table of an older build up to date");
        sqlx::raw_sql(sqlx::AssertSqlSafe(rebuild))
            .execute(&mut *conn)
            .await?;
        return Ok(());
    }
    sqlx::raw_sql(DDL).execute(conn).await.map(drop)
}

/// Drops the (empty) table: a database rolled back to version 0 is left as it was before the
/// runner first touched it.
pub(crate) async fn drop_table(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    sqlx::raw_sql("DROP TABLE IF EXISTS _backstop_migrations")
        .execute(conn)
        .await
        .map(drop)
}

/// What to record for one migration.
pub(crate) struct NewRecord<'a> {
    pub version: i64,
    pub description: &'a str,
    pub checksum: &'a str,
    pub execution_ms: i64,
    /// Applied, adopted or imported.
    pub method: MigrationState,
    pub backup: Option<&'a str>,
    /// `None` when the rollback is code (an older build must restore a backup).
    pub rollback_sql: Option<&'a str>,
    pub probe_sql: &'a str,
}

pub(crate) async fn insert(
    conn: &mut SqliteConnection,
    record: &NewRecord<'_>,
) -> Result<(), sqlx::Error> {
    let applied_at = OffsetDateTime::now_utc();
    let method = record.method.as_str();
    super::checked::execute!(
        "INSERT INTO _backstop_migrations
             (version, description, checksum, applied_at, execution_ms, method, backup,
              rollback_sql, probe_sql)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        record.version,
        record.description,
        record.checksum,
        applied_at,
        record.execution_ms,
        method,
        record.backup,
        record.rollback_sql,
        record.probe_sql,
    )
    .execute(conn)
    .await
    .map(drop)
}

pub(crate) async fn delete(conn: &mut SqliteConnection, version: i64) -> Result<(), sqlx::Error> {
    super::checked::execute!(
        "DELETE FROM _backstop_migrations WHERE version = ?",
        version
    )
    .execute(conn)
    .await
    .map(drop)
}

/// Records that migration `by` removed the effect of migration `version`.
pub(crate) async fn set_superseded(
    conn: &mut SqliteConnection,
    version: i64,
    by: i64,
) -> Result<(), sqlx::Error> {
    super::checked::execute!(
        "UPDATE _backstop_migrations SET superseded_by = ? WHERE version = ?",
        by,
        version
    )
    .execute(conn)
    .await
    .map(drop)
}

/// Forgets what migration `by` superseded (it was rolled back: their effects are back).
pub(crate) async fn clear_superseded(
    conn: &mut SqliteConnection,
    by: i64,
) -> Result<(), sqlx::Error> {
    super::checked::execute!(
        "UPDATE _backstop_migrations SET superseded_by = NULL WHERE superseded_by = ?",
        by
    )
    .execute(conn)
    .await
    .map(drop)
}
