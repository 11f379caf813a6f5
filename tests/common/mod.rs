//! Shared helpers for the integration tests: real SQLite files in temporary directories.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use backstop::{Migrator, Source};
use sha2::{Digest, Sha256};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Row, SqliteConnection, SqlitePool};
use sqlx::{TypeInfo, ValueRef};

/// A temporary directory holding a migrations folder, a database and its backups.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Self {
        Workspace {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn migrations_dir(&self) -> PathBuf {
        self.path().join("migrations")
    }

    pub fn db(&self) -> PathBuf {
        self.path().join("app.sqlite3")
    }

    pub fn backups_dir(&self) -> PathBuf {
        self.path().join("backups")
    }

    /// Writes a file of the migrations folder.
    pub fn write(&self, name: &str, content: impl AsRef<[u8]>) -> &Self {
        let dir = self.migrations_dir();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), content).unwrap();
        self
    }

    /// Writes the three files of a migration.
    pub fn migration(&self, stem: &str, forward: &str, rollback: &str, probe: &str) -> &Self {
        self.write(&format!("{stem}.sql"), forward);
        self.write(&format!("{stem}.rollback.sql"), rollback);
        self.write(&format!("{stem}.probe.sql"), probe)
    }

    /// `001_people`: a table `people` holding one row ('ada').
    pub fn people_migration(&self) -> &Self {
        self.migration(
            "001_people",
            "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n\
             INSERT INTO people (name) VALUES ('ada');\n",
            "DROP TABLE people;\n",
            "SELECT count(*) FROM sqlite_master WHERE name = 'people';\n",
        )
    }

    /// `002_email`: a column `email` on `people`.
    pub fn email_migration(&self) -> &Self {
        self.migration(
            "002_email",
            "ALTER TABLE people ADD COLUMN email TEXT;\n",
            "ALTER TABLE people DROP COLUMN email;\n",
            "SELECT count(*) FROM pragma_table_info('people') WHERE name = 'email';\n",
        )
    }

    pub fn source(&self) -> Source {
        Source::from_dir(self.migrations_dir()).expect("valid source")
    }

    pub fn migrator(&self) -> Migrator {
        Migrator::new(self.source()).busy_timeout(Duration::from_secs(10))
    }

    /// A pool on the workspace's database, creating the file.
    pub async fn pool(&self) -> SqlitePool {
        pool(&self.db()).await
    }

    /// The files in the backups directory (names, sorted), hidden ones included.
    pub fn backup_files(&self) -> Vec<String> {
        backups_in(&self.backups_dir())
    }
}

/// The files of a backups directory but the lock that runs of one database take turns on
/// (`.<db>.backup-<tag>.lock`, empty).
pub fn backups_in(dir: &Path) -> Vec<String> {
    let mut files = list_dir(dir);
    files.retain(|name| !name.ends_with(".lock"));
    files
}

pub fn list_dir(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

pub async fn pool(path: &Path) -> SqlitePool {
    SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(
            SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true)
                .busy_timeout(Duration::from_secs(10)),
        )
        .await
        .expect("open pool")
}

pub async fn connect(path: &Path) -> SqliteConnection {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .busy_timeout(Duration::from_secs(10))
        .connect()
        .await
        .expect("connect")
}

/// Runs a script on a database (outside the runner).
pub async fn exec(path: &Path, sql: &str) {
    let mut conn = connect(path).await;
    sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    conn.close().await.unwrap();
}

pub async fn query_i64(path: &Path, sql: &str) -> i64 {
    let mut conn = connect(path).await;
    let v: i64 = sqlx::query_scalar(AssertSqlSafe(sql.to_owned()))
        .fetch_one(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    conn.close().await.unwrap();
    v
}

/// A full, deterministic dump of a database: every schema object and every row of every
/// table, values tagged with their types; but backstop's record of the database's identity
/// (`_backstop_database`), which the first run that backs a database up writes and which the
/// database keeps through every restore and rollback.
pub async fn dump(path: &Path) -> String {
    let mut out = String::new();
    dump_into(path, &[], &mut |line| {
        out.push_str(line);
        out.push('\n');
    })
    .await;
    out
}

pub async fn dump_conn(conn: &mut SqliteConnection) -> String {
    let mut out = String::new();
    dump_conn_into(conn, &[], &mut |line| {
        out.push_str(line);
        out.push('\n');
    })
    .await;
    out
}

/// Feeds the dump of a database to `sink` line by line; the rows of the tables in `skip_rows`
/// are left out (their schema is not).
pub async fn dump_into(path: &Path, skip_rows: &[&str], sink: &mut dyn FnMut(&str)) {
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .connect()
        .await
        .expect("open for dump");
    dump_conn_into(&mut conn, skip_rows, sink).await;
    conn.close().await.unwrap();
}

async fn dump_conn_into(
    conn: &mut SqliteConnection,
    skip_rows: &[&str],
    sink: &mut dyn FnMut(&str),
) {
    let objects = sqlx::query(
        "SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master
         WHERE tbl_name <> '_backstop_database' ORDER BY type, name",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let mut tables = Vec::new();
    for row in &objects {
        let (kind, name, sql): (String, String, String) = (row.get(0), row.get(1), row.get(3));
        sink(&format!("{kind} {name}: {sql}"));
        if kind == "table" && !name.starts_with("sqlite_") && !skip_rows.contains(&name.as_str()) {
            tables.push(name);
        }
    }
    for table in tables {
        let columns: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT count(*) FROM pragma_table_info('{table}')"
        )))
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        let order: Vec<String> = (1..=columns).map(|i| i.to_string()).collect();
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT * FROM \"{table}\" ORDER BY {}",
            order.join(", ")
        )))
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        sink(&format!("-- {table}: {} rows", rows.len()));
        for row in rows {
            let cells: Vec<String> = (0..row.len()).map(|i| cell(&row, i)).collect();
            sink(&cells.join("|"));
        }
    }
}

fn cell(row: &sqlx::sqlite::SqliteRow, i: usize) -> String {
    let raw = row.try_get_raw(i).unwrap();
    if raw.is_null() {
        return "NULL".into();
    }
    match raw.type_info().name() {
        "INTEGER" => format!("i:{}", row.get::<i64, _>(i)),
        "REAL" => format!("r:{}", row.get::<f64, _>(i)),
        "BLOB" => format!("b:{}", hex(&row.get::<Vec<u8>, _>(i))),
        _ => format!("t:{:?}", row.get::<String, _>(i)),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of [`dump`].
pub async fn content_hash(path: &Path) -> String {
    content_hash_without(path, &[]).await
}

/// SHA-256 of the dump, without the rows of the tables in `skip_rows`.
pub async fn content_hash_without(path: &Path, skip_rows: &[&str]) -> String {
    let mut hasher = Sha256::new();
    dump_into(path, skip_rows, &mut |line| {
        hasher.update(line.as_bytes());
        hasher.update(b"\n");
    })
    .await;
    hex(&hasher.finalize())
}

/// The versions recorded in the history table, with how each was applied.
pub async fn history(path: &Path) -> Vec<(i64, String)> {
    let mut conn = connect(path).await;
    let exists: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sqlite_master WHERE name = '_backstop_migrations'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let rows = if exists == 0 {
        Vec::new()
    } else {
        sqlx::query_as("SELECT version, method FROM _backstop_migrations ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .unwrap()
    };
    conn.close().await.unwrap();
    rows
}

/// The applied versions of the database at `db` (from a synchronous test).
pub fn query_versions(db: &Path) -> Vec<i64> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(history(db))
        .into_iter()
        .map(|(v, _)| v)
        .collect()
}

/// The CLI binary (`examples/cli.rs`: a project's command line), built once.
pub fn cli() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        escargot::CargoBuild::new()
            .package("backstop")
            .example("cli")
            .current_release()
            .current_target()
            .run()
            .expect("build the migrate example")
            .path()
            .to_owned()
    })
    .clone()
}

/// The JSON a CLI run printed on stdout, after checking that it succeeded (else its stderr is
/// the failure's message).
pub fn success_json(out: &std::process::Output) -> serde_json::Value {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Whether the tests run as root (who file modes do not stop, and who can mount file systems).
pub fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Runs a system command (mount, mkfs, ...); its stderr as the error when it fails.
pub fn system(cmd: &mut std::process::Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    match out.status.success() {
        true => Ok(()),
        false => Err(format!(
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

/// Mounts a new file system image of `size` bytes (as `truncate -s` reads it) at `dir`,
/// made by the command `mkfs` (the image is its last argument); the reason when this machine
/// cannot (not root, no such `mkfs`, no loop device).
pub fn mount_image(image: &Path, dir: &Path, size: &str, mkfs: &[&str]) -> Result<Mounted, String> {
    if !running_as_root() {
        return Err("not running as root".into());
    }
    system(
        std::process::Command::new("truncate")
            .args(["-s", size])
            .arg(image),
    )?;
    system(
        std::process::Command::new(mkfs[0])
            .args(&mkfs[1..])
            .arg(image),
    )?;
    std::fs::create_dir_all(dir).unwrap();
    system(
        std::process::Command::new("mount")
            .args(["-o", "loop"])
            .arg(image)
            .arg(dir),
    )?;
    Ok(Mounted {
        dir: dir.to_owned(),
    })
}

/// A task that commits one row at a time into a database (`insert`, whose `?1` is a rising
/// id), yielding between commits, until it is stopped.
pub struct Writer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    committed: std::sync::Arc<std::sync::atomic::AtomicI64>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    pub fn start(db: &Path, insert: &'static str) -> Self {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let committed = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
        let task = {
            let (db, stop, committed) = (db.to_owned(), stop.clone(), committed.clone());
            tokio::spawn(async move {
                let mut conn = connect(&db).await;
                let mut id = 0;
                while !stop.load(Ordering::Relaxed) {
                    id += 1;
                    sqlx::query(insert)
                        .bind(id)
                        .execute(&mut conn)
                        .await
                        .unwrap();
                    committed.store(id, Ordering::Relaxed);
                    tokio::task::yield_now().await;
                }
            })
        };
        Writer {
            stop,
            committed,
            task,
        }
    }

    /// The last id committed, shared (for a callback to read).
    pub fn committed(&self) -> std::sync::Arc<std::sync::atomic::AtomicI64> {
        self.committed.clone()
    }

    /// Waits until `n` rows are committed.
    pub async fn wait_for(&self, n: i64) {
        while self.committed.load(std::sync::atomic::Ordering::Relaxed) < n {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Stops it; the last id committed.
    pub async fn stop(self) -> i64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.task.await.unwrap();
        self.committed.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A file system mounted at `dir` by a test, unmounted (lazily, so that a file still open
/// cannot keep it) when dropped.
pub struct Mounted {
    pub dir: PathBuf,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .status();
    }
}
