//! A catalogue of bad input: malformed migrations, broken databases, impossible requests.
//!
//! Every case is tried through the library (where it is reachable there) and through the
//! command line (`--json`). Each must fail with the exact error variant / `kind`, with a
//! message that names what is at fault, exit code 1, and must leave the database's content,
//! the files beside it and the backups directory exactly as they were.

mod cases;
mod escapes;
mod run;
mod security;
mod setup;

use std::process::Command;
use std::time::Instant;

use crate::common::*;
use run::run_case;
use serde_json::Value;
use setup::*;

#[test]
fn bad_input_catalogue() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    cli(); // build the binary before timing anything
    let cases: Vec<Case> = cases::cases()
        .into_iter()
        .chain(escapes::cases())
        .chain(security::cases())
        .collect();
    let started = Instant::now();
    let mut failures = Vec::new();
    for case in &cases {
        let t = Instant::now();
        let problems = run_case(&rt, case);
        println!(
            "{:<60} {:<22} {:>5} ms  {}",
            case.name,
            case.kind,
            t.elapsed().as_millis(),
            if problems.is_empty() { "ok" } else { "FAILED" }
        );
        for problem in problems {
            failures.push(format!("[{}] {problem}", case.name));
        }
    }
    println!(
        "bad inputs tried: {} ({} through the library and the CLI, {} CLI only) in {:.1} s",
        cases.len(),
        cases.iter().filter(|c| c.variant.is_some()).count(),
        cases.iter().filter(|c| c.variant.is_none()).count(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} problem(s):\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// `migrate --dry-run`, `rollback` and `backups` refuse a database that does not exist, and
/// create neither it nor its directory.
#[test]
fn dry_run_and_rollback_never_create_a_database() {
    let ws = Workspace::new();
    people(&ws);
    for command in [
        &["migrate", "--dry-run"][..],
        &["rollback", "--to-version", "0"][..],
        &["backups"][..],
    ] {
        let missing = ws.path().join("absent/app.sqlite3");
        let out = Command::new(cli())
            .current_dir(ws.path())
            .env_remove("DATABASE_URL")
            .arg("--json")
            .arg("--migrations")
            .arg(ws.migrations_dir())
            .arg("--database")
            .arg(&missing)
            .args(command)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{command:?}");
        let json: Value = serde_json::from_slice(&out.stderr).unwrap();
        assert_eq!(json["kind"], "database_path", "{command:?}");
        assert!(
            json["error"]
                .as_str()
                .unwrap()
                .contains(&missing.display().to_string()),
            "{json}"
        );
        assert!(!missing.parent().unwrap().exists(), "{command:?}");
    }
}

/// A `migrate` that fails on a database that did not exist leaves nothing behind: not the
/// database file, not its directories, not the backup directory.
#[test]
fn a_failed_migrate_of_a_new_database_leaves_nothing_behind() {
    let ws = Workspace::new();
    ws.migration(
        "001_a",
        "CREATE TABLE a (x);\n",
        "DROP TABLE a;\n",
        "SELECT 2;\n",
    );
    let fresh = ws.path().join("new/dir/app.sqlite3");
    let out = Command::new(cli())
        .current_dir(ws.path())
        .env_remove("DATABASE_URL")
        .arg("--json")
        .arg("--migrations")
        .arg(ws.migrations_dir())
        .arg("--database")
        .arg(&fresh)
        .arg("migrate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let json: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(json["kind"], "probe", "{json}");
    assert!(
        !ws.path().join("new").exists(),
        "left behind: {:?} and {:?}",
        list_dir(&ws.path().join("new/dir")),
        list_dir(&ws.path().join("new/dir/backups"))
    );
}

/// A backup that runs out of space says what failed: the write, and the OS error.
#[test]
fn a_backup_out_of_space_says_what_failed() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ws = base(&rt);
    rt.block_on(exec(
        &ws.db(),
        "CREATE TABLE big (x);\n\
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 6000)\n\
         INSERT INTO big SELECT randomblob(1000) FROM c;\n",
    ));
    valid_pending(&ws);
    let out = Command::new("sh")
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 1024; exec \"$0\" \"$@\"")
        .arg(cli())
        .current_dir(ws.path())
        .env_remove("DATABASE_URL")
        .arg("--json")
        .arg("--migrations")
        .arg(ws.migrations_dir())
        .arg("--database")
        .arg(ws.db())
        .arg("migrate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let json: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(json["kind"], "backup", "{json}");
    let message = json["error"].as_str().unwrap();
    assert!(!message.contains("not an error"), "{message}");
    assert!(message.contains("File too large"), "{message}");
}
