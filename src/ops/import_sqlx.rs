//! Coming from sqlx: backstop's history from sqlx's `_sqlx_migrations`, so that a database
//! sqlx migrated moves to backstop without running (or re-running) anything.
//!
//! Every version sqlx applied successfully is recorded as `imported`, after checking that the
//! source has it, unmodified (sqlx's checksum is SHA-384 of the file's exact bytes). A failed
//! (dirty) sqlx row, a version the source lacks, or a modified file is refused, naming it.
//! `_sqlx_migrations` is left in place. Running it again does nothing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::history::sqlx_table::SqlxRow;
use crate::run::database::Database;
use serde::Serialize;

use crate::backup::BackupReason;
use crate::config::Config;
use crate::connection::OnDatabase;
use crate::error::Error;
use crate::history::{self, History, NewRecord};
use crate::report::MigrationState;
use crate::run::session::{Intent, Mode, Outcome, Session, run_locked};
use crate::run::supersede;
use crate::source::Source;

/// The outcome of [`Migrator::import_sqlx`](crate::Migrator::import_sqlx).
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct ImportReport {
    /// The database file.
    pub database: PathBuf,
    /// The versions recorded now (for a dry run: that would be).
    pub imported: Vec<i64>,
    /// The versions sqlx applied that backstop's history already had.
    pub already_recorded: Vec<i64>,
    /// Imported migrations whose effect a later one removed: `(version, superseded by)`.
    pub superseded: Vec<(i64, i64)>,
    /// The backup taken before the import.
    pub backup: Option<PathBuf>,
    /// Whether this was a dry run, which changed nothing.
    pub dry_run: bool,
}

/// An import or export does not change the version.
impl crate::run::trace::Versions for ImportReport {}

impl Outcome for ImportReport {
    fn changed_database(&self) -> bool {
        !self.imported.is_empty()
    }
}

impl std::fmt::Display for ImportReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(backup) = &self.backup {
            writeln!(f, "{:<14} {}", "backup", backup.display())?;
        }
        let verb = if self.dry_run {
            "would import"
        } else {
            "imported"
        };
        if self.imported.is_empty() && self.already_recorded.is_empty() {
            writeln!(
                f,
                "nothing to import: sqlx's history (_sqlx_migrations) records no migration"
            )?;
        } else if self.imported.is_empty() {
            writeln!(
                f,
                "nothing to import: backstop's history already has sqlx's migrations"
            )?;
        } else {
            writeln!(f, "{verb:<14} {:?}", self.imported)?;
        }
        for (version, by) in &self.superseded {
            writeln!(
                f,
                "{:<14} {version} (its effect was removed by {by})",
                "superseded"
            )?;
        }
        writeln!(
            f,
            "sqlx's history (_sqlx_migrations) is left in place; backstop does not read it again"
        )?;
        if self.dry_run {
            writeln!(f, "dry run: nothing was changed")?;
        }
        Ok(())
    }
}

/// Imports sqlx's history into backstop's.
pub(crate) async fn import_sqlx(
    db: &Database<'_>,
    source: &Source,
    config: &Config,
    mode: Mode,
) -> Result<ImportReport, Error> {
    run_locked(
        db,
        config,
        (mode, Intent::Backup(BackupReason::Import)),
        async |session: &mut Session| import_locked(session, source).await,
    )
    .await
}

async fn import_locked(session: &mut Session, source: &Source) -> Result<ImportReport, Error> {
    let database = session.database().to_owned();
    let rows = history::sqlx_table::rows(session.conn())
        .await
        .on(&database, "reading sqlx's history")?
        .ok_or_else(|| Error::NoSqlxHistory {
            database: database.clone(),
        })?;
    let history = session.history().await?;
    check(&rows, source, &database)?;
    let (already, new): (Vec<&SqlxRow>, Vec<&SqlxRow>) =
        rows.iter().partition(|r| history.get(r.version).is_some());
    let mut report = ImportReport {
        database: database.clone(),
        imported: new.iter().map(|r| r.version).collect(),
        already_recorded: already.iter().map(|r| r.version).collect(),
        superseded: Vec::new(),
        backup: None,
        dry_run: session.mode() == Mode::DryRun,
    };
    if new.is_empty() {
        return Ok(report);
    }
    session.take_backup(history.current_version()).await?;
    report.backup = session.backup().map(Path::to_owned);
    let backup_name = report
        .backup
        .as_deref()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned());
    let mut on = session.guarded();
    let conn = &mut *on.conn;
    history::ensure_current(conn)
        .await
        .on(&database, "creating the history table")?;
    for row in &new {
        let migration = source.get(row.version).expect("checked above");
        let execution = Duration::from_nanos(u64::try_from(row.execution_time).unwrap_or(0));
        history::insert(
            conn,
            &NewRecord {
                version: row.version,
                description: migration.description(),
                checksum: &migration.checksum().to_hex(),
                execution_ms: i64::try_from(execution.as_millis()).unwrap_or(i64::MAX),
                method: MigrationState::Imported,
                backup: backup_name.as_deref(),
                rollback_sql: migration.rollback().sql(),
                probe_sql: migration.probe_sql(),
            },
        )
        .await
        .on(&database, "recording an imported migration")?;
    }
    let all = History::read(conn)
        .await
        .on(&database, "reading the history")?;
    let imported: Vec<i64> = all
        .records()
        .iter()
        .filter(|r| r.method == MigrationState::Imported)
        .map(|r| r.version)
        .collect();
    // Nothing ran here (sqlx ran them): the imported migrations are both the candidates and
    // what may have removed their effects.
    let ran: Vec<_> = imported.iter().filter_map(|v| source.get(*v)).collect();
    report.superseded = supersede::record(&mut on, source, &imported, &ran, &database).await?;
    tracing::info!(database = %database.display(), imported = ?report.imported, "imported sqlx's history");
    Ok(report)
}

/// Refuses a failed sqlx migration, a version the source lacks, a modified file, and a gap (a
/// migration of the source below the latest sqlx applied that sqlx did not apply: imported so,
/// backstop would refuse it forever as pending below an applied version).
fn check(rows: &[SqlxRow], source: &Source, database: &Path) -> Result<(), Error> {
    for row in rows {
        if !row.success {
            return Err(Error::SqlxDirty {
                database: database.to_owned(),
                version: row.version,
                description: row.description.clone(),
            });
        }
        let Some(migration) = source.get(row.version) else {
            return Err(Error::SqlxVersionUnknown {
                database: database.to_owned(),
                version: row.version,
                description: row.description.clone(),
            });
        };
        if migration.sqlx_checksum() != row.checksum.as_slice() {
            return Err(Error::ChecksumMismatch {
                version: row.version,
                path: migration.path().to_owned(),
                recorded: hex::encode(&row.checksum),
                actual: hex::encode(migration.sqlx_checksum()),
            });
        }
    }
    let latest = rows.iter().map(|r| r.version).max().unwrap_or(0);
    let missing: Vec<i64> = source
        .migrations()
        .iter()
        .map(|m| m.version())
        .filter(|v| *v < latest && !rows.iter().any(|r| r.version == *v))
        .collect();
    if !missing.is_empty() {
        return Err(Error::SqlxGap {
            database: database.to_owned(),
            missing,
            latest,
        });
    }
    Ok(())
}
