//! Running a script on the runner's connection, statement by statement, so that an error names
//! the statement and its line; top-level `SELECT`s are the script's notices.

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, TypeInfo, ValueRef};

use crate::connection::{Guarded, Judged};
use crate::error::{Error, shorten};
use crate::source::{CodeFn, Ran, Script, Step, call};
use std::path::Path;

/// Runs `step` of migration `version`, a script or a code migration's function; returns what
/// the script notices (a function notices nothing).
pub(crate) async fn run_step(
    on: &mut Guarded<'_>,
    version: i64,
    step: &Step,
) -> Result<Vec<String>, Error> {
    match step {
        Step::Sql(script) => run_script(on, version, script).await,
        Step::Code { run, path } => run_code(on, version, *run, path).await.map(|()| Vec::new()),
    }
}

/// Runs a code migration's function on the runner's connection, every statement it runs
/// judged by the authorizer; an error it returns, a panic, or a refused statement (even one
/// whose error it swallowed) fails it.
async fn run_code(
    on: &mut Guarded<'_>,
    version: i64,
    run: CodeFn,
    path: &Path,
) -> Result<(), Error> {
    let judging = on.guard.judging();
    let ran = call(run, on.conn).await;
    drop(judging);
    let failed = |reason: String, cause| Error::CodeFailed {
        version,
        path: path.to_owned(),
        reason,
        cause,
    };
    if let Some(refusal) = on.guard.take_refusal() {
        let cause = match ran {
            Ran::Failed(cause) => Some(cause),
            _ => None,
        };
        return Err(failed(
            format!("it ran a statement the rules refuse: {}", refusal.reason),
            cause,
        ));
    }
    match ran {
        Ran::Ok => Ok(()),
        Ran::Failed(cause) => Err(failed(cause.to_string(), Some(cause))),
        Ran::Panicked(message) => Err(failed(format!("it panicked: {message}"), None)),
    }
}

/// Runs `script` of migration `version`; returns the non-NULL values of the first column of
/// its top-level `SELECT` statements (its notices). A statement the authorizer refuses fails
/// before it runs, as [`Error::InvalidScript`].
async fn run_script(
    on: &mut Guarded<'_>,
    version: i64,
    script: &Script,
) -> Result<Vec<String>, Error> {
    let mut notices = Vec::new();
    for statement in script.statements() {
        let failed = |judged| match judged {
            Judged::Refused(reason) => Error::InvalidScript {
                path: script.path().to_owned(),
                line: statement.line(),
                statement: shorten(statement.sql()),
                reason,
            },
            Judged::Failed(cause) => Error::Statement {
                version,
                path: script.path().to_owned(),
                line: statement.line(),
                statement: shorten(statement.sql()),
                cause,
            },
        };
        if statement.keyword() == "SELECT" {
            let rows = on.fetch_judged(statement.sql()).await.map_err(failed)?;
            notices.extend(rows.iter().filter_map(|row| value_text(row, 0)));
        } else {
            on.execute_judged(statement.sql()).await.map_err(failed)?;
        }
    }
    Ok(notices)
}

/// A column's value as text, `None` for NULL.
pub(crate) fn value_text(row: &SqliteRow, index: usize) -> Option<String> {
    let raw = row.try_get_raw(index).ok()?;
    if raw.is_null() {
        return None;
    }
    match raw.type_info().name() {
        "INTEGER" => row.try_get::<i64, _>(index).ok().map(|v| v.to_string()),
        "REAL" => row.try_get::<f64, _>(index).ok().map(|v| v.to_string()),
        "BLOB" => row
            .try_get::<Vec<u8>, _>(index)
            .ok()
            .map(|v| format!("<{} bytes>", v.len())),
        _ => row.try_get::<String, _>(index).ok(),
    }
}
