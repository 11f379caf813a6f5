//! Rollback by scripts: the rollback scripts of the newer migrations, newest first, in one
//! locked transaction after a safety backup; after each, its probe must say 0.

use std::path::Path;
use std::time::Instant;

use crate::backup::BackupReason;
use crate::config::Config;
use crate::connection::{Guarded, OnDatabase};
use crate::error::Error;
use crate::history;
use crate::report::{MigrationAction, MigrationOutcome, RollbackReport};
use crate::run::database::Database;
use crate::run::foreign_keys::{check_no_new_violations, violations_before};
use crate::run::plan::{self, Undo};
use crate::run::probe::{Effect, Probe, confirm};
use crate::run::script::run_step;
use crate::run::session::{Intent, Mode, Session, run_locked};
use crate::run::trace::{self, Direction};
use crate::source::{Script, Source, Step, StoredKind};
use tracing::Instrument;

/// Rolls back to `to` by scripts; `report` is the report of a rollback that does nothing.
pub(crate) async fn run(
    db: &Database<'_>,
    source: &Source,
    config: &Config,
    to: i64,
    mode: Mode,
    report: RollbackReport,
) -> Result<RollbackReport, Error> {
    let intent = Intent::Backup(BackupReason::Rollback);
    let report = run_locked(db, config, (mode, intent), async |session: &mut Session| {
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
    let current = history.current_version();
    report.from_version = current;
    report.to_version = current;
    if to >= current {
        return Ok(report);
    }
    // Every migration to undo is known and unmodified, or has its scripts in the history.
    let steps = plan::undo_plan(source, &history, to, &database)?;
    session.take_backup(current).await?;
    report.safety_backup = session.backup().map(Path::to_owned);
    let mut on = session.guarded();
    let fk_before = violations_before(on.conn, &database).await?;
    history::ensure_current(on.conn)
        .await
        .on(&database, "updating the history table")?;
    let mut undone = Vec::new();
    for step in steps {
        let span = trace::migration(step.version(), Direction::Rollback);
        let outcome = undo_one(&mut on, step, mode, &database)
            .instrument(span)
            .await?;
        undone.push(outcome);
    }
    let conn = on.conn;
    if to == 0 {
        history::drop_table(conn)
            .await
            .on(&database, "dropping the empty history table")?;
    }
    let versions = undone.iter().map(|m| m.version).collect();
    check_no_new_violations(conn, &database, &fk_before, versions).await?;
    report.to_version = to;
    report.rolled_back = undone;
    Ok(report)
}

/// Runs one rollback script, requires its probe to say 0, and removes the history row.
async fn undo_one(
    on: &mut Guarded<'_>,
    step: Undo<'_>,
    mode: Mode,
    database: &Path,
) -> Result<MigrationOutcome, Error> {
    let started = Instant::now();
    let stored;
    let (version, description, rollback, probe_script) = match step {
        Undo::Known(migration) => (
            migration.version(),
            migration.description(),
            migration.rollback(),
            migration.probe(),
        ),
        Undo::Stored(record) => {
            let text = |t: &Option<String>| t.clone().unwrap_or_default();
            stored = (
                Step::Sql(Script::from_history(
                    record.version,
                    StoredKind::Rollback,
                    &text(&record.rollback_sql),
                )?),
                Script::from_history(record.version, StoredKind::Probe, &text(&record.probe_sql))?,
            );
            (
                record.version,
                record.description.as_str(),
                &stored.0,
                &stored.1,
            )
        }
    };
    tracing::info!(version, description, "rolling back");
    let notices = run_step(on, version, rollback).await?;
    let probe = Probe {
        version,
        script: probe_script,
    };
    confirm(on, probe, rollback.path(), Effect::Absent).await?;
    let conn = &mut *on.conn;
    history::delete(conn, version)
        .await
        .on(database, "deleting the history row")?;
    // What it superseded is back (its rollback restored it, as the probes will tell).
    history::clear_superseded(conn, version)
        .await
        .on(database, "updating the history")?;
    let action = MigrationAction::rolled_back(mode == Mode::DryRun);
    Ok(MigrationOutcome::of(
        (version, description),
        action,
        started,
        notices,
        rollback.sql().unwrap_or_default(),
    ))
}
