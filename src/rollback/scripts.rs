//! Rollback by scripts: the rollback scripts of the newer migrations, newest first, in one
//! locked transaction after a safety backup; after each, its probe must say 0.

use std::path::Path;
use std::time::Instant;

use sqlx::SqlitePool;

use crate::backup::Reason;
use crate::config::Config;
use crate::connection::database_error;
use crate::error::Error;
use crate::execute::run_script;
use crate::foreign_keys::{check_no_new_violations, violations_before};
use crate::history;
use crate::plan;
use crate::probe::{Effect, confirm};
use crate::report::{Action, MigrationOutcome, RollbackReport};
use crate::session::{Mode, Session, run_locked};
use crate::source::Source;

/// Rolls back to `to` by scripts; `report` is the report of a rollback that does nothing.
pub(crate) async fn run(
    pool: &SqlitePool,
    source: &Source,
    config: &Config,
    to: i64,
    mode: Mode,
    report: RollbackReport,
) -> Result<RollbackReport, Error> {
    let report = run_locked(pool, config, mode, async |session: &mut Session| {
        undo_locked(session, source, to, report).await
    })
    .await?;
    if mode == Mode::Apply && !report.is_noop() {
        tracing::info!(database = %report.database.display(), from = report.from_version, to, "rolled back by scripts");
    }
    Ok(report)
}

async fn undo_locked(
    session: &mut Session,
    source: &Source,
    to: i64,
    mut report: RollbackReport,
) -> Result<RollbackReport, Error> {
    let database = session.database().to_owned();
    let mode = session.mode();
    let history = session.history().await?;
    // Every migration to undo must be known and unmodified: its rollback script is needed.
    plan::verify(source, &history.applied(), &database)?;
    let current = history.current_version();
    report.from_version = current;
    report.to_version = current;
    if to >= current {
        return Ok(report);
    }
    session.take_backup(current, Reason::Rollback).await?;
    report.safety_backup = session.backup().map(Path::to_owned);
    let conn = session.conn();
    let fk_before = violations_before(conn, &database).await?;
    let mut undone = Vec::new();
    for record in history.records().iter().rev().filter(|r| r.version > to) {
        let migration = source.get(record.version).expect("verified above");
        let started = Instant::now();
        let version = migration.version();
        tracing::info!(
            version,
            description = migration.description(),
            "rolling back"
        );
        let notices = run_script(conn, version, migration.rollback()).await?;
        confirm(conn, migration, migration.rollback(), Effect::Absent).await?;
        history::delete(conn, version)
            .await
            .map_err(|e| database_error(&database, "deleting the history row", e))?;
        let action = match mode {
            Mode::Apply => Action::RolledBack,
            Mode::DryRun => Action::WouldRollBack,
        };
        undone.push(MigrationOutcome::new(migration, action, started, notices));
    }
    if to == 0 {
        history::drop_table(conn)
            .await
            .map_err(|e| database_error(&database, "dropping the empty history table", e))?;
    }
    let versions = undone.iter().map(|m| m.version).collect();
    check_no_new_violations(conn, &database, &fk_before, versions).await?;
    report.to_version = to;
    report.rolled_back = undone;
    Ok(report)
}
