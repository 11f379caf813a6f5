//! Crash injection: the CLI migrates a database of a few tens of MB and is killed with SIGKILL
//! at many moments of its run (during the backup, between migrations, inside a long
//! migration, around the commit). After each kill the database must be intact and entirely at
//! the old version with the old content or entirely at the new one with the new content; no
//! partial backup may be listed, restored or left behind by the next run; and the next
//! `migrate` must reach the same final content.
//!
//! It takes minutes, so it is ignored by a plain `cargo test`; `.ci/run` runs it in release
//! mode: `cargo test --release --test crash -- --ignored --nocapture`.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use backstop::{Migrator, RollbackStrategy, Source};
use common::*;

/// Tables whose rows the comparisons leave out: backstop's history (its times differ), and the
/// rows a concurrent writer keeps adding during every run.
const HISTORY: &[&str] = &["_backstop_migrations", "ticks"];

/// The migrations under test: a long index build, a long table rebuild, a summary.
fn write_migrations(ws: &Workspace) {
    ws.migration(
        "001_events_by_session",
        "CREATE INDEX events_by_session ON events (session, id);\n",
        "DROP INDEX events_by_session;\n",
        "SELECT count(*) FROM sqlite_master WHERE name = 'events_by_session';\n",
    );
    ws.migration(
        "002_events_size",
        "CREATE TABLE events_new (id INTEGER PRIMARY KEY, session TEXT NOT NULL, payload TEXT NOT NULL, size INTEGER NOT NULL);\n\
         INSERT INTO events_new SELECT id, session, payload, length(payload) FROM events;\n\
         DROP TABLE events;\n\
         ALTER TABLE events_new RENAME TO events;\n\
         CREATE INDEX events_by_session ON events (session, id);\n",
        "ALTER TABLE events DROP COLUMN size;\n",
        "SELECT count(*) FROM pragma_table_info('events') WHERE name = 'size';\n",
    );
    ws.migration(
        "003_session_summary",
        "CREATE TABLE session_summary AS SELECT session, count(*) AS events, sum(size) AS bytes FROM events GROUP BY session;\n",
        "DROP TABLE session_summary;\n",
        "SELECT count(*) FROM sqlite_master WHERE name = 'session_summary';\n",
    );
}

/// A WAL-mode database of about 40 MB, checkpointed so that the main file is all of it.
async fn build_database(path: &Path) {
    exec(
        path,
        "PRAGMA journal_mode = WAL;\n\
         CREATE TABLE events (id INTEGER PRIMARY KEY, session TEXT NOT NULL, payload TEXT NOT NULL);\n\
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 160000)\n\
         INSERT INTO events SELECT i, printf('session-%04d', abs(random()) % 2000),\n\
           printf('{\"role\":\"user\",\"n\":%d,\"text\":\"%s\"}', i, hex(randomblob(100))) FROM n;\n\
         CREATE TABLE ticks (id INTEGER PRIMARY KEY, at INTEGER);\n\
         PRAGMA wal_checkpoint(TRUNCATE);\n",
    )
    .await;
}

/// When to kill the migrator.
#[derive(Debug, Clone)]
enum KillPoint {
    /// This long after the start.
    At(Duration),
    /// This long after a line containing the text appears in its log.
    After(&'static str, Duration),
}

struct Outcome {
    killed: bool,
    log: Vec<String>,
}

fn migrate_command(ws: &Workspace, db: &Path) -> Command {
    let mut command = Command::new(cli());
    command
        .env("RUST_LOG", "backstop=info")
        .env_remove("DATABASE_URL")
        .arg("--database")
        .arg(db)
        .arg("--migrations")
        .arg(ws.migrations_dir())
        .arg("--backup-dir")
        .arg(ws.backups_dir())
        .arg("migrate");
    command
}

/// Runs `migrate` and kills it with SIGKILL at `point` (if it is still running by then).
fn run_and_kill(ws: &Workspace, db: &Path, point: &KillPoint) -> Outcome {
    let mut child = migrate_command(ws, db)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let (tx, rx) = mpsc::channel::<(Instant, String)>();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send((Instant::now(), line));
        }
    });
    let mut log = Vec::new();
    let deadline = match point {
        KillPoint::At(after) => Some(started + *after),
        KillPoint::After(..) => None,
    };
    let mut kill_at = deadline;
    loop {
        if let Some(at) = kill_at
            && Instant::now() >= at
        {
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        match rx.recv_timeout(Duration::from_micros(200)) {
            Ok((seen, line)) => {
                if let KillPoint::After(text, delay) = point
                    && kill_at.is_none()
                    && line.contains(text)
                {
                    kill_at = Some(seen + *delay);
                }
                log.push(line);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                if kill_at.is_none() {
                    break;
                }
            }
        }
    }
    let killed = child.try_wait().unwrap().is_none();
    if killed {
        child.kill().unwrap(); // SIGKILL
    }
    let status = child.wait().unwrap();
    reader.join().unwrap();
    log.extend(rx.try_iter().map(|(_, line)| line));
    if !killed {
        assert!(status.success(), "migrate failed: {log:#?}");
    }
    Outcome { killed, log }
}

fn partials(ws: &Workspace) -> Vec<String> {
    ws.backup_files()
        .into_iter()
        .filter(|f| f.contains(".partial"))
        .collect()
}

async fn version_and_integrity(db: &Path) -> (i64, String) {
    let integrity: String = {
        let mut conn = connect(db).await;
        let rows: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        rows.join("; ")
    };
    let version = history(db).await.last().map_or(0, |(v, _)| *v);
    (version, integrity)
}

/// Another process's writer: commits a row every few milliseconds until stopped, so that the
/// backup's copy (made without the lock) misses commits that the catch-up under the lock must
/// bring in. Returns how many rows it committed.
struct Writer {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<i64>,
}

impl Writer {
    fn start(db: &Path) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (db, flag) = (db.to_owned(), stop.clone());
        let task = tokio::spawn(async move {
            let mut conn = connect(&db).await;
            let mut n = 0;
            while !flag.load(Ordering::Relaxed) {
                let done = sqlx::query("INSERT INTO ticks (at) VALUES (?)")
                    .bind(n)
                    .execute(&mut conn)
                    .await;
                if done.is_ok() {
                    n += 1;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let _ = sqlx::Connection::close(conn).await;
            n
        });
        Writer { stop, task }
    }

    async fn stop(self) -> i64 {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "minutes long: run by .ci/run in release mode"]
async fn killed_at_any_moment_the_database_is_old_or_new_never_half() {
    let ws = Workspace::new();
    write_migrations(&ws);
    let original = ws.path().join("original.sqlite3");
    build_database(&original).await;
    let size_mb = std::fs::metadata(&original).unwrap().len() as f64 / 1e6;
    let old_hash = content_hash_without(&original, HISTORY).await;

    // The reference run, uninterrupted, timed (once the CLI is built).
    cli();
    let reference = ws.path().join("reference.sqlite3");
    std::fs::copy(&original, &reference).unwrap();
    let started = Instant::now();
    let outcome = tokio::task::block_in_place(|| {
        run_and_kill(&ws, &reference, &KillPoint::At(Duration::from_secs(3600)))
    });
    let run_time = started.elapsed();
    assert!(!outcome.killed);
    let new_hash = content_hash_without(&reference, HISTORY).await;
    assert_ne!(old_hash, new_hash);
    for entry in ws.backup_files() {
        std::fs::remove_file(ws.backups_dir().join(entry)).unwrap();
    }
    println!(
        "database {size_mb:.1} MB; an uninterrupted migrate takes {} ms",
        run_time.as_millis()
    );

    // Kill points: spread over the whole run, and right at (and just after) each event.
    let mut points: Vec<KillPoint> = (1..=20)
        .map(|i| KillPoint::At(run_time.mul_f64(f64::from(i) / 21.0)))
        .collect();
    for (event, delays) in [
        // The backup's copy, made without the lock while the writer commits.
        ("taking a backup", &[0, 2, 10, 40][..]),
        ("backup copied", &[0, 1][..]),
        ("write lock taken", &[0, 1][..]),
        // Under the lock: the copy brought up to date from the log.
        (
            "writing the pages committed since the snapshot",
            &[0, 1, 3][..],
        ),
        ("backup taken", &[0, 1][..]),
        ("version=1", &[0, 20][..]),
        ("version=2", &[0, 50, 200][..]),
        ("version=3", &[0, 10][..]),
        ("committing", &[0, 1, 3][..]),
        ("committed", &[0][..]),
    ] {
        for delay in delays {
            points.push(KillPoint::After(event, Duration::from_millis(*delay)));
        }
    }

    let rollback_checks = [3usize, 12, 25];
    let (mut kills, mut old_state, mut new_state, mut partial_left, mut complete_backups) =
        (0, 0, 0, 0, 0);
    let mut writer_commits = 0;
    let db = ws.db();
    for (i, point) in points.iter().enumerate() {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
        }
        for entry in ws.backup_files() {
            std::fs::remove_file(ws.backups_dir().join(entry)).unwrap();
        }
        std::fs::copy(&original, &db).unwrap();

        let writer = Writer::start(&db);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let outcome = tokio::task::block_in_place(|| run_and_kill(&ws, &db, point));
        let ticks = writer.stop().await;
        assert_eq!(
            query_i64(&db, "SELECT count(*) FROM ticks").await,
            ticks,
            "kill point {i}: the writer lost commits"
        );
        writer_commits += ticks;
        let (version, integrity) = version_and_integrity(&db).await;
        assert_eq!(integrity, "ok", "kill point {i} {point:?}");
        let hash = content_hash_without(&db, HISTORY).await;
        match version {
            0 => {
                assert_eq!(
                    hash, old_hash,
                    "kill point {i} {point:?}: version 0, other content"
                );
                old_state += 1;
            }
            3 => {
                assert_eq!(
                    hash, new_hash,
                    "kill point {i} {point:?}: version 3, other content"
                );
                new_state += 1;
            }
            v => panic!("kill point {i} {point:?}: half-applied, version {v}"),
        }
        if !partials(&ws).is_empty() {
            partial_left += 1;
        }
        // No partial backup is ever listed; every listed backup is complete.
        let listing = pool(&db).await;
        let migrator = Migrator::new(Source::from_dir(ws.migrations_dir()).unwrap())
            .backup_dir(ws.backups_dir());
        for backup in migrator.backups(&listing).await.unwrap() {
            assert!(!backup.path.to_string_lossy().contains("partial"));
            assert_eq!(backup.version, Some(0), "{}", backup.path.display());
            complete_backups += 1;
        }
        listing.close().await;

        // The next run finishes the job and cleans up.
        let next = tokio::task::block_in_place(|| {
            run_and_kill(&ws, &db, &KillPoint::At(Duration::from_secs(3600)))
        });
        assert!(!next.killed);
        assert_eq!(version_and_integrity(&db).await, (3, "ok".to_owned()));
        assert_eq!(
            content_hash_without(&db, HISTORY).await,
            new_hash,
            "kill point {i}"
        );
        assert!(
            partials(&ws).is_empty(),
            "kill point {i}: {:?}",
            partials(&ws)
        );

        // Now and then, the way back: the backup restored is a complete one.
        if rollback_checks.contains(&i) {
            let pool = pool(&db).await;
            migrator
                .rollback(&pool, 0, RollbackStrategy::Backup)
                .await
                .unwrap();
            pool.close().await;
            assert_eq!(content_hash_without(&db, HISTORY).await, old_hash);
        }
        if outcome.killed {
            kills += 1;
            let last = outcome.log.last().map(String::as_str).unwrap_or("");
            println!(
                "kill point {i:2} {point:?}: version {version}; last event: {}",
                shorten(last)
            );
        } else {
            println!("kill point {i:2} {point:?}: finished before the kill");
        }
    }
    println!(
        "kill points survived: {kills} kills at {} kill points; left at the old version: \
         {old_state}, at the new version: {new_state}; runs that left a partial backup (removed \
         by the next run): {partial_left}; complete backups listed after a kill: \
         {complete_backups}; restores checked: {}; a concurrent writer committed {writer_commits} \
         rows during the killed runs, none lost",
        points.len(),
        rollback_checks.len()
    );
    assert!(kills >= 30, "only {kills} of the runs were killed");
    assert!(
        old_state > 0 && new_state > 0,
        "the kill points should cover both outcomes"
    );
}

fn shorten(line: &str) -> String {
    line.split_once("backstop")
        .map_or(line, |(_, rest)| rest)
        .chars()
        .take(90)
        .collect()
}
