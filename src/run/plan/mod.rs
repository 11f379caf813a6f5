//! Pure decisions: from a source, a history, a target and probe answers to what must be done.
//! No I/O happens here.

use std::path::Path;

pub(crate) use crate::config::Newer;
use crate::error::Error;
use crate::history::{self, Applied, History, Record};
use crate::report::{MigrationState, MigrationStatus};
use crate::run::probe::BadAnswer;
use crate::source::{Migration, Source};

/// What `migrate` has to do.
#[derive(Debug)]
pub(crate) struct Plan<'a> {
    /// The database's version now.
    pub current: i64,
    /// The migrations to run, in order.
    pub pending: Vec<&'a Migration>,
    /// Versions a newer build applied, accepted.
    pub newer: Vec<i64>,
}

impl Plan<'_> {
    /// The version the database reaches once every pending migration has run.
    pub fn target(&self) -> i64 {
        self.pending.last().map_or(self.current, |m| m.version())
    }
}

/// Checks that the applied migrations are consistent with `source` (none modified; none
/// unknown, or with `Newer::Accept` only unknown ones above every known one) and lists what is
/// pending up to `target` (the latest when `None`).
pub(crate) fn plan<'a>(
    source: &'a Source,
    applied: &[Applied],
    target: Option<i64>,
    database: &Path,
    newer: Newer,
) -> Result<Plan<'a>, Error> {
    let newer = accepted_newer(source, applied, newer);
    let known: Vec<Applied> = applied
        .iter()
        .filter(|a| !newer.contains(&a.version))
        .cloned()
        .collect();
    verify(source, &known, database)?;
    let current = history::current_version(applied);
    let target = match target {
        None => source.latest_version(),
        Some(t) if t == current => t,
        Some(t) if source.get(t).is_none() => {
            return Err(Error::UnknownTarget {
                target: t,
                known: source.migrations().iter().map(Migration::version).collect(),
            });
        }
        Some(t) if t < current => {
            return Err(Error::TargetBelowCurrent { target: t, current });
        }
        Some(t) => t,
    };
    let mut pending = Vec::new();
    for migration in source.migrations() {
        if applied
            .binary_search_by_key(&migration.version(), |a| a.version)
            .is_ok()
        {
            continue;
        }
        if migration.version() < current {
            return Err(Error::OutOfOrder {
                version: migration.version(),
                path: migration.path().to_owned(),
                current,
            });
        }
        if migration.version() <= target {
            pending.push(migration);
        }
    }
    Ok(Plan {
        current,
        pending,
        newer,
    })
}

/// The unknown versions accepted as a newer build's: all of them when every one is above
/// every known version and `newer` accepts them, else none.
pub(crate) fn accepted_newer(source: &Source, applied: &[Applied], newer: Newer) -> Vec<i64> {
    let unknown: Vec<i64> = applied
        .iter()
        .filter(|a| source.get(a.version).is_none())
        .map(|a| a.version)
        .collect();
    let above = unknown.iter().all(|v| *v > source.latest_version());
    if newer == Newer::Accept && above {
        unknown
    } else {
        Vec::new()
    }
}

/// Refuses applied migrations that this source cannot safely build on.
pub(crate) fn verify(source: &Source, applied: &[Applied], database: &Path) -> Result<(), Error> {
    let unknown: Vec<i64> = applied
        .iter()
        .filter(|a| source.get(a.version).is_none())
        .map(|a| a.version)
        .collect();
    if !unknown.is_empty() {
        return Err(Error::UnknownVersions {
            database: database.to_owned(),
            versions: unknown,
            latest_known: source.latest_version(),
        });
    }
    for record in applied {
        let migration = source.get(record.version).expect("checked above");
        if !migration.checksum().matches_hex(&record.checksum) {
            return Err(Error::ChecksumMismatch {
                version: record.version,
                path: migration.path().to_owned(),
                recorded: record.checksum.clone(),
                actual: migration.checksum().to_hex(),
            });
        }
    }
    Ok(())
}

/// One migration to undo by script.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Undo<'a> {
    /// A migration of the source (unmodified): its own rollback script and probe.
    Known(&'a Migration),
    /// A version this build does not know (a newer build applied it): the rollback script and
    /// probe the history stored when it was applied.
    Stored(&'a Record),
}

impl Undo<'_> {
    /// The version undone.
    pub fn version(&self) -> i64 {
        match self {
            Undo::Known(migration) => migration.version(),
            Undo::Stored(record) => record.version,
        }
    }
}

/// The migrations above `to` to undo by script, newest first. A known one must be
/// unmodified; an unknown one must have its scripts stored in the history.
pub(crate) fn undo_plan<'a>(
    source: &'a Source,
    history: &'a History,
    to: i64,
    database: &Path,
) -> Result<Vec<Undo<'a>>, Error> {
    let mut steps = Vec::new();
    let mut unknown_without_scripts = Vec::new();
    let mut rolled_back_by_code = Vec::new();
    for record in history.records().iter().rev().filter(|r| r.version > to) {
        match source.get(record.version) {
            Some(migration) => {
                verify(source, &[applied_of(record)], database)?;
                steps.push(Undo::Known(migration));
            }
            None if record.rollback_sql.is_some() && record.probe_sql.is_some() => {
                steps.push(Undo::Stored(record));
            }
            // A code migration's rollback in Rust: only its probe was stored.
            None if record.probe_sql.is_some() => rolled_back_by_code.push(record.version),
            None => unknown_without_scripts.push(record.version),
        }
    }
    if !rolled_back_by_code.is_empty() {
        rolled_back_by_code.reverse();
        return Err(Error::NoRollbackScript {
            database: database.to_owned(),
            versions: rolled_back_by_code,
        });
    }
    if !unknown_without_scripts.is_empty() {
        unknown_without_scripts.reverse();
        return Err(Error::UnknownVersions {
            database: database.to_owned(),
            versions: unknown_without_scripts,
            latest_known: source.latest_version(),
        });
    }
    Ok(steps)
}

fn applied_of(record: &Record) -> Applied {
    Applied {
        version: record.version,
        checksum: record.checksum.clone(),
    }
}

/// The status of every migration, given what each probe of the source said (in source order;
/// `Err` holds why a probe could not run).
pub(crate) fn status(
    source: &Source,
    history: &History,
    probes: Vec<Result<i64, BadAnswer>>,
) -> Vec<MigrationStatus> {
    let mut rows: Vec<MigrationStatus> = source
        .migrations()
        .iter()
        .zip(probes)
        .map(|(migration, probe)| {
            let record = history.get(migration.version());
            let state = record.map_or(MigrationState::Pending, |r| r.method);
            let (probe, probe_error) = match probe {
                Ok(value) => (Some(value), None),
                Err(bad) => (None, Some(bad.to_string())),
            };
            let superseded_by = record.and_then(|r| r.superseded_by);
            // Only an applied effect that is gone is drift: a pending migration whose probe
            // already says 1 will be adopted, and a data probe speaks of rows the application
            // keeps writing.
            let drift = match (state, probe) {
                (
                    MigrationState::Applied | MigrationState::Adopted | MigrationState::Imported,
                    Some(0),
                ) => superseded_by.is_none() && !migration.has_data_probe(),
                _ => false,
            };
            MigrationStatus {
                version: migration.version(),
                description: migration.description().to_owned(),
                kind: Some(migration.kind()),
                state,
                applied_at: record.map(|r| r.applied_at),
                checksum_ok: record.map(|r| migration.checksum().matches_hex(&r.checksum)),
                probe,
                probe_error,
                superseded_by,
                drift,
                known: true,
            }
        })
        .collect();
    for record in history.records() {
        if source.get(record.version).is_none() {
            rows.push(MigrationStatus {
                version: record.version,
                description: record.description.clone(),
                kind: None,
                state: MigrationState::Unknown,
                applied_at: Some(record.applied_at),
                checksum_ok: None,
                probe: None,
                probe_error: Some("not in this build's migrations".to_owned()),
                superseded_by: record.superseded_by,
                drift: false,
                known: false,
            });
        }
    }
    rows.sort_by_key(|r| r.version);
    rows
}

#[cfg(test)]
mod tests;
