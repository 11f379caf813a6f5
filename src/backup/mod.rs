//! Online backups (the file read under a read snapshot and the log, in WAL mode; SQLite's
//! backup API otherwise), restores through the backup API, and the catalogue of a database's
//! backups with its retention.
//!
//! A backup of `app.sqlite3` holding version 3, taken before a migration, is named
//! `app.sqlite3.backup-<tag>-20261124T022550123456Z-v3-migrate.sqlite3`, where `<tag>` is the
//! database's identity. It is written under a hidden temporary name
//! (`.app.sqlite3.backup-….partial`), synced, checked (it must open
//! and report the version it is supposed to hold) and only then renamed, so a backup with a
//! final name is always complete. Temporary files left by an interrupted run are removed by the
//! next run that holds the database's write lock, and are never listed or restored.
//!
//! A backup is a self-contained database in rollback-journal mode, even when the live database
//! is in WAL mode: open it with any SQLite tool.
//!
//! The parts: [`catalogue`] names, lists and prunes the files; [`identity`] tells whose a
//! backup is; [`trust`] sets and checks permissions, owners and links; [`take`] writes a new
//! backup; [`raw`] copies the file through SQLite's own descriptor; [`copy`] drives the backup
//! API (into a new file, or into the live database for a restore); [`wal`] reads the log's
//! header and brings a copy up to date from it; [`file`] reads a backup's header, history and
//! identity and checks its integrity.

mod catalogue;
mod copy;
mod file;
mod identity;
mod name;
mod raw;
mod take;
mod trust;
mod wal;

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use time::OffsetDateTime;

pub(crate) use catalogue::{BackupDir, RunLock};
#[cfg(feature = "bench")]
pub use copy::{BenchCopy, STEP_PAGES, bench_copy};
pub(crate) use copy::{CopyFailure, LockedRestore, copy_database};
pub(crate) use file::{Check, Header, backup_history, read_header};
pub(crate) use identity::{Whose, is_first_backup, whose};
pub(crate) use name::taken_at_in_name;
pub(crate) use take::{Copy, Fresh, Journal, NewBackup, start};
pub(crate) use trust::check_file;

/// Progress of a backup or restore, reported after each step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupProgress {
    /// Pages copied so far.
    pub copied_pages: u64,
    /// Pages in the database.
    pub total_pages: u64,
}

/// A callback that receives backup progress.
pub(crate) type ProgressFn = Arc<dyn Fn(BackupProgress) + Send + Sync>;

/// Why a backup was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupReason {
    /// Before a migration.
    Migrate,
    /// Before a rollback.
    Rollback,
    /// Asked for ([`Migrator::backup`](crate::Migrator::backup)).
    Manual,
    /// Before sqlx's history was imported ([`Migrator::import_sqlx`](crate::Migrator::import_sqlx)).
    Import,
}

impl BackupReason {
    /// The reason as it appears in backup names and in JSON (`"migrate"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            BackupReason::Migrate => "migrate",
            BackupReason::Rollback => "rollback",
            BackupReason::Manual => "manual",
            BackupReason::Import => "import",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [
            BackupReason::Migrate,
            BackupReason::Rollback,
            BackupReason::Manual,
            BackupReason::Import,
        ]
        .into_iter()
        .find(|r| r.as_str() == text)
    }
}

/// One backup of a database, as listed by [`Migrator::backups`](crate::Migrator::backups).
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct BackupInfo {
    /// The backup file.
    pub path: PathBuf,
    /// The version it holds, read from the backup itself; `None` when it cannot be read.
    pub version: Option<i64>,
    /// When it was taken (UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub taken_at: OffsetDateTime,
    /// Its size in bytes.
    pub size: u64,
    /// Why it was taken.
    pub reason: BackupReason,
    /// Named before backups carried their database's identity: nothing tells whether it is a
    /// backup of this database or of another one with the same file name, so a rollback never
    /// chooses it and retention never removes it (restore it by name if it is this database's).
    pub untagged: bool,
    /// Why its version could not be read, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Runs blocking work (FFI calls, file I/O) on Tokio's blocking pool; a panic in it is
/// resumed in the caller.
pub(crate) async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(err) => std::panic::resume_unwind(err.into_panic()),
    }
}
