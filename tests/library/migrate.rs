//! The runner on real files: fresh databases, adoption, failures that leave nothing behind,
//! refusals, backups under concurrent writers, foreign keys and concurrent migrators.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::common::*;
use backstop::{Error, MigrationAction, MigrationState, Migrator};
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

/// Two migrations: a table with rows, then a column.
fn two_migrations(ws: &Workspace) {
    ws.migration(
        "001_people",
        "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n\
         INSERT INTO people (name) VALUES ('ada'), ('grace');\n",
        "DROP TABLE people;\n",
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'people';\n",
    );
    ws.migration(
        "002_people_email",
        "ALTER TABLE people ADD COLUMN email TEXT;\n",
        "ALTER TABLE people DROP COLUMN email;\n",
        "SELECT count(*) FROM pragma_table_info('people') WHERE name = 'email';\n",
    );
}

#[tokio::test]
async fn fresh_database_is_migrated_with_history_and_no_backup_of_nothing() {
    let ws = Workspace::new();
    two_migrations(&ws);
    let pool = ws.pool().await;
    let report = ws.migrator().migrate(&pool).await.unwrap();

    assert_eq!((report.from_version, report.to_version), (0, 2));
    let actions: Vec<_> = report.migrations.iter().map(|m| m.action).collect();
    assert_eq!(
        actions,
        [MigrationAction::Applied, MigrationAction::Applied]
    );
    assert_eq!(
        history(&ws.db()).await,
        [(1, "applied".into()), (2, "applied".into())]
    );
    assert_eq!(query_i64(&ws.db(), "SELECT count(*) FROM people").await, 2);
    // A new database holds nothing a backup could give back: none is written, and no backup
    // directory is made (before: a backup of the empty file).
    assert_eq!(report.backup, None);
    assert!(!ws.backups_dir().exists());
}

/// A database at version 0 that holds anything (a table of its own, or only a `user_version`)
/// is backed up before it is migrated.
#[tokio::test]
async fn a_database_at_version_0_that_holds_something_is_backed_up() {
    for (what, sql) in [
        ("a table", "CREATE TABLE notes (body TEXT)"),
        ("a user_version", "PRAGMA user_version = 7"),
    ] {
        let ws = Workspace::new();
        two_migrations(&ws);
        let mut conn = connect(&ws.db()).await;
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
        let pool = ws.pool().await;
        let report = ws.migrator().migrate(&pool).await.unwrap();
        let backup = report.backup.expect(what);
        assert!(backup.starts_with(ws.backups_dir()), "{}", backup.display());
        assert!(
            backup
                .file_name()
                .unwrap()
                .to_string_lossy()
                .contains("-v0-migrate"),
            "{}",
            backup.display()
        );
        // The backup is the pre-migration database and opens on its own.
        let held = "SELECT (SELECT count(*) FROM sqlite_master) + \
                    (SELECT user_version FROM pragma_user_version)";
        assert!(query_i64(&backup, held).await > 0, "{what}");
        assert_eq!(
            query_i64(
                &backup,
                "SELECT count(*) FROM sqlite_master WHERE name = 'people'"
            )
            .await,
            0
        );
        assert_eq!(ws.backup_files().len(), 1, "{:?}", ws.backup_files());
    }
}

#[tokio::test]
async fn nothing_pending_takes_no_lock_and_writes_no_backup() {
    let ws = Workspace::new();
    two_migrations(&ws);
    let pool = ws.pool().await;
    ws.migrator().migrate(&pool).await.unwrap();
    let backups = ws.backup_files();
    let before = content_hash(&ws.db()).await;

    // Another writer holds the write lock: a run with nothing to do must not wait for it.
    let mut writer = connect(&ws.db()).await;
    sqlx::raw_sql("BEGIN IMMEDIATE")
        .execute(&mut writer)
        .await
        .unwrap();
    let migrator = ws.migrator().busy_timeout(Duration::from_millis(200));
    let report = migrator.migrate(&pool).await.unwrap();
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut writer)
        .await
        .unwrap();

    assert!(report.is_up_to_date());
    assert_eq!((report.from_version, report.to_version), (2, 2));
    assert_eq!(report.backup, None);
    assert_eq!(ws.backup_files(), backups);
    assert_eq!(content_hash(&ws.db()).await, before);
}

#[tokio::test]
async fn a_present_effect_is_adopted_not_rerun() {
    let ws = Workspace::new();
    two_migrations(&ws);
    // The application already created the table, with its own rows.
    exec(
        &ws.db(),
        "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n\
         INSERT INTO people (name) VALUES ('linus');",
    )
    .await;
    let pool = ws.pool().await;
    let report = ws.migrator().migrate(&pool).await.unwrap();

    let actions: Vec<_> = report.migrations.iter().map(|m| m.action).collect();
    assert_eq!(
        actions,
        [MigrationAction::Adopted, MigrationAction::Applied]
    );
    assert_eq!(
        history(&ws.db()).await,
        [(1, "adopted".into()), (2, "applied".into())]
    );
    // 001's INSERT did not run.
    assert_eq!(query_i64(&ws.db(), "SELECT count(*) FROM people").await, 1);
}

#[tokio::test]
async fn a_failing_second_migration_leaves_the_database_unchanged() {
    let ws = Workspace::new();
    two_migrations(&ws);
    ws.migration(
        "003_broken",
        "CREATE TABLE audit (id INTEGER PRIMARY KEY);\n\
         INSERT INTO audit VALUES (1);\n\
         INSERT INTO no_such_table VALUES (1);\n",
        "DROP TABLE audit;\n",
        "SELECT count(*) FROM sqlite_master WHERE name = 'audit';\n",
    );
    exec(
        &ws.db(),
        "CREATE TABLE app (x); INSERT INTO app VALUES (42);",
    )
    .await;
    let before = dump(&ws.db()).await;
    let pool = ws.pool().await;

    let err = ws.migrator().migrate(&pool).await.unwrap_err();
    match &err {
        Error::Statement {
            version,
            path,
            line,
            statement,
            ..
        } => {
            assert_eq!(*version, 3);
            assert!(path.ends_with("003_broken.sql"), "{}", path.display());
            assert_eq!(*line, 3);
            assert!(statement.contains("no_such_table"), "{statement}");
        }
        other => panic!("unexpected error: {other}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("003_broken.sql") && message.contains("no such table"),
        "{message}"
    );

    assert_eq!(dump(&ws.db()).await, before, "content changed");
    assert!(history(&ws.db()).await.is_empty());
    // The backup of the failed run duplicated the unchanged database: it is gone.
    assert!(
        ws.backup_files().iter().all(|f| !f.contains("backup-")),
        "{:?}",
        ws.backup_files()
    );
}

#[tokio::test]
async fn a_probe_that_still_says_0_fails_the_run() {
    let ws = Workspace::new();
    ws.migration(
        "001_creates_the_wrong_table",
        "CREATE TABLE wrong (x);\n",
        "DROP TABLE wrong;\n",
        "SELECT count(*) FROM sqlite_master WHERE name = 'right';\n",
    );
    let pool = ws.pool().await;
    let before = dump(&ws.db()).await;
    let err = ws.migrator().migrate(&pool).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::ProbeNotConfirmed {
                version: 1,
                value: 0,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("001_creates_the_wrong_table.probe.sql"),
        "{err}"
    );
    assert_eq!(dump(&ws.db()).await, before);
}

#[tokio::test]
async fn a_modified_applied_migration_is_refused() {
    let ws = Workspace::new();
    two_migrations(&ws);
    let pool = ws.pool().await;
    ws.migrator().migrate(&pool).await.unwrap();
    let before = dump(&ws.db()).await;

    ws.write(
        "001_people.sql",
        "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT);\n",
    );
    ws.migration(
        "003_more",
        "CREATE TABLE more (x);\n",
        "DROP TABLE more;\n",
        "SELECT count(*) FROM sqlite_master WHERE name = 'more';\n",
    );
    let err = ws.migrator().migrate(&pool).await.unwrap_err();
    assert!(
        matches!(err, Error::ChecksumMismatch { version: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("001_people.sql"), "{err}");
    assert_eq!(dump(&ws.db()).await, before);

    let status = ws.migrator().status(&pool).await.unwrap();
    assert_eq!(status.migrations[0].checksum_ok, Some(false));
    assert!(!status.is_clean());

    // Line endings alone are not a modification.
    let original = "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\r\n\
                    INSERT INTO people (name) VALUES ('ada'), ('grace');\r\n";
    ws.write("001_people.sql", original);
    ws.migrator().migrate(&pool).await.unwrap();
}

#[tokio::test]
async fn a_database_newer_than_the_build_is_refused() {
    let ws = Workspace::new();
    two_migrations(&ws);
    let pool = ws.pool().await;
    ws.migrator().migrate(&pool).await.unwrap();
    let before = dump(&ws.db()).await;

    std::fs::remove_file(ws.migrations_dir().join("002_people_email.sql")).unwrap();
    std::fs::remove_file(ws.migrations_dir().join("002_people_email.rollback.sql")).unwrap();
    std::fs::remove_file(ws.migrations_dir().join("002_people_email.probe.sql")).unwrap();
    let err = ws.migrator().migrate(&pool).await.unwrap_err();
    match &err {
        Error::UnknownVersions {
            versions,
            latest_known,
            ..
        } => assert_eq!((versions.as_slice(), *latest_known), ([2].as_slice(), 1)),
        other => panic!("unexpected error: {other}"),
    }
    assert!(err.to_string().contains("newer build"), "{err}");
    assert_eq!(dump(&ws.db()).await, before);
}

#[tokio::test]
async fn targets_go_up_only_and_must_exist() {
    let ws = Workspace::new();
    two_migrations(&ws);
    let pool = ws.pool().await;
    let report = ws.migrator().migrate_to(&pool, 1).await.unwrap();
    assert_eq!((report.from_version, report.to_version), (0, 1));
    assert_eq!(history(&ws.db()).await.len(), 1);

    let err = ws.migrator().migrate_to(&pool, 7).await.unwrap_err();
    assert!(
        matches!(err, Error::UnknownTarget { target: 7, .. }),
        "{err}"
    );
    ws.migrator().migrate(&pool).await.unwrap();
    let err = ws.migrator().migrate_to(&pool, 1).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::TargetBelowCurrent {
                target: 1,
                current: 2
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_migration_inserted_below_an_applied_one_is_refused() {
    let ws = Workspace::new();
    ws.migration(
        "002_b",
        "CREATE TABLE b (x);\n",
        "DROP TABLE b;\n",
        "SELECT count(*) FROM sqlite_master WHERE name = 'b';\n",
    );
    let pool = ws.pool().await;
    ws.migrator().migrate(&pool).await.unwrap();
    ws.migration(
        "001_a",
        "CREATE TABLE a (x);\n",
        "DROP TABLE a;\n",
        "SELECT count(*) FROM sqlite_master WHERE name = 'a';\n",
    );
    let err = ws.migrator().migrate(&pool).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::OutOfOrder {
                version: 1,
                current: 2,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn dry_run_rehearses_for_real_and_changes_nothing() {
    let ws = Workspace::new();
    two_migrations(&ws);
    exec(
        &ws.db(),
        "CREATE TABLE app (x); INSERT INTO app VALUES (1);",
    )
    .await;
    let before = dump(&ws.db()).await;
    let pool = ws.pool().await;

    let report = ws.migrator().dry_run().migrate(&pool).await.unwrap();
    assert!(report.dry_run);
    assert_eq!((report.from_version, report.to_version), (0, 2));
    let actions: Vec<_> = report.migrations.iter().map(|m| m.action).collect();
    assert_eq!(
        actions,
        [MigrationAction::WouldApply, MigrationAction::WouldApply]
    );
    assert!(
        report.migrations[0]
            .sql
            .as_deref()
            .unwrap()
            .contains("CREATE TABLE people")
    );
    assert_eq!(report.backup, None);
    assert_eq!(dump(&ws.db()).await, before);
    assert!(ws.backup_files().is_empty(), "{:?}", ws.backup_files());

    // A rehearsal runs the scripts, so it finds the errors a real run would.
    ws.migration(
        "003_broken",
        "INSERT INTO nowhere VALUES (1);\n",
        "SELECT 1;\n",
        "SELECT 0;\n",
    );
    let err = ws.migrator().dry_run().migrate(&pool).await.unwrap_err();
    assert!(matches!(err, Error::Statement { version: 3, .. }), "{err}");
    assert_eq!(dump(&ws.db()).await, before);

    // It predicts adoption too.
    exec(
        &ws.db(),
        "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL);",
    )
    .await;
    let report = ws.migrator().dry_run().migrate_to(&pool, 1).await.unwrap();
    assert_eq!(report.migrations[0].action, MigrationAction::WouldAdopt);
}

#[tokio::test]
async fn status_reports_states_probes_and_drift_without_writing() {
    let ws = Workspace::new();
    two_migrations(&ws);
    let pool = ws.pool().await;
    ws.migrator().migrate_to(&pool, 1).await.unwrap();
    let before = content_hash(&ws.db()).await;

    let status = ws.migrator().status(&pool).await.unwrap();
    assert_eq!(status.current_version, 1);
    assert_eq!(status.migrations.len(), 2);
    let first = &status.migrations[0];
    assert_eq!(
        (first.state, first.checksum_ok, first.probe, first.drift),
        (MigrationState::Applied, Some(true), Some(1), false)
    );
    let second = &status.migrations[1];
    assert_eq!(
        (second.state, second.checksum_ok, second.probe, second.drift),
        (MigrationState::Pending, None, Some(0), false)
    );
    assert!(!status.is_clean());

    // Pending but present is not drift (it will be adopted); applied but gone is.
    exec(&ws.db(), "ALTER TABLE people ADD COLUMN email TEXT;").await;
    let status = ws.migrator().status(&pool).await.unwrap();
    assert_eq!(
        (status.migrations[0].probe, status.migrations[0].drift),
        (Some(1), false)
    );
    assert_eq!(
        (status.migrations[1].probe, status.migrations[1].drift),
        (Some(1), false)
    );
    exec(&ws.db(), "DROP TABLE people;").await;
    let status = ws.migrator().status(&pool).await.unwrap();
    assert_eq!(
        (status.migrations[0].probe, status.migrations[0].drift),
        (Some(0), true)
    );
    assert_ne!(content_hash(&ws.db()).await, before);
    let after = content_hash(&ws.db()).await;
    ws.migrator().status(&pool).await.unwrap();
    assert_eq!(
        content_hash(&ws.db()).await,
        after,
        "status wrote to the database"
    );
}

#[tokio::test]
async fn probes_that_misbehave_are_refused_by_name() {
    let cases: &[(&str, &str)] = &[
        ("SELECT 1, 1;", "2 columns"),
        ("SELECT 1 WHERE 0;", "0 rows"),
        ("SELECT 'yes';", "TEXT"),
        ("SELECT NULL;", "NULL"),
        ("SELECT 2;", "returned 2"),
        ("SELECT * FROM (VALUES (1), (0));", "2 rows"),
        (
            "WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x RETURNING 1;",
            "readonly",
        ),
    ];
    for (probe, expected) in cases {
        let ws = Workspace::new();
        ws.migration("001_t", "CREATE TABLE t (x);\n", "DROP TABLE t;\n", probe);
        exec(&ws.db(), "CREATE TABLE t (x);").await;
        let before = dump(&ws.db()).await;
        let pool = ws.pool().await;
        let err = ws.migrator().migrate(&pool).await.unwrap_err();
        assert!(
            matches!(err, Error::Probe { version: 1, .. }),
            "{probe}: {err}"
        );
        let message = err.to_string();
        assert!(
            message.contains("001_t.probe.sql") && message.contains(expected),
            "{probe}: {message}"
        );
        assert_eq!(dump(&ws.db()).await, before, "{probe}");
    }
}

/// The backup is copied before the write lock is taken, while a writer keeps committing, and
/// brought up to date under the lock: it must hold exactly the state the migration started
/// from, in WAL and in rollback-journal mode.
#[tokio::test]
async fn the_backup_is_exactly_the_state_the_migration_started_from() {
    for journal in ["WAL", "DELETE"] {
        let ws = Workspace::new();
        exec(
            &ws.db(),
            &format!(
                "PRAGMA journal_mode = {journal};
                 CREATE TABLE events (id INTEGER PRIMARY KEY, at INTEGER, pad BLOB);
                 CREATE TABLE filler (x BLOB);
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3500)
                 INSERT INTO filler SELECT randomblob(4000) FROM n;"
            ),
        )
        .await;
        // The migration records how many events it saw, while a writer keeps committing.
        ws.migration(
            "001_snapshot",
            "CREATE TABLE seen AS SELECT count(*) AS n, max(id) AS last FROM events;\n",
            "DROP TABLE seen;\n",
            "SELECT count(*) FROM sqlite_master WHERE name = 'seen';\n",
        );
        let writer = Writer::start(
            &ws.db(),
            "INSERT INTO events (id, at, pad) VALUES (?1, ?1, randomblob(3000))",
        );
        writer.wait_for(200).await;
        let committed = writer.committed();
        // What the writer had committed when the copy began and when it ended.
        let during = Arc::new(std::sync::Mutex::new(Vec::new()));
        let migrator = {
            let (during, committed) = (during.clone(), committed.clone());
            ws.migrator().on_backup_progress(move |_| {
                during
                    .lock()
                    .unwrap()
                    .push(committed.load(Ordering::Relaxed));
            })
        };
        let pool = ws.pool().await;
        let report = migrator.migrate(&pool).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let last = writer.stop().await;

        let backup = report.backup.unwrap();
        let seen = query_i64(&ws.db(), "SELECT n FROM seen").await;
        let in_backup = query_i64(&backup, "SELECT count(*) FROM events").await;
        let last_in_backup = query_i64(&backup, "SELECT max(id) FROM events").await;
        let integrity: String = {
            let mut conn = connect(&backup).await;
            sqlx::query_scalar("PRAGMA integrity_check")
                .fetch_one(&mut conn)
                .await
                .unwrap()
        };
        assert_eq!(integrity, "ok", "{journal}");
        assert!(seen >= 200);
        assert_eq!(
            in_backup, seen,
            "{journal}: the backup and the migration saw different states"
        );
        assert_eq!(
            last_in_backup, in_backup,
            "{journal}: the backup is not a consistent prefix"
        );
        let during = during.lock().unwrap().clone();
        if journal == "WAL" {
            assert!(
                during.first() < during.last(),
                "{journal}: the writer should commit while the backup is copied: {during:?}"
            );
        }
        // Writes continued after the migration and are all in the live database.
        let total = query_i64(&ws.db(), "SELECT count(*) FROM events").await;
        assert_eq!(total, last, "{journal}");
        assert!(
            total > seen,
            "{journal}: the writer should have committed after the migration"
        );
        // The backup is one self-contained file in rollback-journal mode.
        let bytes = std::fs::read(&backup).unwrap();
        assert_eq!(&bytes[18..20], &[1, 1]);
        assert_eq!(
            ws.backup_files(),
            [backup.file_name().unwrap().to_string_lossy().into_owned()]
        );
    }
}

#[tokio::test]
async fn new_foreign_key_violations_fail_the_run_old_ones_do_not() {
    let ws = Workspace::new();
    exec(
        &ws.db(),
        "CREATE TABLE parent (id INTEGER PRIMARY KEY);\n\
         CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id));\n\
         INSERT INTO parent VALUES (1), (2);\n\
         INSERT INTO child VALUES (10, 1), (20, 2);\n",
    )
    .await;
    ws.migration(
        "001_drop_parent_2",
        "DELETE FROM parent WHERE id = 2;\nCREATE TABLE marker (x);\n",
        "DROP TABLE marker;\n",
        "SELECT count(*) FROM sqlite_master WHERE name = 'marker';\n",
    );
    let before = dump(&ws.db()).await;
    let pool = ws.pool().await;
    let err = ws.migrator().migrate(&pool).await.unwrap_err();
    match &err {
        Error::ForeignKeyViolation {
            versions,
            violations,
        } => {
            assert_eq!(versions, &[1]);
            assert_eq!(violations.len(), 1);
            assert_eq!(
                (violations[0].table.as_str(), violations[0].rowid),
                ("child", Some(20))
            );
        }
        other => panic!("unexpected error: {other}"),
    }
    assert_eq!(dump(&ws.db()).await, before);

    // A violation that was already there is not the migration's fault; a table rebuild that
    // renumbers the offending row does not make it new either.
    exec(
        &ws.db(),
        "PRAGMA foreign_keys = OFF; DELETE FROM parent WHERE id = 2;",
    )
    .await;
    ws.write(
        "001_drop_parent_2.sql",
        "CREATE TABLE child_new (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id), note TEXT);\n\
         INSERT INTO child_new (id, parent_id) SELECT id + 100, parent_id FROM child;\n\
         DROP TABLE child;\n\
         ALTER TABLE child_new RENAME TO child;\n\
         CREATE TABLE marker (x);\n",
    );
    let report = ws.migrator().migrate(&pool).await.unwrap();
    assert_eq!(report.to_version, 1);
}

#[tokio::test]
async fn foreign_keys_are_off_during_the_run_and_the_pool_is_untouched() {
    let ws = Workspace::new();
    exec(
        &ws.db(),
        "CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT);\n\
         CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id) ON DELETE CASCADE);\n\
         INSERT INTO parent VALUES (1, 'a');\n\
         INSERT INTO child VALUES (10, 1);\n",
    )
    .await;
    // A table rebuild of the parent: with foreign keys on, DROP TABLE would cascade.
    ws.migration(
        "001_rebuild_parent",
        "CREATE TABLE parent_new (id INTEGER PRIMARY KEY, name TEXT NOT NULL DEFAULT '');\n\
         INSERT INTO parent_new SELECT id, name FROM parent;\n\
         DROP TABLE parent;\n\
         ALTER TABLE parent_new RENAME TO parent;\n",
        "SELECT 1;\n",
        "SELECT count(*) FROM pragma_table_info('parent') WHERE name = 'name' AND \"notnull\" = 1;\n",
    );
    let pool = ws.pool().await;
    ws.migrator().migrate(&pool).await.unwrap();
    assert_eq!(query_i64(&ws.db(), "SELECT count(*) FROM child").await, 1);
    let mut conn = pool.acquire().await.unwrap();
    let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(fk, 1, "the pool's connections keep foreign keys on");
}

#[tokio::test]
async fn a_writer_holding_the_lock_past_the_busy_timeout_gives_a_clear_error() {
    let ws = Workspace::new();
    two_migrations(&ws);
    exec(&ws.db(), "CREATE TABLE app (x);").await;
    let pool = ws.pool().await;
    let mut writer = connect(&ws.db()).await;
    sqlx::raw_sql("BEGIN IMMEDIATE")
        .execute(&mut writer)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let err = ws
        .migrator()
        .busy_timeout(Duration::from_millis(300))
        .migrate(&pool)
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "it hung");
    assert!(matches!(err, Error::Busy { .. }), "{err}");
    assert!(err.to_string().contains("app.sqlite3"), "{err}");
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut writer)
        .await
        .unwrap();
    writer.close().await.unwrap();
    assert!(history(&ws.db()).await.is_empty());
    assert!(ws.backup_files().is_empty());
}

#[tokio::test]
async fn eight_concurrent_migrators_one_applies_all_succeed() {
    let ws = Workspace::new();
    exec(&ws.db(), "PRAGMA journal_mode = WAL; CREATE TABLE app (x);").await;
    two_migrations(&ws);
    // A slow third migration makes the migrators overlap.
    ws.migration(
        "003_slow",
        "CREATE TABLE numbers AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000) SELECT i FROM n;\n",
        "DROP TABLE numbers;\n",
        "SELECT count(*) FROM sqlite_master WHERE name = 'numbers';\n",
    );
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (db, migrator) = (ws.db(), ws.migrator().busy_timeout(Duration::from_secs(60)));
        tasks.push(tokio::spawn(async move {
            let pool = pool(&db).await;
            migrator.migrate(&pool).await
        }));
    }
    let mut applied = 0;
    for task in tasks {
        let report = task.await.unwrap().expect("every migrator succeeds");
        assert_eq!(report.to_version, 3);
        if !report.migrations.is_empty() {
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
    assert_eq!(query_i64(&ws.db(), "SELECT count(*) FROM people").await, 2);
    let backups: Vec<_> = ws
        .backup_files()
        .into_iter()
        .filter(|f| f.contains("backup-"))
        .collect();
    assert_eq!(backups.len(), 1, "{backups:?}");
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_named() {
    let ws = Workspace::new();
    two_migrations(&ws);
    std::fs::write(
        ws.db(),
        b"this is a text file, not a database; it is long enough to have a header",
    )
    .unwrap();
    let pool = ws.pool().await;
    let err = ws.migrator().migrate(&pool).await.unwrap_err();
    assert!(matches!(err, Error::NotADatabase { .. }), "{err}");
    assert!(err.to_string().contains("app.sqlite3"), "{err}");
}

#[tokio::test]
async fn in_memory_databases_migrate_without_a_backup() {
    let ws = Workspace::new();
    two_migrations(&ws);
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .unwrap();
    let report = Migrator::new(ws.source()).migrate(&pool).await.unwrap();
    assert_eq!(report.to_version, 2);
    assert_eq!(report.backup, None);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM people")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 2);
}

#[tokio::test]
async fn status_reports_each_probe_even_when_others_misbehave() {
    let ws = Workspace::new();
    two_migrations(&ws);
    ws.migration(
        "003_two_rows",
        "CREATE TABLE c (x);\n",
        "DROP TABLE c;\n",
        "SELECT 1 UNION ALL SELECT 0;\n",
    );
    ws.migration(
        "004_missing_table",
        "CREATE TABLE d (x);\n",
        "DROP TABLE d;\n",
        "SELECT count(*) FROM no_such_table;\n",
    );
    let pool = ws.pool().await;
    ws.migrator().migrate_to(&pool, 2).await.unwrap();
    let status = ws.migrator().status(&pool).await.unwrap();
    let probes: Vec<_> = status
        .migrations
        .iter()
        .map(|m| {
            (
                m.version,
                m.probe,
                m.probe_error.clone().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(probes[0], (1, Some(1), String::new()));
    assert_eq!(probes[1], (2, Some(1), String::new()));
    assert_eq!((probes[2].0, probes[2].1), (3, None));
    assert!(probes[2].2.contains("2 rows"), "{probes:?}");
    assert_eq!((probes[3].0, probes[3].1), (4, None));
    assert!(probes[3].2.contains("no such table"), "{probes:?}");

    // Without the failing one, every probe still gets its own answer.
    for suffix in ["sql", "rollback.sql", "probe.sql"] {
        std::fs::remove_file(
            ws.migrations_dir()
                .join(format!("004_missing_table.{suffix}")),
        )
        .unwrap();
    }
    let status = ws.migrator().status(&pool).await.unwrap();
    assert_eq!(status.migrations.len(), 3);
    assert!(
        status.migrations[2]
            .probe_error
            .as_deref()
            .unwrap()
            .contains("2 rows")
    );
    assert_eq!(status.migrations[1].probe, Some(1));
}

/// A history table written by an older build (without the columns added since) is read as it
/// is, and brought up to the current definition by the next run that writes, keeping its rows.
#[tokio::test]
async fn an_older_builds_history_table_is_read_and_upgraded() {
    let ws = Workspace::new();
    two_migrations(&ws);
    let pool = ws.pool().await;
    ws.migrator().migrate_to(&pool, 1).await.unwrap();
    pool.close().await;
    // The table as the first release defined it, with the same row.
    exec(
        &ws.db(),
        "CREATE TABLE old_history (
             version      INTEGER PRIMARY KEY NOT NULL,
             description  TEXT    NOT NULL,
             checksum     TEXT    NOT NULL,
             applied_at   TEXT    NOT NULL,
             execution_ms INTEGER NOT NULL,
             method       TEXT    NOT NULL CHECK (method IN ('applied', 'adopted')),
             backup       TEXT
         );
         INSERT INTO old_history
             SELECT version, description, checksum, applied_at, execution_ms, method, backup
             FROM _backstop_migrations;
         DROP TABLE _backstop_migrations;
         ALTER TABLE old_history RENAME TO _backstop_migrations;",
    )
    .await;

    let pool = ws.pool().await;
    let status = ws.migrator().status(&pool).await.unwrap();
    assert_eq!((status.current_version, status.latest_version), (1, 2));
    let first = &status.migrations[0];
    assert_eq!(
        (first.state, first.checksum_ok, first.probe),
        (backstop::MigrationState::Applied, Some(true), Some(1)),
        "{status}"
    );
    let report = ws
        .migrator()
        .without_backups()
        .migrate(&pool)
        .await
        .unwrap();
    assert_eq!((report.from_version, report.to_version), (1, 2));
    pool.close().await;
    assert_eq!(
        history(&ws.db()).await,
        [(1, "applied".to_owned()), (2, "applied".to_owned())]
    );
    let columns = query_i64(
        &ws.db(),
        "SELECT count(*) FROM pragma_table_info('_backstop_migrations')
         WHERE name IN ('superseded_by', 'rollback_sql', 'probe_sql')",
    )
    .await;
    assert_eq!(columns, 3);
}

/// A pool whose options turn the journal off (`journal_mode = OFF`, set for speed by some
/// applications) would give the runner a transaction that cannot roll back: pages spilled to
/// the file before a failure would stay. The runner journals to a file for its run, so a failed
/// run leaves every row as it was (before, 18,280 of 20,001 rows stayed overwritten).
#[tokio::test]
async fn a_failed_run_on_a_pool_without_a_journal_changes_nothing() {
    use sqlx::sqlite::SqliteJournalMode;

    let ws = Workspace::new();
    ws.migration(
        "001_big",
        "CREATE TABLE big (id INTEGER PRIMARY KEY, b BLOB);\n\
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20001)\n\
         INSERT INTO big SELECT i, randomblob(100) FROM n;\n",
        "DROP TABLE big;\n",
        "SELECT count(*) FROM sqlite_master WHERE name = 'big';\n",
    );
    let options = SqliteConnectOptions::new()
        .filename(ws.db())
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Off)
        .pragma("cache_size", "10");
    let pool = SqlitePoolOptions::new()
        .connect_with(options)
        .await
        .unwrap();
    ws.migrator().migrate(&pool).await.unwrap();
    let before = content_hash(&ws.db()).await;
    let backups = ws.backup_files();

    ws.migration(
        "002_overwrite",
        "UPDATE big SET b = zeroblob(1000);\nINSERT INTO no_such_table VALUES (1);\n",
        "SELECT 1;\n",
        "SELECT count(*) = 0 FROM big WHERE length(b) = 100;\n",
    );
    let err = ws.migrator().migrate(&pool).await.unwrap_err();
    assert!(matches!(err, Error::Statement { version: 2, .. }), "{err}");
    pool.close().await;
    assert_eq!(
        content_hash(&ws.db()).await,
        before,
        "the failed run changed the database"
    );
    assert_eq!(ws.backup_files(), backups);
}

/// A checkpoint that truncates the log holds the write lock while it waits for another
/// connection's read transaction: a migrate that waits for the lock past its busy timeout says
/// so (before: "locked by another writer", and the migrator's own snapshot was the reader).
#[tokio::test]
async fn a_wait_for_a_checkpoint_is_reported_as_such() {
    let ws = Workspace::new();
    ws.people_migration();
    exec(
        &ws.db(),
        "PRAGMA journal_mode = WAL; CREATE TABLE t (x); INSERT INTO t VALUES (1);",
    )
    .await;
    // A reader holding a snapshot, then a commit after it: a truncating checkpoint must wait
    // for the reader, holding the write lock meanwhile.
    let mut reader = connect(&ws.db()).await;
    sqlx::raw_sql("BEGIN; SELECT count(*) FROM t;")
        .execute(&mut reader)
        .await
        .unwrap();
    exec(&ws.db(), "INSERT INTO t VALUES (2);").await;
    let checkpointer = {
        let db = ws.db();
        tokio::spawn(async move {
            let options = SqliteConnectOptions::new()
                .filename(&db)
                .busy_timeout(Duration::from_secs(5));
            let mut conn = sqlx::ConnectOptions::connect(&options).await.unwrap();
            let _: (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(&mut conn)
                .await
                .unwrap();
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pool = ws.pool().await;
    let err = ws
        .migrator()
        .busy_timeout(Duration::from_millis(300))
        .migrate(&pool)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Busy {
                holder: backstop::LockHolder::Checkpoint,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("checkpoint"), "{err}");
    sqlx::raw_sql("COMMIT").execute(&mut reader).await.unwrap();
    checkpointer.await.unwrap();
    assert_eq!(history(&ws.db()).await, []);
}
