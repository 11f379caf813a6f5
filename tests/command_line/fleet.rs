//! `--databases GLOB` and `--databases-from FILE` on `migrate`, `status` and `backup`: what
//! they match, the JSON and text they print, and their exit codes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::common::*;
use crate::output::{json, stderr, stdout};
use serde_json::{Value, json};

/// Two migrations and `n` tenant databases (WAL, each holding a row of its own) in
/// `tenants/`, named `t00.sqlite3`...
fn fleet(ws: &Workspace, n: usize) -> Vec<PathBuf> {
    ws.people_migration().email_migration();
    let dir = ws.path().join("tenants");
    std::fs::create_dir_all(&dir).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    (0..n)
        .map(|i| {
            let db = dir.join(format!("t{i:02}.sqlite3"));
            rt.block_on(exec(
                &db,
                "PRAGMA journal_mode = WAL; CREATE TABLE tenant (name TEXT); \
                 INSERT INTO tenant VALUES ('x');",
            ));
            db
        })
        .collect()
}

/// Runs the CLI in the workspace with its migrations, feeding `stdin`.
fn run_with(ws: &Workspace, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(cli())
        .current_dir(ws.path())
        .env_remove("DATABASE_URL")
        .arg("--migrations")
        .arg(ws.migrations_dir())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the CLI");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn run(ws: &Workspace, args: &[&str]) -> Output {
    run_with(ws, args, "")
}

/// Makes `db` refuse the second migration: a view named `people` passes the first one's probe,
/// and `ALTER TABLE people` then fails.
fn break_database(db: &Path) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(exec(db, "CREATE VIEW people AS SELECT 1 AS id"));
}

/// `--json migrate --databases tenants/*.sqlite3` with `flags`.
fn migrate_all(ws: &Workspace, flags: &[&str]) -> Output {
    let mut args = vec!["--json", "migrate", "--databases", "tenants/*.sqlite3"];
    args.extend(flags);
    run(ws, &args)
}

fn name(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

#[test]
fn migrate_a_fleet_by_pattern_reports_each_database_in_json() {
    let ws = Workspace::new();
    let dbs = fleet(&ws, 3);
    // The -wal and -shm files beside the databases (and a directory) match the pattern too,
    // and are left out.
    std::fs::create_dir(ws.path().join("tenants/t99.sqlite3.d")).unwrap();

    let out = run(
        &ws,
        &[
            "--json",
            "migrate",
            "--databases",
            "tenants/t*",
            "--jobs",
            "2",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = json(&out);
    assert_eq!(
        (report["ok"].clone(), report["failed"].clone()),
        (json!(3), json!(0))
    );
    assert_eq!(report["not_started"], json!(0));
    let entries = report["databases"].as_array().unwrap();
    let listed: Vec<_> = entries.iter().map(|e| e["database"].clone()).collect();
    let expected: Vec<_> = dbs
        .iter()
        .map(|db| {
            json!(format!(
                "tenants/{}",
                db.file_name().unwrap().to_str().unwrap()
            ))
        })
        .collect();
    assert_eq!(listed, expected, "sorted, each database once");
    for entry in entries {
        assert_eq!(entry["ok"], json!(true));
        assert_eq!(
            (entry["from_version"].clone(), entry["to_version"].clone()),
            (json!(0), json!(2))
        );
        assert!(
            Path::new(ws.path())
                .join(entry["backup"].as_str().unwrap())
                .is_file()
        );
        assert_eq!(entry["error"], Value::Null);
    }
    for db in &dbs {
        assert_eq!(query_versions(db), [1, 2]);
    }

    // Again: every database up to date, no backup.
    let again = json(&run(
        &ws,
        &["--json", "migrate", "--databases", "tenants/*.sqlite3"],
    ));
    for entry in again["databases"].as_array().unwrap() {
        assert_eq!(entry["backup"], Value::Null);
        assert_eq!(entry["from_version"], json!(2));
    }
}

#[test]
fn a_failure_stops_the_fleet_unless_keep_going_and_the_exit_code_says_so() {
    let ws = Workspace::new();
    let dbs = fleet(&ws, 4);
    break_database(&dbs[1]);

    let out = migrate_all(&ws, &["--jobs", "1"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = json(&out);
    assert_eq!(
        [&report["ok"], &report["failed"], &report["not_started"]],
        [&json!(1), &json!(1), &json!(2)]
    );
    let failed = &report["databases"][1];
    assert_eq!(failed["ok"], json!(false));
    assert_eq!(failed["error"]["kind"], json!("statement"));
    let message = failed["error"]["error"].as_str().unwrap();
    assert!(
        message.contains("002_email.sql") && message.contains("view"),
        "{message}"
    );
    let never = &report["databases"][3];
    assert_eq!(
        (never["ok"].clone(), never["error"].clone()),
        (json!(false), Value::Null)
    );
    assert_eq!(query_versions(&dbs[3]), Vec::<i64>::new());

    // In text: the failure and the ones never started, named.
    let out = run(
        &ws,
        &["migrate", "--databases", "tenants/*.sqlite3", "--jobs", "1"],
    );
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("FAILED       tenants/t01.sqlite3"), "{text}");
    assert!(text.contains("not started  tenants/t03.sqlite3"), "{text}");
    assert!(
        text.contains("4 database(s): 1 ok, 1 failed, 2 not started"),
        "{text}"
    );

    let out = migrate_all(&ws, &["--keep-going"]);
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    assert_eq!([&report["ok"], &report["failed"]], [&json!(3), &json!(1)]);
}

#[test]
fn a_canary_that_fails_starts_nothing_else() {
    let ws = Workspace::new();
    let dbs = fleet(&ws, 3);
    break_database(&dbs[0]);
    let out = migrate_all(&ws, &["--canary", "1", "--keep-going"]);
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    assert_eq!(
        [&report["ok"], &report["failed"], &report["not_started"]],
        [&json!(0), &json!(1), &json!(2)]
    );
}

#[test]
fn a_pattern_that_matches_nothing_is_an_error() {
    let ws = Workspace::new();
    fleet(&ws, 1);
    let out = run(
        &ws,
        &["--json", "migrate", "--databases", "nowhere/*.sqlite3"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let error: Value = serde_json::from_slice(&out.stderr).expect("a JSON error");
    assert_eq!(error["kind"], json!("no_databases"));
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("nowhere/*.sqlite3"),
        "{error}"
    );
    assert!(!ws.path().join("nowhere").exists());

    let out = run(&ws, &["migrate", "--databases-from", "-"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--databases-from -"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn databases_conflicts_with_database_and_fleet_flags_need_a_fleet() {
    let ws = Workspace::new();
    fleet(&ws, 1);
    let out = run(
        &ws,
        &[
            "--database",
            "a.sqlite3",
            "migrate",
            "--databases",
            "tenants/*",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot be used with"),
        "{}",
        stderr(&out)
    );
    let out = run(&ws, &["migrate", "--jobs", "2"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = run(&ws, &["migrate", "--databases", "tenants/*", "--jobs", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(!ws.path().join("a.sqlite3").exists());
}

#[test]
fn databases_from_stdin_skips_blank_lines_and_comments() {
    let ws = Workspace::new();
    let dbs = fleet(&ws, 3);
    let list = format!("# tenants\n{}\n\n{}\n", name(&dbs[2]), name(&dbs[0]));
    let out = run_with(&ws, &["--json", "backup", "--databases-from", "-"], &list);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = json(&out);
    let listed: Vec<_> = report["databases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["database"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        listed,
        [name(&dbs[2]), name(&dbs[0])],
        "in the order listed"
    );
    for entry in report["databases"].as_array().unwrap() {
        let backup = entry["backup"].as_str().unwrap();
        assert!(Path::new(backup).is_file(), "{backup}");
    }
    assert!(
        backups_in(&ws.path().join("tenants/backups"))
            .iter()
            .all(|b| !b.starts_with("t01"))
    );
}

#[test]
fn status_of_a_fleet_shows_the_version_histogram_and_check_fails_on_pending() {
    let ws = Workspace::new();
    let dbs = fleet(&ws, 4);
    let out = run(&ws, &["migrate", "--databases", "tenants/t0[01].sqlite3"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let out = run(
        &ws,
        &["--json", "status", "--databases", "tenants/*.sqlite3"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let status = json(&out);
    assert_eq!(status["versions"], json!({"0": 2, "2": 2}));
    assert_eq!(status["databases"][0]["pending"], json!([]));
    assert_eq!(status["databases"][2]["pending"], json!([1, 2]));
    assert_eq!(status["databases"][2]["drift"], json!(false));
    assert_eq!(status["databases"][2]["error"], Value::Null);

    let out = run(&ws, &["status", "--databases", "tenants/*.sqlite3"]);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "version  databases", "{text}");
    assert_eq!(lines[1], "      2          2  (latest)", "{text}");
    assert_eq!(lines[2], "      0          2", "{text}");
    assert!(
        !text.contains("t00.sqlite3") && text.contains("t02.sqlite3"),
        "{text}"
    );

    let out = run(
        &ws,
        &[
            "--json",
            "status",
            "--check",
            "--databases",
            "tenants/*.sqlite3",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let error: Value = serde_json::from_slice(&out.stderr).expect("a JSON error");
    assert_eq!(error["kind"], json!("not_clean"));

    let out = run(&ws, &["migrate", "--databases", "tenants/*.sqlite3"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = run(
        &ws,
        &["status", "--check", "--databases", "tenants/*.sqlite3"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for db in &dbs {
        assert_eq!(query_versions(db), [1, 2]);
    }
}
