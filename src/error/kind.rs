//! The stable, machine-readable name of each error variant.

use super::Error;

impl Error {
    /// A stable, machine-readable name of the variant (`"checksum_mismatch"`, `"busy"`, ...),
    /// for tools that read the CLI's JSON errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Io { .. } => "io",
            Error::Write { .. } => "write",
            Error::InvalidFileName { .. } => "invalid_file_name",
            Error::DuplicateVersion { .. } => "duplicate_version",
            Error::MissingFile { .. } => "missing_file",
            Error::InvalidUtf8 { .. } => "invalid_utf8",
            Error::EmptyScript { .. } => "empty_script",
            Error::InvalidScript { .. } => "invalid_script",
            Error::ChecksumMismatch { .. } => "checksum_mismatch",
            Error::UnknownVersions { .. } => "unknown_versions",
            Error::OutOfOrder { .. } => "out_of_order",
            Error::UnknownTarget { .. } => "unknown_target",
            Error::TargetBelowCurrent { .. } => "target_below_current",
            Error::VersionNotApplied { .. } => "version_not_applied",
            Error::NoBackup { .. } => "no_backup",
            Error::Busy { .. } => "busy",
            Error::NotADatabase { .. } => "not_a_database",
            Error::Statement { .. } => "statement",
            Error::Probe { .. } => "probe",
            Error::ProbeNotConfirmed { .. } => "probe_not_confirmed",
            Error::ForeignKeyViolation { .. } => "foreign_key_violation",
            Error::Backup { .. } => "backup",
            Error::UnsafeBackupPath { .. } => "unsafe_backup_path",
            Error::ForeignBackup { .. } => "foreign_backup",
            Error::PrivateDatabase { .. } => "private_database",
            Error::ReadOnly { .. } => "read_only",
            Error::SqlxHistory { .. } => "sqlx_history",
            Error::NoSqlxHistory { .. } => "no_sqlx_history",
            Error::SqlxDirty { .. } => "sqlx_dirty",
            Error::SqlxVersionUnknown { .. } => "sqlx_version_unknown",
            Error::SqlxGap { .. } => "sqlx_gap",
            Error::Database { .. } => "database",
        }
    }
}
