//! A backup is this database's by what it holds (the database's identity), not by its name
//! alone: a file system that gives no birth time reuses a freed inode at once, so a database
//! created again at the same path gets its predecessor's tag.

use std::path::{Path, PathBuf};

use backstop::RollbackStrategy;

use super::{database, marker, migrations};
use crate::common::*;

/// The tag in a backup's name (`<db>.backup-<tag>-<time>-v<n>-<reason>.sqlite3`).
fn tag_of(backup: &Path) -> String {
    let name = backup.file_name().unwrap().to_string_lossy().into_owned();
    let rest = name.split_once(".backup-").unwrap().1;
    rest.split('-').next().unwrap().to_owned()
}

/// Gives a backup of another database `db_name` and `tag` in its name, in `dir`: what a
/// database created again in place of it sees where the file system reuses inodes.
fn renamed_for(backup: &Path, dir: &Path, db_name: &str, tag: &str) -> PathBuf {
    let name = backup.file_name().unwrap().to_string_lossy().into_owned();
    let rest = name.split_once(".backup-").unwrap().1;
    let (_, after_tag) = rest.split_once('-').unwrap();
    let to = dir.join(format!("{db_name}.backup-{tag}-{after_tag}"));
    std::fs::copy(backup, &to).unwrap();
    to
}

/// Backups named for this database (its tag, as a reused inode without a birth time gives
/// it) but holding another database's content are never its own: not listed as such, never
/// chosen by a rollback, never restored without `--force`, never pruned.
#[tokio::test]
async fn backups_named_for_this_database_but_holding_another_are_never_its_own() {
    let ws = Workspace::new();
    migrations(&ws);
    let (old, new) = (ws.path().join("old/app.sqlite3"), ws.db());
    database(&new, "new").await;
    database(&old, "old").await;
    let migrator = ws.migrator().keep_backups(1);
    let pool_new = pool(&new).await;
    let own_first = migrator
        .migrate_to(&pool_new, 1)
        .await
        .unwrap()
        .backup
        .unwrap();
    let tag = tag_of(&own_first);
    // The predecessor's backups: its first (taken before it had an identity, at version 0)
    // and one holding its identity, both newer than the new database's.
    let pool_old = pool(&old).await;
    let keep_all = ws.migrator();
    let old_first = keep_all.migrate(&pool_old).await.unwrap().backup.unwrap();
    let old_manual = keep_all.backup(&pool_old).await.unwrap().path;
    let planted: Vec<PathBuf> = [&old_first, &old_manual]
        .into_iter()
        .map(|b| renamed_for(b, &ws.backups_dir(), "app.sqlite3", &tag))
        .collect();

    // Listed: the new database's own, and the predecessor's first, marked as not
    // attributable; never the one holding the predecessor's identity.
    let listed = migrator.backups(&pool_new).await.unwrap();
    let paths: Vec<&PathBuf> = listed.iter().map(|b| &b.path).collect();
    assert!(!paths.contains(&&planted[1]), "{paths:?}");
    for info in &listed {
        assert_eq!(info.untagged, info.path == planted[0], "{info:?}");
    }

    // A rollback to 0 restores the new database's own backup, the older one.
    let report = migrator
        .rollback(&pool_new, 0, RollbackStrategy::Backup)
        .await
        .unwrap();
    assert_eq!(report.restored_from.as_ref(), Some(&own_first));
    assert_eq!(marker(&new).await, "new");

    // By name, without --force, neither is restored.
    for planted in &planted {
        let err = migrator.restore_file(&pool_new, planted).await.unwrap_err();
        assert_eq!(err.kind(), "foreign_backup", "{err}");
    }
    assert_eq!(marker(&new).await, "new");

    // Retention, keeping one backup, removes none of them.
    migrator.migrate(&pool_new).await.unwrap();
    migrator.backup(&pool_new).await.unwrap();
    for planted in &planted {
        assert!(planted.exists(), "retention removed {}", planted.display());
    }
}

/// The database's identity survives what a database goes through: a rollback to 0 by either
/// strategy, and a restore of its first backup (which was taken before it had one).
#[tokio::test]
async fn the_identity_survives_rollbacks_and_restores() {
    for strategy in [RollbackStrategy::Backup, RollbackStrategy::Scripts] {
        let ws = Workspace::new();
        migrations(&ws);
        database(&ws.db(), "mine").await;
        let pool = ws.pool().await;
        let migrator = ws.migrator();
        migrator.migrate(&pool).await.unwrap();
        let identity = query_text(&ws.db(), "SELECT identity FROM _backstop_database").await;
        let rollback = migrator.rollback(&pool, 0, strategy).await.unwrap();
        assert_eq!(
            query_text(&ws.db(), "SELECT identity FROM _backstop_database").await,
            identity,
            "{strategy:?}"
        );
        // Its safety backup holds it: the rollback is undone by name.
        let safety = rollback.safety_backup.unwrap();
        let undone = migrator.restore_file(&pool, &safety).await.unwrap();
        assert_eq!(undone.to_version, 2, "{strategy:?}");
        // And every backup it took is listed as its own.
        let listed = migrator.backups(&pool).await.unwrap();
        assert!(listed.iter().all(|b| !b.untagged), "{listed:?}");
        assert_eq!(listed.len(), ws.backup_files().len());
    }
}

/// A run that fails before it commits leaves no identity behind: the database is exactly as
/// it was, runner-owned tables included.
#[tokio::test]
async fn a_failed_first_run_gives_the_database_no_identity() {
    let ws = Workspace::new();
    ws.people_migration();
    ws.migration(
        "002_broken",
        "CREATE TABLE broken (x);\nINSERT INTO nowhere VALUES (1);\n",
        "DROP TABLE broken;\n",
        "SELECT count(*) FROM sqlite_master WHERE name = 'broken';\n",
    );
    database(&ws.db(), "mine").await;
    let pool = ws.pool().await;
    ws.migrator().migrate(&pool).await.unwrap_err();
    let tables = query_text(
        &ws.db(),
        "SELECT group_concat(name) FROM sqlite_master WHERE name LIKE '\\_backstop%' ESCAPE '\\'",
    )
    .await;
    assert_eq!(tables, "");
}

async fn query_text(path: &Path, sql: &str) -> String {
    let mut conn = connect(path).await;
    let value: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(&mut conn)
        .await
        .unwrap();
    value.unwrap_or_default()
}

/// On a real file system without birth times: a database deleted and created again at the
/// same path gets the same inode, so the same tag; its predecessor's backups stay the
/// predecessor's (never listed as its own, chosen, restored or pruned).
#[tokio::test]
async fn on_ext4_without_birth_times_a_recreated_database_gets_no_backups() {
    let ws = Workspace::new();
    // 128-byte inodes: no birth time.
    let ext4 = ["mkfs.ext4", "-q", "-F", "-I", "128"];
    let mounted = match mount_image(
        &ws.path().join("x.img"),
        &ws.path().join("mnt"),
        "64M",
        &ext4,
    ) {
        Ok(mounted) => mounted,
        Err(why) => {
            println!("skipped: cannot mount an ext4 image without birth times: {why}");
            return;
        }
    };
    migrations(&ws);
    let db = mounted.dir.join("app.sqlite3");
    let backups = mounted.dir.join("backups");
    let migrator = ws.migrator().keep_backups(1).backup_dir(&backups);

    database(&db, "old").await;
    let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&db).unwrap());
    let pool_old = pool(&db).await;
    let keep_all = ws.migrator().backup_dir(&backups);
    keep_all.migrate(&pool_old).await.unwrap();
    keep_all.backup(&pool_old).await.unwrap();
    pool_old.close().await;
    let old_backups = backups_in(&backups);
    assert_eq!(old_backups.len(), 2, "{old_backups:?}");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }

    database(&db, "new").await;
    let reused = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&db).unwrap()) == inode;
    let pool_new = pool(&db).await;
    // Before it ever took a backup, the new database has none.
    assert_eq!(
        migrator.backups(&pool_new).await.unwrap().len(),
        1,
        "the old first backup, marked untagged"
    );
    for old in &old_backups {
        let err = migrator
            .restore_file(&pool_new, backups.join(old))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), "foreign_backup", "{err}");
    }
    migrator.migrate(&pool_new).await.unwrap();
    migrator.backup(&pool_new).await.unwrap();
    for old in &old_backups {
        assert!(
            backups.join(old).exists(),
            "retention removed the old database's {old}"
        );
    }
    let listed = migrator.backups(&pool_new).await.unwrap();
    let own: Vec<_> = listed.iter().filter(|b| !b.untagged).collect();
    assert_eq!(own.len(), 1, "{listed:?}");
    assert_eq!(marker(&db).await, "new");
    pool_new.close().await;
    println!(
        "ext4 without birth times: inode {} reused: {reused}; the old database's {} backups stayed its own",
        inode,
        old_backups.len()
    );
}

/// `restore --force` restores a file that nothing proves to be a backup of the database (here
/// a stranger with no history), after the same safety backup; the warning says what was found.
#[tokio::test]
async fn force_restores_a_stranger_after_a_safety_backup() {
    let ws = Workspace::new();
    migrations(&ws);
    database(&ws.db(), "mine").await;
    let pool = ws.pool().await;
    ws.migrator().migrate(&pool).await.unwrap();
    pool.close().await;
    let stranger = ws.path().join("other.sqlite3");
    exec(
        &stranger,
        "CREATE TABLE theirs (x); INSERT INTO theirs VALUES (1);",
    )
    .await;
    let before = dump(&ws.db()).await;

    let out = super::run_cli(
        &ws,
        &ws.db(),
        None,
        &["restore", &stranger.to_string_lossy()],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(dump(&ws.db()).await, before);

    let out = super::run_cli(
        &ws,
        &ws.db(),
        None,
        &["--json", "restore", "--force", &stranger.to_string_lossy()],
    );
    let report = success_json(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no history to compare"), "{stderr}");
    let safety = PathBuf::from(report["safety_backup"].as_str().unwrap());
    assert_eq!(
        dump(&safety).await,
        before,
        "the safety backup holds the state before"
    );
    assert_eq!(dump(&ws.db()).await, dump(&stranger).await);
}
