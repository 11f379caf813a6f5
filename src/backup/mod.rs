//! Online backups and restores through SQLite's backup API, and the catalogue of a database's
//! backups with its retention.
//!
//! A backup of `sessions.sqlite3` holding version 3, taken before a migration, is named
//! `sessions.sqlite3.backup-20261124T022550123456Z-v3-migrate.sqlite3`. It is written under a
//! hidden temporary name (`.sessions.sqlite3.backup-….partial`), synced, checked (it must open
//! and report the version it is supposed to hold) and only then renamed, so a backup with a
//! final name is always complete. Temporary files left by an interrupted run are removed by the
//! next run that holds the database's write lock, and are never listed or restored.
//!
//! A backup is a self-contained database in rollback-journal mode, even when the live database
//! is in WAL mode: open it with any SQLite tool.

pub(crate) mod ffi;

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, SqliteConnection};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::error::Error;
use crate::history::History;
use ffi::{Backup, OpenMode, RawConnection, Step};

/// Pages copied per backup step: large enough to run at the speed of the disk, small enough
/// for progress to move.
const STEP_PAGES: i32 = 2048;

/// Progress of a backup or restore, reported after each step.
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Before a migration.
    Migrate,
    /// Before a rollback.
    Rollback,
    /// Asked for ([`Migrator::backup`](crate::Migrator::backup)).
    Manual,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Reason::Migrate => "migrate",
            Reason::Rollback => "rollback",
            Reason::Manual => "manual",
        }
    }
}

/// One backup of a database, as listed by [`Migrator::backups`](crate::Migrator::backups).
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct BackupInfo {
    /// The backup file.
    pub path: PathBuf,
    /// The version it holds, read from the backup itself; `None` when it cannot be read.
    pub version: Option<i64>,
    /// When it was taken (UTC).
    #[serde(with = "time::serde::rfc3339")]
    pub taken_at: OffsetDateTime,
    /// Its size in bytes.
    pub size: u64,
    /// Why it was taken.
    pub reason: Reason,
    /// Why its version could not be read, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A backup file found by its name.
#[derive(Debug, Clone)]
struct Entry {
    path: PathBuf,
    taken_at: OffsetDateTime,
    reason: Reason,
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

    /// Makes the directory ready for a backup of `database`: creates it when missing (and
    /// says so: the caller removes it again if the run fails) and removes the temporary files of
    /// interrupted backups. Call only while holding the database's write lock: another runner
    /// may be writing such a file otherwise.
    pub fn prepare(&self, database: &Path) -> Result<bool, Error> {
        let fail = |reason: String| Error::Backup {
            database: database.to_owned(),
            path: self.dir.clone(),
            reason,
        };
        let created = !self.dir.is_dir();
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| fail(format!("cannot create the backup directory: {e}")))?;
        self.remove_partials()
            .map_err(|e| fail(format!("cannot clean up interrupted backups: {e}")))?;
        Ok(created)
    }

    /// Removes the temporary files of interrupted backups of this database.
    fn remove_partials(&self) -> std::io::Result<usize> {
        let prefix = format!(".{}", self.prefix());
        let mut removed = 0;
        for (name, path) in self.files()? {
            if name.starts_with(&prefix) && name.contains(".partial") {
                std::fs::remove_file(&path)?;
                tracing::info!(path = %path.display(), "removed an interrupted backup");
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// `(file name, path)` of every file in the directory (none when it does not exist).
    fn files(&self) -> std::io::Result<Vec<(String, PathBuf)>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                files.push((
                    entry.file_name().to_string_lossy().into_owned(),
                    entry.path(),
                ));
            }
        }
        Ok(files)
    }

    /// This database's backups, newest first, found by their names.
    fn entries(&self) -> std::io::Result<Vec<Entry>> {
        let prefix = self.prefix();
        let mut entries: Vec<Entry> = self
            .files()?
            .into_iter()
            .filter_map(|(name, path)| {
                let (taken_at, reason) = parse_name(name.strip_prefix(&prefix)?)?;
                Some(Entry {
                    path,
                    taken_at,
                    reason,
                })
            })
            .collect();
        entries.sort_by(|a, b| b.taken_at.cmp(&a.taken_at).then(b.path.cmp(&a.path)));
        Ok(entries)
    }

    /// Every backup of this database, newest first, with the version each one holds (read from
    /// the file, read-only).
    pub async fn list(&self) -> std::io::Result<Vec<BackupInfo>> {
        let mut out = Vec::new();
        for entry in self.entries()? {
            let size = std::fs::metadata(&entry.path)?.len();
            let (version, error) = match read_history(&entry.path, false).await {
                Ok(history) => (Some(history.current_version()), None),
                Err(e) => (None, Some(e)),
            };
            out.push(BackupInfo {
                path: entry.path,
                version,
                taken_at: entry.taken_at,
                size,
                reason: entry.reason,
                error,
            });
        }
        Ok(out)
    }

    /// Keeps the newest `keep` backups of this database and those in `protect`; removes the
    /// other backups of this database. Other files are never touched.
    pub fn prune(&self, keep: usize, protect: &[&Path]) -> std::io::Result<Vec<PathBuf>> {
        let mut removed = Vec::new();
        for entry in self.entries()?.into_iter().skip(keep) {
            if protect.iter().any(|p| *p == entry.path) {
                continue;
            }
            std::fs::remove_file(&entry.path)?;
            tracing::info!(path = %entry.path.display(), "removed an old backup");
            removed.push(entry.path);
        }
        Ok(removed)
    }

    /// Copies `database`, which must hold `version`, into a new backup file and returns its
    /// path. The caller holds the write lock and has written nothing yet, so the copy is
    /// exactly the committed state.
    ///
    /// The copy is read through `source` when one is given (it is handed back), else through a
    /// new connection.
    pub async fn take(
        &self,
        database: &Path,
        version: i64,
        reason: Reason,
        source: Option<RawConnection>,
        busy_timeout: Duration,
        progress: Option<ProgressFn>,
    ) -> Result<(PathBuf, Option<RawConnection>), Error> {
        let fail = |path: &Path, reason: String| Error::Backup {
            database: database.to_owned(),
            path: path.to_owned(),
            reason,
        };
        let stamp = timestamp(OffsetDateTime::now_utc());
        let name = format!("{}{stamp}-v{version}-{}", self.prefix(), reason.as_str());
        let partial = self.dir.join(format!(".{name}.partial"));
        let target = self.dir.join(format!("{name}.sqlite3"));
        tracing::info!(path = %target.display(), version, "taking a backup");

        let mut returned = None;
        let result = async {
            let (src, dest) = (database.to_owned(), partial.clone());
            returned = tokio::task::spawn_blocking(move || {
                let given = source.is_some();
                let source = match source {
                    Some(source) => source,
                    None => {
                        let source = RawConnection::open(&src, OpenMode::Existing)
                            .map_err(|e| format!("cannot open {}: {e}", src.display()))?;
                        source.set_busy_timeout(busy_timeout);
                        source
                    }
                };
                let source = copy(source, &dest, progress.as_ref())?;
                make_self_contained(&dest).map_err(|e| format!("cannot finish the file: {e}"))?;
                Ok::<_, String>(given.then_some(source))
            })
            .await
            .map_err(|e| format!("the backup thread failed: {e}"))??;
            let held = read_history(&partial, false).await?.current_version();
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
                Ok((target, returned))
            }
            Err(reason) => {
                let _ = std::fs::remove_file(&partial);
                Err(fail(&partial, reason))
            }
        }
    }
}

/// `20261124T022550123456Z-v3-migrate.sqlite3` → (taken at, reason). The version in the name
/// is informative only: the catalogue reads it from the file.
fn parse_name(rest: &str) -> Option<(OffsetDateTime, Reason)> {
    let rest = rest.strip_suffix(".sqlite3")?;
    let mut parts = rest.split('-');
    let (stamp, version, reason) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || !version
            .strip_prefix('v')?
            .bytes()
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let reason = match reason {
        "migrate" => Reason::Migrate,
        "rollback" => Reason::Rollback,
        "manual" => Reason::Manual,
        _ => return None,
    };
    let format =
        format_description!("[year][month][day]T[hour][minute][second][subsecond digits:6]Z");
    let taken_at = time::PrimitiveDateTime::parse(stamp, &format)
        .ok()?
        .assume_utc();
    Some((taken_at, reason))
}

fn timestamp(at: OffsetDateTime) -> String {
    let format =
        format_description!("[year][month][day]T[hour][minute][second][subsecond digits:6]Z");
    at.format(&format)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

/// Copies the main database of `source` into a new file `dest` with the backup API, and hands
/// the source connection back.
fn copy<S: AsRef<RawConnection>>(
    source: S,
    dest: &Path,
    progress: Option<&ProgressFn>,
) -> Result<S, String> {
    let mut target = RawConnection::open(dest, OpenMode::Create)
        .map_err(|e| format!("cannot create the file: {e}"))?;
    // The partial file is thrown away on any failure: no journal, no syncing until the end.
    target.exec("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF")?;
    let mut backup = Backup::new(&mut target, source)?;
    run_steps(&mut backup, progress)?;
    let (_, source) = backup.finish()?;
    Ok(source)
}

/// Steps a backup to its end, reporting progress.
fn run_steps<D: AsRef<RawConnection>, S: AsRef<RawConnection>>(
    backup: &mut Backup<D, S>,
    progress: Option<&ProgressFn>,
) -> Result<(), String> {
    loop {
        let step = backup.step(STEP_PAGES)?;
        if let Some(report) = progress {
            let (copied_pages, total_pages) = backup.progress();
            report(BackupProgress {
                copied_pages,
                total_pages,
            });
        }
        if step == Step::Done {
            return Ok(());
        }
    }
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
        file.read_exact(&mut header)?;
        if header == [2, 2] {
            file.seek(SeekFrom::Start(18))?;
            file.write_all(&[1, 1])?;
        }
    }
    file.sync_all()
}

/// Opens a backup file read-only and reads its history; with `check`, runs
/// `PRAGMA integrity_check` first.
pub(crate) async fn read_history(path: &Path, check: bool) -> Result<History, String> {
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .connect()
        .await
        .map_err(|e| format!("does not open: {e}"))?;
    let result = async {
        if check {
            integrity_check(&mut conn).await?;
        }
        History::read(&mut conn)
            .await
            .map_err(|e| format!("cannot read its history: {e}"))
    }
    .await;
    let _ = conn.close().await;
    result
}

async fn integrity_check(conn: &mut SqliteConnection) -> Result<(), String> {
    let rows: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(conn)
        .await
        .map_err(|e| format!("integrity check failed: {e}"))?;
    if rows == ["ok"] {
        Ok(())
    } else {
        let shown: Vec<&str> = rows.iter().take(3).map(String::as_str).collect();
        Err(format!("integrity check failed: {}", shown.join("; ")))
    }
}

/// A restore of a backup file into the live database, holding the live database's write lock
/// from [`LockedRestore::lock`] until it is run or abandoned.
pub(crate) struct LockedRestore(Backup<RawConnection, RawConnection>);

impl LockedRestore {
    /// Prepares a restore of `backup` into `live` (a connection with no open transaction) and
    /// takes the live database's write lock, copying nothing yet.
    pub fn lock(live: RawConnection, backup: &Path) -> Result<Self, String> {
        let source = RawConnection::open(backup, OpenMode::Existing)
            .map_err(|e| format!("cannot open the backup: {e}"))?;
        let mut restore = Backup::new(live, source)?;
        // A 0-page step takes the destination's lock. It would complete at once (restoring an
        // empty database) only for a source without pages, which callers refuse beforehand.
        if restore.step(0)? == Step::Done {
            return Err("the backup is an empty file".into());
        }
        Ok(LockedRestore(restore))
    }

    /// The live database's data version as seen under the lock.
    pub fn data_version(&self) -> Result<u32, String> {
        self.0.dest().data_version()
    }

    /// Copies every page and commits: other connections see the old content or the restored
    /// content, never a mix.
    pub fn run(mut self, progress: Option<&ProgressFn>) -> Result<(), String> {
        run_steps(&mut self.0, progress)?;
        self.0.finish().map(drop)
    }

    /// Releases the lock without writing anything.
    pub fn abandon(self) {
        let _ = self.0.finish();
    }
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_foreign_names_are_ignored() {
        let at = time::macros::datetime!(2026-11-24 02:25:50.123456 UTC);
        let name = format!("{}-v12-rollback.sqlite3", timestamp(at));
        assert_eq!(name, "20261124T022550123456Z-v12-rollback.sqlite3");
        assert_eq!(parse_name(&name), Some((at, Reason::Rollback)));
        for foreign in [
            "20261124T022550123456Z-v12-rollback.sqlite3.bak",
            "20261124T022550123456Z-v12-other.sqlite3",
            "20261124T022550123456Z-12-migrate.sqlite3",
            "notadate-v1-migrate.sqlite3",
            "20261124T022550123456Z-v1-migrate-x.sqlite3",
        ] {
            assert_eq!(parse_name(foreign), None, "{foreign}");
        }
    }

    /// The data version seen under the restore's lock tells whether another connection
    /// committed since the safety copy was read, in both journal modes.
    #[test]
    fn the_data_version_detects_a_commit_between_copy_and_lock() {
        for mode in ["WAL", "DELETE"] {
            for commit_in_between in [false, true] {
                let dir = tempfile::tempdir().unwrap();
                let live = dir.path().join("live.db");
                let saved = dir.path().join("saved.db");
                let writer = RawConnection::open(&live, OpenMode::Create).unwrap();
                writer
                    .exec(&format!(
                        "PRAGMA journal_mode = {mode}; CREATE TABLE t (x); INSERT INTO t VALUES (1);"
                    ))
                    .unwrap();
                let other = RawConnection::open(&saved, OpenMode::Create).unwrap();
                other.exec("CREATE TABLE t (x);").unwrap();
                drop(other);

                let reader = RawConnection::open(&live, OpenMode::Existing).unwrap();
                let reader = copy(reader, &dir.path().join("copy.db"), None).unwrap();
                let before = reader.data_version().unwrap();
                if commit_in_between {
                    writer.exec("INSERT INTO t VALUES (2);").unwrap();
                }
                let restore = LockedRestore::lock(reader, &saved).unwrap();
                let changed = restore.data_version().unwrap() != before;
                assert_eq!(changed, commit_in_between, "{mode}");
                restore.abandon();
            }
        }
    }
}
