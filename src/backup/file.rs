//! Reading a backup file: the history it holds, and whether it is intact.

use std::path::Path;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, SqliteConnection};

use crate::error::BackupError;
use crate::history::History;

/// How much to check of a backup before reading its history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// Only that it opens and its history reads (for listings).
    HistoryOnly,
    /// `PRAGMA integrity_check` first: every page (before a restore).
    Integrity,
}

/// Opens a backup file read-only and reads the history it holds.
pub(crate) async fn backup_history(path: &Path, check: Check) -> Result<History, BackupError> {
    let unreadable = |cause| BackupError::Unreadable { cause };
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .connect()
        .await
        .map_err(unreadable)?;
    let result = async {
        if check == Check::Integrity {
            integrity_check(&mut conn).await?;
        }
        History::read(&mut conn).await.map_err(unreadable)
    }
    .await;
    let _ = conn.close().await;
    result
}

async fn integrity_check(conn: &mut SqliteConnection) -> Result<(), BackupError> {
    let rows: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(conn)
        .await
        .map_err(|cause| BackupError::Unreadable { cause })?;
    if rows == ["ok"] {
        Ok(())
    } else {
        Err(BackupError::Damaged {
            problems: rows.into_iter().take(3).collect(),
        })
    }
}
