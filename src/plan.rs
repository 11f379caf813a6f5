//! Pure decisions: from a source, a history, a target and probe answers to what must be done.
//! No I/O happens here.

use std::path::Path;

use crate::error::Error;
use crate::history::{self, Applied, History, Method, Record};
use crate::probe::BadAnswer;
use crate::report::{MigrationStatus, State};
use crate::source::{Migration, Source};

/// Whether a database migrated by a newer build (versions this build does not know) is
/// accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Newer {
    /// Refused ([`Error::UnknownVersions`]).
    Refuse,
    /// Accepted when every unknown version is above every known one: nothing is applied.
    Accept,
}

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
    for record in history.records().iter().rev().filter(|r| r.version > to) {
        match source.get(record.version) {
            Some(migration) => {
                verify(source, &[applied_of(record)], database)?;
                steps.push(Undo::Known(migration));
            }
            None if record.rollback_sql.is_some() && record.probe_sql.is_some() => {
                steps.push(Undo::Stored(record));
            }
            None => unknown_without_scripts.push(record.version),
        }
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
            let state = record.map_or(State::Pending, |r| recorded_state(r.method));
            let (probe, probe_error) = match probe {
                Ok(value) => (Some(value), None),
                Err(bad) => (None, Some(bad.to_string())),
            };
            let superseded_by = record.and_then(|r| r.superseded_by);
            let drift = match (state, probe) {
                (State::Pending, Some(1)) => true,
                (State::Applied | State::Adopted | State::Imported, Some(0)) => {
                    superseded_by.is_none()
                }
                _ => false,
            };
            MigrationStatus {
                version: migration.version(),
                description: migration.description().to_owned(),
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
                state: State::Unknown,
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

/// The state of a recorded migration.
fn recorded_state(method: Method) -> State {
    match method {
        Method::Applied => State::Applied,
        Method::Adopted => State::Adopted,
        Method::Imported => State::Imported,
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use time::OffsetDateTime;

    use super::*;
    use crate::history::Record;

    /// A source with migrations of these versions (`CREATE TABLE tN`).
    fn source(versions: &[i64]) -> Source {
        let mut files = Vec::new();
        for v in versions {
            let stem = format!("m/{v:03}_t{v}");
            files.push((
                PathBuf::from(format!("{stem}.sql")),
                format!("CREATE TABLE t{v} (x);").into_bytes(),
            ));
            files.push((
                PathBuf::from(format!("{stem}.rollback.sql")),
                format!("DROP TABLE t{v};").into_bytes(),
            ));
            files.push((
                PathBuf::from(format!("{stem}.probe.sql")),
                format!("SELECT count(*) FROM sqlite_master WHERE name = 't{v}';").into_bytes(),
            ));
        }
        Source::from_files(files).unwrap()
    }

    /// The history of a database where `versions` of `source` were applied unmodified.
    fn applied(source: &Source, versions: &[i64]) -> Vec<Applied> {
        versions
            .iter()
            .map(|v| Applied {
                version: *v,
                checksum: source
                    .get(*v)
                    .map_or_else(|| "0".repeat(64), |m| m.checksum().to_hex()),
            })
            .collect()
    }

    fn history(source: &Source, versions: &[(i64, Method)]) -> History {
        let records = versions
            .iter()
            .map(|(v, method)| Record {
                version: *v,
                description: format!("t{v}"),
                checksum: source
                    .get(*v)
                    .map_or_else(|| "0".repeat(64), |m| m.checksum().to_hex()),
                applied_at: OffsetDateTime::UNIX_EPOCH,
                method: *method,
                superseded_by: None,
                rollback_sql: None,
                probe_sql: None,
            })
            .collect();
        History::new(records)
    }

    fn pending(plan: &Plan<'_>) -> Vec<i64> {
        plan.pending.iter().map(|m| m.version()).collect()
    }

    const DB: &str = "app.sqlite3";

    #[test]
    fn a_new_database_gets_everything_and_a_target_stops_early() {
        let s = source(&[1, 2, 5]);
        let all = plan(&s, &[], None, Path::new(DB), Newer::Refuse).unwrap();
        assert_eq!(
            (all.current, pending(&all), all.target()),
            (0, vec![1, 2, 5], 5)
        );
        let some = plan(&s, &[], Some(2), Path::new(DB), Newer::Refuse).unwrap();
        assert_eq!((pending(&some), some.target()), (vec![1, 2], 2));
    }

    #[test]
    fn only_what_is_above_the_current_version_is_pending() {
        let s = source(&[1, 2, 5]);
        let p = plan(
            &s,
            &applied(&s, &[1, 2]),
            None,
            Path::new(DB),
            Newer::Refuse,
        )
        .unwrap();
        assert_eq!((p.current, pending(&p)), (2, vec![5]));
        let done = plan(
            &s,
            &applied(&s, &[1, 2, 5]),
            None,
            Path::new(DB),
            Newer::Refuse,
        )
        .unwrap();
        assert!(done.pending.is_empty());
        assert_eq!(done.target(), 5);
    }

    #[test]
    fn the_current_version_is_always_a_valid_target() {
        let s = source(&[1, 2]);
        let p = plan(&s, &[], Some(0), Path::new(DB), Newer::Refuse).unwrap();
        assert!(p.pending.is_empty());
        let p = plan(
            &s,
            &applied(&s, &[1]),
            Some(1),
            Path::new(DB),
            Newer::Refuse,
        )
        .unwrap();
        assert!(p.pending.is_empty());
    }

    #[test]
    fn targets_must_exist_and_go_up() {
        let s = source(&[1, 2, 5]);
        let err = plan(&s, &[], Some(3), Path::new(DB), Newer::Refuse).unwrap_err();
        assert!(
            matches!(err, Error::UnknownTarget { target: 3, ref known } if *known == [1, 2, 5])
        );
        let err = plan(
            &s,
            &applied(&s, &[1, 2]),
            Some(1),
            Path::new(DB),
            Newer::Refuse,
        )
        .unwrap_err();
        assert!(matches!(
            err,
            Error::TargetBelowCurrent {
                target: 1,
                current: 2
            }
        ));
    }

    #[test]
    fn a_migration_below_an_applied_one_is_out_of_order() {
        let s = source(&[1, 2, 5]);
        let err = plan(
            &s,
            &applied(&s, &[1, 5]),
            None,
            Path::new(DB),
            Newer::Refuse,
        )
        .unwrap_err();
        assert!(matches!(
            err,
            Error::OutOfOrder {
                version: 2,
                current: 5,
                ..
            }
        ));
    }

    #[test]
    fn unknown_and_modified_applied_migrations_are_refused() {
        let s = source(&[1, 2]);
        let err = verify(&s, &applied(&s, &[1, 2, 7, 9]), Path::new(DB)).unwrap_err();
        assert!(
            matches!(err, Error::UnknownVersions { ref versions, latest_known: 2, .. } if *versions == [7, 9])
        );
        let mut modified = applied(&s, &[1, 2]);
        modified[1].checksum = "f".repeat(64);
        let err = plan(&s, &modified, None, Path::new(DB), Newer::Refuse).unwrap_err();
        assert!(matches!(err, Error::ChecksumMismatch { version: 2, .. }));
    }

    #[test]
    fn a_newer_database_is_accepted_only_when_asked_and_only_above_the_known_versions() {
        let s = source(&[1, 2]);
        let newer = applied(&s, &[1, 2, 3, 4]);
        assert!(matches!(
            plan(&s, &newer, None, Path::new(DB), Newer::Refuse),
            Err(Error::UnknownVersions { .. })
        ));
        let p = plan(&s, &newer, None, Path::new(DB), Newer::Accept).unwrap();
        assert_eq!(
            (p.current, pending(&p), p.newer.clone()),
            (4, vec![], vec![3, 4])
        );
        // An unknown version below a known one is not a newer build's: refused.
        let s = source(&[1, 3]);
        let gap = applied(&s, &[1, 2, 3]);
        assert!(matches!(
            plan(&s, &gap, None, Path::new(DB), Newer::Accept),
            Err(Error::UnknownVersions { .. })
        ));
    }

    #[test]
    fn status_flags_drift_both_ways_and_lists_unknown_versions() {
        let s = source(&[1, 2, 3, 4]);
        let h = history(
            &s,
            &[
                (1, Method::Applied),
                (2, Method::Adopted),
                (3, Method::Applied),
                (8, Method::Applied),
            ],
        );
        let probes = vec![Ok(1), Ok(0), Err(BadAnswer::Rows(2)), Ok(1)];
        let rows = status(&s, &h, probes);
        let summary: Vec<(i64, State, bool, bool)> = rows
            .iter()
            .map(|r| (r.version, r.state, r.drift, r.known))
            .collect();
        assert_eq!(
            summary,
            vec![
                (1, State::Applied, false, true),
                (2, State::Adopted, true, true),
                (3, State::Applied, false, true),
                (4, State::Pending, true, true),
                (8, State::Unknown, false, false),
            ]
        );
        assert_eq!(
            rows[2].probe_error.as_deref(),
            Some("returned 2 rows; a probe returns exactly one row")
        );
        assert_eq!(rows[0].checksum_ok, Some(true));
        assert_eq!(rows[3].checksum_ok, None);
        assert_eq!(rows[4].checksum_ok, None);
    }
}
