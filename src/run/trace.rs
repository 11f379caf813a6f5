//! Tracing spans, so that a service sees one run as one unit in its traces: one span per
//! operation (`migrate`, `rollback`, `restore`, `import_sqlx`, `export_sqlx`, `status`,
//! `manual_backup`), with the database, whether it is a dry run, and, when it ends, the versions it
//! went from and to (or the kind of its error); inside it, `backup`, `write_lock`, one
//! `migration` per migration run (with its version) and `commit`. Every event of the run is
//! in its span.

use std::path::Path;

use tracing::field::Empty;
use tracing::{Instrument, Span};

use crate::error::Error;
use crate::report::{BackupInfo, MigrateReport, RollbackReport, StatusReport};

/// The operations that have a span.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Operation {
    Migrate,
    Rollback,
    Restore,
    ImportSqlx,
    ExportSqlx,
    Status,
    Backup,
}

/// The span of `operation` on `database`.
pub(crate) fn operation(operation: Operation, database: &Path, dry_run: bool) -> Span {
    macro_rules! span {
        ($name:literal) => {
            tracing::info_span!(
                target: "backstop",
                $name,
                database = %database.display(),
                dry_run,
                from_version = Empty,
                to_version = Empty,
                error = Empty,
            )
        };
    }
    match operation {
        Operation::Migrate => span!("migrate"),
        Operation::Rollback => span!("rollback"),
        Operation::Restore => span!("restore"),
        Operation::ImportSqlx => span!("import_sqlx"),
        Operation::ExportSqlx => span!("export_sqlx"),
        Operation::Status => span!("status"),
        Operation::Backup => span!("manual_backup"),
    }
}

/// Which way a migration's script runs.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Direction {
    Forward,
    Rollback,
}

/// The span of one migration run inside an operation.
pub(crate) fn migration(version: i64, direction: Direction) -> Span {
    let direction = match direction {
        Direction::Forward => "forward",
        Direction::Rollback => "rollback",
    };
    tracing::info_span!(target: "backstop", "migration", version, direction)
}

/// The steps of a locked run that have a span of their own.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Step {
    /// Copying the database (before the lock, brought up to date under it).
    Backup,
    /// Waiting for the write lock.
    WriteLock,
    /// Committing (and pruning old backups).
    Commit,
}

/// The span of `step` inside an operation.
pub(crate) fn step(step: Step) -> Span {
    match step {
        Step::Backup => tracing::info_span!(target: "backstop", "backup"),
        Step::WriteLock => tracing::info_span!(target: "backstop", "write_lock"),
        Step::Commit => tracing::info_span!(target: "backstop", "commit"),
    }
}

/// Runs `work` in `span`, and records in it the versions the operation went from and to, or
/// the kind of its error.
pub(crate) async fn traced<T: Versions>(
    span: Span,
    work: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    let result = work.instrument(span.clone()).await;
    match &result {
        Ok(report) => {
            if let Some((from, to)) = report.versions() {
                span.record("from_version", from);
                span.record("to_version", to);
            }
        }
        Err(error) => {
            span.record("error", error.kind());
        }
    }
    result
}

/// The versions an operation went from and to, as its report says (`None` for one that does
/// not change the version).
pub(crate) trait Versions {
    fn versions(&self) -> Option<(i64, i64)> {
        None
    }
}

impl Versions for MigrateReport {
    fn versions(&self) -> Option<(i64, i64)> {
        Some((self.from_version, self.to_version))
    }
}

impl Versions for RollbackReport {
    fn versions(&self) -> Option<(i64, i64)> {
        Some((self.from_version, self.to_version))
    }
}

impl Versions for StatusReport {
    fn versions(&self) -> Option<(i64, i64)> {
        Some((self.current_version, self.current_version))
    }
}

impl Versions for BackupInfo {
    fn versions(&self) -> Option<(i64, i64)> {
        self.version.map(|v| (v, v))
    }
}
