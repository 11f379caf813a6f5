//! The database's identity (`_backstop_database`, defined in `identity.sql`): a random value
//! written by the first run that backs the database up, in its transaction. Every backup taken
//! afterwards holds it, being a copy; the backup that first run took (before the database had
//! it) is named beside it. A backup holding another identity is another database's, whatever
//! its file is named; the file's tag in a backup's name (inode, device, birth time) is only a
//! fast filter, and it is not enough where a file system gives no birth time and reuses a
//! freed inode at once.
//!
//! These queries are built at run time (not checked by sqlx's macros): the table may not exist.

use std::fmt;

use sqlx::SqliteConnection;

/// The DDL of the identity table (idempotent).
const DDL: &str = include_str!("identity.sql");

/// A database's identity: 32 hexadecimal digits from SQLite's random number generator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity(String);

impl Identity {
    /// An identity as stored: 32 lower-case hexadecimal digits, or nothing (a value written by
    /// hand is no identity).
    fn parse(text: String) -> Option<Self> {
        let valid =
            text.len() == 32 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        valid.then_some(Identity(text))
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a database holds of its identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identified {
    pub identity: Identity,
    /// The file name of the backup taken by the run that gave the database its identity (that
    /// backup, taken before, does not hold it).
    pub first_backup: Option<String>,
}

/// The identity a database holds, `None` when it has none (no table, or no valid row).
pub(crate) async fn read(conn: &mut SqliteConnection) -> Result<Option<Identified>, sqlx::Error> {
    let exists: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_backstop_database'",
    )
    .fetch_one(&mut *conn)
    .await?;
    if exists == 0 {
        return Ok(None);
    }
    let row: Option<(String, Option<String>)> =
        sqlx::query_as("SELECT identity, first_backup FROM _backstop_database LIMIT 1")
            .fetch_optional(conn)
            .await?;
    Ok(row.and_then(|(identity, first_backup)| {
        Some(Identified {
            identity: Identity::parse(identity)?,
            first_backup,
        })
    }))
}

/// A new identity.
pub(crate) async fn new(conn: &mut SqliteConnection) -> Result<Identity, sqlx::Error> {
    let text: String = sqlx::query_scalar("SELECT lower(hex(randomblob(16)))")
        .fetch_one(conn)
        .await?;
    Ok(Identity::parse(text).expect("32 hexadecimal digits"))
}

/// Makes `identified` what the database holds (in the caller's transaction); true when that
/// changed anything.
pub(crate) async fn write(
    conn: &mut SqliteConnection,
    identified: &Identified,
) -> Result<bool, sqlx::Error> {
    if read(conn).await?.as_ref() == Some(identified) {
        return Ok(false);
    }
    sqlx::raw_sql(DDL).execute(&mut *conn).await?;
    sqlx::query("DELETE FROM _backstop_database")
        .execute(&mut *conn)
        .await?;
    sqlx::query("INSERT INTO _backstop_database (identity, first_backup) VALUES (?, ?)")
        .bind(&identified.identity.0)
        .bind(&identified.first_backup)
        .execute(conn)
        .await?;
    Ok(true)
}
