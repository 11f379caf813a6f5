//! Concurrency across processes: eight migrator processes started together on one database
//! file while a ninth process keeps inserting and committing rows; four migrators started
//! together on a large database copy it once; an application that truncates its log while it
//! writes never waits for a migrator, nor a migrator for it.
//!
//! The tests on large databases (hundreds of MB) are ignored by a plain `cargo test`; `.ci/run`
//! runs them in release mode.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
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
    cli(); // built before anything is timed
    let stop = ws.path().join("stop");

    let mut writer = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "processes::writer_process",
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
            migrate_command(&ws, &["--busy-timeout", "120"])
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

/// A WAL database of about `mb` MB: a table `blobs` of 4 KB rows, and `app_rows`.
async fn large_wal_database(path: &std::path::Path, mb: u64) {
    exec(
        path,
        &format!(
            "PRAGMA journal_mode = WAL;\n\
             CREATE TABLE app_rows (id INTEGER PRIMARY KEY, written_at REAL);\n\
             CREATE TABLE blobs AS WITH RECURSIVE n(i) AS \
               (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {}) \
             SELECT i, randomblob(4000) AS b FROM n;\n\
             PRAGMA wal_checkpoint(TRUNCATE);\n",
            mb * 256
        ),
    )
    .await;
}

/// One trivial pending migration.
fn one_trivial_migration(ws: &Workspace) {
    ws.migration(
        "001_note",
        "ALTER TABLE app_rows ADD COLUMN note TEXT;\n",
        "ALTER TABLE app_rows DROP COLUMN note;\n",
        "SELECT count(*) FROM pragma_table_info('app_rows') WHERE name = 'note';\n",
    );
}

/// The CLI migrating the workspace's database, with the `options` given (the default busy
/// timeout unless they say otherwise).
fn migrate_command(ws: &Workspace, options: &[&str]) -> Command {
    let mut command = Command::new(cli());
    command
        .env_remove("DATABASE_URL")
        .env_remove("RUST_LOG")
        .arg("--database")
        .arg(ws.db())
        .arg("--migrations")
        .arg(ws.migrations_dir())
        .args(options)
        .args(["--json", "migrate"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Four migrators of one 200 MB database started at once (service replicas at a deploy): the
/// one that migrates copies the database; the others wait for it before copying anything and
/// find the work done. The backups directory never holds more than one copy.
#[tokio::test]
#[ignore = "a 200 MB database: run in release by .ci/run"]
async fn four_migrators_started_at_once_copy_the_database_once() {
    let ws = Workspace::new();
    large_wal_database(&ws.db(), 200).await;
    one_trivial_migration(&ws);
    let db_size = std::fs::metadata(ws.db()).unwrap().len();
    assert!(db_size > 200 << 20, "{db_size}");
    cli();

    // The size of the backups directory, sampled until the migrators are done.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (dir, done) = (ws.backups_dir(), done.clone());
        std::thread::spawn(move || {
            let (mut peak, mut files) = (0u64, BTreeSet::new());
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let mut size = 0;
                for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                    size += entry.metadata().map_or(0, |m| m.len());
                    files.insert(entry.file_name().to_string_lossy().into_owned());
                }
                peak = peak.max(size);
                std::thread::sleep(Duration::from_millis(2));
            }
            (peak, files)
        })
    };
    let started = Instant::now();
    let migrators: Vec<_> = (0..4)
        .map(|_| migrate_command(&ws, &[]).spawn().unwrap())
        .collect();
    let outputs: Vec<_> = migrators
        .into_iter()
        .map(|m| m.wait_with_output().unwrap())
        .collect();
    let took = started.elapsed();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (peak, seen) = sampler.join().unwrap();

    let mut applied = 0;
    for out in &outputs {
        let report = success_json(out);
        applied += usize::from(!report["migrations"].as_array().unwrap().is_empty());
    }
    assert_eq!(applied, 1, "exactly one migrator applies");
    let partials: Vec<&String> = seen.iter().filter(|n| n.ends_with(".partial")).collect();
    assert_eq!(partials.len(), 1, "copies made: {partials:?}");
    assert_eq!(ws.backup_files().len(), 1, "{:?}", ws.backup_files());
    assert!(
        peak <= db_size + db_size / 10,
        "the backups directory held {peak} bytes at its peak for a database of {db_size}"
    );
    println!(
        "four migrators at once on {} MB: all exited 0 in {} ms; copies made: 1; peak of the \
         backups directory: {} MB",
        db_size >> 20,
        took.as_millis(),
        peak >> 20
    );
}

/// An application that commits every 10 ms and truncates its log every 0.5 s (its busy timeout
/// 10 s) beside a migrate with a backup, on a 300 MB database. A checkpoint that truncates
/// holds the write lock while it waits for old read snapshots: a migrator that waited for the
/// write lock with its copy's snapshot held would deadlock with it (until a busy timeout), with
/// every application writer queued behind. Here the migrate succeeds with the default busy
/// timeout, the application never fails a write, and its longest commit or checkpoint stays
/// below the migrate's own time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a 300 MB database: run in release by .ci/run"]
async fn an_application_truncating_its_log_and_a_migrate_never_wait_for_each_other() {
    let ws = Workspace::new();
    large_wal_database(&ws.db(), 300).await;
    one_trivial_migration(&ws);
    cli();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let app = {
        let (db, stop) = (ws.db(), stop.clone());
        tokio::spawn(async move {
            let options = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&db)
                .busy_timeout(Duration::from_secs(10));
            let mut conn = sqlx::ConnectOptions::connect(&options).await.unwrap();
            let (mut commits, mut failures) = (0u64, Vec::new());
            let (mut longest_commit, mut longest_checkpoint) = (Duration::ZERO, Duration::ZERO);
            let mut last_checkpoint = Instant::now();
            let mut largest_log = 0u64;
            let wal = std::path::PathBuf::from(format!("{}-wal", db.display()));
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let started = Instant::now();
                match sqlx::query("INSERT INTO app_rows (written_at) VALUES (julianday('now'))")
                    .execute(&mut conn)
                    .await
                {
                    Ok(_) => commits += 1,
                    Err(e) => failures.push(e.to_string()),
                }
                longest_commit = longest_commit.max(started.elapsed());
                largest_log = largest_log.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
                if last_checkpoint.elapsed() >= Duration::from_millis(500) {
                    let started = Instant::now();
                    let checkpoint: Result<(i64, i64, i64), _> =
                        sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
                            .fetch_one(&mut conn)
                            .await;
                    if let Err(e) = &checkpoint {
                        failures.push(format!("checkpoint: {e}"));
                    }
                    longest_checkpoint = longest_checkpoint.max(started.elapsed());
                    last_checkpoint = Instant::now();
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            conn.close().await.unwrap();
            (
                commits,
                failures,
                longest_commit,
                longest_checkpoint,
                largest_log,
            )
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = Instant::now();
    // The migrator is another process; this runtime's threads go on running the application.
    let mut command = migrate_command(&ws, &[]);
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (commits, failures, longest_commit, longest_checkpoint, largest_log) = app.await.unwrap();

    success_json(&out);
    assert!(failures.is_empty(), "the application failed: {failures:?}");
    assert!(commits > 100, "the application barely wrote: {commits}");
    let longest = longest_commit.max(longest_checkpoint);
    assert!(
        longest < took,
        "the application waited {longest:?} (commit {longest_commit:?}, checkpoint \
         {longest_checkpoint:?}); the migrate took {took:?}"
    );
    println!(
        "checkpointing application beside a migrate of {} MB: migrate {} ms (exit 0); the \
         application committed {commits} rows, none failed; its longest commit {} ms, longest \
         checkpoint {} ms; largest log {} MB",
        std::fs::metadata(ws.db()).unwrap().len() >> 20,
        took.as_millis(),
        longest_commit.as_millis(),
        longest_checkpoint.as_millis(),
        largest_log >> 20
    );
}
