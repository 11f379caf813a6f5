//! The stable, machine-readable name of each error variant: the variant's name in snake case.

use super::Error;

impl Error {
    /// A stable, machine-readable name of the variant (`"checksum_mismatch"`, `"busy"`, ...),
    /// for tools that read the CLI's JSON errors: the variant's name in snake case.
    pub fn kind(&self) -> &'static str {
        self.into()
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// The names tools already read stay as they were when the table was written by hand.
    #[test]
    fn kinds_are_the_variants_in_snake_case() {
        let io = || std::io::Error::other("x");
        for (error, kind) in [
            (
                Error::Io {
                    path: PathBuf::new(),
                    cause: io(),
                },
                "io",
            ),
            (
                Error::InvalidUtf8 {
                    path: PathBuf::new(),
                    offset: 0,
                },
                "invalid_utf8",
            ),
            (
                Error::ChecksumMismatch {
                    version: 1,
                    path: PathBuf::new(),
                    recorded: String::new(),
                    actual: String::new(),
                },
                "checksum_mismatch",
            ),
            (
                Error::SqlxVersionUnknown {
                    database: PathBuf::new(),
                    version: 1,
                    description: String::new(),
                },
                "sqlx_version_unknown",
            ),
            (
                Error::NotADatabase {
                    database: PathBuf::new(),
                    message: String::new(),
                },
                "not_a_database",
            ),
            (
                Error::UnsafeBackupPath {
                    path: PathBuf::new(),
                    owner: 0,
                    mode: 0,
                    uid: 0,
                    problem: String::new(),
                },
                "unsafe_backup_path",
            ),
        ] {
            assert_eq!(error.kind(), kind);
        }
    }
}

#[cfg(test)]
mod sources {
    use std::error::Error as _;
    use std::path::PathBuf;

    use super::*;
    use crate::error::BackupError;

    /// An underlying error is the source, for printers that walk the chain.
    #[test]
    fn causes_are_sources() {
        let error = Error::Backup {
            database: PathBuf::from("app.sqlite3"),
            path: PathBuf::from("backups"),
            cause: BackupError::Io {
                doing: "cannot create the backup directory",
                cause: std::io::Error::other("disk full"),
            },
        };
        let backup = error.source().expect("the backup's failure");
        assert_eq!(
            backup.to_string(),
            "cannot create the backup directory: disk full"
        );
        assert_eq!(
            backup.source().expect("the I/O error").to_string(),
            "disk full"
        );
    }
}
