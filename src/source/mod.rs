//! Finding, parsing, validating and checksumming migration files (the rules are on
//! [`Source`], which users see).

mod checksum;
mod code;
mod file_name;
mod rules;
mod script;
pub(crate) mod sql;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha384};

use crate::error::Error;
pub use crate::report::MigrationKind;
pub use checksum::Checksum;
pub use code::{CodeError, CodeFn, CodeFuture, CodeMigration};
pub(crate) use code::{Ran, Step, call};
use file_name::{FileName, Kind, is_candidate};
pub(crate) use rules::judge;
use script::decode;
pub(crate) use script::{Script, StoredKind};

/// An ordered, validated set of migrations, loaded from a directory or embedded in the binary.
///
/// A migration is three files in one directory:
///
/// | file | what it holds |
/// |---|---|
/// | `NNN_description.sql` | the forward script |
/// | `NNN_description.rollback.sql` | the script that undoes it |
/// | `NNN_description.probe.sql` | one `SELECT` returning one row, one integer: `1` when the forward script's effect is present, `0` when not |
///
/// `NNN` is the version, a positive integer (zero-padding is customary and ignored);
/// `description` is made of ASCII letters, digits, `_` and `-`. Files that do not end in
/// `.sql`, hidden files and sub-directories are ignored.
///
/// Loading validates everything before any database is touched, and every error names the
/// file at fault (see [`Error`]). Both ways of loading give the same `Source` for the same
/// files.
#[derive(Debug, Clone)]
pub struct Source {
    migrations: Vec<Migration>,
    /// The directory the migrations were read from, or embedded from (as the build saw it).
    dir: Option<PathBuf>,
}

/// One migration: its version, description, three scripts and checksum.
#[derive(Debug, Clone)]
pub struct Migration {
    version: i64,
    description: String,
    /// SHA-384 of the forward script's bytes: what sqlx records as its checksum (empty for a
    /// code migration).
    sqlx_checksum: Vec<u8>,
    checksum: Checksum,
    forward: Step,
    rollback: Step,
    probe: Script,
    /// The probe speaks of data the application keeps writing: never read as drift.
    data_probe: bool,
}

impl Migration {
    /// The version (the `NNN` of the file name).
    pub fn version(&self) -> i64 {
        self.version
    }

    /// The description (the rest of the file name).
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Checksum of the forward script (of a code migration: of its revision).
    pub fn checksum(&self) -> Checksum {
        self.checksum
    }

    /// SQL files, or code.
    pub fn kind(&self) -> MigrationKind {
        match self.forward {
            Step::Sql(_) => MigrationKind::Sql,
            Step::Code { .. } => MigrationKind::Code,
        }
    }

    /// Whether its probe speaks of data the application keeps writing (`-- probe: when-run`,
    /// [`CodeMigration::data_probe`]): it decides adoption and confirms the run, and is never
    /// read as drift.
    pub fn has_data_probe(&self) -> bool {
        self.data_probe
    }

    /// The forward script's file (for embedded sources, its path inside the embedded
    /// directory; for a code migration, `<code migration N (description)>`).
    pub fn path(&self) -> &Path {
        self.forward.path()
    }

    /// The forward script (empty for a code migration).
    pub fn sql(&self) -> &str {
        self.forward.sql().unwrap_or_default()
    }

    /// The rollback script (empty when the rollback is code).
    pub fn rollback_sql(&self) -> &str {
        self.rollback.sql().unwrap_or_default()
    }

    /// The probe query.
    pub fn probe_sql(&self) -> &str {
        self.probe.text()
    }

    /// The forward script's checksum as sqlx computes it (SHA-384 of the file's exact bytes),
    /// to compare with `_sqlx_migrations.checksum`.
    pub(crate) fn sqlx_checksum(&self) -> &[u8] {
        &self.sqlx_checksum
    }

    pub(crate) fn forward(&self) -> &Step {
        &self.forward
    }

    pub(crate) fn rollback(&self) -> &Step {
        &self.rollback
    }

    pub(crate) fn probe(&self) -> &Script {
        &self.probe
    }
}

impl Source {
    /// Loads every migration of a directory.
    ///
    /// # Errors
    /// [`Error::Io`] when the directory cannot be read, and the validation errors listed on
    /// [`Source`].
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self, Error> {
        let dir = dir.as_ref();
        let io = |cause| Error::Io {
            path: dir.to_owned(),
            cause,
        };
        if !dir.is_dir() {
            let cause = if dir.exists() {
                std::io::Error::other("not a directory")
            } else {
                std::io::Error::new(std::io::ErrorKind::NotFound, "the directory does not exist")
            };
            return Err(io(cause));
        }
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if path.is_dir() {
                continue;
            }
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if !is_candidate(name) {
                continue;
            }
            let bytes = std::fs::read(&path).map_err(|cause| Error::Io {
                path: path.clone(),
                cause,
            })?;
            files.push((path, bytes));
        }
        let mut source = Self::load(files)?;
        source.dir = Some(dir.to_owned());
        Ok(source)
    }

    /// Loads migrations from files given as `(path, content)` pairs: what
    /// [`embed_migrations!`](crate::embed_migrations) gives it, or files of any origin. Files
    /// whose names are not migration files (not ending in `.sql`, hidden) are ignored, as in a
    /// directory; the paths name the files in errors.
    pub fn from_files<P, B>(files: impl IntoIterator<Item = (P, B)>) -> Result<Self, Error>
    where
        P: Into<PathBuf>,
        B: Into<Vec<u8>>,
    {
        let files = files
            .into_iter()
            .map(|(path, bytes)| (path.into(), bytes.into()))
            .filter(|(path, _): &(PathBuf, Vec<u8>)| {
                path.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(is_candidate)
            })
            .collect();
        Self::load(files)
    }

    /// The directory the migrations come from: the one [`from_dir`](Self::from_dir) read, or
    /// the one [`embed_migrations!`](crate::embed_migrations) embedded at build time (as the
    /// build machine named it; it may not exist where the binary runs). `None` for files
    /// given by [`from_files`](Self::from_files).
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The same migrations with `code` among them, validated like a file: its description
    /// (letters, digits, `_`, `-`), its probe (one `SELECT`) and a SQL rollback by the rules
    /// of scripts.
    ///
    /// # Errors
    /// [`Error::DuplicateVersion`] when a file (or another code migration) has its version,
    /// naming both; [`Error::MissingFile`] without a probe or rollback; the errors of a
    /// script's content, naming the code migration.
    pub fn with_code(mut self, code: CodeMigration) -> Result<Self, Error> {
        let migration = code::load(code)?;
        if let Some(there) = self.get(migration.version) {
            return Err(Error::DuplicateVersion {
                version: migration.version,
                first: there.path().to_owned(),
                second: migration.path().to_owned(),
            });
        }
        let at = self
            .migrations
            .partition_point(|m| m.version < migration.version);
        self.migrations.insert(at, migration);
        Ok(self)
    }

    /// No migrations.
    #[cfg(feature = "cli")]
    pub(crate) fn empty() -> Self {
        Source {
            migrations: Vec::new(),
            dir: None,
        }
    }

    /// The same migrations, said to come from `dir` (what embedding records).
    pub(crate) fn embedded_from(mut self, dir: Option<PathBuf>) -> Self {
        self.dir = dir;
        self
    }

    /// The migrations, in version order.
    pub fn migrations(&self) -> &[Migration] {
        &self.migrations
    }

    /// The migration with this version.
    pub fn get(&self, version: i64) -> Option<&Migration> {
        self.migrations
            .binary_search_by_key(&version, |m| m.version)
            .ok()
            .map(|i| &self.migrations[i])
    }

    /// The highest version, or 0 when the source is empty.
    pub fn latest_version(&self) -> i64 {
        self.migrations.last().map_or(0, |m| m.version)
    }

    /// Loads migrations from `(path, content)` pairs of migration files: what both public
    /// loaders read.
    pub(crate) fn load(mut files: Vec<(PathBuf, Vec<u8>)>) -> Result<Self, Error> {
        // Sorted, so that errors do not depend on the order of the directory.
        files.sort();
        let mut parsed = Vec::with_capacity(files.len());
        for (path, bytes) in files {
            parsed.push((FileName::parse(&path)?, path, bytes));
        }
        // One version, one `NNN_description`: name the forward scripts of a clash when they exist.
        let mut stems: BTreeMap<i64, BTreeMap<&str, &Path>> = BTreeMap::new();
        for (name, path, _) in &parsed {
            let shown = stems
                .entry(name.version)
                .or_default()
                .entry(&name.stem)
                .or_insert(path);
            if name.kind == Kind::Forward {
                *shown = path;
            }
        }
        for (version, stems) in &stems {
            if let [(_, first), (_, second), ..] = stems.iter().collect::<Vec<_>>()[..] {
                return Err(Error::DuplicateVersion {
                    version: *version,
                    first: first.to_path_buf(),
                    second: second.to_path_buf(),
                });
            }
        }

        #[derive(Default)]
        struct Parts {
            forward: Option<Script>,
            rollback: Option<Script>,
            probe: Option<Script>,
            /// SHA-384 of the forward script's bytes, as sqlx computes it.
            sqlx_checksum: Vec<u8>,
        }
        let mut by_version: BTreeMap<i64, (FileName, PathBuf, Parts)> = BTreeMap::new();
        for (name, path, bytes) in parsed {
            let sqlx_checksum =
                (name.kind == Kind::Forward).then(|| Sha384::digest(&bytes).to_vec());
            let script = Script::new(path.clone(), decode(&path, bytes)?, name.kind)?;
            let (kind, version) = (name.kind, name.version);
            let (_, _, parts) = by_version
                .entry(name.version)
                .or_insert_with(|| (name, path, Parts::default()));
            let slot = match kind {
                Kind::Forward => &mut parts.forward,
                Kind::Rollback => &mut parts.rollback,
                Kind::Probe => &mut parts.probe,
            };
            if let Some(first) = slot {
                // Both spellings: NNN_x.sql and sqlx's NNN_x.up.sql (or .rollback / .down).
                return Err(Error::InvalidFileName {
                    path: script.path().to_owned(),
                    reason: format!(
                        "migration {version} already has this script in {}: name it either the \
                         backstop way (NNN_x.sql, NNN_x.rollback.sql) or the sqlx way \
                         (NNN_x.up.sql, NNN_x.down.sql), not both",
                        first.path().display()
                    ),
                });
            }
            *slot = Some(script);
            if let Some(checksum) = sqlx_checksum {
                parts.sqlx_checksum = checksum;
            }
        }
        let mut migrations = Vec::with_capacity(by_version.len());
        for (version, (name, any_path, parts)) in by_version {
            let dir = any_path.parent().unwrap_or(Path::new(""));
            let expect = |suffix: &str| Error::MissingFile {
                version,
                expected: dir.join(format!("{}{suffix}", name.stem)),
            };
            let forward = parts.forward.ok_or_else(|| expect(".sql"))?;
            let rollback = parts.rollback.ok_or_else(|| expect(".rollback.sql"))?;
            let probe = parts.probe.ok_or_else(|| expect(".probe.sql"))?;
            migrations.push(Migration {
                version,
                description: name.description,
                sqlx_checksum: parts.sqlx_checksum,
                checksum: Checksum::of(forward.text()),
                forward: Step::Sql(forward),
                rollback: Step::Sql(rollback),
                data_probe: rules::is_data_probe(probe.text()),
                probe,
            });
        }
        Ok(Source {
            migrations,
            dir: None,
        })
    }
}
