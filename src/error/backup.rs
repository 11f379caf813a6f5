//! Why a backup failed: the typed cause of [`Error::Backup`](crate::Error::Backup).

use std::path::{Path, PathBuf};

use crate::ffi::SqliteFailure;

/// Why a backup could not be taken, read, verified or restored.
///
/// It is the `cause` of [`Error::Backup`](crate::Error::Backup), which names the database
/// and the file or directory at fault. A lock held past the busy timeout is never one of
/// these: it is [`Error::Busy`](crate::Error::Busy).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// SQLite failed while opening a file, copying pages or committing the copy.
    #[error("{doing}: {failure}")]
    Sqlite {
        /// What the runner was doing.
        doing: &'static str,
        /// What SQLite said.
        #[source]
        failure: SqliteFailure,
    },

    /// A file-system operation failed (creating the directory, syncing, renaming, listing).
    #[error("{doing}: {cause}")]
    Io {
        /// What the runner was doing.
        doing: &'static str,
        /// The operating system's error.
        #[source]
        cause: std::io::Error,
    },

    /// The file does not open as a SQLite database, or its history cannot be read.
    #[error("does not open as a backup: {cause}")]
    Unreadable {
        /// SQLite's error.
        #[source]
        cause: sqlx::Error,
    },

    /// The file is not a SQLite database: it lacks the header (an empty or overwritten file).
    #[error("not a SQLite database ({size} bytes, no SQLite header)")]
    NotSqlite {
        /// The file's size in bytes.
        size: u64,
    },

    /// The file is shorter than the database its header describes.
    #[error("truncated: {size} bytes, but its header describes {expected} bytes")]
    Truncated {
        /// The file's size in bytes.
        size: u64,
        /// The size its header describes.
        expected: u64,
    },

    /// `PRAGMA integrity_check` found the file damaged.
    #[error("integrity check failed: {}", problems.join("; "))]
    Damaged {
        /// The first problems the check reported.
        problems: Vec<String>,
    },

    /// A new copy does not hold the version the database was at.
    #[error("the copy reports version {found}, but the database was at version {expected}")]
    WrongVersion {
        /// The version of the database.
        expected: i64,
        /// The version the copy holds.
        found: i64,
    },

    /// The backup's page size differs from the database's, and the database is in WAL mode,
    /// where SQLite cannot restore across page sizes. Nothing was changed.
    #[error(
        "the backup's page size is {backup} bytes and the database's is {database}, and the \
         database is in WAL mode, where SQLite cannot restore across page sizes; nothing was \
         changed. Either stop every process that uses the database, take it out of WAL mode \
         (`PRAGMA journal_mode = DELETE`), restore, and put it back (`PRAGMA journal_mode = \
         WAL`); or give a copy of the backup the database's page size (`PRAGMA page_size = \
         {database}; VACUUM;` on the copy: VACUUM may renumber the rows of tables without an \
         INTEGER PRIMARY KEY) and restore that copy by name"
    )]
    PageSizeMismatch {
        /// The backup's page size.
        backup: u32,
        /// The database's page size.
        database: u32,
    },

    /// Backups are off for this migrator
    /// ([`Migrator::without_backups`](crate::Migrator::without_backups)).
    #[error("backups are off for this migrator")]
    Off,

    /// The file named for a restore is the database itself.
    #[error("it is the database file itself: name one of its backups")]
    IsTheDatabase,

    /// The database is in memory: there is no file to copy.
    #[error("the database is in memory: there is no file to back up")]
    InMemory,

    /// The newest backup that holds the version asked for failed its check. It is never
    /// skipped in favour of an older one.
    #[error(
        "the newest backup holding version {version} failed its check and will not be restored \
         ({cause}); move it away to fall back to an older one, or roll back with the scripts"
    )]
    NewestRefused {
        /// The version asked for.
        version: i64,
        /// Why the backup was refused.
        #[source]
        cause: Box<BackupError>,
    },

    /// After a restore the database reports another version than the backup held.
    #[error(
        "after the restore the database reports version {found}, not {expected}; the state \
         before is in {}", safety.display()
    )]
    RestoredWrongVersion {
        /// The version of the restored backup.
        expected: i64,
        /// The version the database reports.
        found: i64,
        /// The safety backup taken before the restore.
        safety: PathBuf,
    },
}

impl BackupError {
    /// A SQLite failure while doing something.
    pub(crate) fn sqlite(doing: &'static str) -> impl FnOnce(SqliteFailure) -> Self {
        move |failure| BackupError::Sqlite { doing, failure }
    }

    /// A file-system failure while doing something.
    pub(crate) fn io(doing: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        move |cause| BackupError::Io { doing, cause }
    }

    /// The error of backing up (or restoring) `database`, at the backup file or directory
    /// `path`: the one way an [`Error::Backup`](super::Error::Backup) is made.
    pub(crate) fn at(self, database: &Path, path: &Path) -> super::Error {
        super::Error::Backup {
            database: database.to_owned(),
            path: path.to_owned(),
            cause: self,
        }
    }
}
