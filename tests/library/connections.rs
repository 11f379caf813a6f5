//! Every connection shape sqlx accepts: the runner works on the database the pool's
//! connections see, or refuses before running anything; read-only databases refuse to be
//! written; every lock wait is `busy`.

use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::common::*;
use backstop::{Error, Migrator, RollbackStrategy};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{Connection, SqlitePool};

fn migrations(ws: &Workspace) {
    ws.people_migration();
    ws.email_migration();
}

/// The private databases sqlx can open: every new connection is another, empty one.
fn private_options() -> Vec<(&'static str, SqliteConnectOptions)> {
    vec![
        ("SqliteConnectOptions::new()", SqliteConnectOptions::new()),
        (
            ".in_memory(true)",
            SqliteConnectOptions::new().in_memory(true),
        ),
        (
            "sqlite://?mode=memory&cache=private",
            SqliteConnectOptions::from_str("sqlite://?mode=memory&cache=private").unwrap(),
        ),
        (
            "sqlite:",
            SqliteConnectOptions::from_str("sqlite:").unwrap(),
        ),
        // A URI file name given as a path: sqlx's settings say "a file", SQLite opens a new
        // in-memory database for every connection (only the opened connection tells).
        (
            ".filename(\"file:ghost?mode=memory\")",
            SqliteConnectOptions::new().filename("file:ghost?mode=memory"),
        ),
    ]
}

async fn people(pool: &SqlitePool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM people")
        .fetch_one(pool)
        .await
}

#[tokio::test]
async fn a_private_database_with_one_connection_is_migrated_through_it() {
    let ws = Workspace::new();
    migrations(&ws);
    for (name, options) in private_options() {
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .unwrap();
        let migrator = Migrator::new(ws.source());
        let dry = migrator.dry_run().migrate(&pool).await.unwrap();
        assert_eq!(dry.to_version, 2, "{name}");
        assert!(
            people(&pool).await.is_err(),
            "{name}: the dry run left a table"
        );

        let report = migrator.migrate(&pool).await.unwrap();
        assert_eq!((report.from_version, report.to_version), (0, 2), "{name}");
        assert_eq!(report.backup, None, "{name}");
        assert_eq!(
            people(&pool).await.unwrap(),
            1,
            "{name}: the pool sees the tables"
        );
        let status = migrator.status(&pool).await.unwrap();
        assert_eq!(status.current_version, 2, "{name}");
        assert!(status.is_clean(), "{name}: {status:?}");
        // The pool's connection has its settings back.
        let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(fk, 1, "{name}: foreign keys are back on");
        let query_only: i64 = sqlx::query_scalar("PRAGMA query_only")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(query_only, 0, "{name}");

        let back = migrator
            .rollback(&pool, 0, RollbackStrategy::Scripts)
            .await
            .unwrap();
        assert_eq!(back.to_version, 0, "{name}");
        assert!(people(&pool).await.is_err(), "{name}");
        pool.close().await;
    }
}

#[tokio::test]
async fn a_private_database_with_several_connections_is_refused_before_anything_runs() {
    let ws = Workspace::new();
    migrations(&ws);
    for (name, options) in private_options() {
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .unwrap();
        let migrator = Migrator::new(ws.source());
        for result in [
            migrator.migrate(&pool).await.map(drop),
            migrator.dry_run().migrate(&pool).await.map(drop),
            migrator.status(&pool).await.map(drop),
        ] {
            let err = result.unwrap_err();
            assert_eq!(err.kind(), "private_database", "{name}: {err}");
            assert!(err.to_string().contains("max_connections(1)"), "{err}");
        }
        assert!(people(&pool).await.is_err(), "{name}");
        pool.close().await;
    }
}

#[tokio::test]
async fn a_shared_in_memory_database_is_migrated_for_every_connection() {
    let ws = Workspace::new();
    migrations(&ws);
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect("sqlite::memory:")
        .await
        .unwrap();
    Migrator::new(ws.source()).migrate(&pool).await.unwrap();
    let mut seen = Vec::new();
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut conn = pool.acquire().await.unwrap();
        seen.push(
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM people")
                .fetch_one(&mut *conn)
                .await
                .unwrap(),
        );
        held.push(conn);
    }
    assert_eq!(seen, [1, 1, 1, 1]);
}

#[tokio::test]
async fn a_read_only_pool_is_refused_by_everything_that_writes() {
    let ws = Workspace::new();
    migrations(&ws);
    {
        let pool = ws.pool().await;
        ws.migrator().migrate_to(&pool, 1).await.unwrap();
        pool.close().await;
    }
    let before = dump(&ws.db()).await;
    let files = ws.backup_files();
    let db = ws.db().display().to_string();
    for url in [
        format!("sqlite:{db}?mode=ro"),
        format!("sqlite:{db}?immutable=1"),
    ] {
        let pool = SqlitePoolOptions::new()
            .connect_with(SqliteConnectOptions::from_str(&url).unwrap())
            .await
            .unwrap();
        let migrator = ws.migrator();
        for result in [
            migrator.migrate(&pool).await.map(drop),
            migrator.dry_run().migrate(&pool).await.map(drop),
            migrator.backup(&pool).await.map(drop),
            migrator
                .rollback(&pool, 0, RollbackStrategy::Scripts)
                .await
                .map(drop),
        ] {
            let err = result.unwrap_err();
            assert!(matches!(err, Error::ReadOnly { .. }), "{url}: {err}");
            assert!(err.to_string().contains(&db), "{err}");
        }
        let status = migrator.status(&pool).await.unwrap();
        assert_eq!(status.current_version, 1, "{url}");
        pool.close().await;
    }
    assert_eq!(dump(&ws.db()).await, before);
    assert_eq!(ws.backup_files(), files);
}

#[tokio::test]
async fn a_lock_met_before_the_runner_takes_its_own_is_busy_too() {
    let ws = Workspace::new();
    migrations(&ws);
    // Rollback-journal mode: an exclusive lock keeps readers out.
    exec(
        &ws.db(),
        "PRAGMA journal_mode = DELETE; CREATE TABLE own (x);",
    )
    .await;
    let mut holder = connect(&ws.db()).await;
    sqlx::raw_sql("BEGIN EXCLUSIVE; INSERT INTO own VALUES (1);")
        .execute(&mut holder)
        .await
        .unwrap();
    let pool = SqlitePoolOptions::new()
        .connect_with(
            SqliteConnectOptions::new()
                .filename(ws.db())
                .busy_timeout(Duration::from_millis(200)),
        )
        .await
        .unwrap();
    let migrator = ws.migrator().busy_timeout(Duration::from_millis(200));
    for (what, result) in [
        ("migrate", migrator.migrate(&pool).await.map(drop)),
        ("status", migrator.status(&pool).await.map(drop)),
        (
            "rollback",
            migrator
                .rollback(&pool, 0, RollbackStrategy::Scripts)
                .await
                .map(drop),
        ),
    ] {
        let err = result.unwrap_err();
        assert_eq!(err.kind(), "busy", "{what}: {err}");
        if let Error::Busy { timeout, .. } = err {
            assert_eq!(timeout, Duration::from_millis(200), "{what}");
        }
    }
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut holder)
        .await
        .unwrap();
    holder.close().await.unwrap();
}

#[tokio::test]
async fn an_absurd_busy_timeout_is_cut_to_what_sqlite_takes() {
    let ws = Workspace::new();
    migrations(&ws);
    let pool = ws.pool().await;
    let started = Instant::now();
    let report = ws
        .migrator()
        .busy_timeout(Duration::from_secs(3_000_000))
        .migrate(&pool)
        .await
        .unwrap();
    assert_eq!(report.to_version, 2);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(backstop::MAX_BUSY_TIMEOUT.as_millis(), i32::MAX as u128);
}

/// A file SQLite opens read-only although the pool asked for nothing of the sort (a read-only
/// bind mount as root, a file without write permission otherwise): SQLite is asked once the
/// runner's connection is open, and every command that writes is `read_only` before it takes
/// a backup or writes anything.
#[tokio::test]
async fn a_file_sqlite_can_only_read_is_refused_before_anything_is_written() {
    let ws = Workspace::new();
    migrations(&ws);
    let home = ws.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let original = home.join("app.sqlite3");
    exec(
        &original,
        "PRAGMA journal_mode = DELETE; CREATE TABLE own (x);",
    )
    .await;
    let (db, _unmount) = match read_only_view(&ws, &home) {
        Ok(view) => view,
        Err(why) => {
            println!("skipped: cannot make a read-only view of the database: {why}");
            return;
        }
    };
    let before = dump(&db).await;
    let pool = SqlitePoolOptions::new()
        .connect_with(SqliteConnectOptions::new().filename(&db))
        .await
        .unwrap();
    // Backups in a directory that can be written: only the database is read-only.
    let migrator = ws.migrator().backup_dir(ws.backups_dir());
    for (command, result) in [
        ("migrate", migrator.migrate(&pool).await.map(drop)),
        (
            "dry-run migrate",
            migrator.dry_run().migrate(&pool).await.map(drop),
        ),
        ("backup", migrator.backup(&pool).await.map(drop)),
    ] {
        let err = result.expect_err(command);
        assert_eq!(err.kind(), "read_only", "{command}: {err}");
        assert!(err.to_string().contains(&db.display().to_string()), "{err}");
    }
    pool.close().await;
    assert_eq!(dump(&db).await, before);
    assert_eq!(ws.backup_files(), Vec::<String>::new());
}

/// The database of `home` seen read-only: through a read-only bind mount as root (whom file
/// modes do not stop), by its file's mode otherwise.
fn read_only_view(
    ws: &Workspace,
    home: &std::path::Path,
) -> Result<(std::path::PathBuf, Option<Mounted>), String> {
    if !running_as_root() {
        use std::os::unix::fs::PermissionsExt;
        let file = home.join("app.sqlite3");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o444)).unwrap();
        return Ok((file, None));
    }
    let view = ws.path().join("view");
    std::fs::create_dir_all(&view).unwrap();
    let mount = || std::process::Command::new("mount");
    system(mount().arg("--bind").arg(home).arg(&view))?;
    let mounted = Mounted { dir: view.clone() };
    system(mount().args(["-o", "remount,bind,ro"]).arg(&view))?;
    Ok((view.join("app.sqlite3"), Some(mounted)))
}
