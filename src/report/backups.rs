//! What a database's backups are, as the reports and [`Migrator::backups`](crate::Migrator::backups)
//! give them.

use std::path::PathBuf;

use serde::Serialize;
use time::OffsetDateTime;

/// Progress of a backup or restore, reported after each step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupProgress {
    /// Pages copied so far.
    pub copied_pages: u64,
    /// Pages in the database.
    pub total_pages: u64,
}

/// Why a backup was taken.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum BackupReason {
    /// Before a migration.
    Migrate,
    /// Before a rollback.
    Rollback,
    /// Asked for ([`Migrator::backup`](crate::Migrator::backup)).
    Manual,
    /// Before sqlx's history was imported ([`Migrator::import_sqlx`](crate::Migrator::import_sqlx)).
    Import,
    /// Before backstop's history was written into sqlx's
    /// ([`Migrator::export_sqlx`](crate::Migrator::export_sqlx)).
    Export,
}

impl BackupReason {
    /// The reason as it appears in backup names and in JSON (`"migrate"`, ...).
    pub fn as_str(self) -> &'static str {
        self.into()
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
    /// Nothing tells whether it is a backup of this database or of another one with the same
    /// file name: it holds no database identity (an older build took it, or named it without a
    /// tag) and no history to compare. A rollback never chooses it and retention never removes
    /// it (restore it by name, with `restore_foreign_files`, if it is this database's).
    pub untagged: bool,
    /// Why its version could not be read, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
