//! The command line (`examples/migrate.rs`), run as a user runs it.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::*;
use crate::output::{json, stderr, stdout};
use serde_json::Value;

fn two_migrations(ws: &Workspace) {
    ws.migration(
        "001_people",
        "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n\
         INSERT INTO people (name) VALUES ('ada');\n\
         SELECT 'added ' || count(*) || ' person' FROM people;\n",
        "DROP TABLE people;\n",
        "SELECT count(*) FROM sqlite_master WHERE name = 'people';\n",
    );
    ws.migration(
        "002_email",
        "ALTER TABLE people ADD COLUMN email TEXT;\n",
        "ALTER TABLE people DROP COLUMN email;\n",
        "SELECT count(*) FROM pragma_table_info('people') WHERE name = 'email';\n",
    );
}

/// Runs the CLI in `cwd` with the workspace's migrations.
fn run(ws: &Workspace, args: &[&str]) -> Output {
    let mut command = Command::new(cli());
    command
        .current_dir(ws.path())
        .env_remove("DATABASE_URL")
        .arg("--migrations")
        .arg(ws.migrations_dir());
    command.args(args).output().expect("run the CLI")
}

fn db_arg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

#[test]
fn migrate_creates_the_database_and_reports_in_json() {
    let ws = Workspace::new();
    two_migrations(&ws);
    let db = ws.path().join("nested/dir/app.sqlite3");
    let out = run(&ws, &["--database", &db_arg(&db), "--json", "migrate"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = json(&out);
    assert_eq!(report["from_version"], 0);
    assert_eq!(report["to_version"], 2);
    // A new database holds nothing a backup could give back: none is written, and no backup
    // directory is made for it (before: a backup of the empty file).
    assert_eq!(report["backup"], Value::Null, "{report}");
    assert!(!ws.path().join("nested/dir/backups").exists());
    let migrations = report["migrations"].as_array().unwrap();
    assert_eq!(migrations.len(), 2);
    assert_eq!(migrations[0]["version"], 1);
    assert_eq!(migrations[0]["action"], "applied");
    assert_eq!(migrations[0]["notices"][0], "added 1 person");
    assert!(db.exists());

    // Again: nothing to do.
    let out = run(&ws, &["--database", &db_arg(&db), "--json", "migrate"]);
    let report = json(&out);
    assert_eq!(report["backup"], Value::Null);
    assert_eq!(report["migrations"].as_array().unwrap().len(), 0);
}

#[test]
fn human_output_is_short_and_aligned() {
    let ws = Workspace::new();
    two_migrations(&ws);
    let db = db_arg(&ws.db());
    let out = run(&ws, &["--database", &db, "migrate"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("applied          1 people"), "{text}");
    assert!(text.contains("note: added 1 person"), "{text}");
    assert!(text.contains("version 0 -> 2"), "{text}");
    let out = run(&ws, &["--database", &db, "status"]);
    let text = stdout(&out);
    let header = text
        .lines()
        .find(|l| l.starts_with("VERSION"))
        .expect(&text);
    let row = text.lines().find(|l| l.starts_with("2 ")).expect(&text);
    assert_eq!(header.find("STATE"), row.find("applied"), "{text}");
    let out = run(&ws, &["--database", &db, "migrate"]);
    assert!(
        stdout(&out).starts_with("up to date at version 2"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn status_json_and_check() {
    let ws = Workspace::new();
    two_migrations(&ws);
    let db = db_arg(&ws.db());
    let out = run(&ws, &["--database", &db, "migrate", "--target", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let out = run(&ws, &["--database", &db, "--json", "status"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let status = json(&out);
    assert_eq!(status["current_version"], 1);
    let first = &status["migrations"][0];
    assert_eq!(
        (
            &first["version"],
            &first["description"],
            &first["state"],
            &first["checksum_ok"],
            &first["probe"]
        ),
        (
            &Value::from(1),
            &Value::from("people"),
            &Value::from("applied"),
            &Value::from(true),
            &Value::from(1)
        )
    );
    let second = &status["migrations"][1];
    assert_eq!(second["state"], "pending");
    assert_eq!(second["checksum_ok"], Value::Null);
    assert_eq!(second["probe"], 0);

    let out = run(&ws, &["--database", &db, "status", "--check"]);
    assert_eq!(out.status.code(), Some(1), "pending must fail --check");
    run(&ws, &["--database", &db, "migrate"]);
    let out = run(&ws, &["--database", &db, "status", "--check"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn dry_run_json_and_missing_databases() {
    let ws = Workspace::new();
    two_migrations(&ws);
    let db = db_arg(&ws.db());
    for args in [vec!["status"], vec!["migrate", "--dry-run"]] {
        let mut full = vec!["--database", db.as_str()];
        full.extend(&args);
        let out = run(&ws, &full);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&out).contains("does not exist") && stderr(&out).contains("app.sqlite3"),
            "{}",
            stderr(&out)
        );
        assert!(!ws.db().exists(), "{args:?} created the database");
    }
    std::fs::File::create(ws.db()).unwrap();
    let out = run(&ws, &["--database", &db, "--json", "migrate", "--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = json(&out);
    assert_eq!(report["backup"], Value::Null);
    assert_eq!(report["migrations"][0]["action"], "would_apply");
    assert_eq!(report["migrations"][1]["action"], "would_apply");
    assert_eq!(
        std::fs::metadata(ws.db()).unwrap().len(),
        0,
        "the dry run wrote"
    );
}

#[test]
fn errors_go_to_stderr_with_exit_1_and_usage_errors_exit_2() {
    let ws = Workspace::new();
    two_migrations(&ws);
    let db = db_arg(&ws.db());
    run(&ws, &["--database", &db, "migrate"]);
    ws.write(
        "001_people.sql",
        "CREATE TABLE people (id INTEGER PRIMARY KEY);\n",
    );

    let out = run(&ws, &["--database", &db, "--json", "migrate"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "{}", stdout(&out));
    let error: Value = serde_json::from_slice(&out.stderr).expect("a JSON error on stderr");
    let message = error["error"].as_str().unwrap();
    assert!(
        message.contains("001_people.sql") && message.contains("modified"),
        "{message}"
    );

    let out = run(&ws, &["--database", &db, "migrate"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("error: migration 1"),
        "{}",
        stderr(&out)
    );

    let out = run(&ws, &["migrate", "--target", "two"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = run(&ws, &["frobnicate"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn database_url_is_used_without_database() {
    let ws = Workspace::new();
    two_migrations(&ws);
    let url = format!("sqlite://{}", ws.path().join("from-env.sqlite3").display());
    let out = Command::new(cli())
        .current_dir(ws.path())
        .env("DATABASE_URL", &url)
        .arg("--migrations")
        .arg(ws.migrations_dir())
        .args(["--json", "migrate"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(ws.path().join("from-env.sqlite3").exists());

    let out = Command::new(cli())
        .current_dir(ws.path())
        .env("DATABASE_URL", "postgres://localhost/db")
        .args(["status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not a sqlite: URL"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn backup_dir_is_honoured_and_a_directory_is_not_a_database() {
    let ws = Workspace::new();
    two_migrations(&ws);
    let backups = ws.path().join("elsewhere");
    let out = run(
        &ws,
        &[
            "--database",
            &db_arg(&ws.db()),
            "--backup-dir",
            &db_arg(&backups),
            "migrate",
            "--target",
            "1",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!backups.exists(), "a new database is not backed up");
    let out = run(
        &ws,
        &[
            "--database",
            &db_arg(&ws.db()),
            "--backup-dir",
            &db_arg(&backups),
            "--json",
            "migrate",
        ],
    );
    let report = success_json(&out);
    assert_eq!(backups_in(&backups).len(), 1);
    let backup = report["backup"].as_str().expect("a backup path");
    assert!(Path::new(backup).starts_with(&backups), "{backup}");
    assert!(!ws.backups_dir().exists());

    let out = run(&ws, &["--database", &db_arg(ws.path()), "status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is a directory"), "{}", stderr(&out));
}

/// A closed stdout (`status | head -2` once `head` is gone) or a full one (`> /dev/full`) is
/// not a panic, and a migration that committed is never reported as failed (before: exit 101
/// after the commit).
#[test]
fn a_closed_or_full_stdout_is_no_failure() {
    let ws = Workspace::new();
    two_migrations(&ws);
    let db = db_arg(&ws.db());
    let closed = |args: &[&str]| {
        let mut child = Command::new(cli())
            .current_dir(ws.path())
            .env_remove("DATABASE_URL")
            .arg("--migrations")
            .arg(ws.migrations_dir())
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // the reader is gone before anything is written
        child.wait_with_output().unwrap()
    };
    let out = closed(&["--database", &db, "migrate"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    assert_eq!(
        query_versions(&ws.db()),
        [1, 2],
        "the migration is committed"
    );
    let out = closed(&["--database", &db, "status"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = Command::new(cli())
        .current_dir(ws.path())
        .env_remove("DATABASE_URL")
        .arg("--migrations")
        .arg(ws.migrations_dir())
        .args(["--database", &db, "--json", "status"])
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot write the report on stdout"),
        "{}",
        stderr(&out)
    );
}
