//! `add`: the next migration's three files, numbered and padded after the ones already there;
//! bad descriptions and unwritable directories write nothing; no database is ever opened.

use std::process::Command;

use crate::common::*;
use backstop::{Error, Source, add_migration};
use serde_json::Value;

#[test]
fn numbers_follow_the_directory_and_the_templates_say_what_to_write() {
    let ws = Workspace::new();
    let dir = ws.migrations_dir();
    let first = add_migration(&dir, "create_users").unwrap();
    assert_eq!(first.version, 1);
    let names: Vec<String> = first
        .files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "001_create_users.sql",
            "001_create_users.rollback.sql",
            "001_create_users.probe.sql"
        ]
    );
    let probe = std::fs::read_to_string(&first.files[2]).unwrap();
    for pattern in [
        "sqlite_master",
        "pragma_table_info",
        "'index'",
        "'trigger'",
        "NOT EXISTS",
    ] {
        assert!(
            probe.contains(pattern),
            "the probe template lacks {pattern}"
        );
    }
    // Untouched, the templates are refused, naming the file.
    let err = Source::from_dir(&dir).unwrap_err();
    assert!(matches!(err, Error::EmptyScript { .. }), "{err}");
    assert!(err.to_string().contains("001_create_users"), "{err}");

    // Four digits already there: the next one has four too.
    ws.migration(
        "0041_old",
        "CREATE TABLE old (x);",
        "DROP TABLE old;",
        "SELECT 1;",
    );
    let next = add_migration(&dir, "add-email").unwrap();
    assert_eq!(next.version, 42);
    assert!(
        next.files[0].ends_with("0042_add-email.sql"),
        "{:?}",
        next.files
    );
}

#[test]
fn a_bad_description_or_an_unwritable_directory_writes_nothing() {
    let ws = Workspace::new();
    let dir = ws.migrations_dir();
    for bad in ["", "has space", "dot.ted", "slash/y", "ünïcode"] {
        let err = add_migration(&dir, bad).unwrap_err();
        assert!(
            matches!(err, Error::InvalidFileName { .. }),
            "{bad:?}: {err}"
        );
    }
    assert!(!dir.exists(), "a refused description created the directory");

    // A directory nobody can write, root included.
    let err = add_migration("/proc/backstop-migrations", "x").unwrap_err();
    assert!(matches!(err, Error::Write { .. }), "{err}");
    assert!(!std::path::Path::new("/proc/backstop-migrations").exists());

    // The third file's name is taken (by a directory): the write fails late, and the first
    // two go again.
    let blocked = dir.join("001_blocked.probe.sql");
    std::fs::create_dir_all(&blocked).unwrap();
    let err = add_migration(&dir, "blocked").unwrap_err();
    assert!(matches!(err, Error::Write { .. }), "{err}");
    assert!(err.to_string().contains("001_blocked.probe.sql"), "{err}");
    assert_eq!(
        list_dir(&dir),
        ["001_blocked.probe.sql"],
        "half a migration was left"
    );
}

#[test]
fn the_command_line_adds_without_opening_a_database() {
    let ws = Workspace::new();
    let out = Command::new(cli())
        .current_dir(ws.path())
        .env_remove("DATABASE_URL")
        .args(["--migrations", "migrations", "--json", "add", "first_table"])
        .output()
        .unwrap();
    let added = success_json(&out);
    assert_eq!(added["version"], 1);
    assert_eq!(added["files"].as_array().unwrap().len(), 3);
    assert_eq!(list_dir(&ws.path().join("migrations")).len(), 3);
    // The default database (app.sqlite3 for this program) is not created.
    assert!(!ws.path().join("app.sqlite3").exists());

    let out = Command::new(cli())
        .current_dir(ws.path())
        .args(["--migrations", "migrations", "--json", "add", "bad name"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let error: Value = serde_json::from_str(stderr.lines().last().unwrap()).unwrap();
    assert_eq!(error["kind"], "invalid_file_name");
    assert_eq!(list_dir(&ws.path().join("migrations")).len(), 3);
}

/// After a migration numbered `i64::MAX` there is no next version: refused, nothing written
/// (before: `-9223372036854775808_next.sql`).
#[test]
fn no_version_after_the_largest_and_write_errors_are_writes() {
    let ws = Workspace::new();
    let dir = ws.migrations_dir();
    ws.migration(
        "9223372036854775807_last",
        "CREATE TABLE t (x);\n",
        "DROP TABLE t;\n",
        "SELECT count(*) FROM sqlite_master WHERE name = 't';\n",
    );
    let before = list_dir(&dir);
    let err = add_migration(&dir, "next").unwrap_err();
    assert!(matches!(err, Error::InvalidFileName { .. }), "{err}");
    assert!(err.to_string().contains("9223372036854775807"), "{err}");
    assert_eq!(list_dir(&dir), before);

    // A description too long for the file system: a write that failed, said as such.
    let other = ws.path().join("other");
    let err = add_migration(&other, &"x".repeat(300)).unwrap_err();
    assert_eq!(err.kind(), "write", "{err}");
    assert!(err.to_string().starts_with("cannot write"), "{err}");
    assert!(!other.exists(), "the directory it created stays");
}
