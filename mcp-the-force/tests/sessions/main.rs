//! Tests of the migrations this project ships (migrations/001_*, 002_*) on the
//! four starting shapes of the "MCP The Force" session database, run by the
//! real runner (`backstop::Migrator`): migrate, migrate again, status,
//! rollback by the scripts and by a backup, dry run.
//! Expected rows are computed in Rust from the fixture data (shapes/expect.rs).

mod shapes;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use backstop::BackupReason;
use backstop::{
    MigrationAction, MigrationOutcome, MigrationState, Migrator, RollbackStrategy, Source,
    StatusReport,
};
use shapes::expect::{self, EndState, SetAside};
use shapes::{
    APP_TABLES, Fixture, HISTORY_TABLE, HistoryRows, LEGACY_OBJECTS, LegacySession, NO_EXPIRY,
    Shape, UNIFIED_OBJECTS, UnifiedRow, dump, dump_with, exec, full_dump,
};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{ConnectOptions, Connection, Row, SqliteConnection, SqlitePool};

const SEED: u64 = 0x5eed_0001;
const ALL_SHAPES: [Shape; 4] = [Shape::Empty, Shape::Legacy, Shape::NewerApp, Shape::OldTool];
const FORWARD_002: &str = "002_history_stores_into_vector_stores.sql";

// ------------------------------------------------------------ helpers

fn migrations_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations")
}

fn source() -> Source {
    Source::from_dir(migrations_dir()).expect("the shipped migrations load")
}

/// The runner, without backups (where a backup is irrelevant).
fn migrator() -> Migrator {
    Migrator::new(source()).without_backups()
}

/// The runner, with its backups in `dir`.
fn migrator_with_backups(dir: &Path) -> Migrator {
    Migrator::new(source()).backup_dir(dir)
}

/// A plain connection (foreign keys off), creating the file.
async fn open(path: &Path) -> anyhow::Result<SqliteConnection> {
    Ok(SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .foreign_keys(false)
        .connect()
        .await?)
}

/// A fixture database and the application's pool on it.
struct Db {
    ws: Workspace,
    pool: SqlitePool,
    fx: Fixture,
}

async fn fixture(shape: Shape, seed: u64, foreign_keys: bool) -> anyhow::Result<Db> {
    let ws = Workspace::new();
    let mut conn = open(&ws.db()).await?;
    let fx = shapes::build(&mut conn, shape, seed).await?;
    conn.close().await?;
    let pool = SqlitePoolOptions::new()
        .max_connections(2)
        .connect_with(
            SqliteConnectOptions::new()
                .filename(ws.db())
                .foreign_keys(foreign_keys),
        )
        .await?;
    Ok(Db { ws, pool, fx })
}

/// The full dump of a backup file (or any other database file).
async fn dump_file(path: &Path) -> anyhow::Result<String> {
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .connect()
        .await?;
    let out = full_dump(&mut conn, HistoryRows::Exact).await?;
    conn.close().await?;
    Ok(out)
}

fn unified_dump_tables() -> Vec<&'static str> {
    vec!["vector_stores", "active_stores", "vector_stores_set_aside"]
}

/// (version, action) of each outcome.
fn actions(outcomes: &[MigrationOutcome]) -> Vec<(i64, MigrationAction)> {
    outcomes.iter().map(|m| (m.version, m.action)).collect()
}

/// The notices of every outcome, in order.
fn notices(outcomes: &[MigrationOutcome]) -> Vec<String> {
    outcomes.iter().flat_map(|m| m.notices.clone()).collect()
}

/// Checks the status of both migrations: the version, their states, and that
/// every probe says `probe` (so none drifted) and every checksum matches.
#[track_caller]
fn check_status(status: &StatusReport, version: i64, states: [MigrationState; 2], probe: i64) {
    assert_eq!(
        (status.current_version, status.latest_version),
        (version, 2),
        "{status:#?}"
    );
    let got: Vec<_> = status
        .migrations
        .iter()
        .map(|m| {
            (
                m.version,
                m.state,
                m.probe,
                m.drift,
                m.known,
                m.probe_error.clone(),
            )
        })
        .collect();
    let want: Vec<_> = [1, 2]
        .into_iter()
        .zip(states)
        .map(|(v, s)| (v, s, Some(probe), false, true, None))
        .collect();
    assert_eq!(got, want, "{status:#?}");
    for m in &status.migrations {
        let checksum = (m.state != MigrationState::Pending).then_some(true);
        assert_eq!(m.checksum_ok, checksum, "{m:#?}");
    }
}

async fn has_history_table(conn: &mut SqliteConnection) -> anyhow::Result<bool> {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE name = ?")
        .bind(HISTORY_TABLE)
        .fetch_one(&mut *conn)
        .await?;
    Ok(n == 1)
}

async fn set_aside_rows(conn: &mut SqliteConnection) -> anyhow::Result<Vec<SetAside>> {
    let rows = sqlx::query(
        "SELECT rowid, session_id, vector_store_id, provider, expires_at, protected, created_at,
            updated_at, reason, kept_by_session_id FROM vector_stores_set_aside",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut out: Vec<SetAside> = rows
        .iter()
        .map(|r| SetAside {
            row: LegacySession::from_row(r),
            reason: r.get(8),
            kept_by_session_id: r.get(9),
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Checks the migrated database against the expected end state, row by row.
async fn check_end_state(conn: &mut SqliteConnection, want: &EndState) -> anyhow::Result<()> {
    let got = shapes::unified_rows(conn).await?;
    assert_eq!(got.len(), want.rows.len(), "number of unified rows");
    for (g, w) in got.iter().zip(&want.rows) {
        assert_eq!(g, w);
    }
    for (vs, rowid) in &want.session_rowids {
        let got: i64 =
            sqlx::query_scalar("SELECT rowid FROM vector_stores WHERE vector_store_id = ?")
                .bind(vs)
                .fetch_one(&mut *conn)
                .await?;
        assert_eq!(got, *rowid, "rowid of the session row of {vs}");
    }
    assert_eq!(
        set_aside_rows(conn).await?,
        want.set_aside,
        "vector_stores_set_aside"
    );
    // The view keeps the legacy columns, over the unified table.
    let view: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT store_type, store_id, doc_count FROM active_stores ORDER BY store_id",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut want_view: Vec<(String, String, i64)> = want
        .rows
        .iter()
        .filter(|r| r.is_active == Some(1))
        .filter_map(|r| {
            let name = r.name.as_deref()?;
            let ty = if name.starts_with("project-conversations-") {
                "conversation"
            } else if name.starts_with("project-commits-") {
                "commit"
            } else {
                return None;
            };
            Some((
                ty.to_owned(),
                r.vector_store_id.clone(),
                r.document_count.unwrap_or(0),
            ))
        })
        .collect();
    want_view.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(view, want_view, "active_stores");
    // Nothing of the legacy or old-tool layout is left.
    let leftovers: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE name IN ('stores', 'schema_version', 'idx_active_store',
            'idx_vector_stores_updated', 'idx_vector_stores_expires', 'idx_vs_session_id', 'idx_vs_name')",
    )
    .fetch_all(&mut *conn)
    .await?;
    assert!(leftovers.is_empty(), "left over: {leftovers:?}");
    Ok(())
}

/// The schema (sqlite_master) of the unified end state, for comparing shapes.
async fn end_schema(
    conn: &mut SqliteConnection,
) -> anyhow::Result<Vec<(String, String, String, Option<String>)>> {
    let mut out = Vec::new();
    for t in UNIFIED_OBJECTS {
        let rows: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
            "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE tbl_name = ? ORDER BY type, name",
        )
        .bind(t)
        .fetch_all(&mut *conn)
        .await?;
        out.extend(rows);
    }
    Ok(out)
}

/// assert_eq! for dumps, printing only the lines that differ.
#[track_caller]
fn assert_same(got: &str, want: &str, what: &str) {
    if got == want {
        return;
    }
    let g: BTreeSet<&str> = got.lines().collect();
    let w: BTreeSet<&str> = want.lines().collect();
    let extra: Vec<&&str> = g.difference(&w).take(15).collect();
    let missing: Vec<&&str> = w.difference(&g).take(15).collect();
    panic!("{what} differs\nunexpected lines: {extra:#?}\nmissing lines: {missing:#?}");
}

// ------------------------------------------------------------ the scenario

struct Scenario {
    legacy_before: String,
    /// The unified tables after migrating.
    migrated: String,
    /// Full dumps of the database after each step (the history rows without
    /// their run-dependent columns), for comparing runs.
    after_migrate: String,
    after_rollback: String,
    after_round_trip: String,
}

/// migrate -> check every row -> migrate again (no-op) -> rollback by the
/// scripts -> check -> migrate again (same end state). With `backups`, the
/// runner takes its backups (checked against the database they copy).
async fn scenario(shape: Shape, foreign_keys: bool, backups: bool) -> anyhow::Result<Scenario> {
    let db = fixture(shape, SEED, foreign_keys).await?;
    let pool = &db.pool;
    let mut conn = pool.acquire().await?;
    let conn = &mut *conn;
    let legacy_before = dump(conn, &LEGACY_OBJECTS).await?;
    let app_before = dump(conn, &APP_TABLES).await?;
    let original = full_dump(conn, HistoryRows::Exact).await?;
    let want = expect::end_state(&db.fx);
    let migrator = if backups {
        migrator_with_backups(&db.ws.backups_dir())
    } else {
        migrator()
    };
    // The backup a run took (checked to copy `state`), or that it took none.
    let check_backup = async |taken: &Option<PathBuf>, state: &str, what: &str| {
        match (backups, taken) {
            (true, Some(path)) => {
                assert!(path.starts_with(db.ws.backups_dir()), "{path:?}");
                assert_same(&dump_file(path).await?, state, what);
            }
            (false, None) => {}
            (_, other) => panic!("{what}: backups {backups}, got {other:?}"),
        }
        anyhow::Ok(())
    };

    // migrate
    let report = migrator.migrate(pool).await?;
    let first = match shape {
        Shape::Empty | Shape::Legacy => MigrationAction::Applied,
        Shape::NewerApp | Shape::OldTool => MigrationAction::Adopted,
    };
    assert_eq!(
        actions(&report.migrations),
        [(1, first), (2, MigrationAction::Applied)],
        "{shape:?}"
    );
    assert_eq!(
        (report.from_version, report.to_version, report.dry_run),
        (0, 2, false)
    );
    check_notices(&db.fx, &want, &notices(&report.migrations));
    check_end_state(conn, &want).await?;
    assert_same(
        &dump(conn, &APP_TABLES).await?,
        &app_before,
        "application tables",
    );
    let migrated = dump(conn, &unified_dump_tables()).await?;
    let carry_after_migrate = dump_with(conn, &["backstop_carry"], false).await?;
    let migrated_exact = full_dump(conn, HistoryRows::Exact).await?;
    let after_migrate = full_dump(conn, HistoryRows::Stable).await?;
    match shape {
        // A new, empty database holds nothing a backup could give back: none is taken.
        Shape::Empty => assert_eq!(report.backup, None, "a backup of an empty database"),
        _ => {
            check_backup(
                &report.backup,
                &original,
                "the backup taken before migrating",
            )
            .await?
        }
    }
    let states = match first {
        MigrationAction::Adopted => [MigrationState::Adopted, MigrationState::Applied],
        _ => [MigrationState::Applied, MigrationState::Applied],
    };
    check_status(&migrator.status(pool).await?, 2, states, 1);

    // migrate again: nothing pending, every probe says 1, nothing changes
    let again = migrator.migrate(pool).await?;
    assert!(again.is_up_to_date() && again.backup.is_none(), "{again:?}");
    assert_eq!((again.from_version, again.to_version), (2, 2));
    let status = migrator.status(pool).await?;
    check_status(&status, 2, states, 1);
    assert!(status.is_clean(), "{status:#?}");
    assert_same(
        &full_dump(conn, HistoryRows::Exact).await?,
        &migrated_exact,
        "database after migrating again",
    );

    // rollback by the scripts
    let rollback = migrator
        .rollback(pool, 0, RollbackStrategy::Scripts)
        .await?;
    assert_eq!(
        actions(&rollback.rolled_back),
        [
            (2, MigrationAction::RolledBack),
            (1, MigrationAction::RolledBack)
        ]
    );
    assert_eq!(
        (
            rollback.from_version,
            rollback.to_version,
            rollback.strategy
        ),
        (2, 0, RollbackStrategy::Scripts)
    );
    assert_eq!(rollback.restored_from, None);
    let rollback_notices = notices(&rollback.rolled_back);
    assert!(rollback_notices.is_empty(), "{rollback_notices:?}");
    check_backup(
        &rollback.safety_backup,
        &migrated_exact,
        "the safety backup taken before rolling back",
    )
    .await?;
    check_status(
        &migrator.status(pool).await?,
        0,
        [MigrationState::Pending; 2],
        0,
    );
    assert!(
        !has_history_table(conn).await?,
        "the history table is dropped at version 0"
    );
    assert_same(
        &dump(conn, &APP_TABLES).await?,
        &app_before,
        "application tables",
    );
    check_rolled_back(conn, &db.fx, &want, &legacy_before).await?;
    // (Exact: at version 0 there is no history table, so nothing run-dependent.)
    let after_rollback = full_dump(conn, HistoryRows::Exact).await?;

    // migrate again after the rollback: the same end state, exactly
    let report2 = migrator.migrate(pool).await?;
    assert_eq!(
        actions(&report2.migrations),
        [(1, MigrationAction::Applied), (2, MigrationAction::Applied)]
    );
    check_backup(
        &report2.backup,
        &after_rollback,
        "the backup of the second migrate",
    )
    .await?;
    assert_same(
        &dump(conn, &unified_dump_tables()).await?,
        &migrated,
        "end state after a round trip",
    );
    assert_same(
        &dump_with(conn, &["backstop_carry"], false).await?,
        &carry_after_migrate,
        "backstop_carry after a round trip",
    );
    assert_same(
        &dump(conn, &APP_TABLES).await?,
        &app_before,
        "application tables",
    );
    check_status(
        &migrator.status(pool).await?,
        2,
        [MigrationState::Applied, MigrationState::Applied],
        1,
    );
    let after_round_trip = full_dump(conn, HistoryRows::Stable).await?;

    // Every backup is listed, with the version it holds.
    if backups {
        let mut listed: Vec<(PathBuf, Option<i64>, BackupReason)> = migrator
            .backups(pool)
            .await?
            .into_iter()
            .map(|b| (b.path, b.version, b.reason))
            .collect();
        listed.sort_by(|a, b| a.0.cmp(&b.0));
        // (None before the first migration of an empty database.)
        let first_backup = report
            .backup
            .clone()
            .map(|b| (b, Some(0), BackupReason::Migrate));
        let mut expected: Vec<_> = first_backup.into_iter().collect();
        expected.extend([
            (
                rollback.safety_backup.clone().unwrap(),
                Some(2),
                BackupReason::Rollback,
            ),
            (
                report2.backup.clone().unwrap(),
                Some(0),
                BackupReason::Migrate,
            ),
        ]);
        expected.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(listed, expected);
    }
    Ok(Scenario {
        legacy_before,
        migrated,
        after_migrate,
        after_rollback,
        after_round_trip,
    })
}

fn check_notices(fx: &Fixture, want: &EndState, notices: &[String]) {
    let mut expected = Vec::new();
    let count = |reason: &str| want.set_aside.iter().filter(|s| s.reason == reason).count();
    for (reason, tail) in [
        ("null_session_id", " (a session row without session_id)"),
        (
            "shared_vector_store_id",
            " (their vector_store_id stays with the session in kept_by_session_id)",
        ),
    ] {
        let n = count(reason);
        if n > 0 {
            expected.push(format!(
                "vector_stores: {n} legacy session row(s) kept in table vector_stores_set_aside, reason {reason}{tail}"
            ));
        }
    }
    if !fx.schema_version.is_empty() {
        let list: Vec<String> = fx
            .schema_version
            .iter()
            .map(|(v, at)| format!("version {v} applied at {at}"))
            .collect();
        expected.push(format!(
            "schema_version: removed the old migration tool's version table ({}); backstop keeps its own history in _backstop_migrations",
            list.join(", ")
        ));
    }
    if want.merged > 0 {
        expected.push(format!(
            "stores: {} history store(s) were registered in both stores and vector_stores and now have one row each (doc count, active flag and creation time from stores; the replaced vector_stores values are kept in backstop_carry, kind superseded)",
            want.merged
        ));
    }
    if !want.renamed.is_empty() {
        expected.push(format!(
            "stores: {} history store(s) got their store_id appended to their name because project-<type>s-NNN was already taken: {}",
            want.renamed.len(),
            want.renamed.join(", ")
        ));
    }
    assert_eq!(notices, expected.as_slice());
}

async fn check_rolled_back(
    conn: &mut SqliteConnection,
    fx: &Fixture,
    want: &EndState,
    legacy_before: &str,
) -> anyhow::Result<()> {
    let legacy_now = dump(conn, &LEGACY_OBJECTS).await?;
    match fx.shape {
        // Exactly the legacy file: schema, every row, every rowid.
        Shape::Legacy => assert_same(&legacy_now, legacy_before, "legacy tables after rollback"),
        // A fresh install rolls back to the empty legacy layout.
        Shape::Empty => {
            let mut c = SqliteConnectOptions::from_str("sqlite::memory:")?
                .connect()
                .await?;
            shapes::build_legacy_schema_only(&mut c).await?;
            assert_same(
                &legacy_now,
                &dump(&mut c, &LEGACY_OBJECTS).await?,
                "legacy layout",
            );
        }
        // Unified files roll back to the legacy layout: `stores` exactly as
        // it was, session rows derived from the unified ones.
        Shape::NewerApp | Shape::OldTool => {
            assert_eq!(
                dump(conn, &["stores"]).await?,
                legacy_before
                    .split("== ")
                    .find(|s| s.starts_with("stores\n"))
                    .map(|s| format!("== {s}"))
                    .unwrap(),
                "stores after rollback"
            );
            let mut got = shapes::legacy_session_rows(conn).await?;
            for g in &mut got {
                g.rowid = 0;
            }
            got.sort();
            let mut expected: Vec<LegacySession> = want
                .rows
                .iter()
                .filter(|r| r.session_id.is_some())
                .map(|u| expect::derive_legacy_session(u, 0))
                .collect();
            expected.sort();
            assert_eq!(got, expected, "legacy vector_stores after rollback");
            // the legacy indexes and view are back
            let names: BTreeSet<String> = shapes::object_names(conn).await?.into_iter().collect();
            for o in [
                "index idx_vector_stores_updated",
                "index idx_vector_stores_expires",
                "index idx_active_store",
                "view active_stores",
            ] {
                assert!(names.contains(o), "{o} missing after rollback");
            }
        }
    }
    // No unified object is left but the carry table.
    let names = shapes::object_names(conn).await?;
    for o in [
        "table vector_stores_set_aside",
        "index idx_vs_updated_at",
        "table schema_version",
    ] {
        assert!(!names.contains(&o.to_owned()), "{o} left after rollback");
    }
    Ok(())
}

// ------------------------------------------------------------ tests

#[tokio::test]
async fn shape1_empty_database() -> anyhow::Result<()> {
    scenario(Shape::Empty, true, true).await?;
    Ok(())
}

#[tokio::test]
async fn shape2_legacy_database() -> anyhow::Result<()> {
    let s = scenario(Shape::Legacy, true, true).await?;
    // The fixture has what the scenario must carry through: both created_at
    // spellings (one with a .999999 fraction), NULL `protected`, a NULL
    // session_id and shared stores.
    assert!(s.legacy_before.contains(".999999+00:00'"));
    let space_format = |v: &str| v.len() == 21 && v.starts_with("'20") && v.as_bytes()[11] == b' ';
    assert!(
        s.legacy_before
            .lines()
            .any(|l| l.split('|').any(space_format))
    );
    assert!(s.migrated.contains("'null_session_id'"));
    assert!(s.migrated.contains("'shared_vector_store_id'"));
    Ok(())
}

#[tokio::test]
async fn shape3_database_of_the_newer_application() -> anyhow::Result<()> {
    scenario(Shape::NewerApp, true, true).await?;
    Ok(())
}

#[tokio::test]
async fn shape4_database_converted_by_the_old_tool() -> anyhow::Result<()> {
    scenario(Shape::OldTool, true, true).await?;
    Ok(())
}

/// The runner uses its own connection with foreign keys off: whether the
/// application's pool has them on or off makes no difference.
#[tokio::test]
async fn foreign_keys_on_or_off_make_no_difference() -> anyhow::Result<()> {
    for shape in ALL_SHAPES {
        let off = scenario(shape, false, false).await?;
        let on = scenario(shape, true, false).await?;
        for (what, off, on) in [
            ("after migrate", &off.after_migrate, &on.after_migrate),
            ("after rollback", &off.after_rollback, &on.after_rollback),
            (
                "after migrating again",
                &off.after_round_trip,
                &on.after_round_trip,
            ),
        ] {
            assert_same(
                on,
                off,
                &format!("{shape:?} {what}, foreign keys on vs off"),
            );
        }
    }
    Ok(())
}

#[tokio::test]
async fn every_shape_ends_in_the_same_schema() -> anyhow::Result<()> {
    let mut schemas = Vec::new();
    for shape in ALL_SHAPES {
        let db = fixture(shape, SEED, true).await?;
        migrator().migrate(&db.pool).await?;
        let mut conn = db.pool.acquire().await?;
        schemas.push((shape, end_schema(&mut conn).await?));
    }
    let (first_shape, first) = &schemas[0];
    assert_eq!(first.len(), 11, "{first:#?}");
    for (shape, schema) in &schemas[1..] {
        assert_eq!(schema, first, "{shape:?} vs {first_shape:?}");
    }
    Ok(())
}

/// A dry run of a legacy database reports what the real run does, with the
/// same notices, and changes nothing; a rollback by the backup strategy
/// after the real run gives back the original file's content exactly.
#[tokio::test]
async fn dry_run_and_rollback_by_backup_on_a_legacy_database() -> anyhow::Result<()> {
    let db = fixture(Shape::Legacy, SEED, true).await?;
    let pool = &db.pool;
    let mut conn = pool.acquire().await?;
    let conn = &mut *conn;
    let original = full_dump(conn, HistoryRows::Exact).await?;
    let migrator = migrator_with_backups(&db.ws.backups_dir());

    let rehearsal = migrator.dry_run().migrate(pool).await?;
    assert_eq!(
        actions(&rehearsal.migrations),
        [
            (1, MigrationAction::WouldApply),
            (2, MigrationAction::WouldApply)
        ]
    );
    assert_eq!(
        (
            rehearsal.from_version,
            rehearsal.to_version,
            rehearsal.dry_run
        ),
        (0, 2, true)
    );
    assert_eq!(rehearsal.backup, None);
    assert_same(
        &full_dump(conn, HistoryRows::Exact).await?,
        &original,
        "database after a dry run",
    );
    assert_eq!(
        db.ws.backup_files(),
        Vec::<String>::new(),
        "a dry run writes no backup"
    );
    check_status(
        &migrator.status(pool).await?,
        0,
        [MigrationState::Pending; 2],
        0,
    );

    let report = migrator.migrate(pool).await?;
    assert_eq!(
        actions(&report.migrations),
        [(1, MigrationAction::Applied), (2, MigrationAction::Applied)]
    );
    let per_migration = |r: &[MigrationOutcome]| -> Vec<(i64, Vec<String>)> {
        r.iter().map(|m| (m.version, m.notices.clone())).collect()
    };
    assert_eq!(
        per_migration(&rehearsal.migrations),
        per_migration(&report.migrations)
    );
    check_notices(
        &db.fx,
        &expect::end_state(&db.fx),
        &notices(&rehearsal.migrations),
    );
    let backup = report.backup.clone().expect("a backup before migrating");
    let migrated = full_dump(conn, HistoryRows::Exact).await?;

    let rollback = migrator.rollback(pool, 0, RollbackStrategy::Backup).await?;
    assert_eq!(
        (
            rollback.from_version,
            rollback.to_version,
            rollback.strategy
        ),
        (2, 0, RollbackStrategy::Backup)
    );
    assert_eq!(rollback.restored_from.as_ref(), Some(&backup));
    assert!(rollback.discards_changes_since.is_some());
    assert!(rollback.rolled_back.is_empty(), "{rollback:?}");
    let safety = rollback.safety_backup.clone().expect("a safety backup");
    assert_same(
        &full_dump(conn, HistoryRows::Exact).await?,
        &original,
        "database restored from the backup",
    );
    assert_same(
        &dump_file(&safety).await?,
        &migrated,
        "the safety backup taken before restoring",
    );
    check_status(
        &migrator.status(pool).await?,
        0,
        [MigrationState::Pending; 2],
        0,
    );
    Ok(())
}

/// After migrating, the application works on the unified table; a rollback
/// then reflects its changes in the legacy tables, keeps what they cannot
/// hold in backstop_carry, and migrating again gives back exactly the
/// unified state the application had.
#[tokio::test]
async fn changes_made_after_migrating_survive_rollback_and_migrating_again() -> anyhow::Result<()> {
    let db = fixture(Shape::Legacy, SEED + 1, true).await?;
    let migrator = migrator();
    migrator.migrate(&db.pool).await?;
    let mut conn = db.pool.acquire().await?;
    let conn = &mut *conn;
    let want = expect::end_state(&db.fx);
    let aside = want
        .set_aside
        .iter()
        .find(|s| s.reason == "shared_vector_store_id")
        .expect("a shared row")
        .clone();
    let conv: Vec<&UnifiedRow> = want
        .rows
        .iter()
        .filter(|r| {
            r.name
                .as_deref()
                .is_some_and(|n| n.starts_with("project-conversations-"))
        })
        .collect();
    let newest = conv.iter().max_by_key(|r| r.name.clone()).unwrap();
    let session = want.rows.iter().find(|r| r.session_id.is_some()).unwrap();
    exec(
        conn,
        &format!(
            "UPDATE vector_stores SET provider_metadata = '{{\"k\": 1}}', document_count = 7, is_active = 0,
                expires_at = NULL WHERE vector_store_id = '{}';
             UPDATE vector_stores SET is_active = 0, updated_at = updated_at + 5 WHERE vector_store_id = '{}';
             INSERT INTO vector_stores (vector_store_id, name, provider, is_protected, is_active, created_at,
                updated_at, document_count, rollover_from)
                VALUES ('vs_new_history', 'project-conversations-{:03}', 'openai', 1, 1, 1760000000,
                1760000000, 0, '{}');
             INSERT INTO vector_stores (vector_store_id, session_id, provider, created_at, expires_at, updated_at)
                VALUES ('vs_new_for_set_aside_session', '{}', 'openai', 1760000001, 1760007201, 1760000001);",
            session.vector_store_id,
            newest.vector_store_id,
            conv.len() + 1,
            newest.vector_store_id,
            aside.row.session_id.as_deref().unwrap().replace('\'', "''"),
        ),
    )
    .await?;
    let unified_before = dump(conn, &unified_dump_tables()).await?;

    let rollback = migrator
        .rollback(&db.pool, 0, RollbackStrategy::Scripts)
        .await?;
    let by_version: Vec<(i64, Vec<String>)> = rollback
        .rolled_back
        .iter()
        .map(|m| (m.version, m.notices.clone()))
        .collect();
    assert_eq!(
        by_version,
        [
            (2, vec![]),
            (1, vec![
                "vector_stores: 1 set-aside session row(s) could not return because their session now has another store; kept in backstop_carry (kind displaced)"
                    .to_owned()
            ]),
        ]
    );
    // The legacy rows reflect the application's changes.
    let legacy = shapes::legacy_session_rows(conn).await?;
    let changed = legacy
        .iter()
        .find(|l| l.vector_store_id == session.vector_store_id)
        .unwrap();
    assert_eq!(changed.expires_at, NO_EXPIRY);
    let new_one = legacy
        .iter()
        .find(|l| l.session_id == aside.row.session_id)
        .unwrap();
    assert_eq!(new_one.vector_store_id, "vs_new_for_set_aside_session");
    let stores: Vec<(String, String, i64, String, i64)> =
        sqlx::query_as("SELECT store_id, store_type, doc_count, created_at, is_active FROM stores")
            .fetch_all(&mut *conn)
            .await?;
    let added = stores.iter().find(|s| s.0 == "vs_new_history").unwrap();
    assert_eq!(
        (added.1.as_str(), added.2, added.3.as_str(), added.4),
        ("conversation", 0, "2025-10-09T08:53:20+00:00", 1)
    );
    let old = stores
        .iter()
        .find(|s| s.0 == newest.vector_store_id)
        .unwrap();
    assert_eq!(old.4, 0);

    // Migrating again gives back exactly what the application had.
    migrator.migrate(&db.pool).await?;
    assert_same(
        &dump(conn, &unified_dump_tables()).await?,
        &unified_before,
        "unified state after rollback + migrate",
    );
    Ok(())
}

/// A created_at the migration cannot read makes it refuse, naming the
/// statement of 002 that refused; nothing changes and no backup is left.
#[tokio::test]
async fn unreadable_created_at_is_refused_and_nothing_changes() -> anyhow::Result<()> {
    let db = fixture(Shape::Legacy, SEED, true).await?;
    let mut conn = db.pool.acquire().await?;
    let conn = &mut *conn;
    exec(
        conn,
        &format!(
            "UPDATE stores SET created_at = 'last tuesday' WHERE store_id = '{}'",
            db.fx.stores[0].store_id
        ),
    )
    .await?;
    let before = full_dump(conn, HistoryRows::Exact).await?;
    let names_before = shapes::object_names(conn).await?;
    let migrator = migrator_with_backups(&db.ws.backups_dir());
    let err = migrator.migrate(&db.pool).await.unwrap_err();
    let message = err.to_string();
    let backstop::Error::Statement { version, path, .. } = &err else {
        panic!("expected a failed statement of 002, got {err:?}");
    };
    assert_eq!(*version, 2, "{message}");
    assert_eq!(path, &migrations_dir().join(FORWARD_002), "{message}");
    assert!(message.contains(FORWARD_002), "{message}");
    assert!(
        message.contains("stores.created_at value is not a timestamp"),
        "{message}"
    );
    assert_same(
        &full_dump(conn, HistoryRows::Exact).await?,
        &before,
        "database after a refused run",
    );
    assert_eq!(shapes::object_names(conn).await?, names_before);
    assert_eq!(
        db.ws.backup_files(),
        Vec::<String>::new(),
        "the backup of a failed run is removed"
    );
    check_status(
        &migrator.status(&db.pool).await?,
        0,
        [MigrationState::Pending; 2],
        0,
    );
    Ok(())
}

/// The files load (the loader checks names, pairs, transaction control,
/// probes) and keep to what the loader does not check: SQLite 3.35, no
/// PRAGMA statement.
#[test]
fn scripts_keep_to_the_contract() {
    let source = source();
    assert_eq!(
        source
            .migrations()
            .iter()
            .map(|m| (m.version(), m.description()))
            .collect::<Vec<_>>(),
        [
            (1, "unified_vector_stores"),
            (2, "history_stores_into_vector_stores")
        ]
    );
    // Newer than 3.35 (or optional before 3.38): unixepoch() 3.38, ->/->> 3.38,
    // JSON1, format() 3.38, STRICT 3.37, unhex() 3.41, concat() 3.44,
    // string_agg() 3.44, octet_length() 3.43, timediff() 3.43, HAVING without
    // GROUP BY 3.39.
    let newer = [
        "unixepoch(",
        "->",
        "json",
        "format(",
        "strict",
        "unhex",
        "concat(",
        "string_agg",
        "octet_length",
        "timediff",
    ];
    for m in source.migrations() {
        let name = m.path().display().to_string();
        for (kind, script) in [
            ("forward", m.sql()),
            ("rollback", m.rollback_sql()),
            ("probe", m.probe_sql()),
        ] {
            // Statements of the code (a trigger body splits too, which does
            // not matter for these checks).
            for stmt in code_of(script).split(';') {
                for word in newer {
                    let used = stmt.match_indices(word).any(|(at, _)| {
                        !stmt[..at]
                            .chars()
                            .next_back()
                            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                    });
                    assert!(!used, "{name} {kind}: uses {word}: {stmt}");
                }
                assert!(
                    !stmt.contains("having") || stmt.contains("group by"),
                    "{name} {kind}: HAVING without GROUP BY needs 3.39: {stmt}"
                );
                let keyword = stmt.split_whitespace().next().unwrap_or("");
                assert_ne!(keyword, "pragma", "{name} {kind}: {stmt}");
            }
        }
    }
}

/// The code of a script, lower-cased, with comments removed and every string
/// literal and quoted identifier emptied (so that their text is not taken for
/// code).
fn code_of(script: &str) -> String {
    let mut out = String::new();
    let mut chars = script.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '-' if chars.peek() == Some(&'-') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut last = ' ';
                for c in chars.by_ref() {
                    if last == '*' && c == '/' {
                        break;
                    }
                    last = c;
                }
                out.push(' ');
            }
            '\'' | '"' | '`' | '[' => {
                let close = if c == '[' { ']' } else { c };
                out.push(c);
                // A doubled quote inside a literal is two literals in a row
                // here, which empties the same way.
                for c in chars.by_ref() {
                    if c == close {
                        break;
                    }
                }
                out.push(close);
            }
            _ => out.push(c.to_ascii_lowercase()),
        }
    }
    out
}

/// Writes the four fixture files to $BACKSTOP_FIXTURE_DIR (for running the
/// scripts with another SQLite, e.g. 3.35, outside this test suite).
#[tokio::test]
#[ignore = "writes files; run on demand with BACKSTOP_FIXTURE_DIR set"]
async fn write_fixture_files() -> anyhow::Result<()> {
    let dir = PathBuf::from(std::env::var("BACKSTOP_FIXTURE_DIR")?);
    for (i, shape) in ALL_SHAPES.into_iter().enumerate() {
        let path = dir.join(format!("shape{}.sqlite3", i + 1));
        let _ = std::fs::remove_file(&path);
        let mut conn = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .connect()
            .await?;
        shapes::build(&mut conn, shape, SEED).await?;
    }
    Ok(())
}

// ------------------------------------------------------------ verify

/// `verify` proves migrations 001 and 002 and their rollbacks from each of the four starting
/// shapes (a copy of each; the fixture itself is never changed). Where a rollback cannot be
/// exact by design, the rollback script says so (`-- verify: allow ...`) and why.
#[tokio::test]
async fn verify_proves_the_migrations_from_each_shape() -> anyhow::Result<()> {
    for shape in ALL_SHAPES {
        let db = fixture(shape, SEED, false).await?;
        db.pool.close().await;
        let before = dump_file(&db.ws.db()).await?;
        let report = backstop::verify(&source(), Some(&db.ws.db())).await?;
        println!("{shape:?}:\n{report}");
        if std::env::var_os("ALL").is_none() {
            assert!(report.ok, "{shape:?}:\n{report}");
        }
        assert_eq!(
            dump_file(&db.ws.db()).await?,
            before,
            "{shape:?}: the fixture changed"
        );
    }
    Ok(())
}

/// A temporary directory holding a database and its backups.
struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new() -> Self {
        Workspace {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("sessions.sqlite3")
    }

    fn backups_dir(&self) -> PathBuf {
        self.dir.path().join("backups")
    }

    /// The backups (sorted file names), not the lock the runs of the database take turns on.
    fn backup_files(&self) -> Vec<String> {
        let mut names: Vec<String> = match std::fs::read_dir(self.backups_dir()) {
            Ok(entries) => entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|name| !name.ends_with(".lock"))
                .collect(),
            Err(_) => Vec::new(),
        };
        names.sort();
        names
    }
}
