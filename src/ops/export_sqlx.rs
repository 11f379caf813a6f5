//! Going back to sqlx: sqlx's history (`_sqlx_migrations`) made to say what backstop's says,
//! so that a sqlx build runs on the database again and applies nothing that is applied.
//!
//! Every applied version gets sqlx's row for its forward script (its SHA-384, the description
//! as sqlx derives it from the file name, `success`, `execution_time` -1, as sqlx records a
//! migration applied elsewhere). A row of sqlx's for a version backstop's history lacks is
//! asked about by the migration's probe: its effect absent, the row is stale (backstop rolled
//! the migration back after an import) and is removed; present, sqlx applied it after an
//! export, and the export is refused (import first). Refused too, with the others in one list:
//! an applied version sqlx could not read (not among the migrations given to backstop), a row
//! of a version the source lacks, and a modified applied file (sqlx would record the new file
//! as applied). Nothing is changed then. The write is one locked transaction after a backup;
//! running it again changes nothing.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::backup::BackupReason;
use crate::config::Config;
use crate::connection::OnDatabase;
use crate::error::Error;
use crate::history::{Record, sqlx_table};
use crate::run::database::Database;
use crate::run::probe::{Effect, Probe, probe};
use crate::run::session::{Intent, Mode, Outcome, Session, run_locked};
use crate::source::{Migration, Source};

/// The outcome of [`Migrator::export_sqlx`](crate::Migrator::export_sqlx).
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct ExportReport {
    /// The database file.
    pub database: PathBuf,
    /// The versions whose sqlx row was written now (for a dry run: would be): missing, or
    /// saying something else.
    pub written: Vec<i64>,
    /// The versions whose sqlx row already said what backstop's history says.
    pub unchanged: Vec<i64>,
    /// sqlx's rows of versions that are not applied (their effect absent), removed.
    pub removed: Vec<i64>,
    /// The backup taken before the export (none when nothing was to change).
    pub backup: Option<PathBuf>,
    /// Whether this was a dry run, which changed nothing.
    pub dry_run: bool,
}

/// An import or export does not change the version.
impl crate::run::trace::Versions for ExportReport {}

impl Outcome for ExportReport {
    fn changed_database(&self) -> bool {
        !self.written.is_empty() || !self.removed.is_empty()
    }
}

impl std::fmt::Display for ExportReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(backup) = &self.backup {
            writeln!(f, "{:<14} {}", "backup", backup.display())?;
        }
        let verb = |done: &'static str, would: &'static str| match self.dry_run {
            true => would,
            false => done,
        };
        if !self.changed_database() {
            writeln!(
                f,
                "nothing to export: sqlx's history (_sqlx_migrations) already says what backstop's says"
            )?;
        }
        if !self.written.is_empty() {
            writeln!(
                f,
                "{:<14} {:?}",
                verb("written", "would write"),
                self.written
            )?;
        }
        if !self.removed.is_empty() {
            writeln!(
                f,
                "{:<14} {:?} (not applied)",
                verb("removed", "would remove"),
                self.removed
            )?;
        }
        let mut recorded: Vec<i64> = self
            .written
            .iter()
            .chain(&self.unchanged)
            .copied()
            .collect();
        recorded.sort_unstable();
        writeln!(
            f,
            "sqlx's history records {recorded:?}: a sqlx build whose migrations are these forward \
             scripts (NNN_description.sql, or .up.sql) runs on the database and applies only what \
             comes after"
        )?;
        if self.dry_run {
            writeln!(f, "dry run: nothing was changed")?;
        }
        Ok(())
    }
}

/// Writes backstop's history into sqlx's.
pub(crate) async fn export_sqlx(
    db: &Database<'_>,
    source: &Source,
    config: &Config,
    mode: Mode,
) -> Result<ExportReport, Error> {
    run_locked(
        db,
        config,
        (mode, Intent::Backup(BackupReason::Export)),
        async |session: &mut Session| export_locked(session, source).await,
    )
    .await
}

async fn export_locked(session: &mut Session, source: &Source) -> Result<ExportReport, Error> {
    let database = session.database().to_owned();
    let history = session.history().await?;
    let (applied, mut refused) = readable(history.records(), source)?;
    let rows = sqlx_table::rows(session.conn())
        .await
        .on(&database, "reading sqlx's history")?
        .unwrap_or_default();
    let says = |record: &Record, migration: &Migration| {
        rows.iter().any(|row| {
            row.version == record.version
                && row.success
                && row.checksum == migration.sqlx_checksum()
                && row.description == sqlx_description(migration)
        })
    };
    let (unchanged, written): (Vec<_>, Vec<_>) = applied.iter().partition(|(r, m)| says(r, m));
    let unapplied = rows
        .iter()
        .map(|row| row.version)
        .filter(|v| history.get(*v).is_none());
    let mut removed = Vec::new();
    for version in unapplied.collect::<Vec<_>>() {
        let Some(migration) = source.get(version) else {
            refused.push((
                version,
                "sqlx's history has it, and the migrations given to backstop do not".to_owned(),
            ));
            continue;
        };
        match probe(&mut session.guarded(), Probe::of(migration)).await? {
            Effect::Absent => removed.push(version),
            Effect::Present => refused.push((
                version,
                "sqlx's history has it and its effect is present, but backstop's history does \
                 not have it: sqlx applied it; import sqlx's history first (import-sqlx)"
                    .to_owned(),
            )),
        }
    }
    if !refused.is_empty() {
        refused.sort_by_key(|(version, _)| *version);
        return Err(Error::SqlxExportRefused {
            database,
            versions: refused,
        });
    }
    let mut report = ExportReport {
        database: database.clone(),
        written: written.iter().map(|(r, _)| r.version).collect(),
        unchanged: unchanged.iter().map(|(r, _)| r.version).collect(),
        removed,
        backup: None,
        dry_run: session.mode() == Mode::DryRun,
    };
    if !report.changed_database() {
        return Ok(report);
    }
    session.take_backup(history.current_version()).await?;
    report.backup = session.backup().map(Path::to_owned);
    let conn = session.conn();
    sqlx_table::ensure(conn)
        .await
        .on(&database, "creating sqlx's history table")?;
    for (record, migration) in &written {
        let description = sqlx_description(migration);
        let checksum = migration.sqlx_checksum();
        sqlx_table::record(
            conn,
            record.version,
            &description,
            checksum,
            record.applied_at,
        )
        .await
        .on(&database, "writing sqlx's history")?;
    }
    for version in &report.removed {
        sqlx_table::forget(conn, *version)
            .await
            .on(&database, "removing a row of sqlx's history")?;
    }
    tracing::info!(database = %database.display(), written = ?report.written, removed = ?report.removed, "exported the history to sqlx's");
    Ok(report)
}

/// Each applied migration with its file, and the versions sqlx could not read, with why; a
/// file modified since it was applied is refused at once.
type Readable<'a> = (Vec<(&'a Record, &'a Migration)>, Vec<(i64, String)>);

fn readable<'a>(records: &'a [Record], source: &'a Source) -> Result<Readable<'a>, Error> {
    let mut applied = Vec::new();
    let mut unreadable = Vec::new();
    for record in records {
        let Some(migration) = source.get(record.version) else {
            unreadable.push((
                record.version,
                "applied, and not among the migrations given to backstop (a newer build's, or \
                 its file was removed): sqlx could not read it"
                    .to_owned(),
            ));
            continue;
        };
        if migration.kind() == crate::source::MigrationKind::Code {
            unreadable.push((
                record.version,
                "a code migration: sqlx runs SQL files only".to_owned(),
            ));
            continue;
        }
        let actual = migration.checksum().to_hex();
        if actual != record.checksum {
            return Err(Error::ChecksumMismatch {
                version: record.version,
                path: migration.path().to_owned(),
                recorded: record.checksum.clone(),
                actual,
            });
        }
        applied.push((record, migration));
    }
    Ok((applied, unreadable))
}

/// The description sqlx gives a migration: its file name's, with `_` read as a space.
fn sqlx_description(migration: &Migration) -> String {
    migration.description().replace('_', " ")
}
