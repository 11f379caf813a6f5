//! The backups of one database in one directory: the listing, retention ([`retention`]) and
//! the removal of files left by interrupted backups.
//!
//! A backup's name says whose it is, when it was taken, the version it held and why (see
//! [`name`](super::name)). Only this database's files count: other databases'
//! backups (another tag), files another user owns, symbolic links and everything else in the
//! directory are never listed, chosen, pruned or removed. Backups named before they carried a
//! tag (`app.sqlite3.backup-20261124T022550123456Z-v3-migrate.sqlite3`) are listed, marked as
//! such, but never chosen by a rollback nor pruned: nothing tells whose they are.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use time::OffsetDateTime;

mod retention;
mod run_lock;

pub(crate) use run_lock::RunLock;

use super::file::{Check, backup_history};
use super::identity::{DatabaseTag, Whose, whose};
use super::name::{NewNames, parse_name};
use super::trust::{DatabaseMode, check_dir, check_file, check_links, create_dir, is_mine};
use super::{BackupInfo, BackupReason};
use crate::error::{BackupError, Error};
use crate::history::Live;

/// How old an untagged temporary file must be before it is taken for a leftover: one that
/// recent may be an older build's backup of another database, being written now.
const UNTAGGED_PARTIAL_AGE: Duration = Duration::from_secs(3600);

/// A backup file of this database, found by its name.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub path: PathBuf,
    pub taken_at: OffsetDateTime,
    pub reason: BackupReason,
    /// The version its name claims (the file is the truth).
    pub named_version: i64,
    /// Named before backups carried their database's tag.
    pub untagged: bool,
}

/// The lock on a backup directory ([`BackupDir::lock`]), released on drop.
#[derive(Debug)]
pub(crate) struct DirLock {
    _dir: std::fs::File,
}

/// The file a backup directory is locked through where a directory cannot be locked itself.
#[cfg(not(unix))]
const DIR_LOCK: &str = ".backstop-dir.lock";

/// The backups of one database in one directory.
#[derive(Debug, Clone)]
pub(crate) struct BackupDir {
    dir: PathBuf,
    /// The database, as the pool names it (for errors).
    database: PathBuf,
    /// The database's file name: the prefix of every backup of it.
    db_name: String,
    tag: DatabaseTag,
    /// The tag older builds gave the file.
    legacy_tag: DatabaseTag,
    mode: DatabaseMode,
}

impl BackupDir {
    /// The backups of the database `file` (named `database` in errors) in `dir`, or in
    /// `backups/` beside the file; made absolute (against the working directory), so that
    /// every backup a report names is given by its absolute path.
    pub fn of(database: &Path, file: &Path, dir: Option<&Path>) -> Result<Self, Error> {
        let meta = std::fs::metadata(file).map_err(|cause| {
            BackupError::Io {
                doing: "cannot read the database file's metadata",
                cause,
            }
            .at(database, file)
        })?;
        let dir = match dir {
            Some(dir) => dir.to_owned(),
            None => file.parent().unwrap_or(Path::new(".")).join("backups"),
        };
        let dir = std::path::absolute(&dir).unwrap_or(dir);
        let db_name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "database".to_owned());
        Ok(BackupDir {
            dir,
            database: database.to_owned(),
            db_name,
            tag: DatabaseTag::of(file, &meta),
            legacy_tag: DatabaseTag::legacy(file, &meta),
            mode: DatabaseMode::of(&meta),
        })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn database(&self) -> &Path {
        &self.database
    }

    pub fn mode(&self) -> DatabaseMode {
        self.mode
    }

    /// Whether a backup name's tag is this database file's (now or as older builds named it).
    fn is_ours(&self, tag: &str) -> bool {
        tag == self.tag.as_str() || tag == self.legacy_tag.as_str()
    }

    fn prefix(&self) -> String {
        format!("{}.backup-", self.db_name)
    }

    /// A backup error of this database at `path`.
    pub(crate) fn error(&self, path: &Path, cause: BackupError) -> Error {
        cause.at(&self.database, path)
    }

    /// Locks the directory until the guard is dropped. A run creates its temporary file and
    /// locks it under this lock, and a cleanup looks for abandoned ones under it: so a cleanup
    /// never takes a file another run has just created, and not yet locked, for an abandoned
    /// one. On Unix the lock is on the directory itself (`flock`); elsewhere (a directory
    /// cannot be opened as a file there) on a hidden file in it, [`DIR_LOCK`], through the
    /// platform's file locking.
    pub fn lock(&self) -> std::io::Result<DirLock> {
        #[cfg(unix)]
        let file = std::fs::File::open(&self.dir)?;
        #[cfg(not(unix))]
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join(DIR_LOCK))?;
        file.lock()?;
        Ok(DirLock { _dir: file })
    }

    /// The names of a new backup holding `version`, taken now.
    pub fn new_names(&self, version: i64, reason: BackupReason) -> NewNames {
        NewNames::new(&self.dir, &self.prefix(), &self.tag, version, reason)
    }

    /// Makes the directory ready for a backup: refuses it when another user could write to it,
    /// creates it (with its missing parents) when missing, and removes this database's
    /// temporary files of interrupted backups (a file another run is writing is locked, and
    /// left alone). Returns the directories it created, deepest first: the caller removes them
    /// again if the backup fails.
    pub fn prepare(&self) -> Result<Vec<PathBuf>, Error> {
        super::trust::warn_of_missing_guarantees();
        check_links(&self.dir)?;
        let created = match std::fs::metadata(&self.dir) {
            Ok(meta) if meta.is_dir() => {
                check_dir(&self.dir, &meta)?;
                Vec::new()
            }
            Ok(_) => {
                let cause = std::io::Error::other("it exists and is not a directory");
                return Err(self.error(
                    &self.dir,
                    BackupError::io("cannot use the backup directory")(cause),
                ));
            }
            Err(_) => create_dir(&self.dir, self.mode.for_dir()).map_err(|cause| {
                self.error(
                    &self.dir,
                    BackupError::io("cannot create the backup directory")(cause),
                )
            })?,
        };
        self.remove_partials().map_err(|cause| {
            self.error(
                &self.dir,
                BackupError::io("cannot clean up interrupted backups")(cause),
            )
        })?;
        Ok(created)
    }

    /// Removes this database's temporary files of interrupted backups (and untagged ones, left
    /// by an older build, once they are an hour old).
    fn remove_partials(&self) -> std::io::Result<usize> {
        let _dir = self.lock()?;
        let prefix = format!(".{}", self.prefix());
        let mut removed = 0;
        for (name, path, meta) in self.files(&prefix)? {
            let Some(rest) = name
                .strip_prefix(&prefix)
                .and_then(|r| r.strip_suffix(".partial"))
            else {
                continue;
            };
            let Some(parsed) = parse_name(rest) else {
                continue;
            };
            let leftover = match &parsed.tag {
                Some(tag) => self.is_ours(tag),
                None => meta
                    .modified()
                    .ok()
                    .and_then(|m| SystemTime::now().duration_since(m).ok())
                    .is_some_and(|age| age > UNTAGGED_PARTIAL_AGE),
            };
            // A run writing it holds a lock on it: only an abandoned one goes.
            let abandoned = std::fs::File::open(&path).is_ok_and(|f| f.try_lock().is_ok());
            if leftover && abandoned {
                std::fs::remove_file(&path)?;
                tracing::info!(path = %path.display(), "removed an interrupted backup");
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// `(file name, path, metadata)` of every regular file of the directory whose name starts
    /// with `prefix` and that the user running backstop owns (none when the directory does not
    /// exist). Symbolic links and other users' files are never candidates. Only the names
    /// that match are looked at further: a directory shared by a fleet's thousands of
    /// databases costs one read of its names, not a `stat` of each of its files.
    fn files(&self, prefix: &str) -> std::io::Result<Vec<(String, PathBuf, std::fs::Metadata)>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry?;
            if !entry
                .file_name()
                .as_encoded_bytes()
                .starts_with(prefix.as_bytes())
            {
                continue;
            }
            let meta = entry.metadata()?; // of the entry itself, not a link's target
            if meta.is_file() && is_mine(&meta) {
                files.push((
                    entry.file_name().to_string_lossy().into_owned(),
                    entry.path(),
                    meta,
                ));
            }
        }
        Ok(files)
    }

    /// This database's backups (and its untagged ones), newest first, found by their names.
    /// Refuses a directory that another user could write to.
    pub fn entries(&self) -> Result<Vec<Entry>, Error> {
        check_links(&self.dir)?;
        if let Ok(meta) = std::fs::metadata(&self.dir) {
            check_dir(&self.dir, &meta)?;
        }
        let prefix = self.prefix();
        let files = self.files(&prefix).map_err(|cause| {
            self.error(&self.dir, BackupError::io("cannot list the backups")(cause))
        })?;
        let mut entries: Vec<Entry> = files
            .into_iter()
            .filter_map(|(name, path, _)| {
                let rest = name.strip_prefix(&prefix)?.strip_suffix(".sqlite3")?;
                let parsed = parse_name(rest)?;
                let untagged = match &parsed.tag {
                    Some(tag) if self.is_ours(tag) => false,
                    Some(_) => return None, // another database's
                    None => true,
                };
                Some(Entry {
                    path,
                    taken_at: parsed.taken_at,
                    reason: parsed.reason,
                    named_version: parsed.version,
                    untagged,
                })
            })
            .collect();
        entries.sort_by(|a, b| b.taken_at.cmp(&a.taken_at).then(b.path.cmp(&a.path)));
        Ok(entries)
    }

    /// Every backup of the database `live`, newest first, with the version each one holds
    /// (read from the file, read-only) or why it cannot be read. A file named for this database
    /// that holds another database's identity is not listed; one that cannot be attributed is
    /// listed as such (`untagged`).
    pub async fn list(&self, live: &Live) -> Result<Vec<BackupInfo>, Error> {
        let mut out = Vec::new();
        for entry in self.entries()? {
            let meta = std::fs::metadata(&entry.path).map_err(|cause| {
                self.error(
                    &entry.path,
                    BackupError::io("cannot read the backup's metadata")(cause),
                )
            })?;
            let read = match check_file(&entry.path, &meta) {
                Err(untrusted) => Err(untrusted.to_string()),
                Ok(()) => backup_history(&entry.path, Check::HistoryOnly)
                    .await
                    .map_err(|e| e.to_string()),
            };
            let (version, error, attributed) = match read {
                Ok(held) => match whose(&entry.path, &held, live) {
                    Whose::Foreign(_) => continue,
                    Whose::Unknown(_) => (Some(held.current_version()), None, false),
                    Whose::Ours => (Some(held.current_version()), None, !entry.untagged),
                },
                Err(e) => (None, Some(e), !entry.untagged),
            };
            out.push(BackupInfo {
                path: entry.path,
                version,
                taken_at: entry.taken_at,
                size: meta.len(),
                reason: entry.reason,
                untagged: !attributed,
                error,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Another run's temporary file, created but not locked yet (it is locked under the
    /// directory's lock, right after it is created), is never taken for an abandoned one; once
    /// abandoned (unlocked, its run gone), it is removed.
    #[test]
    fn a_cleanup_never_takes_a_file_another_run_is_creating() {
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("app.sqlite3");
        std::fs::write(&db, b"").unwrap();
        let dir = BackupDir::of(&db, &db, None).unwrap();
        dir.prepare().unwrap();
        let partial = dir.new_names(0, BackupReason::Migrate).partial;

        // Another run: the directory's lock (as `flock` on the directory), then its file.
        let other_run = std::fs::File::open(dir.path()).unwrap();
        other_run.lock().unwrap();
        std::fs::write(&partial, b"").unwrap();
        let cleanup = {
            let dir = dir.clone();
            std::thread::spawn(move || dir.prepare().unwrap())
        };
        std::thread::sleep(Duration::from_millis(200));
        assert!(partial.exists(), "removed before its run could lock it");
        let writing = std::fs::File::open(&partial).unwrap();
        writing.try_lock().unwrap();
        drop(other_run);
        cleanup.join().unwrap();
        assert!(partial.exists(), "removed while its run writes it");

        drop(writing);
        dir.prepare().unwrap();
        assert!(!partial.exists(), "an abandoned file is left behind");
    }
}
