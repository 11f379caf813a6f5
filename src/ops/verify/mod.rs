//! `verify`: proves every migration of a source, and its rollback, on a scratch database (never
//! the user's).
//!
//! For each migration in order: its probe says 0 before it runs (else `loose_probe`); it runs
//! and its probe says 1 (`probe_not_confirmed`); its rollback runs, its probe says 0 and the
//! schema and every row equal those before it (`rollback_inexact`, naming what differs); it
//! runs again and everything equals its first run (`reapply_differs`); then it stays applied
//! and the next one is checked. A script that fails (`script_failed`) or a probe that cannot
//! answer (`probe_failed`) ends the verification there.
//!
//! A migration may accept a kind of problem, with the reason, in a comment line of one of its
//! scripts: `-- verify: allow rollback_inexact: the rollback goes to the layout the previous
//! release creates`. The problem is still reported, with that reason, and does not fail.

mod allowance;
mod data;
mod ledger;
mod snapshot;
mod step;

use std::fmt::{self, Display, Formatter};
use std::path::Path;

use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteSynchronous};

use crate::backup::copy_database;
use crate::connection::{Guarded, RunnerConnection};
use crate::error::Error;
use crate::history::History;
use crate::run::probe::Effect;
use crate::source::{Migration, Source};
use allowance::allowances;
use ledger::Ledger;
use snapshot::Detail;
use step::{ask, run, snapshot};

pub use data::TableChange;

/// The outcome of [`verify`].
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Whether every migration passed every check.
    pub ok: bool,
    /// Each migration checked, in order.
    pub migrations: Vec<MigrationCheck>,
}

/// What [`verify`] found about one migration.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct MigrationCheck {
    /// Its version.
    pub version: i64,
    /// Its description.
    pub description: String,
    /// Whether it passed every check.
    pub ok: bool,
    /// What is wrong with it (empty when `ok`).
    pub problems: Vec<VerifyProblem>,
    /// Its effect was already in the starting database, so it was adopted, not run (only with a
    /// starting database).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub adopted: bool,
    /// The tables whose rows or columns it changed, measured on the scratch database (on a
    /// copy of a real one with `--database`).
    pub tables: Vec<TableChange>,
}

/// One thing wrong with a migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct VerifyProblem {
    /// What kind of problem.
    pub kind: VerifyProblemKind,
    /// What exactly.
    pub detail: String,
    /// Why this problem is accepted, when one of the migration's scripts says so (a line
    /// `-- verify: allow rollback_inexact: why`); an allowed problem does not fail the check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed: Option<String>,
    /// The schema objects and tables that differ, for a problem about differences.
    #[serde(skip)]
    differing: Vec<String>,
}

/// The kinds of [`VerifyProblem`].
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, strum::IntoStaticStr, strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
#[non_exhaustive]
pub enum VerifyProblemKind {
    /// The probe says 1 before the migration ran: it would adopt a migration that never ran.
    LooseProbe,
    /// After the forward script the probe does not say 1.
    ProbeNotConfirmed,
    /// After the rollback the probe does not say 0, or the schema or rows differ from before.
    RollbackInexact,
    /// Applied again after its rollback, the migration leaves another schema or other rows.
    ReapplyDiffers,
    /// A script failed: the verification stops there.
    ScriptFailed,
    /// The probe could not answer: the verification stops there.
    ProbeFailed,
    /// A table has fewer rows after the migration than before (a table renamed or rebuilt
    /// under another name is followed).
    RowsRemoved,
    /// A column present before the migration is gone after it, with its values.
    ColumnRemoved,
    /// A table present before the migration is gone after it.
    TableRemoved,
    /// A schema change the previous build's queries or inserts fail on: a table or column gone
    /// or renamed, a column `NOT NULL` without a default, a new unique key or `CHECK`.
    BreaksPreviousVersion,
}

/// Proves every migration of `source` and its rollback on a scratch database: an empty one, or
/// with `start`, a copy of that database (read through SQLite's backup API, never changed).
/// With a starting database, the migrations it has applied are not checked again, and one
/// whose effect it already holds is adopted, as `migrate` would.
///
/// In a project's tests, one line proves its migrations:
///
/// ```no_run
/// # async fn f() -> Result<(), backstop::Error> {
/// let source = backstop::embed_migrations!("$CARGO_MANIFEST_DIR/migrations")?;
/// let report = backstop::verify(&source, None).await?;
/// assert!(report.ok, "{report}");
/// # Ok(()) }
/// ```
///
/// # Errors
/// Only when the scratch database cannot be made; what is wrong with a migration is in the
/// report.
pub async fn verify(source: &Source, start: Option<&Path>) -> Result<VerifyReport, Error> {
    let scratch_dir = tempfile::tempdir().map_err(|cause| Error::Io {
        path: std::env::temp_dir(),
        cause,
    })?;
    let scratch = scratch_dir.path().join("verify.sqlite3");
    if let Some(start) = start {
        copy_database(start, &scratch).await?;
    }
    let options = SqliteConnectOptions::new()
        .filename(&scratch)
        .create_if_missing(true)
        .foreign_keys(false)
        // A scratch database: what a crash would lose is thrown away anyway.
        .synchronous(SqliteSynchronous::Off)
        .pragma("cache_size", "-65536");
    let mut conn = RunnerConnection::connect(&options, &scratch, crate::source::judge).await?;
    let mut on = conn.guarded();
    let applied = History::read(on.conn).await.unwrap_or_default();
    let mut ledger = match Ledger::start(on.conn).await {
        Ok(ledger) => ledger,
        Err(e) => {
            conn.close().await;
            return Err(crate::connection::database_error(
                &scratch,
                "reading the copy's tables",
                e,
            ));
        }
    };
    let mut checks = Vec::new();
    for migration in source.migrations() {
        if applied.get(migration.version()).is_some() {
            continue;
        }
        let check = check_one(&mut on, &mut ledger, migration, start.is_some()).await;
        let stop = check.problems.iter().any(|p| {
            matches!(
                p.kind,
                VerifyProblemKind::ScriptFailed | VerifyProblemKind::ProbeFailed
            )
        });
        checks.push(check);
        if stop {
            break;
        }
    }
    conn.close().await;
    Ok(VerifyReport {
        ok: checks.iter().all(|c| c.ok),
        migrations: checks,
    })
}

/// Runs the checks of one migration, leaving it applied.
async fn check_one(
    on: &mut Guarded<'_>,
    ledger: &mut Ledger,
    migration: &Migration,
    adopt: bool,
) -> MigrationCheck {
    let mut problems = Vec::new();
    let mut adopted = false;
    let mut tables = Vec::new();
    let found = (&mut problems, &mut adopted, &mut tables);
    let outcome = checks(on, ledger, migration, adopt, found).await;
    if let Err(problem) = outcome {
        problems.push(problem);
    }
    let allowances = allowances(migration);
    for problem in &mut problems {
        problem.allowed = allowances
            .iter()
            .find(|a| a.covers(problem))
            .map(|a| a.why.clone());
    }
    MigrationCheck {
        version: migration.version(),
        description: migration.description().to_owned(),
        ok: problems.iter().all(|p| p.allowed.is_some()),
        problems,
        adopted,
        tables,
    }
}

async fn checks(
    on: &mut Guarded<'_>,
    ledger: &mut Ledger,
    migration: &Migration,
    adopt: bool,
    (problems, adopted, tables): (&mut Vec<VerifyProblem>, &mut bool, &mut Vec<TableChange>),
) -> Result<(), VerifyProblem> {
    let problem = VerifyProblem::new;
    // A data probe (a backfill's condition) may well say 1 on a database without the data.
    let data = migration.has_data_probe();
    if (adopt || !data) && ask(on, migration).await? == Effect::Present {
        if adopt {
            *adopted = true;
            return Ok(());
        }
        problems.push(problem(
            VerifyProblemKind::LooseProbe,
            format!(
                "{} says 1 before the migration ran: backstop would adopt the migration without \
                 running it; make the probe look for what this migration creates (if it speaks \
                 of data, not schema, mark it with a `-- probe: when-run` line; to accept it as \
                 it is, write `-- verify: allow loose_probe: why` in one of its scripts)",
                migration.probe().path().display()
            ),
        ));
    }
    let before = snapshot(on.conn, Detail::WithShapes, ledger).await?;
    run(on, ledger, migration, migration.forward()).await?;
    if ask(on, migration).await? != Effect::Present {
        problems.push(problem(
            VerifyProblemKind::ProbeNotConfirmed,
            "after the forward script the probe says 0".to_owned(),
        ));
    }
    let applied = snapshot(on.conn, Detail::WithShapes, ledger).await?;
    let (changes, found) = data::compare(&before, &applied);
    *tables = changes;
    problems.extend(found.into_iter().map(|f| VerifyProblem {
        differing: vec![f.table],
        ..problem(f.kind, f.detail)
    }));

    run(on, ledger, migration, migration.rollback()).await?;
    if !data && ask(on, migration).await? != Effect::Absent {
        problems.push(problem(
            VerifyProblemKind::RollbackInexact,
            format!(
                "after {} the probe still says 1",
                migration.rollback().path().display()
            ),
        ));
    }
    let rolled_back = snapshot(on.conn, Detail::Content, ledger).await?;
    if let Some(differences) = before.differences(&rolled_back, ledger) {
        problems.push(VerifyProblem {
            differing: differences.names.clone(),
            ..problem(
                VerifyProblemKind::RollbackInexact,
                format!(
                    "after {} the database is not as before the migration: {differences}",
                    migration.rollback().path().display()
                ),
            )
        });
    }

    run(on, ledger, migration, migration.forward()).await?;
    let reapplied = snapshot(on.conn, Detail::Content, ledger).await?;
    if let Some(differences) = applied.differences(&reapplied, ledger) {
        problems.push(VerifyProblem {
            differing: differences.names.clone(),
            ..problem(
                VerifyProblemKind::ReapplyDiffers,
                format!(
                    "applied again after its rollback, it leaves another database: {differences}"
                ),
            )
        });
    }
    Ok(())
}

impl VerifyProblem {
    fn new(kind: VerifyProblemKind, detail: String) -> Self {
        VerifyProblem {
            kind,
            detail,
            allowed: None,
            differing: Vec::new(),
        }
    }
}

impl VerifyProblemKind {
    /// The kinds a migration may allow (a failing script or probe cannot be allowed).
    const ALLOWABLE: [VerifyProblemKind; 8] = [
        VerifyProblemKind::LooseProbe,
        VerifyProblemKind::ProbeNotConfirmed,
        VerifyProblemKind::RollbackInexact,
        VerifyProblemKind::ReapplyDiffers,
        VerifyProblemKind::RowsRemoved,
        VerifyProblemKind::ColumnRemoved,
        VerifyProblemKind::TableRemoved,
        VerifyProblemKind::BreaksPreviousVersion,
    ];

    /// The kind as in JSON: `"loose_probe"`, `"rollback_inexact"`, ...
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl Display for VerifyReport {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        for check in &self.migrations {
            let verdict = match (check.ok, check.adopted, check.problems.is_empty()) {
                (_, true, _) => "adopted",
                (true, false, true) => "ok",
                (true, false, false) => "allowed",
                (false, false, _) => "FAILED",
            };
            writeln!(f, "{verdict:<8} {:>3} {}", check.version, check.description)?;
            for change in &check.tables {
                writeln!(f, "{:<8}     {}", "", data::table_line(check, change))?;
            }
            for problem in &check.problems {
                writeln!(
                    f,
                    "{:<8}     {}: {}",
                    "",
                    problem.kind.as_str(),
                    problem.detail
                )?;
                if let Some(why) = &problem.allowed {
                    writeln!(f, "{:<8}     (allowed by the migration: {why})", "")?;
                }
            }
        }
        let failed = self.migrations.iter().filter(|c| !c.ok).count();
        match failed {
            0 => {
                let allowed: usize = self.migrations.iter().map(|c| c.problems.len()).sum();
                write!(
                    f,
                    "verified: {} migration(s), every check passed",
                    self.migrations.len()
                )?;
                match allowed {
                    0 => writeln!(f),
                    n => writeln!(
                        f,
                        " ({n} problem(s) allowed by the migrations, with their reasons)"
                    ),
                }
            }
            n => writeln!(
                f,
                "verify failed: {n} of {} migration(s) have problems",
                self.migrations.len()
            ),
        }
    }
}
