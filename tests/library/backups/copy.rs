//! Each way a backup copies a WAL database's file (a clone, a copy inside the kernel, a read
//! and write through SQLite) gives exactly the state the migration started from, under a
//! writer, a checkpointer and a shrinking VACUUM, at page sizes 512 to 65,536; none of them
//! drops a lock this process holds on the database; and on a file system that clones, the
//! backup shares the database's blocks instead of writing them (an XFS image, as root).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use backstop::{BackupCopy, CodeMigration, Migrator};
use sqlx::{Connection, SqliteConnection};

use crate::common::*;

const WAYS: [BackupCopy; 3] = [
    BackupCopy::Fastest,
    BackupCopy::KernelCopy,
    BackupCopy::ReadWrite,
];

/// A WAL database of about 6 MB with pages of `page_size` bytes: `events` (written during the
/// run) and `filler`, half of it deleted and the file shrunk by a VACUUM whose pages are still
/// in the log (no checkpoint yet): the checkpointer running during the copy truncates the file.
async fn shrunk_database(db: &Path, page_size: u32) {
    let mut conn = connect(db).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "PRAGMA page_size = {page_size};
         PRAGMA journal_mode = WAL;
         CREATE TABLE events (id INTEGER PRIMARY KEY, pad BLOB);
         CREATE TABLE filler (id INTEGER PRIMARY KEY, x BLOB);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
         INSERT INTO filler (x) SELECT randomblob(2000) FROM n;
         PRAGMA wal_checkpoint(TRUNCATE);
         PRAGMA wal_autocheckpoint = 0;
         DELETE FROM filler WHERE id % 2 = 0;
         VACUUM;"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
}

/// Per way and page size: a writer commits and a checkpointer checkpoints all through the
/// run; the backup holds what the migration saw (it records it), whole and intact.
#[tokio::test]
async fn every_way_of_copying_gives_the_exact_state_under_writers_and_checkpoints() {
    for page_size in [512, 4096, 65536] {
        for way in WAYS {
            let ws = Workspace::new();
            backup_under_writers(&ws, &ws.db(), page_size, way).await;
        }
    }
}

/// Migrates the database `db` (made by [`shrunk_database`]) with a backup copied at most as
/// fast as `way` allows, while a writer commits and a checkpointer checkpoints; checks that the
/// backup holds exactly what the migration saw, whole, intact and self-contained.
async fn backup_under_writers(ws: &Workspace, db: &Path, page_size: u32, way: BackupCopy) {
    shrunk_database(db, page_size).await;
    ws.migration(
        "001_snapshot",
        "CREATE TABLE seen AS SELECT count(*) AS n, max(id) AS last, \
         (SELECT count(*) FROM filler) AS filler FROM events;\n",
        "DROP TABLE seen;\n",
        "SELECT count(*) FROM sqlite_master WHERE name = 'seen';\n",
    );
    let writer = Writer::start(
        db,
        "INSERT INTO events (id, pad) VALUES (?1, randomblob(1500))",
    );
    let stop = Arc::new(AtomicBool::new(false));
    let checkpointer = {
        let (db, stop) = (db.to_owned(), stop.clone());
        tokio::spawn(async move {
            let mut conn = connect(&db).await;
            while !stop.load(Ordering::Relaxed) {
                sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                    .execute(&mut conn)
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    writer.wait_for(100).await;
    let pool = pool(db).await;
    let backups = db.parent().unwrap().join("backups");
    let report = ws
        .migrator()
        .backup_dir(&backups)
        .backup_copy(way)
        .migrate(&pool)
        .await
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    writer.stop().await;
    checkpointer.await.unwrap();
    pool.close().await;

    let case = format!("{way:?}, pages of {page_size}");
    let backup = report.backup.expect("a backup");
    let integrity: String = {
        let mut conn = connect(&backup).await;
        sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&mut conn)
            .await
            .unwrap()
    };
    assert_eq!(integrity, "ok", "{case}");
    let seen = query_i64(db, "SELECT n FROM seen").await;
    assert!(seen >= 100, "{case}");
    assert_eq!(
        query_i64(&backup, "SELECT count(*) FROM events").await,
        seen,
        "{case}: the backup and the migration saw different states"
    );
    assert_eq!(
        query_i64(&backup, "SELECT max(id) FROM events").await,
        query_i64(db, "SELECT last FROM seen").await,
        "{case}"
    );
    assert_eq!(
        query_i64(&backup, "SELECT count(*) FROM filler").await,
        query_i64(db, "SELECT filler FROM seen").await,
        "{case}"
    );
    assert_eq!(
        query_i64(&backup, "PRAGMA page_size").await,
        i64::from(page_size),
        "{case}"
    );
    // One self-contained file in rollback-journal mode, as long as its pages say.
    let bytes = std::fs::read(&backup).unwrap();
    assert_eq!(&bytes[18..20], &[1, 1], "{case}");
    let pages = u32::from_be_bytes(bytes[28..32].try_into().unwrap());
    assert_eq!(
        bytes.len() as u64,
        u64::from(pages) * u64::from(page_size),
        "{case}"
    );
}

/// A helper process, started by the test below (it re-executes this test binary): tries to
/// take the database's locks a process takes alone, without waiting, and prints what happened.
#[tokio::test]
#[ignore = "a helper process, started by the lock tests in this module"]
async fn lock_probe_process() {
    let db = PathBuf::from(std::env::var("BACKSTOP_PROBE_DB").expect("spawned by a test"));
    let sql = std::env::var("BACKSTOP_PROBE_SQL").unwrap();
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&db)
        .busy_timeout(Duration::ZERO);
    let mut conn: SqliteConnection = sqlx::ConnectOptions::connect(&options).await.unwrap();
    match sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut conn)
        .await
    {
        Ok(_) => println!("PROBE: took"),
        Err(e) => println!("PROBE: refused: {e}"),
    }
}

/// Whether another process can run `sql` (which takes locks) on `db` at once.
fn another_process_can(db: &Path, sql: &str) -> bool {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "backups::copy::lock_probe_process",
            "--nocapture",
        ])
        .env("BACKSTOP_PROBE_DB", db)
        .env("BACKSTOP_PROBE_SQL", sql)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("PROBE:"))
        .unwrap_or_else(|| panic!("the probe said nothing: {stdout}"));
    line == "PROBE: took"
}

/// The database alone, with a connection of its own: what `PRAGMA locking_mode = EXCLUSIVE`
/// needs is every other process's lock on the file gone.
const ALONE: &str = "PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE; COMMIT;";
/// The write lock.
const WRITE: &str = "BEGIN IMMEDIATE; COMMIT;";

static LOCKED_DB: OnceLock<PathBuf> = OnceLock::new();

/// Run by the migration below, after its backup was taken, under the runner's write lock.
async fn probe_under_the_lock(conn: &mut SqliteConnection) -> anyhow::Result<()> {
    sqlx::query("CREATE TABLE probed (x)")
        .execute(&mut *conn)
        .await?;
    let db = LOCKED_DB.get().expect("set by the test");
    anyhow::ensure!(
        !another_process_can(db, WRITE),
        "another process took the write lock the runner holds"
    );
    anyhow::ensure!(
        !another_process_can(db, ALONE),
        "another process had the database to itself during the run"
    );
    Ok(())
}

/// SQLite's locks on the database belong to the process and the file: closing any descriptor
/// of it would drop them all. Whichever way the backup copies the file, no lock of this
/// process is lost: an application connection keeps other processes from having the database
/// to themselves before and after a backup, and the runner's write lock holds after its backup.
#[tokio::test]
async fn no_way_of_copying_drops_a_lock_this_process_holds() {
    let ws = Workspace::new();
    exec(
        &ws.db(),
        "PRAGMA journal_mode = WAL;
         CREATE TABLE t (x BLOB);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
         INSERT INTO t SELECT randomblob(1000) FROM n;",
    )
    .await;
    LOCKED_DB.set(ws.db()).unwrap();
    ws.people_migration();
    // The control: with no connection of this process open, another can be alone with it.
    assert!(
        another_process_can(&ws.db(), ALONE),
        "the probe cannot fail"
    );

    let mut app = connect(&ws.db()).await;
    let _: i64 = sqlx::query_scalar("SELECT count(*) FROM t")
        .fetch_one(&mut app)
        .await
        .unwrap();
    assert!(!another_process_can(&ws.db(), ALONE), "before any backup");
    let pool = ws.pool().await;
    for way in WAYS {
        ws.migrator().backup_copy(way).backup(&pool).await.unwrap();
        assert!(
            !another_process_can(&ws.db(), ALONE),
            "{way:?}: another process had the database to itself after a backup"
        );
    }
    let code = CodeMigration::new(
        2,
        "probe_locks",
        "r1",
        backstop::code!(probe_under_the_lock),
    )
    .probe("SELECT count(*) FROM sqlite_master WHERE name = 'probed'")
    .rollback_sql("DROP TABLE probed;");
    let source = ws.source().with_code(code).unwrap();
    Migrator::new(source)
        .backup_dir(ws.backups_dir())
        .migrate(&pool)
        .await
        .unwrap();
    assert!(!another_process_can(&ws.db(), ALONE), "after the run");
    app.close().await.unwrap();
}

/// Bytes in use on the file system holding `dir`.
fn used_bytes(dir: &Path) -> u64 {
    let stat = rustix::fs::statvfs(dir).unwrap();
    (stat.f_blocks - stat.f_bfree) * stat.f_frsize
}

/// On XFS with reflink, the default backup is a clone: a 32 MB database's backup takes a
/// fraction of its size on disk (its blocks are shared) and is the database exactly; a copy
/// read and written, asked for, takes its whole size. Clones under a writer and a
/// checkpointer are exact too.
#[tokio::test]
async fn on_xfs_with_reflink_a_backup_shares_the_databases_blocks() {
    let ws = Workspace::new();
    let xfs = ["mkfs.xfs", "-q", "-f", "-m", "reflink=1"];
    let mounted = match mount_image(
        &ws.path().join("xfs.img"),
        &ws.path().join("mnt"),
        "512M",
        &xfs,
    ) {
        Ok(mounted) => mounted,
        Err(why) => {
            println!("skipped: cannot mount an XFS image with reflink: {why}");
            return;
        }
    };
    ws.people_migration();
    let db = mounted.dir.join("app.sqlite3");
    exec(
        &db,
        "PRAGMA journal_mode = WAL;
         CREATE TABLE t (x BLOB);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 8000)
         INSERT INTO t SELECT randomblob(4000) FROM n;
         PRAGMA wal_checkpoint(TRUNCATE);",
    )
    .await;
    let size = std::fs::metadata(&db).unwrap().len();
    assert!(size > 30 << 20, "{size}");
    let expected = content_hash(&db).await;
    let pool = pool(&db).await;
    let backups = mounted.dir.join("backups");
    for (way, shared) in [(BackupCopy::Fastest, true), (BackupCopy::ReadWrite, false)] {
        rustix::fs::sync();
        let before = used_bytes(&mounted.dir);
        let info = Migrator::new(ws.source())
            .backup_dir(&backups)
            .backup_copy(way)
            .backup(&pool)
            .await
            .unwrap();
        rustix::fs::sync();
        let grew = used_bytes(&mounted.dir).saturating_sub(before);
        assert_eq!(content_hash(&info.path).await, expected, "{way:?}");
        match shared {
            true => assert!(grew < size / 8, "{way:?}: {grew} bytes more for {size}"),
            false => assert!(
                grew >= size * 9 / 10,
                "{way:?}: {grew} bytes more for {size}"
            ),
        }
    }
    pool.close().await;

    // Cloned while a writer commits and a checkpointer truncates the file: still exact.
    for page_size in [512, 65536] {
        let db = mounted.dir.join(format!("pages-{page_size}.sqlite3"));
        let ws = Workspace::new();
        backup_under_writers(&ws, &db, page_size, BackupCopy::Fastest).await;
    }
}
