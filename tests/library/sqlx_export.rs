//! Going back to sqlx: after `export_sqlx`, sqlx's own `Migrator` runs on the database and
//! applies only what comes after; what sqlx could not read, or what sqlx applied that
//! backstop's history lacks, is refused with nothing changed.

use std::path::Path;

use crate::common::*;
use crate::sqlx_import::{backstop, long_lived, migrated_by_sqlx, sqlx_dir};
use backstop::{Error, Migrator, RollbackStrategy, Source};
use sqlx::SqlitePool;

/// sqlx's own migrator over the forward scripts of `dir`.
async fn sqlx_run(dir: &Path, pool: &SqlitePool) -> Result<(), sqlx::migrate::MigrateError> {
    sqlx::migrate::Migrator::new(dir.to_owned())
        .await
        .unwrap()
        .run(pool)
        .await
}

/// A copy of `dir` without the files of `version`.
fn without(ws: &Workspace, dir: &Path, version: &str) -> std::path::PathBuf {
    let fewer = ws.path().join(format!("without-{version}"));
    std::fs::create_dir_all(&fewer).unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".sql") && !name.starts_with(version) {
            std::fs::copy(&path, fewer.join(&name)).unwrap();
        }
    }
    fewer
}

/// The round trip: sqlx migrated 1 to 20, backstop imported that and applied 021;
/// a sqlx build with 021 re-ran it ("table already exists") until the export.
#[tokio::test]
async fn sqlx_runs_on_the_database_again_after_an_export() {
    let ws = Workspace::new();
    let all = sqlx_dir(&ws);
    let first_twenty = without(&ws, &all, "021");
    let pool = ws.pool().await;
    sqlx_run(&first_twenty, &pool).await.unwrap();
    backstop().import_sqlx(&pool).await.unwrap();
    let migrated = backstop().migrate(&pool).await.unwrap();
    assert_eq!(migrated.to_version, 21);

    // Before the export, sqlx re-runs 021 (on a copy).
    let copy = ws.path().join("copy.sqlite3");
    std::fs::copy(ws.db(), &copy).unwrap();
    let copy_pool = crate::common::pool(&copy).await;
    assert!(sqlx_run(&all, &copy_pool).await.is_err());
    copy_pool.close().await;

    let dry = backstop().dry_run().export_sqlx(&pool).await.unwrap();
    assert_eq!(dry.written, [21]);
    let before = dump(&ws.db()).await;
    let report = backstop().export_sqlx(&pool).await.unwrap();
    assert_ne!(dump(&ws.db()).await, before, "the export wrote nothing");
    assert_eq!(report.written, [21]);
    assert_eq!(report.unchanged, (1..=20).collect::<Vec<i64>>());
    assert!(report.removed.is_empty());
    let backup = report.backup.expect("a backup before the export");
    assert_eq!(
        query_i64(&backup, "SELECT count(*) FROM _sqlx_migrations").await,
        20,
        "the backup holds the database before the export"
    );

    // sqlx runs and applies nothing: every row is its own, with its checksums.
    let exported = dump(&ws.db()).await;
    sqlx_run(&all, &pool).await.unwrap();
    assert_eq!(dump(&ws.db()).await, exported);
    let ok = "SELECT count(*) FROM _sqlx_migrations WHERE success AND execution_time = -1 \
              AND description = 'labels by name'";
    assert_eq!(query_i64(&ws.db(), ok).await, 1);

    // Again: nothing to write, no backup.
    let again = backstop().export_sqlx(&pool).await.unwrap();
    assert!(
        again.written.is_empty() && again.backup.is_none(),
        "{again}"
    );
    assert_eq!(dump(&ws.db()).await, exported);
}

/// A database only backstop ever migrated gets sqlx's table, and sqlx's migrator then applies
/// the migration that comes after.
#[tokio::test]
async fn a_database_backstop_migrated_goes_to_sqlx() {
    let ws = Workspace::new();
    let all = sqlx_dir(&ws);
    let pool = ws.pool().await;
    Migrator::new(Source::from_dir(without(&ws, &long_lived(), "021")).unwrap())
        .migrate(&pool)
        .await
        .unwrap();
    // Through the command line.
    pool.close().await;
    let out = std::process::Command::new(cli())
        .env_remove("DATABASE_URL")
        .arg("--migrations")
        .arg(ws.path().join("without-021"))
        .arg("--database")
        .arg(ws.db())
        .args(["--json", "export-sqlx"])
        .output()
        .unwrap();
    let report = success_json(&out);
    let written: Vec<i64> = serde_json::from_value(report["written"].clone()).unwrap();
    assert_eq!(written, (1..=20).collect::<Vec<i64>>());
    let pool = ws.pool().await;
    let index = "SELECT count(*) FROM sqlite_master WHERE name = 'labels_by_name'";
    assert_eq!(query_i64(&ws.db(), index).await, 0);
    sqlx_run(&all, &pool).await.unwrap();
    assert_eq!(query_i64(&ws.db(), index).await, 1, "sqlx applied 021");
    let sqlx_applied = "SELECT count(*) FROM _sqlx_migrations WHERE version = 21 \
                        AND execution_time >= 0";
    assert_eq!(query_i64(&ws.db(), sqlx_applied).await, 1, "sqlx ran 021");
}

/// Applied versions the migrations given to backstop lack (a newer build's): refused in one
/// list, and nothing changes (no sqlx table, no backup).
#[tokio::test]
async fn versions_sqlx_could_not_read_are_refused_in_one_list() {
    let ws = Workspace::new();
    let pool = ws.pool().await;
    backstop().migrate(&pool).await.unwrap();
    let backups = ws.backup_files();
    let before = dump(&ws.db()).await;
    let fewer = without(&ws, &without(&ws, &long_lived(), "021"), "020");
    let older = Migrator::new(Source::from_dir(fewer).unwrap()).allow_newer_database();
    let err = older.export_sqlx(&pool).await.unwrap_err();
    match &err {
        Error::SqlxExportRefused { versions, .. } => {
            let listed: Vec<i64> = versions.iter().map(|(v, _)| *v).collect();
            assert_eq!(listed, [20, 21], "{err}");
        }
        other => panic!("{other}"),
    }
    assert_eq!(err.kind(), "sqlx_export_refused");
    assert!(err.to_string().contains("sqlx could not read"), "{err}");
    assert_eq!(dump(&ws.db()).await, before);
    assert_eq!(ws.backup_files(), backups);
}

/// A row of sqlx's whose migration backstop rolled back (its effect absent) is removed; one
/// that sqlx applied after an export (its effect present) is refused: import it first.
#[tokio::test]
async fn stale_sqlx_rows_go_and_rows_sqlx_applied_are_refused() {
    let ws = Workspace::new();
    let all = sqlx_dir(&ws);
    let pool = migrated_by_sqlx(&ws).await;
    backstop().import_sqlx(&pool).await.unwrap();
    backstop()
        .rollback(&pool, 20, RollbackStrategy::Scripts)
        .await
        .unwrap();
    let report = backstop().export_sqlx(&pool).await.unwrap();
    assert_eq!(report.removed, [21]);
    assert!(report.written.is_empty());
    // sqlx applies 021 again, itself.
    sqlx_run(&all, &pool).await.unwrap();
    let before = dump(&ws.db()).await;
    let err = backstop().export_sqlx(&pool).await.unwrap_err();
    assert!(
        matches!(&err, Error::SqlxExportRefused { versions, .. } if versions[0].0 == 21),
        "{err}"
    );
    assert!(err.to_string().contains("import-sqlx"), "{err}");
    assert_eq!(dump(&ws.db()).await, before);
}
