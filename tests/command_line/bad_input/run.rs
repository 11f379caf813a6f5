//! Running a case through the library and the CLI, and checking that nothing changed.

use std::ffi::OsString;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use backstop::{Error, Migrator, Source};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::Connection;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use tokio::runtime::Runtime;

use super::setup::*;
use crate::common::*;

// ----- running a case -----------------------------------------------------------------------

/// What must not change.
#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// `content_hash` of the database (when it is one), else a description of the path.
    content: String,
    /// SHA-256 of the database file's bytes.
    bytes: Option<String>,
    /// The files beside the database (a stray journal, a new directory...).
    beside: Vec<String>,
    /// The backups directory.
    backups: Vec<String>,
    backups_exists: bool,
}

pub async fn snapshot(db: &Path, backups: &Path, readable: bool) -> Snapshot {
    let content = if db.is_dir() {
        format!("directory {:?}", list_dir(db))
    } else if !db.exists() {
        "absent".to_owned()
    } else if readable {
        content_hash(db).await
    } else {
        "not readable as a database".to_owned()
    };
    Snapshot {
        content,
        bytes: std::fs::read(db)
            .ok()
            .map(|b| hex::encode(Sha256::digest(&b))),
        beside: db.parent().map(list_dir).unwrap_or_default(),
        backups: list_dir(backups),
        backups_exists: backups.exists(),
    }
}

pub async fn open_pool(path: &Path) -> Result<SqlitePool, sqlx::Error> {
    SqlitePoolOptions::new()
        .max_connections(2)
        .connect_with(
            SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(false)
                .busy_timeout(Duration::from_secs(10)),
        )
        .await
}

/// Calls the library; returns the error (or why there was none).
pub async fn call_library(setup: &Setup) -> Result<Error, String> {
    if let Lib::Load(dir) = &setup.lib {
        return match Source::from_dir(dir) {
            Ok(source) => Err(format!(
                "the source loaded ({} migrations)",
                source.migrations().len()
            )),
            Err(e) => Ok(e),
        };
    }
    let source = Source::from_dir(&setup.migrations).map_err(|e| format!("source: {e}"))?;
    let mut migrator =
        Migrator::new(source).busy_timeout(Duration::from_secs_f64(setup.busy_timeout));
    if let Some(dir) = &setup.backup_dir {
        migrator = migrator.backup_dir(dir);
    }
    let db = setup
        .database
        .as_ref()
        .expect("a library case has a database");
    let pool = open_pool(db)
        .await
        .map_err(|e| format!("cannot open a pool: {e}"))?;
    let outcome = match &setup.lib {
        Lib::Migrate => migrator.migrate(&pool).await.map(|r| format!("{r:?}")),
        Lib::MigrateTo(v) => migrator
            .migrate_to(&pool, *v)
            .await
            .map(|r| format!("{r:?}")),
        Lib::DryRun(None) => migrator
            .dry_run()
            .migrate(&pool)
            .await
            .map(|r| format!("{r:?}")),
        Lib::DryRun(Some(v)) => migrator
            .dry_run()
            .migrate_to(&pool, *v)
            .await
            .map(|r| format!("{r:?}")),
        Lib::Rollback(v, s) => migrator
            .rollback(&pool, *v, *s)
            .await
            .map(|r| format!("{r:?}")),
        Lib::Status => migrator.status(&pool).await.map(|r| format!("{r:?}")),
        Lib::Backups => migrator.backups(&pool).await.map(|r| format!("{r:?}")),
        Lib::Restore(path) => migrator
            .restore_file(&pool, path)
            .await
            .map(|r| format!("{r:?}")),
        Lib::CliOnly | Lib::Load(_) => unreachable!(),
    };
    pool.close().await;
    match outcome {
        Ok(report) => Err(format!("it succeeded: {report}")),
        Err(e) => Ok(e),
    }
}

pub struct CliRun {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

/// Runs the CLI with the case's options and `--json`, killing it if it hangs.
pub fn call_cli(ws: &Workspace, setup: &Setup, database: Option<&Path>) -> Result<CliRun, String> {
    let mut args: Vec<OsString> = vec!["--json".into(), "--migrations".into()];
    args.push(setup.migrations.clone().into());
    if let Some(db) = database {
        args.push("--database".into());
        args.push(db.into());
    }
    if let Some(dir) = &setup.backup_dir {
        args.push("--backup-dir".into());
        args.push(dir.into());
    }
    args.push("--busy-timeout".into());
    args.push(setup.busy_timeout.to_string().into());
    args.extend(setup.command.iter().cloned());

    let mut command = match setup.fsize_blocks {
        None => {
            let mut c = Command::new(cli());
            c.args(&args);
            c
        }
        Some(blocks) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!(
                    "trap '' XFSZ; ulimit -f {blocks}; exec \"$0\" \"$@\""
                ))
                .arg(cli())
                .args(&args);
            c
        }
    };
    command
        .current_dir(ws.path())
        .env_remove("DATABASE_URL")
        .env_remove("RUST_LOG")
        .envs(setup.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = command.spawn().map_err(|e| format!("cannot run: {e}"))?;
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > HANG {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("the CLI hung for more than {HANG:?}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Ok(CliRun {
        code: status.code(),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
        elapsed: started.elapsed(),
    })
}

/// Checks a CLI run: exit 1, nothing on stdout, one JSON object on stderr with the kind and a
/// message naming the culprits.
pub fn check_cli(case: &Case, setup: &Setup, run: &CliRun, problems: &mut Vec<String>) {
    println!(
        "    CLI exit {:?} in {} ms: {}",
        run.code,
        run.elapsed.as_millis(),
        run.stderr.trim()
    );
    let mut fail = |what: String| problems.push(format!("CLI: {what}"));
    if run.code != Some(1) {
        fail(format!(
            "exit code {:?}, expected 1; stderr: {}",
            run.code, run.stderr
        ));
    }
    if !run.stdout.trim().is_empty() {
        fail(format!("stdout is not empty: {}", run.stdout));
    }
    let json: Value = match serde_json::from_str(run.stderr.trim()) {
        Ok(v) => v,
        Err(e) => {
            fail(format!(
                "stderr is not one JSON value ({e}): {}",
                run.stderr
            ));
            return;
        }
    };
    if json["kind"] != case.kind {
        fail(format!("kind {}, expected {:?}", json["kind"], case.kind));
    }
    let message = json["error"].as_str().unwrap_or_default();
    for culprit in &setup.culprits {
        if !message.contains(culprit.as_str()) {
            fail(format!("the error does not name {culprit:?}: {message}"));
        }
    }
}

pub fn run_case(rt: &Runtime, case: &Case) -> Vec<String> {
    let mut problems = Vec::new();
    let ws = base(rt);
    let setup = (case.build)(rt, &ws);
    let readable = case.kind != "not_a_database";
    let before = rt.block_on(snapshot(&setup.watch_db, &setup.watch_backups, readable));
    let partials_dir = setup
        .backup_dir
        .clone()
        .unwrap_or_else(|| setup.watch_backups.clone());

    // Another writer, if the case wants one.
    let holder = setup.hold_lock.then(|| {
        rt.block_on(async {
            let mut conn = connect(&ws.db()).await;
            sqlx::raw_sql("BEGIN IMMEDIATE")
                .execute(&mut conn)
                .await
                .unwrap();
            conn
        })
    });

    // The library.
    if let Some(variant) = case.variant {
        let started = Instant::now();
        let result = rt.block_on(async {
            tokio::time::timeout(HANG, call_library(&setup))
                .await
                .unwrap_or_else(|_| Err(format!("the library hung for more than {HANG:?}")))
        });
        let elapsed = started.elapsed();
        match result {
            Err(what) => problems.push(format!("library: expected an error, but {what}")),
            Ok(error) => {
                println!("    library in {} ms: {error:?}", elapsed.as_millis());
                if !variant(&error) {
                    problems.push(format!("library: unexpected variant {error:?}"));
                }
                if error.kind() != case.kind {
                    problems.push(format!(
                        "library: kind {:?}, expected {:?}",
                        error.kind(),
                        case.kind
                    ));
                }
                let message = error.to_string();
                for culprit in &setup.culprits {
                    if !message.contains(culprit.as_str()) {
                        problems.push(format!(
                            "library: the error does not name {culprit:?}: {message}"
                        ));
                    }
                }
            }
        }
        if setup.hold_lock && elapsed > Duration::from_secs(3) {
            problems.push(format!(
                "library: took {elapsed:?} with a busy timeout of {} s",
                setup.busy_timeout
            ));
        }
        if !setup.hold_lock {
            let after = rt.block_on(snapshot(&setup.watch_db, &setup.watch_backups, readable));
            if after != before {
                problems.push(format!(
                    "library: changed things:\nbefore {before:?}\nafter  {after:?}"
                ));
            }
        }
    }

    // The command line.
    match call_cli(&ws, &setup, setup.database.as_deref()) {
        Err(what) => problems.push(format!("CLI: {what}")),
        Ok(run) => {
            check_cli(case, &setup, &run, &mut problems);
            if setup.hold_lock && run.elapsed > Duration::from_secs(3) {
                problems.push(format!(
                    "CLI: took {:?} with --busy-timeout {}",
                    run.elapsed, setup.busy_timeout
                ));
            }
        }
    }
    if let Some(mut conn) = holder {
        rt.block_on(async {
            sqlx::raw_sql("ROLLBACK").execute(&mut conn).await.unwrap();
            conn.close().await.unwrap();
        });
    }
    let after = rt.block_on(snapshot(&setup.watch_db, &setup.watch_backups, readable));
    if after != before {
        problems.push(format!(
            "changed things:\nbefore {before:?}\nafter  {after:?}"
        ));
    }
    let partials: Vec<String> = list_dir(&partials_dir)
        .into_iter()
        .filter(|n| n.ends_with(".partial"))
        .collect();
    if !partials.is_empty() {
        problems.push(format!("partial backups left behind: {partials:?}"));
    }

    // A source refused at load never creates a database, even one that does not exist yet.
    if matches!(setup.lib, Lib::Load(_)) {
        let fresh = ws.path().join("fresh/new.sqlite3");
        match call_cli(&ws, &setup, Some(&fresh)) {
            Err(what) => problems.push(format!("CLI on a new database: {what}")),
            Ok(run) => check_cli(case, &setup, &run, &mut problems),
        }
        if fresh.parent().unwrap().exists() {
            problems.push(format!(
                "CLI on a new database: created {:?}",
                list_dir(fresh.parent().unwrap())
            ));
        }
    }
    problems
}
