//! Coming from sqlx: a database sqlx's own `Migrator` migrated moves to backstop with one
//! import and no data change; sqlx's file names run; a dirty, unknown or modified sqlx history
//! is refused.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;
use backstop::{Error, Migrator, RollbackStrategy, Source};
use serde_json::Value;
use sqlx::SqlitePool;

pub(super) fn long_lived() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/long_lived")
}

/// A directory with sqlx's view of the set: the forward scripts only, byte for byte.
pub(super) fn sqlx_dir(ws: &Workspace) -> PathBuf {
    let dir = ws.path().join("sqlx-migrations");
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(long_lived()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".sql") && !name.contains(".rollback.") && !name.contains(".probe.") {
            std::fs::copy(&path, dir.join(&name)).unwrap();
        }
    }
    dir
}

/// The database migrated by sqlx's own migrator.
pub(super) async fn migrated_by_sqlx(ws: &Workspace) -> SqlitePool {
    let pool = ws.pool().await;
    let migrator = sqlx::migrate::Migrator::new(sqlx_dir(ws)).await.unwrap();
    migrator.run(&pool).await.unwrap();
    pool
}

pub(super) fn backstop() -> Migrator {
    Migrator::new(Source::from_dir(long_lived()).unwrap())
}

/// A full dump without backstop's own table (the one thing an import adds): of a copy
/// without it.
async fn content(db: &Path) -> String {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.sqlite3");
    std::fs::copy(db, &copy).unwrap();
    exec(&copy, "DROP TABLE IF EXISTS _backstop_migrations").await;
    dump(&copy).await
}

#[tokio::test]
async fn a_sqlx_database_moves_to_backstop_with_one_import_and_no_data_change() {
    let ws = Workspace::new();
    let pool = migrated_by_sqlx(&ws).await;
    exec(
        &ws.db(),
        "INSERT INTO users (email, display_name) VALUES ('ada@x', 'ada');",
    )
    .await;
    let before = dump(&ws.db()).await;

    // Without the import, migrate refuses: adopting by probe would re-run 003, 006, ...
    let err = backstop().migrate(&pool).await.unwrap_err();
    assert_eq!(err.kind(), "sqlx_history", "{err}");
    assert!(err.to_string().contains("Migrator::import_sqlx"), "{err}");
    assert_eq!(dump(&ws.db()).await, before);

    let dry = backstop().dry_run().import_sqlx(&pool).await.unwrap();
    assert_eq!(dry.imported.len(), 21);
    assert_eq!(
        dump(&ws.db()).await,
        before,
        "the dry run changed something"
    );

    let report = backstop().import_sqlx(&pool).await.unwrap();
    assert_eq!(report.imported, (1..=21).collect::<Vec<i64>>());
    assert!(report.backup.is_some());
    assert_eq!(
        report.superseded,
        [(3, 11), (6, 9), (7, 12), (8, 20), (14, 15), (18, 19)]
    );
    // Nothing but backstop's table changed; sqlx's history is still there.
    assert_eq!(content(&ws.db()).await, before.clone());
    assert_eq!(
        query_i64(&ws.db(), "SELECT count(*) FROM _sqlx_migrations").await,
        21
    );

    // migrate applies nothing and changes nothing; status --check passes.
    let migrated = backstop().migrate(&pool).await.unwrap();
    assert!(migrated.is_up_to_date());
    let status = backstop().status(&pool).await.unwrap();
    assert!(status.is_clean(), "{status}");
    assert_eq!(content(&ws.db()).await, before.clone());

    // Again: nothing to import.
    let again = backstop().import_sqlx(&pool).await.unwrap();
    assert!(again.imported.is_empty() && again.already_recorded.len() == 21);
}

#[tokio::test]
async fn a_dirty_unknown_or_modified_sqlx_history_is_refused_by_name() {
    let ws = Workspace::new();
    let pool = migrated_by_sqlx(&ws).await;
    let before = dump(&ws.db()).await;

    exec(
        &ws.db(),
        "UPDATE _sqlx_migrations SET success = 0 WHERE version = 17",
    )
    .await;
    let err = backstop().import_sqlx(&pool).await.unwrap_err();
    assert!(matches!(err, Error::SqlxDirty { version: 17, .. }), "{err}");
    exec(
        &ws.db(),
        "UPDATE _sqlx_migrations SET success = 1 WHERE version = 17",
    )
    .await;

    // A source without 021.
    let fewer = ws.path().join("fewer");
    std::fs::create_dir_all(&fewer).unwrap();
    for entry in std::fs::read_dir(long_lived()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".sql") && !name.starts_with("021") {
            std::fs::copy(&path, fewer.join(&name)).unwrap();
        }
    }
    let err = Migrator::new(Source::from_dir(&fewer).unwrap())
        .import_sqlx(&pool)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::SqlxVersionUnknown { version: 21, .. }),
        "{err}"
    );

    // A forward script changed since sqlx applied it (one more newline).
    let forward = fewer.join("004_users_display_name.sql");
    let text = std::fs::read_to_string(&forward).unwrap();
    std::fs::write(&forward, text + "\n").unwrap();
    std::fs::copy(
        long_lived().join("021_labels_by_name.sql"),
        fewer.join("021_labels_by_name.sql"),
    )
    .unwrap();
    for suffix in ["rollback", "probe"] {
        let name = format!("021_labels_by_name.{suffix}.sql");
        std::fs::copy(long_lived().join(&name), fewer.join(&name)).unwrap();
    }
    let err = Migrator::new(Source::from_dir(&fewer).unwrap())
        .import_sqlx(&pool)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::ChecksumMismatch { version: 4, .. }),
        "{err}"
    );
    assert_eq!(dump(&ws.db()).await, before);
    assert!(!ws.backups_dir().exists(), "a refused import left a backup");

    // A gap: sqlx applied 1 to 21 but 5, which the files have (before: imported, and then
    // migrate refused 5 forever as pending below an applied version).
    exec(&ws.db(), "DELETE FROM _sqlx_migrations WHERE version = 5").await;
    let err = backstop().import_sqlx(&pool).await.unwrap_err();
    assert!(
        matches!(&err, Error::SqlxGap { missing, latest: 21, .. } if missing == &[5]),
        "{err}"
    );
    assert!(err.to_string().contains("[5]"), "{err}");
    assert!(!ws.backups_dir().exists(), "a refused import left a backup");

    // A database without sqlx's history.
    let other = Workspace::new();
    let other_pool = other.pool().await;
    let err = backstop().import_sqlx(&other_pool).await.unwrap_err();
    assert_eq!(err.kind(), "no_sqlx_history", "{err}");

    // An empty one: nothing to import, said as such (before: "backstop's history already has
    // sqlx's migrations").
    exec(
        &other.db(),
        "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
         installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL, \
         checksum BLOB NOT NULL, execution_time BIGINT NOT NULL);",
    )
    .await;
    let report = backstop().import_sqlx(&other_pool).await.unwrap();
    assert!(report.imported.is_empty() && report.already_recorded.is_empty());
    assert!(
        report.to_string().contains("records no migration"),
        "{report}"
    );
}

#[tokio::test]
async fn the_command_line_imports_in_json() {
    let ws = Workspace::new();
    let pool = migrated_by_sqlx(&ws).await;
    pool.close().await;
    let out = Command::new(cli())
        .env_remove("DATABASE_URL")
        .arg("--migrations")
        .arg(long_lived())
        .arg("--database")
        .arg(ws.db())
        .args(["--json", "import-sqlx"])
        .output()
        .unwrap();
    let json = success_json(&out);
    assert_eq!(json["imported"].as_array().unwrap().len(), 21);
    assert!(
        json["backup"].as_str().unwrap().contains("-v0-import"),
        "{json}"
    );
}

#[tokio::test]
async fn sqlx_reversible_names_run() {
    let ws = Workspace::new();
    ws.write(
        "001_people.up.sql",
        "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT);\n",
    );
    ws.write("001_people.down.sql", "DROP TABLE people;\n");
    ws.write(
        "001_people.probe.sql",
        "SELECT count(*) FROM sqlite_master WHERE name = 'people';\n",
    );
    let pool = ws.pool().await;
    let report = ws.migrator().migrate(&pool).await.unwrap();
    assert_eq!(report.to_version, 1);
    ws.migrator()
        .rollback(&pool, 0, RollbackStrategy::Scripts)
        .await
        .unwrap();
    assert_eq!(history(&ws.db()).await, []);

    // Both spellings for one version, and an empty down script, are refused by name.
    ws.write(
        "001_people.sql",
        "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT);\n",
    );
    let err = Source::from_dir(ws.migrations_dir()).unwrap_err();
    assert!(matches!(err, Error::InvalidFileName { .. }), "{err}");
    assert!(err.to_string().contains("not both"), "{err}");
    std::fs::remove_file(ws.migrations_dir().join("001_people.sql")).unwrap();
    ws.write("001_people.down.sql", "-- nothing yet\n");
    let err = Source::from_dir(ws.migrations_dir()).unwrap_err();
    assert!(matches!(err, Error::EmptyScript { .. }), "{err}");
    assert!(
        err.to_string().contains("undoes the forward script"),
        "{err}"
    );
}

/// The first `k` migrations of the long-lived set: an older build.
fn older_build(ws: &Workspace, k: i64) -> Migrator {
    let dir = ws.path().join(format!("older-{k}"));
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(long_lived()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let version: Option<i64> = name.split('_').next().and_then(|v| v.parse().ok());
        if name.ends_with(".sql") && version.is_some_and(|v| v <= k) {
            std::fs::copy(&path, dir.join(&name)).unwrap();
        }
    }
    Migrator::new(Source::from_dir(&dir).unwrap())
}

#[tokio::test]
async fn an_older_build_rolls_a_newer_database_back_to_its_own_version() {
    let ws = Workspace::new();
    let pool = ws.pool().await;
    backstop().migrate_to(&pool, 15).await.unwrap();
    let at_fifteen = content(&ws.db()).await;
    backstop().migrate(&pool).await.unwrap();
    let at_latest = content(&ws.db()).await;
    let older = older_build(&ws, 15);

    // It lists what it does not know, refuses to migrate, unless told to accept it.
    let status = older.status(&pool).await.unwrap();
    let unknown: Vec<(i64, String)> = status
        .migrations
        .iter()
        .filter(|m| m.state == backstop::MigrationState::Unknown)
        .map(|m| (m.version, m.description.clone()))
        .collect();
    assert_eq!(unknown.len(), 6);
    assert_eq!(unknown[0], (16, "notes_archived".to_owned()));
    assert!(!status.is_clean());
    let err = older.migrate(&pool).await.unwrap_err();
    assert!(matches!(err, Error::UnknownVersions { .. }), "{err}");
    let accepting = older.clone().allow_newer_database();
    let report = accepting.migrate(&pool).await.unwrap();
    assert_eq!(report.newer_versions, (16..=21).collect::<Vec<i64>>());
    assert!(report.is_up_to_date());
    assert!(accepting.status(&pool).await.unwrap().is_clean());
    assert_eq!(content(&ws.db()).await, at_latest);

    // Back to its own version with the scripts the history stored.
    let back = older
        .rollback(&pool, 15, RollbackStrategy::Scripts)
        .await
        .unwrap();
    assert_eq!(back.to_version, 15);
    assert_eq!(content(&ws.db()).await, at_fifteen);
    assert!(older.status(&pool).await.unwrap().is_clean());

    // And the newer build goes forward again.
    backstop().migrate(&pool).await.unwrap();
    assert_eq!(content(&ws.db()).await, at_latest);

    // The CLI says the same.
    pool.close().await;
    let older_dir = ws.path().join("older-15");
    let run = |args: &[&str]| {
        Command::new(cli())
            .env_remove("DATABASE_URL")
            .arg("--migrations")
            .arg(&older_dir)
            .arg("--database")
            .arg(ws.db())
            .args(args)
            .output()
            .unwrap()
    };
    assert_eq!(run(&["status", "--check"]).status.code(), Some(1));
    assert_eq!(
        run(&["--allow-newer", "status", "--check"]).status.code(),
        Some(0)
    );
    let out = run(&["--json", "--allow-newer", "migrate"]);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["newer_versions"].as_array().unwrap().len(), 6);
    let out = run(&["--json", "status"]);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["migrations"][20]["state"], "unknown");
}
