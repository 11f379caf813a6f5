//! Pure decisions: from a source, a history, a target and probe answers to what must be done.
//! No I/O happens here.

use std::path::Path;

use crate::error::Error;
use crate::history::{self, Applied, History, Method};
use crate::report::{MigrationStatus, State};
use crate::source::{Migration, Source};

/// What `migrate` has to do.
#[derive(Debug)]
pub(crate) struct Plan<'a> {
    /// The database's version now.
    pub current: i64,
    /// The migrations to run, in order.
    pub pending: Vec<&'a Migration>,
}

impl Plan<'_> {
    /// The version the database reaches once every pending migration has run.
    pub fn target(&self) -> i64 {
        self.pending.last().map_or(self.current, |m| m.version())
    }
}

/// Checks that the applied migrations are consistent with `source` (none modified, none
/// unknown) and lists what is pending up to `target` (the latest when `None`).
pub(crate) fn plan<'a>(
    source: &'a Source,
    applied: &[Applied],
    target: Option<i64>,
    database: &Path,
) -> Result<Plan<'a>, Error> {
    verify(source, applied, database)?;
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
    Ok(Plan { current, pending })
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

/// The status of every migration, given what each probe of the source said (in source order;
/// `Err` holds why a probe could not run).
pub(crate) fn status(
    source: &Source,
    history: &History,
    probes: Vec<Result<i64, String>>,
) -> Vec<MigrationStatus> {
    let mut rows: Vec<MigrationStatus> = source
        .migrations()
        .iter()
        .zip(probes)
        .map(|(migration, probe)| {
            let record = history.get(migration.version());
            let state = record.map_or(State::Pending, |r| recorded_state(r.method));
            let (probe, probe_error) = match probe {
                Ok(value) => (Some(value), None),
                Err(reason) => (None, Some(reason)),
            };
            let drift = matches!(
                (state, probe),
                (State::Pending, Some(1)) | (State::Applied | State::Adopted, Some(0))
            );
            MigrationStatus {
                version: migration.version(),
                description: migration.description().to_owned(),
                state,
                applied_at: record.map(|r| r.applied_at),
                checksum_ok: record.map(|r| migration.checksum().matches_hex(&r.checksum)),
                probe,
                probe_error,
                drift,
                known: true,
            }
        })
        .collect();
    for record in &history.records {
        if source.get(record.version).is_none() {
            rows.push(MigrationStatus {
                version: record.version,
                description: record.description.clone(),
                state: recorded_state(record.method),
                applied_at: Some(record.applied_at),
                checksum_ok: None,
                probe: None,
                probe_error: Some("not in this build's migrations".to_owned()),
                drift: false,
                known: false,
            });
        }
    }
    rows.sort_by_key(|r| r.version);
    rows
}

/// The state of a recorded migration.
fn recorded_state(method: Method) -> State {
    match method {
        Method::Applied => State::Applied,
        Method::Adopted => State::Adopted,
    }
}
