//! One step of a migration run on the scratch database as the runner would run it, with what
//! it is about to write read first, and the probe and snapshots around it.

use sqlx::{Connection, SqliteConnection};

use super::ledger::Ledger;
use super::snapshot::{Detail, Snapshot};
use super::{VerifyProblem, VerifyProblemKind};
use crate::connection::Guarded;
use crate::run::probe::{Effect, Probe, probe};
use crate::run::script::run_step;
use crate::source::{Migration, Step};

/// Runs a script in its own transaction, as the runner would. The tables it writes that nothing
/// had written before are hashed first (see [`Ledger`]): those its statements name as SQLite
/// prepares them against the database as it is, and any other it turns out to write, the
/// transaction then rolled back and the step run again.
pub(super) async fn run(
    on: &mut Guarded<'_>,
    ledger: &mut Ledger,
    migration: &Migration,
    step: &Step,
) -> Result<(), VerifyProblem> {
    let failed = |detail| VerifyProblem::new(VerifyProblemKind::ScriptFailed, detail);
    let sql = |e: sqlx::Error| failed(e.to_string());
    if let Step::Sql(script) = step {
        for statement in script.statements() {
            let written = on
                .guard
                .tables_written_by(on.conn, statement.sql())
                .await
                .map_err(sql)?;
            ledger.touch(on.conn, &written).await.map_err(sql)?;
        }
    }
    loop {
        // A statement sqlx runs from its cache is not prepared again, so not recorded.
        on.conn.clear_cached_statements().await.map_err(sql)?;
        sqlx::raw_sql("BEGIN IMMEDIATE")
            .execute(&mut *on.conn)
            .await
            .map_err(sql)?;
        let guard = on.guard;
        let recording = guard.recording();
        let ran = run_step(on, migration.version(), step).await;
        let written = recording.finish();
        if ran.is_err() || ledger.any_untouched(&written) {
            sqlx::raw_sql("ROLLBACK")
                .execute(&mut *on.conn)
                .await
                .map_err(sql)?;
            if let Err(e) = ran {
                return Err(failed(e.to_string()));
            }
            ledger.touch(on.conn, &written).await.map_err(sql)?;
            continue;
        }
        return sqlx::raw_sql("COMMIT")
            .execute(&mut *on.conn)
            .await
            .map(drop)
            .map_err(sql);
    }
}

/// Asks the migration's probe, as the runner would.
pub(super) async fn ask(
    on: &mut Guarded<'_>,
    migration: &Migration,
) -> Result<Effect, VerifyProblem> {
    probe(on, Probe::of(migration))
        .await
        .map_err(|e| VerifyProblem::new(VerifyProblemKind::ProbeFailed, e.to_string()))
}

/// Reads the scratch database's tables (those written so far; see [`Ledger`]).
pub(super) async fn snapshot(
    conn: &mut SqliteConnection,
    detail: Detail,
    ledger: &Ledger,
) -> Result<Snapshot, VerifyProblem> {
    Snapshot::take(conn, detail, ledger).await.map_err(|e| {
        VerifyProblem::new(
            VerifyProblemKind::ScriptFailed,
            format!("cannot read the scratch database: {e}"),
        )
    })
}
