//! The backups of one database in one directory: their names, the listing, retention and the
//! removal of files left by interrupted backups.

use std::path::{Path, PathBuf};

use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

use super::file::{Check, backup_history};
use super::{BackupInfo, Reason};
use crate::error::BackupError;

/// The time stamp in backup names: UTC, to the microsecond.
const STAMP: &[BorrowedFormatItem<'static>] =
    format_description!("[year][month][day]T[hour][minute][second][subsecond digits:6]Z");

/// A backup file found by its name.
#[derive(Debug, Clone)]
struct Entry {
    path: PathBuf,
    taken_at: OffsetDateTime,
    reason: Reason,
}

/// The names a new backup is written under.
#[derive(Debug, Clone)]
pub(crate) struct NewNames {
    /// The hidden temporary file the copy is written to.
    pub partial: PathBuf,
    /// The name it is renamed to once complete.
    pub complete: PathBuf,
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

    /// The names of a new backup holding `version`, taken now.
    pub fn new_names(&self, version: i64, reason: Reason) -> NewNames {
        let stamp = timestamp(OffsetDateTime::now_utc());
        let name = format!("{}{stamp}-v{version}-{}", self.prefix(), reason.as_str());
        NewNames {
            partial: self.dir.join(format!(".{name}.partial")),
            complete: self.dir.join(format!("{name}.sqlite3")),
        }
    }

    /// Makes the directory ready for a backup: creates it when missing (returning `true`: the
    /// caller removes it again if the backup fails) and removes the temporary files of
    /// interrupted backups. Call only while holding the database's write lock: another runner
    /// may be writing such a file otherwise.
    pub fn prepare(&self) -> Result<bool, BackupError> {
        let created = !self.dir.is_dir();
        std::fs::create_dir_all(&self.dir)
            .map_err(BackupError::io("cannot create the backup directory"))?;
        self.remove_partials()
            .map_err(BackupError::io("cannot clean up interrupted backups"))?;
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
    pub async fn list(&self) -> Result<Vec<BackupInfo>, BackupError> {
        let listing = BackupError::io("cannot list the backups");
        let entries = self.entries().map_err(listing)?;
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            let size = std::fs::metadata(&entry.path)
                .map_err(BackupError::io("cannot list the backups"))?
                .len();
            let (version, error) = match backup_history(&entry.path, Check::HistoryOnly).await {
                Ok(history) => (Some(history.current_version()), None),
                Err(e) => (None, Some(e.to_string())),
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
            if protect.contains(&entry.path.as_path()) {
                continue;
            }
            std::fs::remove_file(&entry.path)?;
            tracing::info!(path = %entry.path.display(), "removed an old backup");
            removed.push(entry.path);
        }
        Ok(removed)
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
    let reason = Reason::parse(reason)?;
    let taken_at = time::PrimitiveDateTime::parse(stamp, STAMP)
        .ok()?
        .assume_utc();
    Some((taken_at, reason))
}

fn timestamp(at: OffsetDateTime) -> String {
    at.format(STAMP)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
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
}
