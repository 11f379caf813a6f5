//! A failed run keeps its backup unless SQLite confirms that the rollback undid everything.

use std::path::Path;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

use super::*;

/// A rollback-journal database of 20,000 rows of 100 bytes, and a pool with a small cache (so
/// that a large update spills pages to the file before it commits).
async fn big_database(dir: &Path) -> SqlitePool {
    let options = SqliteConnectOptions::new()
        .filename(dir.join("app.sqlite3"))
        .create_if_missing(true)
        .pragma("cache_size", "10");
    let pool = SqlitePoolOptions::new()
        .connect_with(options)
        .await
        .unwrap();
    sqlx::raw_sql(
        "CREATE TABLE big (id INTEGER PRIMARY KEY, b BLOB);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
         INSERT INTO big SELECT i, randomblob(100) FROM n;",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool
}

/// A run that backs the database up, overwrites every row (with the journal turned off first
/// when `escape` says so, as a script that got past the authorizer would), then fails.
async fn failing_run(pool: &SqlitePool, escape: bool) {
    let intent = Intent::Backup(BackupReason::Migrate);
    let db = Database::resolve(pool).await.unwrap();
    let failed = run_locked(
        &db,
        &Config::default(),
        (Mode::Apply, intent),
        async |session: &mut Session| {
            if escape {
                // Before anything is written: later SQLite would ignore it.
                let on = session.guarded();
                execute(on.conn, "PRAGMA journal_mode = OFF").await.unwrap();
            }
            session.take_backup(0).await?;
            let on = session.guarded();
            execute(on.conn, "UPDATE big SET b = zeroblob(1000)")
                .await
                .unwrap();
            Err::<Nothing, _>(Error::ReadOnly {
                database: "a failure after the scripts ran".into(),
            })
        },
    )
    .await;
    assert!(failed.is_err());
}

struct Nothing;

impl Outcome for Nothing {
    fn changed_database(&self) -> bool {
        false
    }
}

fn backups(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir.join("backups"))
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|name| name.ends_with(".sqlite3"))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_failure_after_writes_outside_the_journal_keeps_the_backup() {
    let dir = tempfile::tempdir().unwrap();
    let pool = big_database(dir.path()).await;
    failing_run(&pool, true).await;
    let kept = backups(dir.path());
    assert_eq!(kept.len(), 1, "{kept:?}");
    // It is the state before the run, which the database no longer is.
    let backup = dir.path().join("backups").join(&kept[0]);
    let small: i64 = {
        let options = SqliteConnectOptions::new()
            .filename(&backup)
            .read_only(true);
        let mut conn = sqlx::ConnectOptions::connect(&options).await.unwrap();
        sqlx::query_scalar("SELECT count(*) FROM big WHERE length(b) = 100")
            .fetch_one(&mut conn)
            .await
            .unwrap()
    };
    assert_eq!(small, 20000);
}

#[tokio::test]
async fn a_failure_that_sqlite_rolled_back_removes_the_backup() {
    let dir = tempfile::tempdir().unwrap();
    let pool = big_database(dir.path()).await;
    failing_run(&pool, false).await;
    assert_eq!(backups(dir.path()), Vec::<String>::new());
    let small: i64 = sqlx::query_scalar("SELECT count(*) FROM big WHERE length(b) = 100")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(small, 20000);
}
