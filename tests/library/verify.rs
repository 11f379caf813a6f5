//! `verify` proves each migration and its rollback on a scratch database, names every kind of
//! problem, never touches the user's database, and answers in JSON for CI.

use std::process::Command;

use crate::common::*;
use backstop::{VerifyProblemKind, VerifyReport, verify};
use serde_json::Value;

/// A migration that is right: a table, a column with a backfill, an index.
fn good(ws: &Workspace) {
    ws.migration(
        "001_people",
        "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n\
         INSERT INTO people (name) VALUES ('ada'), ('grace');\n",
        "DROP TABLE people;\n",
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'people';\n",
    );
    ws.migration(
        "002_email",
        "ALTER TABLE people ADD COLUMN email TEXT;\n\
         UPDATE people SET email = lower(name) || '@example.org';\n\
         CREATE INDEX people_by_email ON people (email);\n",
        "DROP INDEX people_by_email;\nALTER TABLE people DROP COLUMN email;\n",
        "SELECT count(*) FROM pragma_table_info('people') WHERE name = 'email';\n",
    );
}

fn kinds(report: &VerifyReport, version: i64) -> Vec<VerifyProblemKind> {
    report
        .migrations
        .iter()
        .find(|m| m.version == version)
        .map(|m| m.problems.iter().map(|p| p.kind).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_sound_set_passes() {
    let ws = Workspace::new();
    good(&ws);
    let report = verify(&ws.source(), None).await.unwrap();
    assert!(report.ok, "{report}");
    assert_eq!(report.migrations.len(), 2);
}

/// A column named `rowid` hides the row id under that name; the real row ids still count: a
/// migration whose rollback leaves the rows renumbered is not exact (before: it passed).
#[tokio::test]
async fn rows_renumbered_under_a_column_named_rowid_are_a_difference() {
    let ws = Workspace::new();
    good(&ws);
    ws.migration(
        "003_shadowed",
        "CREATE TABLE shadowed (rowid TEXT, v TEXT);\n\
         INSERT INTO shadowed (_rowid_, rowid, v) VALUES (10, 'a', 'x'), (20, 'b', 'y');",
        "DROP TABLE shadowed;",
        "SELECT count(*) FROM sqlite_master WHERE name = 'shadowed';",
    );
    ws.migration(
        "004_renumber",
        "CREATE TABLE marks (x);\n\
         CREATE TABLE renumbered AS SELECT rowid, v FROM shadowed;\n\
         DELETE FROM shadowed;\n\
         INSERT INTO shadowed (rowid, v) SELECT rowid, v FROM renumbered;\n\
         DROP TABLE renumbered;",
        "DROP TABLE marks;",
        "SELECT count(*) FROM sqlite_master WHERE name = 'marks';",
    );
    let report = verify(&ws.source(), None).await.unwrap();
    assert!(kinds(&report, 3).is_empty(), "{report}");
    assert!(
        kinds(&report, 4).contains(&VerifyProblemKind::RollbackInexact),
        "{report}"
    );
    assert!(
        report.to_string().contains("rows differ in shadowed"),
        "{report}"
    );
}

#[tokio::test]
async fn every_kind_of_problem_is_named() {
    let cases: [(&str, [&str; 3], VerifyProblemKind, &str); 4] = [
        (
            "loose probe",
            [
                "CREATE TABLE tags (x);",
                "DROP TABLE tags;",
                "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table';",
            ],
            VerifyProblemKind::LooseProbe,
            "says 1 before the migration ran",
        ),
        (
            "probe that looks for something else",
            [
                "CREATE TABLE tags (x);",
                "DROP TABLE tags;",
                "SELECT count(*) FROM sqlite_master WHERE name = 'labels';",
            ],
            VerifyProblemKind::ProbeNotConfirmed,
            "the probe says 0",
        ),
        (
            "rollback that leaves sqlite_sequence behind",
            [
                "CREATE TABLE tags (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT);\n\
                 INSERT INTO tags (name) VALUES ('x');",
                "DROP TABLE tags;",
                "SELECT count(*) FROM sqlite_master WHERE name = 'tags';",
            ],
            VerifyProblemKind::RollbackInexact,
            "sqlite_sequence",
        ),
        (
            "migration whose second run differs",
            [
                "CREATE TABLE stamp AS SELECT randomblob(16) AS r;",
                "DROP TABLE stamp;",
                "SELECT count(*) FROM sqlite_master WHERE name = 'stamp';",
            ],
            VerifyProblemKind::ReapplyDiffers,
            "rows differ in stamp",
        ),
    ];
    for (name, [forward, rollback, probe], kind, says) in cases {
        let ws = Workspace::new();
        good(&ws);
        ws.migration("003_case", forward, rollback, probe);
        let report = verify(&ws.source(), None).await.unwrap();
        assert!(!report.ok, "{name}: {report}");
        assert!(kinds(&report, 3).contains(&kind), "{name}: {report}");
        assert!(
            kinds(&report, 1).is_empty() && kinds(&report, 2).is_empty(),
            "{report}"
        );
        assert!(report.to_string().contains(says), "{name}: {report}");
    }

    // Rollbacks that are not inverses: one does not undo, one drops the wrong column, one
    // forgets the index it should re-create.
    for (name, forward, rollback, says) in [
        (
            "rollback that does not undo",
            "ALTER TABLE people ADD COLUMN age INTEGER;",
            "SELECT 1;",
            "probe still says 1",
        ),
        (
            "rollback that forgets an index it dropped",
            "DROP INDEX people_by_email;\nCREATE INDEX people_by_name ON people (name);",
            "DROP INDEX people_by_name;",
            "index people_by_email",
        ),
        // Both may be set in a script; a rollback must put them back (before: not compared).
        (
            "rollback that leaves user_version changed",
            "CREATE TABLE marks (x);\nPRAGMA user_version = 7;",
            "DROP TABLE marks;",
            "PRAGMA user_version was 0, now 7",
        ),
        (
            "rollback that leaves application_id changed",
            "CREATE TABLE marks (x);\nPRAGMA application_id = 42;",
            "DROP TABLE marks;",
            "PRAGMA application_id was 0, now 42",
        ),
    ] {
        let ws = Workspace::new();
        good(&ws);
        let probe = if forward.contains("age") {
            "SELECT count(*) FROM pragma_table_info('people') WHERE name = 'age';"
        } else if forward.contains("marks") {
            "SELECT count(*) FROM sqlite_master WHERE name = 'marks';"
        } else {
            "SELECT count(*) FROM sqlite_master WHERE name = 'people_by_name';"
        };
        ws.migration("003_case", forward, rollback, probe);
        let report = verify(&ws.source(), None).await.unwrap();
        assert!(
            kinds(&report, 3).contains(&VerifyProblemKind::RollbackInexact),
            "{name}: {report}"
        );
        assert!(report.to_string().contains(says), "{name}: {report}");
    }
}

#[tokio::test]
async fn a_failing_script_stops_the_verification_there() {
    let ws = Workspace::new();
    good(&ws);
    ws.migration(
        "003_broken",
        "CREATE TABLE t3 (x);",
        "DROP TABLE no_such_table;",
        "SELECT count(*) FROM sqlite_master WHERE name = 't3';",
    );
    ws.migration(
        "004_after",
        "CREATE TABLE t4 (x);",
        "DROP TABLE t4;",
        "SELECT count(*) FROM sqlite_master WHERE name = 't4';",
    );
    let report = verify(&ws.source(), None).await.unwrap();
    assert_eq!(
        kinds(&report, 3),
        [VerifyProblemKind::ScriptFailed],
        "{report}"
    );
    assert_eq!(
        report.migrations.len(),
        3,
        "004 is not checked after a failure"
    );
    assert!(report.to_string().contains("no_such_table"), "{report}");
}

#[tokio::test]
async fn an_allowed_problem_is_reported_and_does_not_fail() {
    let ws = Workspace::new();
    good(&ws);
    ws.migration(
        "003_stamp",
        "CREATE TABLE stamp AS SELECT randomblob(16) AS r;",
        "-- verify: allow reapply_differs in stamp: a random token, new on every run\n\
         DROP TABLE stamp;",
        "SELECT count(*) FROM sqlite_master WHERE name = 'stamp';",
    );
    let report = verify(&ws.source(), None).await.unwrap();
    assert!(report.ok, "{report}");
    let problem = &report.migrations[2].problems[0];
    assert_eq!(problem.kind, VerifyProblemKind::ReapplyDiffers);
    assert_eq!(
        problem.allowed.as_deref(),
        Some("a random token, new on every run")
    );
    // Confined to `stamp`: a difference elsewhere is not allowed.
    ws.write(
        "003_stamp.rollback.sql",
        "-- verify: allow reapply_differs in other: not this table\nDROP TABLE stamp;",
    );
    assert!(!verify(&ws.source(), None).await.unwrap().ok);
}

#[tokio::test]
async fn a_starting_database_is_copied_and_never_touched() {
    let ws = Workspace::new();
    good(&ws);
    exec(
        &ws.db(),
        "PRAGMA journal_mode = WAL; CREATE TABLE own (x); INSERT INTO own VALUES (1);",
    )
    .await;
    let pool = ws.pool().await;
    ws.migrator().migrate_to(&pool, 1).await.unwrap();
    pool.close().await;
    let before = dump(&ws.db()).await;
    let files = list_dir(ws.path());

    let report = verify(&ws.source(), Some(&ws.db())).await.unwrap();
    assert!(report.ok, "{report}");
    let checked: Vec<i64> = report.migrations.iter().map(|m| m.version).collect();
    assert_eq!(checked, [2], "only what the database has not applied");
    assert_eq!(dump(&ws.db()).await, before);
    assert_eq!(list_dir(ws.path()), files);

    // A migration whose effect the database already holds is adopted, as migrate would.
    exec(&ws.db(), "ALTER TABLE people ADD COLUMN email TEXT;").await;
    let report = verify(&ws.source(), Some(&ws.db())).await.unwrap();
    assert!(report.ok && report.migrations[0].adopted, "{report}");
}

#[tokio::test]
async fn the_command_line_verifies_in_json_with_an_exit_code() {
    let ws = Workspace::new();
    good(&ws);
    let run = |ws: &Workspace, extra: &[&str]| {
        Command::new(cli())
            .current_dir(ws.path())
            .env_remove("DATABASE_URL")
            .arg("--migrations")
            .arg(ws.migrations_dir())
            .args(["--json", "verify"])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&ws, &[]);
    let json = success_json(&out);
    assert_eq!(json["ok"], true);
    assert_eq!(json["migrations"][0]["version"], 1);
    assert_eq!(json["migrations"][0]["ok"], true);
    assert_eq!(json["migrations"][0]["problems"], serde_json::json!([]));
    assert!(
        !ws.path().join("app.sqlite3").exists(),
        "verify opened the default database"
    );

    ws.write(
        "002_email.rollback.sql",
        "ALTER TABLE people DROP COLUMN email;\n",
    );
    let out = run(&ws, &[]);
    assert_eq!(out.status.code(), Some(1));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["ok"], false);
    let problem = &json["migrations"][1]["problems"][0];
    assert_eq!(problem["kind"], "script_failed", "{json}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("people_by_email"),
        "{json}"
    );

    // --database: a copy of it; the file itself is untouched.
    exec(&ws.db(), "CREATE TABLE own (x);").await;
    let before = dump(&ws.db()).await;
    let db = ws.db().display().to_string();
    let out = run(&ws, &["--database", &db]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(dump(&ws.db()).await, before);
}

/// `verify --database` on a WAL database leaves nothing beside it (before: a read-only
/// connection left `-wal` and `-shm`).
#[tokio::test]
async fn the_command_line_leaves_no_files_beside_a_wal_database() {
    let ws = Workspace::new();
    good(&ws);
    exec(&ws.db(), "PRAGMA journal_mode = WAL; CREATE TABLE own (x);").await;
    let files = list_dir(ws.path());
    assert!(!files.iter().any(|f| f.ends_with("-wal")), "{files:?}");
    let out = Command::new(cli())
        .current_dir(ws.path())
        .env_remove("DATABASE_URL")
        .arg("--migrations")
        .arg(ws.migrations_dir())
        .arg("--database")
        .arg(ws.db())
        .arg("verify")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(list_dir(ws.path()), files);
}
