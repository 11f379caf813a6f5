//! Backups belong to one database, are no more readable than it, cannot be planted, are never
//! skipped in silence when broken, and can be restored by name; restores across page sizes and
//! journal modes. Through the library and the CLI, on real files.

mod copy;
mod identity;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, SystemTime};

use crate::common::*;
use backstop::{Error, RollbackStrategy};
use serde_json::Value;

/// A user id that is not the one running the tests (nobody).
const OTHER_UID: u32 = 65534;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Two migrations that change a table of the database's own.
pub(crate) fn migrations(ws: &Workspace) {
    ws.people_migration();
    ws.email_migration();
}

/// A database at `path` with a table of its own holding `marker`.
pub(crate) async fn database(path: &Path, marker: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    exec(
        path,
        &format!(
            "PRAGMA journal_mode = WAL; CREATE TABLE own (x); INSERT INTO own VALUES ('{marker}');"
        ),
    )
    .await;
}

pub(crate) async fn marker(path: &Path) -> String {
    let mut conn = connect(path).await;
    let x: String = sqlx::query_scalar("SELECT x FROM own")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    x
}

fn file_names(paths: &[PathBuf]) -> Vec<String> {
    paths
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

pub(crate) fn run_cli(ws: &Workspace, db: &Path, backups: Option<&Path>, args: &[&str]) -> Output {
    let mut command = std::process::Command::new(cli());
    command
        .current_dir(ws.path())
        .env_remove("DATABASE_URL")
        .arg("--database")
        .arg(db)
        .arg("--migrations")
        .arg(ws.migrations_dir());
    if let Some(dir) = backups {
        command.arg("--backup-dir").arg(dir);
    }
    command.args(args).output().unwrap()
}

fn json_err(out: &Output) -> Value {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {stderr}"))
}

// ----- 1. one database, its own backups -------------------------------------------------------

#[tokio::test]
async fn two_databases_with_one_file_name_never_see_each_others_backups() {
    let ws = Workspace::new();
    migrations(&ws);
    let shared = ws.path().join("shared-backups");
    let (a, b) = (
        ws.path().join("A/sessions.sqlite3"),
        ws.path().join("B/sessions.sqlite3"),
    );
    database(&a, "A").await;
    database(&b, "B").await;
    let migrator = ws.migrator().backup_dir(&shared).keep_backups(1);
    let (pool_a, pool_b) = (pool(&a).await, pool(&b).await);

    let backup_a = migrator.migrate(&pool_a).await.unwrap().backup.unwrap();
    // B's run must neither prune A's only backup nor take it for one of its own.
    let backup_b = migrator.migrate(&pool_b).await.unwrap().backup.unwrap();
    assert!(backup_a.exists(), "B's retention removed A's only backup");
    let listed = |list: Vec<backstop::BackupInfo>| -> Vec<PathBuf> {
        list.into_iter().map(|b| b.path).collect()
    };
    assert_eq!(
        listed(migrator.backups(&pool_a).await.unwrap()),
        vec![backup_a.clone()]
    );
    assert_eq!(
        listed(migrator.backups(&pool_b).await.unwrap()),
        vec![backup_b]
    );

    // At version 0 both histories are empty: only the tag tells them apart.
    migrator
        .rollback(&pool_b, 0, RollbackStrategy::Backup)
        .await
        .unwrap();
    assert_eq!(marker(&b).await, "B");
    assert_eq!(history(&b).await, []);
    migrator
        .rollback(&pool_a, 0, RollbackStrategy::Backup)
        .await
        .unwrap();
    assert_eq!(marker(&a).await, "A");

    // A's leftover temporary file is A's: B's next run leaves it alone; A's removes it.
    let a_partial = shared.join(format!(
        ".{}",
        file_names(std::slice::from_ref(&backup_a))[0]
            .strip_suffix(".sqlite3")
            .unwrap()
            .to_owned()
            + ".partial"
    ));
    std::fs::write(&a_partial, b"A was writing this").unwrap();
    migrator.migrate(&pool_b).await.unwrap();
    assert!(a_partial.exists(), "B's run removed A's temporary file");
    migrator.migrate(&pool_a).await.unwrap();
    assert!(!a_partial.exists(), "A's run left its own leftover");

    // The CLI sees the same.
    let out = run_cli(&ws, &b, Some(&shared), &["--json", "backups"]);
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    for backup in list.as_array().unwrap() {
        let path = backup["path"].as_str().unwrap();
        assert!(
            !migrator
                .backups(&pool_a)
                .await
                .unwrap()
                .iter()
                .any(|x| x.path == Path::new(path)),
            "B's listing shows A's {path}"
        );
    }
}

#[tokio::test]
async fn a_moved_database_keeps_its_backups_and_a_copy_has_none() {
    let ws = Workspace::new();
    migrations(&ws);
    let db = ws.path().join("here/app.sqlite3");
    database(&db, "original").await;
    {
        let pool = pool(&db).await;
        ws.migrator().migrate(&pool).await.unwrap();
        pool.close().await;
    }
    // The directory moves, backups/ beside the database with it.
    let moved_dir = ws.path().join("there");
    std::fs::rename(ws.path().join("here"), &moved_dir).unwrap();
    let moved = moved_dir.join("app.sqlite3");
    let pool = pool(&moved).await;
    assert_eq!(ws.migrator().backups(&pool).await.unwrap().len(), 1);
    // A copy is another database.
    let copy_dir = ws.path().join("copy");
    std::fs::create_dir(&copy_dir).unwrap();
    std::fs::create_dir(copy_dir.join("backups")).unwrap();
    let copy = copy_dir.join("app.sqlite3");
    std::fs::copy(&moved, &copy).unwrap();
    for entry in std::fs::read_dir(moved_dir.join("backups")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(
            entry.path(),
            copy_dir.join("backups").join(entry.file_name()),
        )
        .unwrap();
    }
    let copy_pool = crate::common::pool(&copy).await;
    assert_eq!(ws.migrator().backups(&copy_pool).await.unwrap().len(), 0);
    let err = ws
        .migrator()
        .rollback(&copy_pool, 0, RollbackStrategy::Backup)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoBackup { .. }), "{err}");
}

#[tokio::test]
async fn untagged_backups_are_listed_but_never_chosen_nor_pruned() {
    let ws = Workspace::new();
    migrations(&ws);
    database(&ws.db(), "mine").await;
    let pool = ws.pool().await;
    let migrator = ws.migrator().keep_backups(1);
    let ours = migrator.migrate_to(&pool, 1).await.unwrap().backup.unwrap();
    // An older build's name for the same file: no tag.
    let name = file_names(std::slice::from_ref(&ours))[0].clone();
    let (prefix, rest) = name.split_once(".backup-").unwrap();
    let untagged = ws.backups_dir().join(format!(
        "{prefix}.backup-{}",
        rest.split_once('-').unwrap().1
    ));
    std::fs::rename(&ours, &untagged).unwrap();

    let listed = migrator.backups(&pool).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].untagged && listed[0].version == Some(0));
    let err = migrator
        .rollback(&pool, 0, RollbackStrategy::Backup)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoBackup { .. }), "{err}");
    migrator.migrate(&pool).await.unwrap();
    assert!(untagged.exists(), "retention removed an untagged backup");
    // By name: renamed, it is no longer the first backup the database names, and at version 0
    // it holds no history to compare: restored only when the user says so.
    let err = migrator.restore_file(&pool, &untagged).await.unwrap_err();
    assert_eq!(err.kind(), "foreign_backup", "{err}");
    let report = migrator
        .clone()
        .restore_foreign_files()
        .restore_file(&pool, &untagged)
        .await
        .unwrap();
    assert_eq!((report.from_version, report.to_version), (2, 0));
    assert_eq!(history(&ws.db()).await, []);
}

#[tokio::test]
async fn untagged_temporary_files_are_removed_once_an_hour_old() {
    let ws = Workspace::new();
    migrations(&ws);
    database(&ws.db(), "mine").await;
    let pool = ws.pool().await;
    ws.migrator().migrate_to(&pool, 1).await.unwrap();
    let fresh = ws
        .backups_dir()
        .join(".app.sqlite3.backup-20261124T000000000000Z-v1-migrate.partial");
    let old = ws
        .backups_dir()
        .join(".app.sqlite3.backup-20261123T000000000000Z-v1-migrate.partial");
    for path in [&fresh, &old] {
        std::fs::write(path, b"an older build's half backup").unwrap();
    }
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(7200))
        .unwrap();
    ws.migrator().migrate(&pool).await.unwrap();
    assert!(fresh.exists(), "a fresh untagged file may be another run's");
    assert!(!old.exists());
}

// ----- 2. permissions -------------------------------------------------------------------------

#[tokio::test]
async fn backups_are_never_more_readable_than_the_database() {
    for (db_mode, file_mode, dir_mode) in [(0o600, 0o600, 0o700), (0o640, 0o640, 0o750)] {
        let ws = Workspace::new();
        migrations(&ws);
        database(&ws.db(), "private").await;
        set_mode(&ws.db(), db_mode);
        let deep = ws.path().join("x/y/z");
        let pool = ws.pool().await;
        let migrator = ws.migrator();
        let migrated = migrator.migrate_to(&pool, 1).await.unwrap().backup.unwrap();
        let manual = migrator.backup(&pool).await.unwrap().path;
        let safety = migrator
            .rollback(&pool, 0, RollbackStrategy::Scripts)
            .await
            .unwrap()
            .safety_backup
            .unwrap();
        let elsewhere = migrator
            .clone()
            .backup_dir(&deep)
            .backup(&pool)
            .await
            .unwrap()
            .path;
        for file in [&migrated, &manual, &safety, &elsewhere] {
            assert_eq!(mode(file), file_mode, "{}", file.display());
        }
        assert_eq!(mode(&ws.backups_dir()), dir_mode);
        for dir in ["x", "x/y", "x/y/z"] {
            assert_eq!(mode(&ws.path().join(dir)), dir_mode, "{dir}");
        }
    }
}

#[tokio::test]
async fn a_failed_run_removes_every_directory_it_created() {
    let ws = Workspace::new();
    migrations(&ws);
    ws.write(
        "003_broken.sql",
        "CREATE TABLE broken (x);\nSELECT * FROM nowhere;\n",
    );
    ws.write("003_broken.rollback.sql", "DROP TABLE broken;\n");
    ws.write(
        "003_broken.probe.sql",
        "SELECT count(*) FROM sqlite_master WHERE name = 'broken';\n",
    );
    database(&ws.db(), "x").await;
    let pool = ws.pool().await;
    let deep = ws.path().join("x/y/z");
    let err = ws
        .migrator()
        .backup_dir(&deep)
        .migrate(&pool)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Statement { version: 3, .. }), "{err}");
    assert!(
        !ws.path().join("x").exists(),
        "left {:?}",
        list_dir(&ws.path().join("x"))
    );
}

#[tokio::test]
async fn a_backup_directory_another_user_could_write_is_refused() {
    let ws = Workspace::new();
    migrations(&ws);
    database(&ws.db(), "x").await;
    let pool = ws.pool().await;
    let dir = ws.backups_dir();
    ws.migrator().migrate_to(&pool, 1).await.unwrap();
    let files = list_dir(&dir);

    let mut cases = vec![(0o777, None, "writable by group or others")];
    if running_as_root() {
        cases.push((0o755, Some(OTHER_UID), "belongs to another user"));
    } else {
        eprintln!("not root: the other-owner case needs chown and is skipped");
    }
    for (dir_mode, owner, problem) in cases {
        set_mode(&dir, dir_mode);
        if let Some(uid) = owner {
            std::os::unix::fs::chown(&dir, Some(uid), None).unwrap();
        }
        let before = dump(&ws.db()).await;
        for run in [
            ws.migrator().migrate(&pool).await.map(drop),
            ws.migrator().backup(&pool).await.map(drop),
            ws.migrator().backups(&pool).await.map(drop),
            ws.migrator()
                .rollback(&pool, 0, RollbackStrategy::Backup)
                .await
                .map(drop),
        ] {
            let err = run.unwrap_err();
            assert_eq!(err.kind(), "unsafe_backup_path", "{err}");
            let message = err.to_string();
            assert!(message.contains(&*dir.to_string_lossy()), "{message}");
            assert!(message.contains(problem), "{message}");
            if let Some(uid) = owner {
                assert!(message.contains(&format!("owner uid {uid}")), "{message}");
            }
        }
        assert_eq!(dump(&ws.db()).await, before);
        assert_eq!(list_dir(&dir), files);
        let out = run_cli(&ws, &ws.db(), None, &["--json", "migrate"]);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(json_err(&out)["kind"], "unsafe_backup_path");
    }
    // With the sticky bit, others may write the directory but not touch our files.
    if running_as_root() {
        std::os::unix::fs::chown(&dir, Some(0), None).unwrap();
    }
    set_mode(&dir, 0o1777);
    ws.migrator().migrate(&pool).await.unwrap();
}

#[tokio::test]
async fn a_planted_backup_is_never_listed_restored_or_removed() {
    if !running_as_root() {
        eprintln!("not root: planting a file owned by another user needs chown; skipped");
        return;
    }
    let ws = Workspace::new();
    migrations(&ws);
    database(&ws.db(), "real").await;
    let pool = ws.pool().await;
    let migrator = ws.migrator().keep_backups(1);
    let real = migrator.migrate(&pool).await.unwrap().backup.unwrap();
    // Another user's file, named as this database's backup from the year 2999, holding another
    // version-0 content; the directory lets others write (sticky, like /tmp).
    set_mode(&ws.backups_dir(), 0o1777);
    let name = file_names(std::slice::from_ref(&real))[0].clone();
    let stamp = name.split('-').nth(2).unwrap().to_owned();
    let planted = ws
        .backups_dir()
        .join(name.replace(&stamp, "29990101T000000000000Z"));
    let evil = ws.path().join("evil.sqlite3");
    database(&evil, "planted").await;
    exec(&evil, "PRAGMA journal_mode = DELETE").await;
    std::fs::copy(&evil, &planted).unwrap();
    std::os::unix::fs::chown(&planted, Some(OTHER_UID), None).unwrap();

    let listed = migrator.backups(&pool).await.unwrap();
    let listed: Vec<PathBuf> = listed.into_iter().map(|b| b.path).collect();
    assert_eq!(listed, vec![real.clone()]);
    migrator
        .rollback(&pool, 0, RollbackStrategy::Backup)
        .await
        .unwrap();
    assert_eq!(marker(&ws.db()).await, "real");
    migrator.migrate(&pool).await.unwrap();
    assert!(planted.exists(), "retention removed another user's file");
    std::fs::remove_file(&real).ok();
    for backup in migrator.backups(&pool).await.unwrap() {
        if backup.version == Some(0) {
            std::fs::remove_file(backup.path).unwrap();
        }
    }
    let err = migrator
        .rollback(&pool, 0, RollbackStrategy::Backup)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoBackup { .. }), "{err}");
    // Named explicitly, it is refused too.
    let err = migrator.restore_file(&pool, &planted).await.unwrap_err();
    assert_eq!(err.kind(), "unsafe_backup_path", "{err}");
    assert_eq!(marker(&ws.db()).await, "real");
}

// ----- 3. broken backups ----------------------------------------------------------------------

#[tokio::test]
async fn a_broken_newest_backup_stops_the_rollback_and_is_listed_as_unreadable() {
    for keep in [0usize, 100, usize::MAX] {
        let ws = Workspace::new();
        migrations(&ws);
        database(&ws.db(), "x").await;
        let pool = ws.pool().await;
        let migrator = ws.migrator();
        let older = migrator.migrate_to(&pool, 1).await.unwrap().backup.unwrap();
        migrator
            .rollback(&pool, 0, RollbackStrategy::Scripts)
            .await
            .unwrap();
        let newest = migrator.migrate(&pool).await.unwrap().backup.unwrap();
        let bytes = std::fs::read(&newest).unwrap();
        let cut = if keep == usize::MAX {
            bytes.len() / 2
        } else {
            keep
        };
        std::fs::write(&newest, &bytes[..cut]).unwrap();
        let before = dump(&ws.db()).await;
        let files = ws.backup_files();

        let listed = migrator.backups(&pool).await.unwrap();
        let broken = listed.iter().find(|b| b.path == newest).unwrap();
        assert_eq!(
            broken.version, None,
            "{cut} bytes listed as {:?}",
            broken.version
        );
        assert!(broken.error.is_some());

        for dry_run in [false, true] {
            let result = if dry_run {
                migrator
                    .dry_run()
                    .rollback(&pool, 0, RollbackStrategy::Backup)
                    .await
            } else {
                migrator.rollback(&pool, 0, RollbackStrategy::Backup).await
            };
            let err = result.unwrap_err();
            let message = err.to_string();
            assert!(matches!(err, Error::Backup { .. }), "{cut} bytes: {err}");
            assert!(message.contains(&*newest.to_string_lossy()), "{message}");
            assert!(message.contains("move it away"), "{message}");
        }
        assert_eq!(dump(&ws.db()).await, before);
        assert_eq!(ws.backup_files(), files);
        // Moved away, the older one is restored.
        std::fs::rename(&newest, ws.path().join("broken.sqlite3")).unwrap();
        let report = migrator
            .rollback(&pool, 0, RollbackStrategy::Backup)
            .await
            .unwrap();
        assert_eq!(report.restored_from, Some(older));
    }
}

// ----- 4. restore PATH ------------------------------------------------------------------------

#[tokio::test]
async fn restoring_the_safety_backup_undoes_a_rollback() {
    let ws = Workspace::new();
    migrations(&ws);
    database(&ws.db(), "x").await;
    let pool = ws.pool().await;
    let migrator = ws.migrator();
    migrator.migrate(&pool).await.unwrap();
    exec(
        &ws.db(),
        "INSERT INTO people (name, email) VALUES ('grace', 'g@x')",
    )
    .await;
    let before_rollback = dump(&ws.db()).await;
    let safety = migrator
        .rollback(&pool, 0, RollbackStrategy::Scripts)
        .await
        .unwrap()
        .safety_backup
        .unwrap();
    // `rollback --to-version 2` has nothing to go back to: the way back is the file.
    let noop = migrator
        .rollback(&pool, 2, RollbackStrategy::Backup)
        .await
        .unwrap();
    assert!(noop.is_noop());

    let at_zero = dump(&ws.db()).await;
    let dry = migrator
        .dry_run()
        .restore_file(&pool, &safety)
        .await
        .unwrap();
    assert_eq!(
        (dry.from_version, dry.to_version, dry.dry_run),
        (0, 2, true)
    );
    assert_eq!(dump(&ws.db()).await, at_zero);

    let report = migrator.restore_file(&pool, &safety).await.unwrap();
    assert_eq!((report.from_version, report.to_version), (0, 2));
    assert_eq!(report.restored_from.as_deref(), Some(safety.as_path()));
    assert!(report.safety_backup.is_some() && report.discards_changes_since.is_some());
    assert_eq!(dump(&ws.db()).await, before_rollback);

    // The CLI: `restore PATH`, with the rollback report's JSON shape.
    let undo = report.safety_backup.unwrap();
    let out = run_cli(
        &ws,
        &ws.db(),
        None,
        &["--json", "restore", &undo.to_string_lossy()],
    );
    let json = success_json(&out);
    assert_eq!(
        (json["from_version"].as_i64(), json["to_version"].as_i64()),
        (Some(2), Some(0))
    );
    assert_eq!(json["restored_from"], undo.to_string_lossy().as_ref());
    assert!(json["safety_backup"].is_string());
    assert_eq!(json["strategy"], "backup");
    assert_eq!(dump(&ws.db()).await, at_zero);
    let out = run_cli(
        &ws,
        &ws.db(),
        None,
        &["restore", "--dry-run", &safety.to_string_lossy()],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("would restore") && text.contains("dry run"),
        "{text}"
    );
    assert_eq!(dump(&ws.db()).await, at_zero);
}

#[tokio::test]
async fn another_databases_backup_is_refused_by_name() {
    let ws = Workspace::new();
    migrations(&ws);
    let (a, b) = (ws.path().join("a.sqlite3"), ws.path().join("b.sqlite3"));
    database(&a, "A").await;
    database(&b, "B").await;
    let (pool_a, pool_b) = (pool(&a).await, pool(&b).await);
    let migrator = ws.migrator();
    let of_a = migrator.migrate(&pool_a).await.unwrap().backup.unwrap();
    migrator.migrate(&pool_b).await.unwrap();
    let before = dump(&b).await;
    // A's first backup, taken before A had an identity, holding no history: nothing says it
    // is B's.
    let err = migrator.restore_file(&pool_b, &of_a).await.unwrap_err();
    assert_eq!(err.kind(), "foreign_backup", "{err}");
    assert!(err.to_string().contains("no history to compare"), "{err}");

    // Whatever its name, a file holding another database's identity is refused too.
    let renamed = ws.path().join("copy-of-a.sqlite3");
    std::fs::copy(&of_a, &renamed).unwrap();
    migrator
        .rollback(&pool_a, 0, RollbackStrategy::Scripts)
        .await
        .unwrap();
    migrator.migrate(&pool_a).await.unwrap();
    let at_two = ws.path().join("a-at-two.sqlite3");
    let manual = migrator.backup(&pool_a).await.unwrap().path;
    std::fs::copy(&manual, &at_two).unwrap();
    let err = migrator.restore_file(&pool_b, &at_two).await.unwrap_err();
    assert_eq!(err.kind(), "foreign_backup", "{err}");
    assert!(err.to_string().contains("identity of database"), "{err}");
    // Taken by an older build (no identity), it is refused when its history disagrees.
    exec(&at_two, "DROP TABLE _backstop_database").await;
    let err = migrator.restore_file(&pool_b, &at_two).await.unwrap_err();
    assert_eq!(err.kind(), "foreign_backup", "{err}");
    assert!(err.to_string().contains("disagrees"), "{err}");
    assert_eq!(dump(&b).await, before);

    let out = run_cli(
        &ws,
        &b,
        None,
        &["--json", "restore", &of_a.to_string_lossy()],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json_err(&out)["kind"], "foreign_backup");
    assert_eq!(dump(&b).await, before);
}

// ----- 5. page size and journal mode ----------------------------------------------------------

/// A database whose version-0 backup has 4096-byte pages and which has `page_size` bytes now,
/// in `journal` mode.
async fn with_page_size(ws: &Workspace, page_size: u32, journal: &str) -> sqlx::SqlitePool {
    exec(
        &ws.db(),
        "PRAGMA page_size = 4096; CREATE TABLE own (x); INSERT INTO own VALUES ('before');",
    )
    .await;
    let pool = ws.pool().await;
    ws.migrator().migrate(&pool).await.unwrap();
    pool.close().await;
    exec(
        &ws.db(),
        &format!("PRAGMA page_size = {page_size}; VACUUM; PRAGMA journal_mode = {journal};"),
    )
    .await;
    assert_eq!(
        query_i64(&ws.db(), "PRAGMA page_size").await,
        i64::from(page_size)
    );
    ws.pool().await
}

#[tokio::test]
async fn restores_work_across_journal_modes_and_page_sizes_where_sqlite_can() {
    for journal in ["DELETE", "WAL"] {
        // Same page size, the backup in rollback-journal mode: restores in either mode.
        let ws = Workspace::new();
        migrations(&ws);
        let pool = with_page_size(&ws, 4096, journal).await;
        let report = ws
            .migrator()
            .rollback(&pool, 0, RollbackStrategy::Backup)
            .await
            .unwrap();
        assert_eq!(report.to_version, 0);
        assert_eq!(marker(&ws.db()).await, "before");
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(
            mode.to_uppercase(),
            journal,
            "the journal mode is the database's"
        );
    }

    // Another page size, rollback-journal mode: SQLite restores it.
    let ws = Workspace::new();
    migrations(&ws);
    let pool = with_page_size(&ws, 8192, "DELETE").await;
    ws.migrator()
        .rollback(&pool, 0, RollbackStrategy::Backup)
        .await
        .unwrap();
    assert_eq!(marker(&ws.db()).await, "before");
    assert_eq!(history(&ws.db()).await, []);

    // Another page size, WAL mode: refused before anything changes, saying what differs.
    let ws = Workspace::new();
    migrations(&ws);
    let pool = with_page_size(&ws, 8192, "WAL").await;
    let before = dump(&ws.db()).await;
    let files = ws.backup_files();
    for dry_run in [true, false] {
        let migrator = ws.migrator();
        let result = if dry_run {
            migrator
                .dry_run()
                .rollback(&pool, 0, RollbackStrategy::Backup)
                .await
        } else {
            migrator.rollback(&pool, 0, RollbackStrategy::Backup).await
        };
        let message = result.unwrap_err().to_string();
        assert!(
            message.contains("page size is 4096")
                && message.contains("8192")
                && message.contains("WAL"),
            "{message}"
        );
    }
    assert_eq!(dump(&ws.db()).await, before);
    assert_eq!(ws.backup_files(), files);
}
