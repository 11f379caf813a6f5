//! The planner's unit tests: pure functions, no database.

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

fn history(source: &Source, versions: &[(i64, MigrationState)]) -> History {
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
    assert!(matches!(err, Error::UnknownTarget { target: 3, ref known } if *known == [1, 2, 5]));
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
fn status_flags_drift_of_applied_effects_only_and_lists_unknown_versions() {
    let s = source(&[1, 2, 3, 4]);
    let h = history(
        &s,
        &[
            (1, MigrationState::Applied),
            (2, MigrationState::Adopted),
            (3, MigrationState::Applied),
            (8, MigrationState::Applied),
        ],
    );
    let probes = vec![Ok(1), Ok(0), Err(BadAnswer::Rows(2)), Ok(1)];
    let rows = status(&s, &h, probes);
    let summary: Vec<(i64, MigrationState, bool, bool)> = rows
        .iter()
        .map(|r| (r.version, r.state, r.drift, r.known))
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, MigrationState::Applied, false, true),
            (2, MigrationState::Adopted, true, true),
            (3, MigrationState::Applied, false, true),
            // Pending with its probe saying 1: it will be adopted, not drift.
            (4, MigrationState::Pending, false, true),
            (8, MigrationState::Unknown, false, false),
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
