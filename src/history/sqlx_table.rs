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
