//! sqlx's history table, `_sqlx_migrations`, as sqlx-sqlite 0.9 defines it: what `import-sqlx`
//! takes over, and what `migrate` looks for in a database with no history of its own.

use sqlx::{Row, SqliteConnection};

/// One row of `_sqlx_migrations`.
pub(crate) struct SqlxRow {
    pub version: i64,
    pub description: String,
    pub success: bool,
    pub checksum: Vec<u8>,
    pub execution_time: i64,
}

/// sqlx's history table, created as sqlx-sqlite 0.9 creates it when it is missing.
pub(crate) async fn ensure(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
            version BIGINT PRIMARY KEY,
            description TEXT NOT NULL,
            installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
            success BOOLEAN NOT NULL,
            checksum BLOB NOT NULL,
            execution_time BIGINT NOT NULL
        )",
    )
    .execute(conn)
    .await
    .map(drop)
}

/// Records `version` as sqlx records a migration it skipped (applied elsewhere): `success`,
/// `execution_time` -1, replacing any row of that version; `installed_on` is when backstop
/// applied it (UTC, as SQLite's `CURRENT_TIMESTAMP` writes it).
pub(crate) async fn record(
    conn: &mut SqliteConnection,
    version: i64,
    description: &str,
    checksum: &[u8],
    installed_on: time::OffsetDateTime,
) -> Result<(), sqlx::Error> {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let installed_on = installed_on
        .to_offset(time::UtcOffset::UTC)
        .format(&format)
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query(
        "INSERT OR REPLACE INTO _sqlx_migrations
            (version, description, installed_on, success, checksum, execution_time)
         VALUES (?1, ?2, ?3, TRUE, ?4, -1)",
    )
    .bind(version)
    .bind(description)
    .bind(installed_on)
    .bind(checksum)
    .execute(conn)
    .await
    .map(drop)
}

/// Removes sqlx's record of `version`.
pub(crate) async fn forget(conn: &mut SqliteConnection, version: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = ?1")
        .bind(version)
        .execute(conn)
        .await
        .map(drop)
}

/// How many migrations sqlx recorded (`None`: no sqlx history table).
pub(crate) async fn versions(conn: &mut SqliteConnection) -> Result<Option<usize>, sqlx::Error> {
    Ok(rows(conn).await?.map(|rows| rows.len()))
}

/// Every row of sqlx's history, in version order (`None`: no such table).
pub(crate) async fn rows(conn: &mut SqliteConnection) -> Result<Option<Vec<SqlxRow>>, sqlx::Error> {
    let exists: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_one(&mut *conn)
    .await?;
    if exists == 0 {
        return Ok(None);
    }
    let rows = sqlx::query(
        "SELECT version, description, success, checksum, execution_time
         FROM _sqlx_migrations ORDER BY version",
    )
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(SqlxRow {
                version: row.try_get(0)?,
                description: row.try_get(1)?,
                success: row.try_get(2)?,
                checksum: row.try_get(3)?,
                execution_time: row.try_get(4)?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map(Some)
}
