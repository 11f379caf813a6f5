//! The probe protocol: a migration's probe is one read-only query that answers one row with one
//! integer, 1 when the migration's effect is present and 0 when it is absent.
//!
//! Probes run with writes forbidden (`PRAGMA query_only`). `status` runs every probe of a
//! source in one round trip to the connection, each answer preceded by a boundary row.

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, TypeInfo, ValueRef};

use crate::connection::{Guarded, Judged};
use crate::error::Error;
use crate::run::script::value_text;
use crate::source::{Migration, Script, Source};

/// What a probe is expected to say after a script ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    /// 1: the forward script's effect is there.
    Present,
    /// 0: the rollback script took it away.
    Absent,
}

impl Effect {
    fn answer(self) -> i64 {
        match self {
            Effect::Present => 1,
            Effect::Absent => 0,
        }
    }
}

/// Why a probe's answer is not 0 or 1.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BadAnswer {
    #[error("the query failed: {0}")]
    Failed(sqlx::Error),
    #[error("{0}")]
    Refused(String),
    #[error("returned {0} rows; a probe returns exactly one row")]
    Rows(usize),
    #[error("returned {0} columns; a probe returns exactly one integer column")]
    Columns(usize),
    #[error("returned NULL; a probe returns 0 or 1")]
    Null,
    #[error("returned {type_name} {shown:?}; a probe returns the integer 0 or 1")]
    NotInteger { type_name: String, shown: String },
    #[error("returned {0}; a probe returns 0 or 1")]
    OutOfRange(i64),
    #[error("cannot read its value: {0}")]
    Unreadable(sqlx::Error),
}

/// A migration's probe: its version and its script (from the source, or as the history
/// stored it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Probe<'a> {
    pub version: i64,
    pub script: &'a Script,
}

impl<'a> Probe<'a> {
    pub fn of(migration: &'a Migration) -> Self {
        Probe {
            version: migration.version(),
            script: migration.probe(),
        }
    }

    /// The probe's one statement, without its `;`.
    fn statement(&self) -> &str {
        let sql = self.script.statements()[0].sql();
        sql.strip_suffix(';').unwrap_or(sql)
    }
}

/// Asks a migration's probe whether its effect is present, with writes forbidden.
pub(crate) async fn probe(on: &mut Guarded<'_>, probe: Probe<'_>) -> Result<Effect, Error> {
    let answer = read_only(on, async |on: &mut Guarded<'_>| {
        answer(on, probe.statement()).await
    })
    .await
    .map_err(BadAnswer::Failed)
    .flatten()
    .map_err(|bad| Error::Probe {
        version: probe.version,
        path: probe.script.path().to_owned(),
        reason: bad.to_string(),
    })?;
    Ok(match answer {
        1 => Effect::Present,
        _ => Effect::Absent,
    })
}

/// After the script or function at `ran` ran, requires the probe to say `expected`.
pub(crate) async fn confirm(
    on: &mut Guarded<'_>,
    probe: Probe<'_>,
    ran: &std::path::Path,
    expected: Effect,
) -> Result<(), Error> {
    let said = self::probe(on, probe).await?;
    if said == expected {
        Ok(())
    } else {
        Err(Error::ProbeNotConfirmed {
            version: probe.version,
            path: ran.to_owned(),
            probe: probe.script.path().to_owned(),
            value: said.answer(),
        })
    }
}

/// Every probe of the source, in source order: its answer, or why it could not answer. The
/// caller made the connection read-only.
pub(crate) async fn probe_all(
    on: &mut Guarded<'_>,
    source: &Source,
) -> Vec<Result<i64, BadAnswer>> {
    let all: Vec<&Migration> = source.migrations().iter().collect();
    probe_many(on, &all).await
}

/// The probes of `migrations`, in their order, with writes forbidden while they run (on a
/// connection that may write).
pub(crate) async fn probe_many_read_only(
    on: &mut Guarded<'_>,
    migrations: &[&Migration],
) -> Result<Vec<Result<i64, BadAnswer>>, sqlx::Error> {
    if migrations.is_empty() {
        return Ok(Vec::new());
    }
    read_only(on, async |on: &mut Guarded<'_>| {
        probe_many(on, migrations).await
    })
    .await
}

/// Runs `work` with writes forbidden on the connection (`PRAGMA query_only`), set and reset by
/// the runner, outside the authorizer's judgement.
async fn read_only<T>(
    on: &mut Guarded<'_>,
    work: impl AsyncFnOnce(&mut Guarded<'_>) -> T,
) -> Result<T, sqlx::Error> {
    sqlx::raw_sql("PRAGMA query_only = ON")
        .execute(&mut *on.conn)
        .await?;
    let out = work(on).await;
    sqlx::raw_sql("PRAGMA query_only = OFF")
        .execute(&mut *on.conn)
        .await?;
    Ok(out)
}

/// The probes of `migrations`, in their order: each answer, or why it could not answer. They
/// run in one round trip; when one fails (which stops the batch) they run again one by one,
/// to say which and why.
async fn probe_many(
    on: &mut Guarded<'_>,
    migrations: &[&Migration],
) -> Vec<Result<i64, BadAnswer>> {
    if let Some(answers) = batch(on, migrations).await {
        return answers;
    }
    let mut answers = Vec::with_capacity(migrations.len());
    for migration in migrations {
        answers.push(answer(on, Probe::of(migration).statement()).await);
    }
    answers
}

/// The row that separates the answers of two probes run in one round trip.
const BOUNDARY: &str = "backstop: the rows of the next probe follow";

/// The probes of `migrations` in one round trip, each preceded by a boundary row. `None` when
/// the batch failed (a probe's query failed and stopped it).
async fn batch(
    on: &mut Guarded<'_>,
    migrations: &[&Migration],
) -> Option<Vec<Result<i64, BadAnswer>>> {
    let mut sql = String::new();
    for migration in migrations {
        let probe = Probe::of(migration).statement().to_owned();
        // The newline ends a trailing `--` comment of the probe before its `;`.
        sql.push_str(&format!("SELECT '{BOUNDARY}', NULL;\n{probe}\n;\n"));
    }
    let rows = on.fetch_judged(&sql).await.ok()?;
    let is_boundary = |row: &SqliteRow| {
        row.len() == 2
            && row
                .try_get::<Option<String>, _>(0)
                .ok()
                .flatten()
                .as_deref()
                == Some(BOUNDARY)
    };
    let mut groups: Vec<&[SqliteRow]> = Vec::with_capacity(migrations.len());
    let mut rest = rows.as_slice();
    while let Some(first) = rest.first() {
        if !is_boundary(first) {
            return None;
        }
        let end = rest[1..]
            .iter()
            .position(is_boundary)
            .map_or(rest.len(), |i| i + 1);
        groups.push(&rest[1..end]);
        rest = &rest[end..];
    }
    (groups.len() == migrations.len()).then(|| groups.into_iter().map(check_answer).collect())
}

/// Runs a probe's statement, judged by the authorizer, and checks its answer.
async fn answer(on: &mut Guarded<'_>, statement: &str) -> Result<i64, BadAnswer> {
    // The newline ends a trailing `--` comment of the probe.
    let sql = format!("{statement}\n");
    match on.fetch_judged(&sql).await {
        Ok(rows) => check_answer(&rows),
        Err(Judged::Refused(reason)) => Err(BadAnswer::Refused(reason)),
        Err(Judged::Failed(e)) => Err(BadAnswer::Failed(e)),
    }
}

/// A probe's answer from its rows: one row, one integer column, 0 or 1.
fn check_answer(rows: &[SqliteRow]) -> Result<i64, BadAnswer> {
    let [row] = rows else {
        return Err(BadAnswer::Rows(rows.len()));
    };
    if row.len() != 1 {
        return Err(BadAnswer::Columns(row.len()));
    }
    let value = row.try_get_raw(0).map_err(BadAnswer::Unreadable)?;
    if value.is_null() {
        return Err(BadAnswer::Null);
    }
    let type_name = value.type_info().name().to_owned();
    if type_name != "INTEGER" {
        let shown = value_text(row, 0).unwrap_or_default();
        return Err(BadAnswer::NotInteger { type_name, shown });
    }
    match row.try_get::<i64, _>(0) {
        Ok(v @ (0 | 1)) => Ok(v),
        Ok(v) => Err(BadAnswer::OutOfRange(v)),
        Err(e) => Err(BadAnswer::Unreadable(e)),
    }
}
