//! Online backups through SQLite's backup API, and the directory that holds them.
//!
//! A backup of `sessions.sqlite3` holding version 3, taken before a migration, is named
//! `sessions.sqlite3.backup-20261124T022550123456Z-v3-migrate.sqlite3`. It is written under a
//! hidden temporary name (`.sessions.sqlite3.backup-….partial`), synced, checked (it must open
//! and report the version it is supposed to hold) and only then renamed, so a backup with a
//! final name is always complete. Temporary files left by an interrupted run are removed by the
//! next run that holds the database's write lock.
//!
//! A backup is a self-contained database in rollback-journal mode, even when the live database
//! is in WAL mode: open it with any SQLite tool.

pub(crate) mod ffi;

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;
use time::OffsetDateTime;
use time::macros::format_description;

use crate::error::Error;
use crate::history::History;
use ffi::{Backup, OpenMode, RawConnection, Step};

/// Pages copied per backup step: large enough to run at the speed of the disk, small enough
/// for progress to move.
const STEP_PAGES: i32 = 2048;

/// Progress of a backup, reported after each step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupProgress {
    /// Pages copied so far.
    pub copied_pages: u64,
    /// Pages in the database.
    pub total_pages: u64,
}

/// A callback that receives backup progress.
pub(crate) type ProgressFn = Arc<dyn Fn(BackupProgress) + Send + Sync>;

/// Why a backup was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Before a migration.
    Migrate,
    /// Before a rollback.
    Rollback,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Reason::Migrate => "migrate",
            Reason::Rollback => "rollback",
        }
    }
}

/// The backups of one database in one directory.
#[derive(Debug, Clone)]
pub(crate) struct BackupDir {
    dir: PathBuf,
    /// The database's file name: the prefix of every backup of it.
    db_name: String,
}

impl BackupDir {
    /// `dir`, or `backups/` beside the database file.
    pub fn new(database: &Path, dir: Option<&Path>) -> Self {
        let dir = match dir {
            Some(dir) => dir.to_owned(),
            None => database.parent().unwrap_or(Path::new(".")).join("backups"),
        };
        let db_name = database
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "database".to_owned());
        BackupDir { dir, db_name }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn prefix(&self) -> String {
        format!("{}.backup-", self.db_name)
    }

    fn partial_prefix(&self) -> String {
        format!(".{}", self.prefix())
    }

    /// Removes the temporary files of interrupted backups of this database. Call only while
    /// holding the database's write lock: another runner may be writing one otherwise.
    pub fn remove_partials(&self) -> Result<usize, std::io::Error> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let prefix = self.partial_prefix();
        let mut removed = 0;
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(&prefix) && name.contains(".partial") {
                std::fs::remove_file(entry.path())?;
                tracing::info!(path = %entry.path().display(), "removed an interrupted backup");
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Copies `database`, which must hold `version`, into a new backup file and returns its
    /// path. The caller holds the write lock and has written nothing yet, so the copy is
    /// exactly the committed state.
    pub async fn take(
        &self,
        database: &Path,
        version: i64,
        reason: Reason,
        busy_timeout: Duration,
        progress: Option<ProgressFn>,
    ) -> Result<PathBuf, Error> {
        let fail = |path: &Path, reason: String| Error::Backup {
            database: database.to_owned(),
            path: path.to_owned(),
            reason,
        };
        std::fs::create_dir_all(&self.dir).map_err(|e| {
            fail(
                &self.dir,
                format!("cannot create the backup directory: {e}"),
            )
        })?;
        let stamp = timestamp(OffsetDateTime::now_utc());
        let name = format!("{}{stamp}-v{version}-{}", self.prefix(), reason.as_str());
        let partial = self.dir.join(format!(".{name}.partial"));
        let target = self.dir.join(format!("{name}.sqlite3"));

        let result = async {
            let (src, dest) = (database.to_owned(), partial.clone());
            tokio::task::spawn_blocking(move || copy(&src, &dest, busy_timeout, progress))
                .await
                .map_err(|e| format!("the backup thread failed: {e}"))??;
            make_self_contained(&partial).map_err(|e| format!("cannot finish the file: {e}"))?;
            let held = version_of(&partial).await?;
            if held != version {
                return Err(format!(
                    "the copy reports version {held}, but the database was at version {version}"
                ));
            }
            if target.exists() {
                return Err(format!("{} already exists", target.display()));
            }
            std::fs::rename(&partial, &target).map_err(|e| format!("cannot rename: {e}"))?;
            sync_dir(&self.dir).map_err(|e| format!("cannot sync the directory: {e}"))?;
            Ok(())
        }
        .await;
        match result {
            Ok(()) => {
                tracing::info!(path = %target.display(), version, "backup taken");
                Ok(target)
            }
            Err(reason) => {
                let _ = std::fs::remove_file(&partial);
                Err(fail(&partial, reason))
            }
        }
    }
}

/// Copies the main database of `src` into a new file `dest` with the backup API.
fn copy(
    src: &Path,
    dest: &Path,
    busy_timeout: Duration,
    progress: Option<ProgressFn>,
) -> Result<(), String> {
    let source = RawConnection::open(src, OpenMode::Existing)
        .map_err(|e| format!("cannot open {}: {e}", src.display()))?;
    source.set_busy_timeout(busy_timeout);
    let mut target = RawConnection::open(dest, OpenMode::Create)
        .map_err(|e| format!("cannot create the file: {e}"))?;
    // The partial file is thrown away on any failure: no journal, no syncing until the end.
    target.exec("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF")?;
    let mut backup = Backup::new(&mut target, &source)?;
    loop {
        let step = backup.step(STEP_PAGES)?;
        if let Some(report) = &progress {
            let (copied_pages, total_pages) = backup.progress();
            report(BackupProgress {
                copied_pages,
                total_pages,
            });
        }
        if step == Step::Done {
            break;
        }
    }
    backup.finish()?;
    drop(target);
    Ok(())
}

/// Turns a copy of a WAL-mode database into a rollback-journal one (header bytes 18 and 19,
/// the file format's read and write versions, from 2 to 1), so that the backup is one
/// self-contained file, and syncs it to disk.
fn make_self_contained(path: &Path) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    if file.metadata()?.len() >= 100 {
        let mut header = [0u8; 2];
        file.seek(SeekFrom::Start(18))?;
        std::io::Read::read_exact(&mut file, &mut header)?;
        if header == [2, 2] {
            file.seek(SeekFrom::Start(18))?;
            file.write_all(&[1, 1])?;
        }
    }
    file.sync_all()
}

/// The version a database file holds, read from its history table (read-only).
pub(crate) async fn version_of(path: &Path) -> Result<i64, String> {
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .connect()
        .await
        .map_err(|e| format!("the copy does not open: {e}"))?;
    let history = History::read(&mut conn)
        .await
        .map_err(|e| format!("cannot read the copy's history: {e}"));
    let _ = sqlx::Connection::close(conn).await;
    Ok(history?.current_version())
}

fn timestamp(at: OffsetDateTime) -> String {
    let format =
        format_description!("[year][month][day]T[hour][minute][second][subsecond digits:6]Z");
    at.format(&format)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}
