//! How the command line reads its database arguments, refuses what it cannot honour, never
//! panics on an argument, stays quiet, and leaves its database clean.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::common::*;
use serde_json::Value;

fn migrations(ws: &Workspace) {
    ws.people_migration();
}

/// The CLI in the workspace, with `DATABASE_URL` set to `url` (or unset).
fn run(ws: &Workspace, url: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(cli());
    command
        .current_dir(ws.path())
        .env_remove("DATABASE_URL")
        .env_remove("RUST_LOG")
        .arg("--migrations")
        .arg(ws.migrations_dir());
    if let Some(url) = url {
        command.env("DATABASE_URL", url);
    }
    command.args(args).output().unwrap()
}

fn error_json(out: &Output) -> Value {
    let stderr = String::from_utf8_lossy(&out.stderr);
    serde_json::from_str(stderr.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {stderr}"))
}

#[tokio::test]
async fn a_database_argument_is_a_path_even_when_it_looks_like_a_uri() {
    let ws = Workspace::new();
    migrations(&ws);
    let literal = ws.path().join("file:real.db");
    exec(&literal, "CREATE TABLE own (x);").await;
    let out = run(&ws, None, &["--database", "file:real.db", "migrate"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(history(&literal).await, [(1, "applied".to_owned())]);
    assert!(
        !ws.path().join("real.db").exists(),
        "a file real.db was created"
    );
    let out = run(
        &ws,
        None,
        &["--database", "file:real.db", "--json", "status"],
    );
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["current_version"], 1);
}

#[tokio::test]
async fn a_read_only_url_is_refused_by_what_writes_and_read_by_status() {
    let ws = Workspace::new();
    migrations(&ws);
    exec(&ws.db(), "CREATE TABLE own (x);").await;
    let before = dump(&ws.db()).await;
    let db = ws.db().display().to_string();
    for url in [
        format!("sqlite:{db}?mode=ro"),
        format!("sqlite:{db}?immutable=1"),
    ] {
        for command in [
            &["--json", "migrate"][..],
            &["--json", "migrate", "--dry-run"][..],
            &["--json", "backup"][..],
        ] {
            let out = run(&ws, Some(&url), command);
            assert_eq!(out.status.code(), Some(1), "{url} {command:?}");
            let error = error_json(&out);
            assert_eq!(error["kind"], "read_only", "{url} {command:?}: {error}");
            assert!(error["error"].as_str().unwrap().contains(&db), "{error}");
        }
        let out = run(&ws, Some(&url), &["--json", "status"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(dump(&ws.db()).await, before);
    assert!(!ws.backups_dir().exists());
}

#[test]
fn in_memory_and_empty_urls_are_refused_and_create_nothing() {
    let ws = Workspace::new();
    migrations(&ws);
    for url in [
        "sqlite::memory:",
        "sqlite:",
        "sqlite://?mode=memory",
        "sqlite:x?mode=memory",
    ] {
        let out = run(&ws, Some(url), &["--json", "migrate"]);
        assert_eq!(out.status.code(), Some(1), "{url}");
        let error = error_json(&out);
        assert_eq!(error["kind"], "invalid_argument", "{url}: {error}");
        assert!(
            error["error"].as_str().unwrap().contains("DATABASE_URL"),
            "{error}"
        );
    }
    let left: Vec<String> = list_dir(ws.path())
        .into_iter()
        .filter(|f| f != "migrations")
        .collect();
    assert!(left.is_empty(), "created {left:?}");
}

#[test]
fn no_busy_timeout_can_crash_the_command_line() {
    let ws = Workspace::new();
    migrations(&ws);
    let db = ws.db().display().to_string();
    for timeout in ["1e20", "3000000", "-1", "NaN", "soon"] {
        let flag = format!("--busy-timeout={timeout}");
        let out = run(&ws, None, &["--database", &db, &flag, "status"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{timeout}: {stderr}");
        assert!(!stderr.contains("panicked"), "{timeout}: {stderr}");
        assert!(stderr.contains("busy-timeout"), "{timeout}: {stderr}");
    }
    assert!(!ws.db().exists());
}

#[tokio::test]
async fn sqlx_statement_logging_is_off_unless_asked_for() {
    let ws = Workspace::new();
    migrations(&ws);
    let db = ws.db().display().to_string();
    assert!(
        run(&ws, None, &["--database", &db, "migrate"])
            .status
            .success()
    );
    for (rust_log, shows_sql) in [
        (None, false),
        (Some("info"), false),
        (Some("sqlx=debug"), true),
    ] {
        let mut command = Command::new(cli());
        command
            .env_remove("DATABASE_URL")
            .env_remove("RUST_LOG")
            .arg("--migrations")
            .arg(ws.migrations_dir())
            .args(["--database", &db, "status"]);
        if let Some(filter) = rust_log {
            command.env("RUST_LOG", filter);
        }
        let out = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            stderr.contains("sqlite_master WHERE name = 'people'"),
            shows_sql,
            "RUST_LOG={rust_log:?}: {stderr}"
        );
    }
}

/// Keeps the CPUs busy while it lives.
struct Load(Arc<AtomicBool>, Vec<std::thread::JoinHandle<()>>);

impl Load {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..4)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut x = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    }
                    std::hint::black_box(x);
                })
            })
            .collect();
        Load(stop, threads)
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
        for thread in self.1.drain(..) {
            let _ = thread.join();
        }
    }
}

fn beside(db: &Path) -> Vec<String> {
    ["-wal", "-shm", "-journal"]
        .iter()
        .map(|s| format!("{}{s}", db.display()))
        .filter(|p| Path::new(p).exists())
        .collect()
}

#[tokio::test]
async fn the_command_line_closes_its_database_even_under_load() {
    let ws = Workspace::new();
    migrations(&ws);
    exec(&ws.db(), "PRAGMA journal_mode = WAL; CREATE TABLE own (x);").await;
    let db = ws.db().display().to_string();
    let load = Load::start();
    for i in 0..20 {
        let out = run(&ws, None, &["--database", &db, "migrate", "--dry-run"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(beside(&ws.db()), Vec::<String>::new(), "dry run {i}");
    }
    let out = run(&ws, None, &["--database", &db, "migrate"]);
    assert!(out.status.success());
    drop(load);
    assert_eq!(beside(&ws.db()), Vec::<String>::new(), "after migrate");
    // The file alone holds the migration: a copy of it (without -wal) has it.
    let copy = ws.path().join("copy.sqlite3");
    std::fs::copy(ws.db(), &copy).unwrap();
    assert_eq!(history(&copy).await, [(1, "applied".to_owned())]);
}
