//! `add`: the three files of a new migration, numbered after the ones already there, with
//! templates that say what each file must do. No database is opened.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::Error;

/// The files [`add_migration`] wrote (absolute paths).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct NewMigration {
    /// The new migration's version.
    pub version: i64,
    /// The forward script, the rollback script and the probe, in that order.
    pub files: Vec<PathBuf>,
}

impl std::fmt::Display for NewMigration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for file in &self.files {
            writeln!(f, "created  {}", file.display())?;
        }
        writeln!(
            f,
            "migration {}: write the forward script, its rollback and its probe (each file says \
             what it must do)",
            self.version
        )
    }
}

/// Writes `NNN_description.sql`, `.rollback.sql` and `.probe.sql` into `dir` (created when
/// missing), `NNN` being the next version, zero-padded to the width of the versions already
/// there (3 digits in an empty directory).
///
/// The files are templates made of comments: they say what each file must do (the probe's
/// contract, probe patterns) and are refused when loaded until they hold SQL
/// ([`Error::EmptyScript`], naming the file).
///
/// # Errors
/// [`Error::InvalidFileName`] for a description that is not letters, digits, `_` and `-`;
/// [`Error::Io`] when the directory cannot be read, [`Error::Write`] when a file cannot be
/// written (a description too long for the file system, say), and [`Error::InvalidFileName`]
/// after a migration numbered `i64::MAX`. Either way nothing is written.
pub fn add_migration(dir: impl AsRef<Path>, description: &str) -> Result<NewMigration, Error> {
    // Absolute, as every file a report names.
    let dir = std::path::absolute(dir.as_ref()).unwrap_or_else(|_| dir.as_ref().to_owned());
    let dir = dir.as_path();
    let (version, width) = next_version(dir)?;
    let stem = format!("{version:0width$}_{description}");
    if description.is_empty()
        || !description
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(Error::InvalidFileName {
            path: dir.join(format!("{stem}.sql")),
            reason: format!(
                "the description {description:?} may only hold letters, digits, '_' and '-', \
                 and not be empty"
            ),
        });
    }
    let files = [
        (
            format!("{stem}.sql"),
            forward_template(version, description),
        ),
        (
            format!("{stem}.rollback.sql"),
            rollback_template(version, &stem),
        ),
        (format!("{stem}.probe.sql"), probe_template(version)),
    ];
    let io = |path: &Path| {
        let path = path.to_owned();
        move |cause| Error::Write { path, cause }
    };
    let created_dir = !dir.exists();
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut written = Vec::new();
    for (name, content) in files {
        let path = dir.join(name);
        let result = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .and_then(|mut file| std::io::Write::write_all(&mut file, content.as_bytes()));
        if let Err(cause) = result {
            // Nothing half-written stays: the files already written, the directory made.
            if cause.kind() != std::io::ErrorKind::AlreadyExists {
                let _ = std::fs::remove_file(&path);
            }
            for file in &written {
                let _ = std::fs::remove_file(file);
            }
            if created_dir {
                let _ = std::fs::remove_dir(dir);
            }
            return Err(io(&path)(cause));
        }
        written.push(path);
    }
    Ok(NewMigration {
        version,
        files: written,
    })
}

/// The next version in `dir`, and the width to pad it to.
fn next_version(dir: &Path) -> Result<(i64, usize), Error> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((1, 3)),
        Err(cause) => {
            return Err(Error::Io {
                path: dir.to_owned(),
                cause,
            });
        }
    };
    let (mut latest, mut width) = (0i64, 0usize);
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".sql") || name.starts_with('.') {
            continue;
        }
        let Some((digits, _)) = name.split_once('_') else {
            continue;
        };
        if let (true, Ok(version)) = (
            !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()),
            digits.parse::<i64>(),
        ) {
            latest = latest.max(version);
            width = width.max(digits.len());
        }
    }
    let width = if width == 0 { 3 } else { width };
    let next = latest.checked_add(1).ok_or_else(|| Error::InvalidFileName {
        path: dir.to_owned(),
        reason: format!(
            "the latest migration is numbered {latest}, the largest version there can be: there \
             is no next one"
        ),
    })?;
    Ok((next, width))
}

fn forward_template(version: i64, description: &str) -> String {
    format!(
        "-- Migration {version}: {description}
--
-- The forward script: write the change below, statements ending with `;`.
--
-- backstop runs every pending migration in one transaction (BEGIN IMMEDIATE), after an
-- online backup, and commits only if all of them succeed. So a script may not control
-- the transaction (BEGIN, COMMIT, ROLLBACK, SAVEPOINT), run VACUUM, ATTACH another
-- database, or set connection PRAGMAs (journal_mode, foreign_keys, page_size, ...).
-- Foreign keys are off during the run: ON DELETE / ON UPDATE actions do not fire, so
-- delete or update child rows yourself; a new violation fails the run.
-- A top-level SELECT is a notice: the first column of each row is shown to the user.
--
-- Until it holds a statement, this file is refused when the migrations are loaded.
"
    )
}

fn rollback_template(version: i64, stem: &str) -> String {
    format!(
        "-- Rollback of migration {version}: the SQL that undoes {stem}.sql exactly.
--
-- It runs in one transaction with the other rollbacks (`rollback --strategy scripts`),
-- newest first; after it, the probe must say 0. `verify` checks that schema and data
-- come back exactly as they were before the migration (column order, indexes, rows).
--
-- Until it holds a statement, this file is refused when the migrations are loaded.
"
    )
}

fn probe_template(version: i64) -> String {
    format!(
        "-- Probe of migration {version}: one read-only SELECT (or WITH ... SELECT, or VALUES)
-- returning one row with one integer: 1 when the migration's effect is present, 0 when
-- it is absent.
--
-- Before the migration runs, a probe that says 1 makes backstop adopt the migration
-- (record it without running it); after the forward script it must say 1, after the
-- rollback 0. Make it specific to this migration: a loose probe adopts a migration
-- that never ran (`verify` catches that).
--
-- Patterns (keep one, and change the names):
--   a table:    SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'users';
--   a column:   SELECT count(*) FROM pragma_table_info('users') WHERE name = 'email';
--   an index:   SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'users_by_email';
--   a trigger:  SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name = 'users_touched';
--   a data change (every row converted):
--               SELECT NOT EXISTS (SELECT 1 FROM users WHERE email <> lower(email));
--
-- Until it holds a statement, this file is refused when the migrations are loaded.
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_follow_the_highest_with_its_width() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(next_version(&dir.path().join("none")).unwrap(), (1, 3));
        for name in [
            "0007_a.sql",
            "0007_a.rollback.sql",
            "12_b.sql",
            "notes.txt",
            ".x_9.sql",
        ] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        assert_eq!(next_version(dir.path()).unwrap(), (13, 4));
    }
}
