//! A database replicated by Litestream while backstop migrates it, rolls it back by backup and
//! migrates it again, with a writer committing throughout: every state the replica can restore
//! (the latest, and points in time between) passes `integrity_check` and has a history that
//! agrees with its schema: never half a migration.
//!
//! Needs a `litestream` binary: `$LITESTREAM`, else one on the `PATH`; skipped with a message
//! without one (`.ci/run` installs it and sets `LITESTREAM`, which then must work).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use crate::common::*;
use backstop::{MigrationState, Migrator, RollbackStrategy};

/// The binary to run, or why the test is skipped.
fn litestream() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("LITESTREAM") {
        return Ok(PathBuf::from(path));
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("litestream"))
            .find(|p| p.is_file())
    });
    found.ok_or_else(|| "no litestream on the PATH and LITESTREAM is not set".to_owned())
}

/// `litestream replicate` on the config, killed when dropped.
struct Replicating(Child);

impl Drop for Replicating {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Three migrations: a table with an index, a column with a backfill of the writer's rows, a
/// table rebuilt.
fn migrations(ws: &Workspace) {
    ws.migration(
        "001_tags",
        "CREATE TABLE tags (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n\
         CREATE INDEX tags_name ON tags (name);\n\
         INSERT INTO tags (name) VALUES ('red'), ('green');\n",
        "DROP TABLE tags;\n",
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'tags';\n",
    );
    ws.migration(
        "002_events_size",
        "ALTER TABLE events ADD COLUMN size INTEGER;\n\
         UPDATE events SET size = length(body);\n",
        "ALTER TABLE events DROP COLUMN size;\n",
        "SELECT count(*) FROM pragma_table_info('events') WHERE name = 'size';\n",
    );
    ws.migration(
        "003_tags_colour",
        "CREATE TABLE tags_new (id INTEGER PRIMARY KEY, name TEXT NOT NULL, colour TEXT);\n\
         INSERT INTO tags_new (id, name, colour) SELECT id, name, name FROM tags;\n\
         DROP TABLE tags;\n\
         ALTER TABLE tags_new RENAME TO tags;\n",
        "CREATE TABLE tags_old (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n\
         INSERT INTO tags_old (id, name) SELECT id, name FROM tags;\n\
         DROP TABLE tags;\n\
         ALTER TABLE tags_old RENAME TO tags;\n",
        "SELECT count(*) FROM pragma_table_info('tags') WHERE name = 'colour';\n",
    );
}

/// Whether the database's history agrees with its schema: every recorded migration's probe
/// says present, every pending one's says absent; and its integrity check passes. Its version.
async fn consistent(migrator: &Migrator, db: &Path, what: &str) -> i64 {
    let mut conn = connect(db).await;
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(check, "ok", "{what}");
    drop(conn);
    let pool = pool(db).await;
    let status = migrator.status(&pool).await.unwrap();
    pool.close().await;
    for m in &status.migrations {
        let expected = match m.state {
            MigrationState::Pending => 0,
            _ => 1,
        };
        assert_eq!(
            m.probe,
            Some(expected),
            "{what}: migration {} is {:?} but its probe says {:?}",
            m.version,
            m.state,
            m.probe
        );
    }
    status.current_version
}

/// The transaction ids of the replica's level-0 files (`litestream ltx -json`), ascending.
fn txids(bin: &Path, config: &Path, db: &Path) -> Vec<String> {
    let out = Command::new(bin)
        .args(["ltx", "-json", "-config"])
        .arg(config)
        .arg(db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    let files = files
        .as_array()
        .cloned()
        .or_else(|| files["files"].as_array().cloned())
        .unwrap_or_else(|| panic!("not a list of LTX files: {files}"));
    let mut ids: Vec<String> = files
        .iter()
        .map(|f| {
            f["max_txid"]
                .as_str()
                .or_else(|| f["maxTXID"].as_str())
                .unwrap_or_else(|| panic!("no max_txid in {f}"))
                .to_owned()
        })
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// Restores the replica (up to `txid`, else all of it) into `out`.
fn restore(bin: &Path, config: &Path, db: &Path, out: &Path, txid: Option<&str>) {
    let mut command = Command::new(bin);
    command
        .arg("restore")
        .arg("-config")
        .arg(config)
        .arg("-o")
        .arg(out);
    if let Some(txid) = txid {
        command.args(["-txid", txid]);
    }
    let run = command.arg(db).output().unwrap();
    assert!(
        run.status.success(),
        "restore {txid:?}: {}",
        String::from_utf8_lossy(&run.stderr)
    );
}

/// Waits until the replica holds the database's latest transaction: Litestream's newest
/// transaction stops moving once the writer has stopped.
async fn synced(bin: &Path, config: &Path, db: &Path) {
    let mut last = Vec::new();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = txids(bin, config, db);
        if !now.is_empty() && now == last {
            return;
        }
        last = now;
    }
    panic!("the replica never caught up: {last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_restores_every_state_whole_through_migrate_rollback_and_migrate() {
    let bin = match litestream() {
        Ok(bin) => bin,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let ws = Workspace::new();
    migrations(&ws);
    let db = ws.db();
    exec(
        &db,
        "PRAGMA journal_mode = WAL; \
         CREATE TABLE events (id INTEGER PRIMARY KEY, body TEXT NOT NULL);",
    )
    .await;
    exec(
        &db,
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) \
         INSERT INTO events (body) SELECT printf('event %d %s', i, hex(randomblob(16))) FROM n",
    )
    .await;
    let replica = ws.path().join("replica");
    let config = ws.path().join("litestream.yml");
    std::fs::write(
        &config,
        format!(
            "dbs:\n  - path: {}\n    monitor-interval: 50ms\n    replica:\n      type: file\n      path: {}\n      sync-interval: 50ms\n",
            db.display(),
            replica.display()
        ),
    )
    .unwrap();
    let _replicating = Replicating(
        Command::new(&bin)
            .args(["replicate", "-config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", bin.display())),
    );

    // A writer committing every few milliseconds, throughout.
    let stop = Arc::new(AtomicBool::new(false));
    let commits = Arc::new(AtomicI64::new(0));
    let writer = {
        let (stop, commits, db) = (stop.clone(), commits.clone(), db.clone());
        tokio::spawn(async move {
            let pool = pool(&db).await;
            while !stop.load(Ordering::Relaxed) {
                sqlx::query("INSERT INTO events (body) VALUES ('written during the runs')")
                    .execute(&pool)
                    .await
                    .expect("the writer commits");
                commits.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
            pool.close().await;
        })
    };

    let migrator = ws.migrator();
    let pause = || tokio::time::sleep(Duration::from_millis(700));
    pause().await;
    let pool = pool(&db).await;
    let report = migrator.migrate_to(&pool, 1).await.unwrap();
    assert_eq!((report.from_version, report.to_version), (0, 1));
    pause().await;
    let report = migrator.migrate(&pool).await.unwrap();
    assert_eq!((report.from_version, report.to_version), (1, 3));
    pause().await;
    let back = migrator
        .rollback(&pool, 1, RollbackStrategy::Backup)
        .await
        .unwrap();
    assert_eq!(back.to_version, 1);
    pause().await;
    let again = migrator.migrate(&pool).await.unwrap();
    assert_eq!((again.from_version, again.to_version), (1, 3));
    pause().await;
    pool.close().await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    assert!(
        commits.load(Ordering::Relaxed) > 100,
        "the writer kept committing"
    );
    synced(&bin, &config, &db).await;

    // The latest state: the database as it is now.
    let latest = ws.path().join("restored.sqlite3");
    restore(&bin, &config, &db, &latest, None);
    assert_eq!(
        consistent(&migrator, &latest, "the latest restore").await,
        3
    );
    assert_eq!(
        content_hash(&latest).await,
        content_hash(&db).await,
        "the replica is the database"
    );

    // Points in time: every transaction the replica holds restores to a whole version, and
    // together they show the migration, the rollback and the migration again.
    let ids = txids(&bin, &config, &db);
    assert!(ids.len() >= 10, "{ids:?}");
    let step = (ids.len() / 40).max(1);
    let mut seen = Vec::new();
    for (i, txid) in ids.iter().enumerate().filter(|(i, _)| i % step == 0) {
        let out = ws.path().join(format!("at-{i}.sqlite3"));
        restore(&bin, &config, &db, &out, Some(txid));
        let version = consistent(&migrator, &out, &format!("restored at txid {txid}")).await;
        if seen.last() != Some(&version) {
            seen.push(version);
        }
        std::fs::remove_file(&out).unwrap();
    }
    println!("{} transactions, versions in order: {seen:?}", ids.len());
    assert!(
        seen.windows(3).any(|w| w == [3, 1, 3]),
        "the points in time show migrate, rollback, migrate: {seen:?}"
    );
}
