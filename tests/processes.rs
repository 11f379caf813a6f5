//! Concurrency across processes: eight migrator processes started together on one database
//! file while a ninth process keeps inserting and committing rows.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use sqlx::Connection;

const MIGRATORS: usize = 8;

/// The ninth process: run only when spawned by the test below (it re-executes this test
/// binary), inserting one row per transaction and printing each id it was told is committed,
/// with how long the commit took.
#[tokio::test]
#[ignore = "a helper process, started by eight_migrator_processes_and_a_writer"]
async fn writer_process() {
    let db = PathBuf::from(std::env::var("BACKSTOP_WRITER_DB").expect("spawned by the test"));
    let stop = PathBuf::from(std::env::var("BACKSTOP_WRITER_STOP").unwrap());
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&db)
        .busy_timeout(Duration::from_secs(120));
    let mut conn = sqlx::ConnectOptions::connect(&options).await.unwrap();
    let mut id: i64 = 0;
    while !stop.exists() {
        id += 1;
        let started = Instant::now();
        sqlx::query("INSERT INTO app_rows (id, written_at) VALUES (?, julianday('now'))")
            .bind(id)
            .execute(&mut conn)
            .await
            .unwrap();
        println!("committed {id} {}", started.elapsed().as_micros());
    }
    conn.close().await.unwrap();
}

#[tokio::test]
async fn eight_migrator_processes_and_a_writer() {
    let ws = Workspace::new();
    exec(
        &ws.db(),
        "PRAGMA journal_mode = WAL;\n\
         CREATE TABLE app_rows (id INTEGER PRIMARY KEY, written_at REAL);\n",
    )
    .await;
    ws.migration(
        "001_numbers",
        "CREATE TABLE numbers AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300000) SELECT i FROM n;\n",
        "DROP TABLE numbers;\n",
        "SELECT count(*) FROM sqlite_master WHERE name = 'numbers';\n",
    );
    ws.migration(
        "002_numbers_index",
        "CREATE INDEX numbers_desc ON numbers (i DESC);\n",
        "DROP INDEX numbers_desc;\n",
        "SELECT count(*) FROM sqlite_master WHERE name = 'numbers_desc';\n",
    );
    ws.migration(
        "003_app_rows_note",
        "ALTER TABLE app_rows ADD COLUMN note TEXT;\n",
        "ALTER TABLE app_rows DROP COLUMN note;\n",
        "SELECT count(*) FROM pragma_table_info('app_rows') WHERE name = 'note';\n",
    );
    let cli = cli();
    let stop = ws.path().join("stop");

    let mut writer = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "writer_process",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("BACKSTOP_WRITER_DB", ws.db())
        .env("BACKSTOP_WRITER_STOP", &stop)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(writer.stdout.take().unwrap()).lines();
    // Wait for the writer's first commit before starting the migrators.
    let first = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| parse_commit(l).is_some());
    assert!(first.is_some(), "the writer did not start");
    let reader = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());

    let started = Instant::now();
    let migrators: Vec<_> = (0..MIGRATORS)
        .map(|_| {
            Command::new(&cli)
                .env_remove("DATABASE_URL")
                .env_remove("RUST_LOG")
                .arg("--database")
                .arg(ws.db())
                .arg("--migrations")
                .arg(ws.migrations_dir())
                .args(["--busy-timeout", "120", "--json", "migrate"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<_> = migrators
        .into_iter()
        .map(|m| m.wait_with_output().unwrap())
        .collect();
    let migrating = started.elapsed();
    std::thread::sleep(Duration::from_millis(100));
    std::fs::write(&stop, b"").unwrap();
    assert!(writer.wait().unwrap().success());
    let mut committed = BTreeSet::new();
    let mut longest_wait = Duration::ZERO;
    for line in reader.join().unwrap().into_iter().chain(first) {
        if let Some((id, wait)) = parse_commit(&line) {
            committed.insert(id);
            longest_wait = longest_wait.max(wait);
        }
    }

    let mut applied = 0;
    for out in &outputs {
        assert_eq!(
            out.status.code(),
            Some(0),
            "a migrator failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["to_version"], 3, "{report}");
        if !report["migrations"].as_array().unwrap().is_empty() {
            applied += 1;
        }
    }
    assert_eq!(applied, 1, "exactly one migrator applies");
    assert_eq!(
        history(&ws.db()).await,
        [
            (1, "applied".into()),
            (2, "applied".into()),
            (3, "applied".into())
        ]
    );
    // Every row the writer was told is committed is there, and nothing else.
    let mut conn = connect(&ws.db()).await;
    let present: BTreeSet<i64> = sqlx::query_scalar("SELECT id FROM app_rows")
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .collect();
    conn.close().await.unwrap();
    let lost: Vec<_> = committed.difference(&present).collect();
    let unknown: Vec<_> = present.difference(&committed).collect();
    assert!(
        lost.is_empty() && unknown.is_empty(),
        "committed but missing: {lost:?}; present but never reported committed: {unknown:?}"
    );
    assert!(
        committed.len() > 10,
        "the writer barely wrote: {}",
        committed.len()
    );
    println!(
        "concurrent migrator processes: {MIGRATORS} (exactly 1 applied, all exited 0) in {} ms; \
         writer rows checked: {}; longest writer wait: {} ms",
        migrating.as_millis(),
        committed.len(),
        longest_wait.as_millis()
    );
}

/// `committed <id> <microseconds>`, anywhere in a line (the test harness may print its own
/// text before the first one).
fn parse_commit(line: &str) -> Option<(i64, Duration)> {
    let (_, rest) = line.split_once("committed ")?;
    let (id, micros) = rest.split_once(' ')?;
    Some((
        id.parse().ok()?,
        Duration::from_micros(micros.trim().parse().ok()?),
    ))
}
