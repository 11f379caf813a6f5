//! Reading a backup file: its header (is it a whole SQLite database?), the history it holds,
//! and whether it is intact.

use std::io::Read;
use std::path::Path;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, SqliteConnection};

use crate::error::BackupError;
use crate::history::{History, Identity, identity};

/// How much to check of a backup before reading its history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// That it is a whole SQLite file whose history reads (for listings).
    HistoryOnly,
    /// `PRAGMA integrity_check` too: every page (before a restore).
    Integrity,
}

/// What the header of a backup says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// The page size in bytes.
    pub page_size: u32,
}

/// Reads the header of a SQLite file and checks that the file is as long as it says: an empty
/// file, a file cut short or a file that is not SQLite's is refused before SQLite opens it
/// (SQLite would read an empty file as an empty database).
pub(crate) fn read_header(path: &Path) -> Result<Header, BackupError> {
    let mut file = std::fs::File::open(path).map_err(BackupError::io("cannot open the file"))?;
    let size = file
        .metadata()
        .map_err(BackupError::io("cannot read the file's size"))?
        .len();
    let mut header = [0u8; 100];
    if size < 100 || file.read_exact(&mut header).is_err() || &header[..16] != b"SQLite format 3\0"
    {
        return Err(BackupError::NotSqlite { size });
    }
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65536,
        n => u32::from(n),
    };
    if page_size < 512 || !page_size.is_power_of_two() {
        return Err(BackupError::NotSqlite { size });
    }
    let be32 = |at: usize| {
        u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    // The page count in the header is valid when the change counter matches the
    // version-valid-for number (SQLite 3.7.0 and later); else the file's size is the truth.
    let pages = be32(28);
    let expected = if pages > 0 && be32(24) == be32(92) {
        u64::from(pages) * u64::from(page_size)
    } else {
        size.div_ceil(u64::from(page_size)).max(1) * u64::from(page_size)
    };
    if size < expected {
        return Err(BackupError::Truncated { size, expected });
    }
    Ok(Header { page_size })
}

/// What a backup holds that says whose it is and what version: the history, and the identity
/// of the database it was taken of (`None` for a backup taken before backups carried it).
#[derive(Debug, Clone)]
pub(crate) struct Held {
    pub history: History,
    pub identity: Option<Identity>,
}

impl Held {
    /// The version the backup holds.
    pub fn current_version(&self) -> i64 {
        self.history.current_version()
    }
}

/// Checks a backup file's header, opens it read-only and reads the history and identity it
/// holds.
pub(crate) async fn backup_history(path: &Path, check: Check) -> Result<Held, BackupError> {
    read_header(path)?;
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
        let history = History::read(&mut conn).await.map_err(unreadable)?;
        let identity = identity::read(&mut conn).await.map_err(unreadable)?;
        Ok(Held {
            history,
            identity: identity.map(|held| held.identity),
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::{OpenMode, RawConnection};

    #[test]
    fn empty_cut_and_foreign_files_are_refused_by_their_header() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db.sqlite3");
        let conn = RawConnection::open(&db, OpenMode::Create).unwrap();
        conn.exec("CREATE TABLE t (x); INSERT INTO t VALUES (randomblob(20000));")
            .unwrap();
        drop(conn);
        let bytes = std::fs::read(&db).unwrap();
        assert_eq!(read_header(&db).unwrap().page_size, 4096);

        let cases: [(&str, &[u8]); 4] = [
            ("empty", b""),
            ("hundred bytes of text", &[b'x'; 100]),
            ("the first hundred bytes", &bytes[..100]),
            ("one page short", &bytes[..bytes.len() - 4096]),
        ];
        for (what, content) in cases {
            std::fs::write(&db, content).unwrap();
            let err = read_header(&db).unwrap_err();
            assert!(
                matches!(
                    err,
                    BackupError::NotSqlite { .. } | BackupError::Truncated { .. }
                ),
                "{what}: {err}"
            );
        }
    }
}
