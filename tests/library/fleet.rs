//! Fleets on real files: many databases, each migrated as alone, a bounded number at once;
//! failures with and without `keep_going`, canaries, resuming, two fleets at once, missing
//! files, and the status of a fleet.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::common::*;
use backstop::{FleetDatabase, FleetOptions, FleetOutcome, FleetReport, MigrateReport};
use sqlx::sqlite::SqliteConnectOptions;

/// Two migrations (a table with a row, then a column) and `n` tenant databases, each in WAL
/// mode holding a table of its own (so that each is backed up), named `t00.sqlite3`...
async fn fleet(ws: &Workspace, n: usize) -> Vec<PathBuf> {
    ws.migration(
        "001_people",
        "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n\
         INSERT INTO people (name) VALUES ('ada');\n",
        "DROP TABLE people;\n",
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'people';\n",
    );
    ws.email_migration();
    let dir = ws.path().join("tenants");
    std::fs::create_dir_all(&dir).unwrap();
    let mut dbs = Vec::new();
    for i in 0..n {
        let db = dir.join(format!("t{i:02}.sqlite3"));
        exec(
            &db,
            &format!(
                "PRAGMA journal_mode = WAL; CREATE TABLE tenant (name TEXT); \
                 INSERT INTO tenant VALUES ('tenant {i}');"
            ),
        )
        .await;
        dbs.push(db);
    }
    dbs
}

/// Makes `db` refuse the first migration: a view named `people` is not the table its probe
/// looks for, and `CREATE TABLE people` then fails.
async fn break_database(db: &Path) {
    exec(db, "CREATE VIEW people AS SELECT 1 AS id").await;
}

async fn mend_database(db: &Path) {
    exec(db, "DROP VIEW people").await;
}

fn outcomes(report: &FleetReport<MigrateReport>) -> Vec<&'static str> {
    report
        .databases
        .iter()
        .map(|e| match &e.outcome {
            FleetOutcome::Done(_) => "done",
            FleetOutcome::Failed(_) => "failed",
            FleetOutcome::NotStarted => "not_started",
        })
        .collect()
}

async fn versions(db: &Path) -> Vec<i64> {
    match db.exists() {
        true => history(db).await.into_iter().map(|(v, _)| v).collect(),
        false => Vec::new(),
    }
}

/// The backups written for the database `db` (its name is their prefix).
fn backups_of(db: &Path) -> Vec<String> {
    let name = db.file_name().unwrap().to_str().unwrap().to_owned();
    let mut files = backups_in(&db.parent().unwrap().join("backups"));
    files.retain(|f| f.starts_with(&name));
    files
}

#[tokio::test]
async fn every_database_is_migrated_with_its_own_backup_and_progress_is_told() {
    let ws = Workspace::new();
    let dbs = fleet(&ws, 6).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let told = seen.clone();
    let options = FleetOptions::default()
        .jobs(3)
        .on_progress(move |p| told.lock().unwrap().push((p.done, p.failed, p.total)));

    let report = ws.migrator().migrate_each(&dbs, &options).await;

    assert!(report.is_ok(), "{report}");
    assert_eq!(
        (report.ok(), report.failed(), report.not_started()),
        (6, 0, 0)
    );
    for (entry, db) in report.databases.iter().zip(&dbs) {
        assert_eq!(&entry.database, db, "the report keeps the order given");
        let done = entry.outcome.done().unwrap();
        assert_eq!((done.from_version, done.to_version), (0, 2));
        let backup = done
            .backup
            .as_ref()
            .expect("a backup of a database that held data");
        assert_eq!(query_i64(backup, "SELECT count(*) FROM tenant").await, 1);
        assert_eq!(versions(db).await, [1, 2]);
        assert_eq!(backups_of(db).len(), 1, "{:?}", backups_of(db));
    }
    let seen = seen.lock().unwrap().clone();
    let expected: Vec<_> = (1..=6).map(|done| (done, 0, 6)).collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn the_first_failure_stops_starting_others_unless_told_to_keep_going() {
    let ws = Workspace::new();
    let dbs = fleet(&ws, 4).await;
    break_database(&dbs[1]).await;
    let before = dump(&dbs[1]).await;

    let report = ws
        .migrator()
        .migrate_each(&dbs, &FleetOptions::default().jobs(1))
        .await;
    assert_eq!(
        outcomes(&report),
        ["done", "failed", "not_started", "not_started"]
    );
    assert_eq!(
        (report.ok(), report.failed(), report.not_started()),
        (1, 1, 2)
    );
    assert!(!report.is_ok());
    let error = report.databases[1].outcome.error().unwrap();
    assert_eq!(error.kind(), "statement", "{error}");
    assert_eq!(
        dump(&dbs[1]).await,
        before,
        "the failed database is as it was"
    );
    for db in &dbs[2..] {
        assert_eq!(
            versions(db).await,
            Vec::<i64>::new(),
            "{} untouched",
            db.display()
        );
        assert!(backups_of(db).is_empty());
    }
    let text = report.to_string();
    assert!(
        text.contains("FAILED") && text.contains("t01.sqlite3"),
        "{text}"
    );
    assert!(
        text.contains("not started  ") && text.contains("t03.sqlite3"),
        "{text}"
    );

    let report = ws
        .migrator()
        .migrate_each(&dbs, &FleetOptions::default().jobs(1).keep_going())
        .await;
    assert_eq!(outcomes(&report), ["done", "failed", "done", "done"]);
    for db in [&dbs[0], &dbs[2], &dbs[3]] {
        assert_eq!(versions(db).await, [1, 2]);
    }
}

#[tokio::test]
async fn a_failed_canary_stops_the_fleet_even_with_keep_going() {
    let ws = Workspace::new();
    let dbs = fleet(&ws, 5).await;
    break_database(&dbs[1]).await;

    let options = FleetOptions::default().jobs(4).canary(2).keep_going();
    let report = ws.migrator().migrate_each(&dbs, &options).await;
    assert_eq!(
        outcomes(&report),
        [
            "done",
            "failed",
            "not_started",
            "not_started",
            "not_started"
        ]
    );
    for db in &dbs[2..] {
        assert_eq!(versions(db).await, Vec::<i64>::new());
    }

    // Canaries that pass let the rest run.
    mend_database(&dbs[1]).await;
    let report = ws.migrator().migrate_each(&dbs, &options).await;
    assert!(report.is_ok(), "{report}");
}

#[tokio::test]
async fn running_the_fleet_again_after_a_fix_does_only_what_is_pending() {
    let ws = Workspace::new();
    let dbs = fleet(&ws, 4).await;
    break_database(&dbs[2]).await;
    let first = ws
        .migrator()
        .migrate_each(&dbs, &FleetOptions::default().jobs(1))
        .await;
    assert_eq!(outcomes(&first), ["done", "done", "failed", "not_started"]);

    mend_database(&dbs[2]).await;
    let again = ws
        .migrator()
        .migrate_each(&dbs, &FleetOptions::default().jobs(2))
        .await;
    assert!(again.is_ok(), "{again}");
    let outcomes_again: Vec<_> = again
        .databases
        .iter()
        .map(|e| {
            let r = e.outcome.done().unwrap();
            (r.from_version, r.to_version, r.backup.is_some())
        })
        .collect();
    assert_eq!(
        outcomes_again,
        [(2, 2, false), (2, 2, false), (0, 2, true), (0, 2, true)],
        "the up-to-date ones cost no backup"
    );
    for db in &dbs {
        assert_eq!(versions(db).await, [1, 2]);
        assert_eq!(backups_of(db).len(), 1, "{}", db.display());
    }
}

#[tokio::test]
async fn two_fleets_at_once_migrate_each_database_once_and_both_succeed() {
    let ws = Workspace::new();
    let dbs = fleet(&ws, 8).await;
    let migrator = ws.migrator();
    let options = FleetOptions::default().jobs(4);
    let mut reversed = dbs.clone();
    reversed.reverse();

    let (one, two) = tokio::join!(
        migrator.migrate_each(&dbs, &options),
        migrator.migrate_each(&reversed, &options)
    );
    assert!(one.is_ok(), "{one}");
    assert!(two.is_ok(), "{two}");
    for (i, db) in dbs.iter().enumerate() {
        let a = one.databases[i].outcome.done().unwrap();
        let b = two.databases[dbs.len() - 1 - i].outcome.done().unwrap();
        assert_eq!(b.database, a.database);
        let migrated = [a, b].iter().filter(|r| !r.is_up_to_date()).count();
        assert_eq!(
            migrated,
            1,
            "{}: migrated by exactly one fleet",
            db.display()
        );
        assert_eq!(versions(db).await, [1, 2]);
        assert_eq!(backups_of(db).len(), 1, "{}", db.display());
    }
}

#[tokio::test]
async fn a_missing_file_is_that_databases_error_and_is_never_created() {
    let ws = Workspace::new();
    let mut dbs = fleet(&ws, 2).await;
    let missing = ws.path().join("tenants").join("gone.sqlite3");
    dbs.insert(1, missing.clone());

    let report = ws
        .migrator()
        .migrate_each(&dbs, &FleetOptions::default().keep_going())
        .await;
    assert_eq!(outcomes(&report), ["done", "failed", "done"]);
    let error = report.databases[1].outcome.error().unwrap();
    assert_eq!(error.kind(), "io");
    assert!(error.to_string().contains("gone.sqlite3"), "{error}");
    assert!(!missing.exists(), "a fleet never creates a database");
    assert!(
        std::fs::read_dir(ws.path().join("tenants"))
            .unwrap()
            .all(|f| !f.unwrap().file_name().to_string_lossy().starts_with("gone"))
    );
}

#[tokio::test]
async fn the_status_of_a_fleet_counts_databases_by_version() {
    let ws = Workspace::new();
    let dbs = fleet(&ws, 5).await;
    let migrator = ws.migrator();
    let options = FleetOptions::default();
    migrator.migrate_each_to(&dbs[..2], 1, &options).await;
    migrator.migrate_each(&dbs[2..4], &options).await;
    std::fs::write(
        ws.path().join("tenants/junk.sqlite3"),
        b"not a database at all",
    )
    .unwrap();
    let mut all = dbs.clone();
    all.push(ws.path().join("tenants/junk.sqlite3"));

    let status = migrator.status_each(&all, &options).await;
    let counts: Vec<_> = status.versions().into_iter().collect();
    assert_eq!(counts, [(0, 1), (1, 2), (2, 2)]);
    assert_eq!(
        (status.ok(), status.failed()),
        (5, 1),
        "every database is read"
    );
    assert!(!status.is_clean());
    let text = status.to_string();
    assert!(text.starts_with("version  databases\n"), "{text}");
    assert!(text.contains("(latest)"), "{text}");
    assert!(
        text.contains("t00.sqlite3") && !text.contains("t02.sqlite3"),
        "{text}"
    );
    assert!(text.contains("junk.sqlite3"), "{text}");

    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(
        json["versions"],
        serde_json::json!({"0": 1, "1": 2, "2": 2})
    );
    assert_eq!(json["databases"][0]["pending"], serde_json::json!([2]));
    assert_eq!(
        json["databases"][5]["current_version"],
        serde_json::Value::Null
    );
    assert!(json["databases"][5]["error"]["kind"].is_string());

    migrator.migrate_each(&dbs, &options).await;
    assert!(migrator.status_each(&dbs, &options).await.is_clean());
}

/// A database given as connect options (here read-only) is opened with them.
#[tokio::test]
async fn a_database_given_as_connect_options_is_opened_with_them() {
    let ws = Workspace::new();
    let dbs = fleet(&ws, 1).await;
    let read_only: FleetDatabase = SqliteConnectOptions::new()
        .filename(&dbs[0])
        .read_only(true)
        .into();
    assert_eq!(read_only.path(), dbs[0]);
    let report = ws
        .migrator()
        .migrate_each([read_only], &FleetOptions::default())
        .await;
    assert_eq!(outcomes(&report), ["failed"]);
    assert_eq!(versions(&dbs[0]).await, Vec::<i64>::new());
}
