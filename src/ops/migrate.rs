//! The migrate algorithm: read the history without a lock, and when something is pending, under
//! the write lock: read it again, back up, run each pending migration (adopting those whose
//! effect is present), check foreign keys, commit.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::run::database::Database;
use crate::run::trace::{self, Direction};
use tracing::Instrument;

use crate::backup::BackupReason;
use crate::config::Config;
use crate::connection::{Guarded, OnDatabase};
use crate::error::Error;
use crate::history::{self, History, NewRecord};
use crate::report::{MigrateReport, MigrationAction, MigrationOutcome, MigrationState};
use crate::run::foreign_keys::{check_no_new_violations, violations_before};
use crate::run::plan;
use crate::run::probe::{Effect, Probe, confirm, probe};
use crate::run::script::run_step;
use crate::run::session::{Intent, Mode, Outcome, Session, run_locked};
use crate::run::supersede;
use crate::source::{Migration, Source};

impl Outcome for MigrateReport {
    fn changed_database(&self) -> bool {
        !self.migrations.is_empty()
    }
}

/// Migrates up to `target` (the latest when `None`).
pub(crate) async fn migrate(
    db: &Database<'_>,
    source: &Source,
    config: &Config,
    target: Option<i64>,
    mode: Mode,
) -> Result<MigrateReport, Error> {
    let database = db.name().to_owned();
    // 1. Without a lock: refuse what cannot be built on; return at once when up to date.
    let (applied, sqlx) = db
        .read("reading the history", async |conn| {
            let applied = history::applied(conn).await?;
            // A database sqlx migrated: adopting by probe would re-run migrations whose
            // effect a later one removed. Its history is imported instead.
            let sqlx = match applied.is_empty() {
                true => history::sqlx_table::versions(conn).await?,
                false => None,
            };
            Ok((applied, sqlx))
        })
        .await?;
    if let Some(versions @ 1..) = sqlx {
        return Err(Error::SqlxHistory { database, versions });
    }
    let first = plan::plan(source, &applied, target, &database, config.newer())?;
    if first.pending.is_empty() {
        tracing::debug!(database = %database.display(), version = first.current, "up to date");
        return Ok(up_to_date(database, &first, mode));
    }

    // 2. to 5., under the write lock.
    let newer = config.newer();
    let intent = Intent::Backup(BackupReason::Migrate);
    let report = run_locked(db, config, (mode, intent), async |session: &mut Session| {
        migrate_locked(session, source, target, newer).await
    })
    .await?;
    if mode == Mode::Apply && !report.is_up_to_date() {
        tracing::info!(
            database = %database.display(),
            from = report.from_version,
            to = report.to_version,
            "migrated"
        );
    }
    Ok(report)
}

/// The report of a run that found nothing pending.
fn up_to_date(database: PathBuf, plan: &plan::Plan<'_>, mode: Mode) -> MigrateReport {
    if !plan.newer.is_empty() {
        tracing::info!(newer = ?plan.newer, "the database has migrations of a newer build: accepted");
    }
    MigrateReport {
        database,
        from_version: plan.current,
        to_version: plan.current,
        dry_run: mode == Mode::DryRun,
        backup: None,
        migrations: Vec::new(),
        newer_versions: plan.newer.clone(),
    }
}

/// Steps 2 to 5 under the write lock. A report without migrations: another process migrated
/// while this one waited for the lock.
async fn migrate_locked(
    session: &mut Session,
    source: &Source,
    target: Option<i64>,
    newer: plan::Newer,
) -> Result<MigrateReport, Error> {
    let database = session.database().to_owned();
    let mode = session.mode();
    let applied = session.applied().await?;
    let plan = plan::plan(source, &applied, target, &database, newer)?;
    if plan.pending.is_empty() {
        tracing::info!(database = %database.display(), "another process migrated meanwhile");
        return Ok(up_to_date(database, &plan, mode));
    }

    // 3. The backup, before anything is written.
    session.take_backup(plan.current).await?;
    let backup = session.backup().map(Path::to_owned);
    let backup_name = backup
        .as_deref()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned());
    let mut on = session.guarded();
    let fk_before = violations_before(on.conn, &database).await?;
    history::ensure_current(on.conn)
        .await
        .on(&database, "creating the history table")?;
    let history = History::read(on.conn)
        .await
        .on(&database, "reading the history under the lock")?;
    let mut present = supersede::present(&mut on, source, &history, &database).await?;

    // 4. Each migration in turn; any error rolls the whole transaction back.
    let mut outcomes = Vec::with_capacity(plan.pending.len());
    let mut ran = Vec::new();
    for migration in &plan.pending {
        let span = trace::migration(migration.version(), Direction::Forward);
        let outcome = apply_one(&mut on, migration, mode, backup_name.as_deref(), &database)
            .instrument(span)
            .await?;
        present.push(migration.version());
        if matches!(
            outcome.action,
            MigrationAction::Applied | MigrationAction::WouldApply
        ) {
            ran.push(*migration);
        }
        outcomes.push(outcome);
    }
    // Effects present before (or when applied) and gone now were removed by this run.
    supersede::record(&mut on, source, &present, &ran, &database).await?;

    // 5. No new foreign-key violation.
    let versions: Vec<i64> = plan.pending.iter().map(|m| m.version()).collect();
    check_no_new_violations(on.conn, &database, &fk_before, versions).await?;

    Ok(MigrateReport {
        database,
        from_version: plan.current,
        to_version: plan.target(),
        dry_run: mode == Mode::DryRun,
        backup,
        migrations: outcomes,
        newer_versions: plan.newer.clone(),
    })
}

/// Runs one migration: adopts it when its probe finds the effect present; otherwise runs its
/// script and requires the probe to confirm it. Records it in the history.
async fn apply_one(
    on: &mut Guarded<'_>,
    migration: &Migration,
    mode: Mode,
    backup: Option<&str>,
    database: &Path,
) -> Result<MigrationOutcome, Error> {
    let started = Instant::now();
    let version = migration.version();
    let (method, notices) = match probe(on, Probe::of(migration)).await? {
        Effect::Present => {
            tracing::info!(version, "effect already present: adopting");
            (MigrationState::Adopted, Vec::new())
        }
        Effect::Absent => {
            tracing::info!(version, description = migration.description(), "applying");
            let notices = run_step(on, version, migration.forward()).await?;
            confirm(
                on,
                Probe::of(migration),
                migration.forward().path(),
                Effect::Present,
            )
            .await?;
            for notice in &notices {
                tracing::info!(version, notice = %notice, "migration notice");
            }
            (MigrationState::Applied, notices)
        }
    };
    let execution_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    history::insert(
        on.conn,
        &NewRecord {
            version,
            description: migration.description(),
            checksum: &migration.checksum().to_hex(),
            execution_ms,
            method,
            backup,
            rollback_sql: migration.rollback().sql(),
            probe_sql: migration.probe_sql(),
        },
    )
    .await
    .on(database, "recording the migration")?;
    let action = MigrationAction::recorded(method, mode == Mode::DryRun);
    let described = (version, migration.description());
    Ok(MigrationOutcome::of(
        described,
        action,
        started,
        notices,
        migration.sql(),
    ))
}
