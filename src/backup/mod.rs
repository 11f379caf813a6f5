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

use std::sync::Arc;

pub(crate) use catalogue::{BackupDir, RunLock};
#[cfg(feature = "bench")]
pub use copy::{BenchCopy, STEP_PAGES, bench_copy};
pub(crate) use copy::{CopyFailure, LockedRestore, copy_database};
pub(crate) use file::{Check, Header, backup_history, read_header};
pub(crate) use identity::{Whose, is_first_backup, whose};
pub(crate) use name::taken_at_in_name;
pub use raw::BackupCopy;
pub(crate) use take::{Copy, CopySettings, Fresh, Journal, NewBackup, Reader, start};
pub(crate) use trust::check_file;

/// A callback that receives backup progress.
pub(crate) type ProgressFn = Arc<dyn Fn(BackupProgress) + Send + Sync>;

pub(crate) use crate::report::{BackupInfo, BackupProgress, BackupReason};

/// Runs blocking work (FFI calls, file I/O) on Tokio's blocking pool; a panic in it is
/// resumed in the caller.
pub(crate) async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(err) => std::panic::resume_unwind(err.into_panic()),
    }
}
