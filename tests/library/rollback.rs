//! Rollback by restore and by scripts, the backup catalogue and retention, on real files.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::common::*;
use backstop::{Error, RollbackStrategy};
use sqlx::Connection;

const STRATEGIES: [RollbackStrategy; 2] = [RollbackStrategy::Backup, RollbackStrategy::Scripts];

/// An application database with data of its own, and three migrations that change it.
async fn setup(ws: &Workspace) {
    exec(
        &ws.db(),
        "PRAGMA journal_mode = WAL;\n\
         CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);\n\
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)\n\
         INSERT INTO notes SELECT i, printf('note %d: %s', i, hex(randomblob(40))) FROM n;\n",
    )
    .await;
    ws.migration(
        "001_tags",
        "CREATE TABLE tags (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL);\n\
         INSERT INTO tags (name) VALUES ('red'), ('green');\n",
        "DROP TABLE tags;\n",
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'tags';\n",
    );
    ws.migration(
        "002_notes_tag",
        "ALTER TABLE notes ADD COLUMN tag_id INTEGER REFERENCES tags(id);\n\
         UPDATE notes SET tag_id = 1 + id % 2;\n",
        "ALTER TABLE notes DROP COLUMN tag_id;\n",
        "SELECT count(*) FROM pragma_table_info('notes') WHERE name = 'tag_id';\n",
    );
    ws.migration(
        "003_notes_index",
        "CREATE INDEX notes_by_tag ON notes (tag_id);\n",
        "DROP INDEX notes_by_tag;\n",
        "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'notes_by_tag';\n",
    );
}

fn names(paths: &[PathBuf]) -> Vec<String> {
    paths
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// The names of this database's backups (foreign files with similar names excluded).
fn backup_names(ws: &Workspace) -> Vec<String> {
    ws.backup_files()
        .into_iter()
        .filter(|f| {
            f.starts_with("app.sqlite3.backup-")
                && (f.ends_with("-migrate.sqlite3") || f.ends_with("-rollback.sqlite3"))
                && f.contains("Z-v")
        })
        .collect()
}

#[tokio::test]
async fn round_trip_to_zero_by_each_strategy_restores_the_original_exactly() {
    for strategy in STRATEGIES {
        let ws = Workspace::new();
        setup(&ws).await;
        let original = dump(&ws.db()).await;
        let pool = ws.pool().await;
        ws.migrator().migrate(&pool).await.unwrap();
        let migrated = dump(&ws.db()).await;
        assert_ne!(migrated, original);

        let report = ws.migrator().rollback(&pool, 0, strategy).await.unwrap();
        assert_eq!(
            (report.from_version, report.to_version),
            (3, 0),
            "{strategy:?}"
        );
        assert_eq!(dump(&ws.db()).await, original, "{strategy:?}");
        let safety = report.safety_backup.expect("a safety backup");
        assert!(
            names(std::slice::from_ref(&safety))[0].contains("-v3-rollback"),
            "{}",
            safety.display()
        );
        assert_eq!(
            dump(&safety).await,
            migrated,
            "the safety backup holds the state before"
        );
        match strategy {
            RollbackStrategy::Backup => {
                let restored = report.restored_from.unwrap();
                assert!(names(&[restored])[0].contains("-v0-migrate"));
                assert!(report.discards_changes_since.is_some());
            }
            RollbackStrategy::Scripts => {
                assert_eq!(report.restored_from, None);
                let undone: Vec<i64> = report.rolled_back.iter().map(|m| m.version).collect();
                assert_eq!(undone, [3, 2, 1]);
            }
        }

        // And forward again, to the same content.
        ws.migrator().migrate(&pool).await.unwrap();
        assert_eq!(
            without_history(&dump(&ws.db()).await),
            without_history(&migrated),
            "{strategy:?}"
        );
    }
}

/// A dump without the history table's rows (their timestamps differ between runs).
fn without_history(dump: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in dump.lines() {
        if line.starts_with("-- ") {
            skipping = line.starts_with("-- _backstop_migrations:");
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[tokio::test]
async fn partial_rollbacks_stop_at_the_version_asked_for() {
    for strategy in STRATEGIES {
        let ws = Workspace::new();
        setup(&ws).await;
        let pool = ws.pool().await;
        ws.migrator().migrate_to(&pool, 1).await.unwrap();
        let at_one = dump(&ws.db()).await;
        ws.migrator().migrate(&pool).await.unwrap();
        let report = ws.migrator().rollback(&pool, 1, strategy).await.unwrap();
        assert_eq!(report.to_version, 1);
        assert_eq!(
            history(&ws.db()).await,
            [(1, "applied".into())],
            "{strategy:?}"
        );
        assert_eq!(dump(&ws.db()).await, at_one, "{strategy:?}");
    }
}

#[tokio::test]
async fn a_restore_discards_later_writes_and_the_safety_backup_keeps_them() {
    let ws = Workspace::new();
    setup(&ws).await;
    let pool = ws.pool().await;
    ws.migrator().migrate(&pool).await.unwrap();
    exec(
        &ws.db(),
        "INSERT INTO notes (id, body) VALUES (9999, 'written after the migration');",
    )
    .await;

    let report = ws
        .migrator()
        .rollback(&pool, 0, RollbackStrategy::Backup)
        .await
        .unwrap();
    assert_eq!(
        query_i64(&ws.db(), "SELECT count(*) FROM notes WHERE id = 9999").await,
        0
    );
    let safety = report.safety_backup.unwrap();
    assert_eq!(
        query_i64(&safety, "SELECT count(*) FROM notes WHERE id = 9999").await,
        1
    );

    // The scripts keep it.
    let ws = Workspace::new();
    setup(&ws).await;
    let pool = ws.pool().await;
    ws.migrator().migrate(&pool).await.unwrap();
    exec(
        &ws.db(),
        "INSERT INTO notes (id, body, tag_id) VALUES (9999, 'after', 1);",
    )
    .await;
    ws.migrator()
        .rollback(&pool, 0, RollbackStrategy::Scripts)
        .await
        .unwrap();
    assert_eq!(
        query_i64(&ws.db(), "SELECT count(*) FROM notes WHERE id = 9999").await,
        1
    );
}

#[tokio::test]
async fn readers_see_the_old_or_the_restored_content_never_a_mix() {
    let ws = Workspace::new();
    setup(&ws).await;
    let pool = ws.pool().await;
    ws.migrator().migrate(&pool).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (db, stop) = (ws.db(), stop.clone());
        tokio::spawn(async move {
            let mut conn = connect(&db).await;
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let mut tx = conn.begin().await.unwrap();
                let tables: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM sqlite_master WHERE name IN ('tags', '_backstop_migrations')",
                )
                .fetch_one(&mut *tx)
                .await
                .unwrap();
                let notes: i64 = sqlx::query_scalar("SELECT count(*) FROM notes")
                    .fetch_one(&mut *tx)
                    .await
                    .unwrap();
                let columns: i64 =
                    sqlx::query_scalar("SELECT count(*) FROM pragma_table_info('notes')")
                        .fetch_one(&mut *tx)
                        .await
                        .unwrap();
                tx.commit().await.unwrap();
                seen.push((tables, notes, columns));
                tokio::task::yield_now().await;
            }
            conn.close().await.unwrap();
            seen
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    ws.migrator()
        .rollback(&pool, 0, RollbackStrategy::Backup)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    stop.store(true, Ordering::Relaxed);
    let seen = reader.await.unwrap();
    assert!(
        seen.len() > 10,
        "the reader should have kept reading ({} reads)",
        seen.len()
    );
    let (old, new) = ((2, 2000, 3), (0, 2000, 2));
    assert!(
        seen.iter().all(|s| *s == old || *s == new),
        "a mixed state was seen: {seen:?}"
    );
    assert_eq!(seen.first(), Some(&old));
    assert_eq!(seen.last(), Some(&new));
}

#[tokio::test]
async fn a_corrupted_backup_is_refused_and_nothing_changes() {
    let ws = Workspace::new();
    setup(&ws).await;
    let pool = ws.pool().await;
    let report = ws.migrator().migrate(&pool).await.unwrap();
    let backup = report.backup.unwrap();
    // Overwrite the second page of the backup with garbage.
    let mut bytes = std::fs::read(&backup).unwrap();
    for b in &mut bytes[4096..8192] {
        *b = 0xA5;
    }
    std::fs::write(&backup, bytes).unwrap();
    let before = dump(&ws.db()).await;
    let files = ws.backup_files();

    let err = ws
        .migrator()
        .rollback(&pool, 0, RollbackStrategy::Backup)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Backup { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains(&*backup.file_name().unwrap().to_string_lossy()),
        "{message}"
    );
    assert!(message.contains("will not be restored"), "{message}");
    assert_eq!(dump(&ws.db()).await, before);
    assert_eq!(ws.backup_files(), files, "no safety backup is left behind");
    // The dry run says the same.
    let err = ws
        .migrator()
        .dry_run()
        .rollback(&pool, 0, RollbackStrategy::Backup)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Backup { .. }), "{err}");
}

#[tokio::test]
async fn a_backup_of_the_wrong_version_or_history_is_never_chosen() {
    let ws = Workspace::new();
    setup(&ws).await;
    let pool = ws.pool().await;
    ws.migrator().migrate_to(&pool, 1).await.unwrap();
    let report = ws.migrator().migrate(&pool).await.unwrap();
    // The backup taken before 002 holds version 1. Rename it to claim version 0.
    let v1 = report.backup.unwrap();
    let liar = ws.backups_dir().join(
        v1.file_name()
            .unwrap()
            .to_string_lossy()
            .replace("-v1-", "-v0-"),
    );
    std::fs::rename(&v1, &liar).unwrap();
    // Remove the real version-0 backup.
    for name in backup_names(&ws) {
        if ws.backups_dir().join(&name) != liar {
            std::fs::remove_file(ws.backups_dir().join(name)).unwrap();
        }
    }
    let before = dump(&ws.db()).await;
    let err = ws
        .migrator()
        .rollback(&pool, 0, RollbackStrategy::Backup)
        .await
        .unwrap_err();
    match &err {
        Error::NoBackup {
            version, available, ..
        } => {
            assert_eq!(*version, 0);
            assert_eq!(
                available,
                &[(liar.clone(), Some(1))],
                "the version is read from the file"
            );
        }
        other => panic!("unexpected error: {other}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("(version 1)") && message.contains("rollback scripts"),
        "{message}"
    );
    assert_eq!(dump(&ws.db()).await, before);

    // The liar does hold this database's version 1: it is the one a rollback to 1 restores.
    let liar_aside = ws.path().join("liar.sqlite3");
    std::fs::rename(&liar, &liar_aside).unwrap();

    // A backup of another database's history at the right version is skipped.
    let other = Workspace::new();
    setup(&other).await;
    let other_pool = other.pool().await;
    other.migrator().migrate_to(&other_pool, 1).await.unwrap();
    other.migrator().migrate(&other_pool).await.unwrap();
    let foreign_v1 = other
        .backup_files()
        .into_iter()
        .find(|f| f.contains("-v1-"))
        .unwrap();
    std::fs::copy(
        other.backups_dir().join(&foreign_v1),
        ws.backups_dir().join(&foreign_v1),
    )
    .unwrap();
    let err = ws
        .migrator()
        .rollback(&pool, 1, RollbackStrategy::Backup)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoBackup { version: 1, .. }), "{err}");
    assert_eq!(dump(&ws.db()).await, before);

    std::fs::rename(&liar_aside, &liar).unwrap();
    let report = ws
        .migrator()
        .rollback(&pool, 1, RollbackStrategy::Backup)
        .await
        .unwrap();
    assert_eq!(report.restored_from, Some(liar));
    assert_eq!(history(&ws.db()).await, [(1, "applied".into())]);
}

#[tokio::test]
async fn a_failing_rollback_script_leaves_the_database_unchanged() {
    let ws = Workspace::new();
    setup(&ws).await;
    let pool = ws.pool().await;
    ws.migrator().migrate(&pool).await.unwrap();
    ws.write(
        "002_notes_tag.rollback.sql",
        "ALTER TABLE notes DROP COLUMN tag_id;\nDELETE FROM no_such_table;\n",
    );
    let before = dump(&ws.db()).await;
    let files = ws.backup_files();
    let err = ws
        .migrator()
        .rollback(&pool, 0, RollbackStrategy::Scripts)
        .await
        .unwrap_err();
    match &err {
        Error::Statement {
            version,
            path,
            line,
            ..
        } => {
            assert_eq!((*version, *line), (2, 2));
            assert!(path.ends_with("002_notes_tag.rollback.sql"));
        }
        other => panic!("unexpected error: {other}"),
    }
    assert_eq!(dump(&ws.db()).await, before);
    assert_eq!(
        ws.backup_files(),
        files,
        "the safety backup of a failed run is removed"
    );

    // A rollback script that does not undo its migration is caught by the probe.
    ws.write(
        "002_notes_tag.rollback.sql",
        "UPDATE notes SET tag_id = NULL;\n",
    );
    let err = ws
        .migrator()
        .rollback(&pool, 0, RollbackStrategy::Scripts)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::ProbeNotConfirmed {
                version: 2,
                value: 1,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("002_notes_tag.rollback.sql"),
        "{err}"
    );
    assert_eq!(dump(&ws.db()).await, before);
}

#[tokio::test]
async fn adopted_migrations_roll_back_by_script_like_any_other() {
    let ws = Workspace::new();
    setup(&ws).await;
    exec(
        &ws.db(),
        "CREATE TABLE tags (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL);\n\
         INSERT INTO tags VALUES (1, 'one'), (2, 'two');",
    )
    .await;
    let pool = ws.pool().await;
    let report = ws.migrator().migrate(&pool).await.unwrap();
    assert_eq!(
        report.migrations[0].action,
        backstop::MigrationAction::Adopted
    );
    ws.migrator()
        .rollback(&pool, 0, RollbackStrategy::Scripts)
        .await
        .unwrap();
    assert_eq!(
        query_i64(
            &ws.db(),
            "SELECT count(*) FROM sqlite_master WHERE name = 'tags'"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn nothing_to_do_dry_runs_and_unknown_versions() {
    let ws = Workspace::new();
    setup(&ws).await;
    let pool = ws.pool().await;
    ws.migrator().migrate_to(&pool, 1).await.unwrap();
    ws.migrator().migrate_to(&pool, 2).await.unwrap();
    let before = dump(&ws.db()).await;
    let files = ws.backup_files();

    for to in [2, 3, 10] {
        let report = ws
            .migrator()
            .rollback(&pool, to, RollbackStrategy::Backup)
            .await
            .unwrap();
        assert!(report.is_noop() && report.safety_backup.is_none(), "{to}");
    }
    for strategy in STRATEGIES {
        let report = ws
            .migrator()
            .dry_run()
            .rollback(&pool, 1, strategy)
            .await
            .unwrap();
        assert!(report.dry_run);
        assert_eq!((report.from_version, report.to_version), (2, 1));
        assert_eq!(report.safety_backup, None);
        assert_eq!(dump(&ws.db()).await, before, "{strategy:?}");
        assert_eq!(ws.backup_files(), files, "{strategy:?}");
    }
    let err = ws
        .migrator()
        .rollback(&pool, -1, RollbackStrategy::Scripts)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::VersionNotApplied { version: -1, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn retention_keeps_exactly_k_and_never_touches_other_files() {
    let ws = Workspace::new();
    setup(&ws).await;
    std::fs::create_dir_all(ws.backups_dir()).unwrap();
    let foreign = [
        "notes.txt",
        "app.sqlite3.backup-garbage.sqlite3",
        "app.sqlite3.backup-20200101T000000000000Z-v0-migrate.sqlite3.bak",
        "other.sqlite3.backup-20200101T000000000000Z-v0-migrate.sqlite3",
    ];
    for name in foreign {
        std::fs::write(ws.backups_dir().join(name), "not ours").unwrap();
    }
    let pool = ws.pool().await;
    let migrator = ws.migrator().keep_backups(2);
    for _ in 0..3 {
        migrator.migrate(&pool).await.unwrap();
        migrator
            .rollback(&pool, 0, RollbackStrategy::Scripts)
            .await
            .unwrap();
    }
    let report = migrator.migrate(&pool).await.unwrap();
    let ours = backup_names(&ws);
    assert_eq!(ours.len(), 2, "{ours:?}");
    let newest = report.backup.unwrap();
    assert!(
        ours.contains(&names(&[newest])[0]),
        "the run's own backup is kept: {ours:?}"
    );
    for name in foreign {
        assert!(ws.backups_dir().join(name).exists(), "{name} was touched");
    }
    // The catalogue lists them newest first, with what they hold.
    let listed = migrator.backups(&pool).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed[0].taken_at >= listed[1].taken_at);
    assert_eq!(listed[0].version, Some(0));
    assert_eq!(listed[0].reason, backstop::BackupReason::Migrate);
    assert_eq!(listed[1].reason, backstop::BackupReason::Rollback);
    assert_eq!(listed[1].version, Some(3));
    assert!(listed.iter().all(|b| b.size >= 4096));
}

#[tokio::test]
async fn interrupted_backups_are_never_listed_and_are_cleaned_up() {
    let ws = Workspace::new();
    setup(&ws).await;
    let pool = ws.pool().await;
    let first = ws
        .migrator()
        .migrate_to(&pool, 1)
        .await
        .unwrap()
        .backup
        .unwrap();
    // A temporary file of this database (its names carry the database's tag).
    let tag = names(&[first])[0].split('-').nth(1).unwrap().to_owned();
    let partial: PathBuf = ws.backups_dir().join(format!(
        ".app.sqlite3.backup-{tag}-20261124T000000000000Z-v1-migrate.partial"
    ));
    std::fs::write(&partial, b"half a database").unwrap();
    let listed = ws.migrator().backups(&pool).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(!listed[0].path.to_string_lossy().contains("partial"));
    ws.migrator().migrate(&pool).await.unwrap();
    assert!(!partial.exists(), "the next run removes it");
}

#[tokio::test]
async fn the_cli_rolls_back_and_lists_backups() {
    let ws = Workspace::new();
    setup(&ws).await;
    let db = ws.db().to_string_lossy().into_owned();
    let run = |args: &[&str]| {
        std::process::Command::new(cli())
            .env_remove("DATABASE_URL")
            .arg("--database")
            .arg(&db)
            .arg("--migrations")
            .arg(ws.migrations_dir())
            .args(args)
            .output()
            .unwrap()
    };
    assert!(run(&["migrate", "--target", "1"]).status.success());
    assert!(run(&["migrate"]).status.success());
    let out = run(&["--json", "rollback", "--to-version", "1"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["from_version"], 3);
    assert_eq!(report["to_version"], 1);
    assert_eq!(report["strategy"], "backup");
    assert!(
        report["restored_from"]
            .as_str()
            .unwrap()
            .contains("-v1-migrate")
    );
    assert!(
        report["safety_backup"]
            .as_str()
            .unwrap()
            .contains("-v3-rollback")
    );

    let out = run(&["rollback", "--to-version", "0", "--strategy", "scripts"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("rolled back    version 1 -> 0"), "{text}");

    let out = run(&["--json", "backups"]);
    let backups: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let first = &backups.as_array().unwrap()[0];
    for key in ["path", "version", "taken_at", "size", "reason"] {
        assert!(!first[key].is_null(), "{key}: {first}");
    }
    assert_eq!(first["reason"], "rollback");

    let out = run(&["rollback", "--to-version", "2"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("nothing to do"));

    // No backup for a version: exit 1, the backups listed, the scripts suggested.
    for name in backup_names(&ws) {
        std::fs::remove_file(ws.backups_dir().join(name)).unwrap();
    }
    assert!(run(&["migrate"]).status.success());
    std::fs::remove_file(ws.backups_dir().join(&backup_names(&ws)[0])).unwrap();
    let out = run(&["rollback", "--to-version", "0"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no backup") && err.contains("--strategy scripts"),
        "{err}"
    );

    // A missing database is an error, not created.
    let missing = Path::new(&db).with_file_name("missing.sqlite3");
    let out = std::process::Command::new(cli())
        .arg("--database")
        .arg(&missing)
        .args(["rollback", "--to-version", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(!missing.exists());
}

#[tokio::test]
async fn a_backup_taken_on_demand_is_listed_and_restorable() {
    let ws = Workspace::new();
    setup(&ws).await;
    let pool = ws.pool().await;
    ws.migrator().migrate_to(&pool, 2).await.unwrap();
    let at_two = dump(&ws.db()).await;
    let path = ws.migrator().backup(&pool).await.unwrap().path;
    assert!(
        names(std::slice::from_ref(&path))[0].contains("-v2-manual"),
        "{}",
        path.display()
    );
    assert_eq!(dump(&path).await, at_two);
    let listed = ws.migrator().backups(&pool).await.unwrap();
    assert_eq!(listed[0].path, path);
    assert_eq!(
        (listed[0].version, listed[0].reason),
        (Some(2), backstop::BackupReason::Manual)
    );

    // Without the newer backup the migration takes, the manual one is the one restored.
    let migrated = ws.migrator().migrate(&pool).await.unwrap();
    std::fs::remove_file(migrated.backup.unwrap()).unwrap();
    let report = ws
        .migrator()
        .rollback(&pool, 2, RollbackStrategy::Backup)
        .await
        .unwrap();
    assert_eq!(report.restored_from, Some(path));
    assert_eq!(dump(&ws.db()).await, at_two);

    let err = ws
        .migrator()
        .without_backups()
        .backup(&pool)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Backup { .. }), "{err}");
}
