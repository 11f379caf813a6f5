//! Finding, parsing, validating and checksumming migration files.
//!
//! A migration is three files in one directory:
//!
//! | file | what it holds |
//! |---|---|
//! | `NNN_description.sql` | the forward script |
//! | `NNN_description.rollback.sql` | the script that undoes it |
//! | `NNN_description.probe.sql` | one `SELECT` returning one row, one integer: `1` when the forward script's effect is present, `0` when not |
//!
//! `NNN` is the version, a positive integer (zero-padding is customary and ignored);
//! `description` is made of ASCII letters, digits, `_` and `-`. Files that do not end in
//! `.sql`, hidden files and sub-directories are ignored.
//!
//! Loading validates everything before any database is touched, and every error names the
//! file at fault (see [`Error`]).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::error::{Error, shorten};
use crate::sql::{self, Statement};

/// An ordered, validated set of migrations, loaded from a directory or embedded in the binary.
///
/// Both ways of loading give the same `Source` for the same files.
#[derive(Debug, Clone)]
pub struct Source {
    migrations: Vec<Migration>,
}

/// One migration: its version, description, three scripts and checksum.
#[derive(Debug, Clone)]
pub struct Migration {
    version: i64,
    description: String,
    checksum: Checksum,
    forward: Script,
    rollback: Script,
    probe: Script,
}

/// A validated script: its file, its text and its statements.
#[derive(Debug, Clone)]
pub(crate) struct Script {
    pub path: PathBuf,
    pub text: Arc<str>,
    pub statements: Arc<[Statement]>,
}

/// SHA-256 of a forward script with its line endings normalised (CRLF and LF hash the same) and
/// a leading byte-order mark ignored.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Checksum([u8; 32]);

impl Checksum {
    /// Checksum of a script's text.
    pub fn of(script: &str) -> Self {
        let text = script.strip_prefix('\u{feff}').unwrap_or(script);
        let mut hasher = Sha256::new();
        let mut rest = text;
        while let Some(pos) = rest.find("\r\n") {
            hasher.update(&rest.as_bytes()[..pos]);
            hasher.update(b"\n");
            rest = &rest[pos + 2..];
        }
        hasher.update(rest.as_bytes());
        Checksum(hasher.finalize().into())
    }

    /// The checksum as 64 lower-case hexadecimal digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Whether `hex` is this checksum in lower-case hexadecimal (without allocating).
    pub(crate) fn matches_hex(&self, hex: &str) -> bool {
        let mut buf = [0u8; 64];
        hex::encode_to_slice(self.0, &mut buf).is_ok() && buf == hex.as_bytes()
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Checksum({self})")
    }
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

    /// Checksum of the forward script.
    pub fn checksum(&self) -> Checksum {
        self.checksum
    }

    /// The forward script's file (for embedded sources, its path inside the embedded directory).
    pub fn path(&self) -> &Path {
        &self.forward.path
    }

    /// The forward script.
    pub fn sql(&self) -> &str {
        &self.forward.text
    }

    /// The rollback script.
    pub fn rollback_sql(&self) -> &str {
        &self.rollback.text
    }

    /// The probe query.
    pub fn probe_sql(&self) -> &str {
        &self.probe.text
    }

    pub(crate) fn forward(&self) -> &Script {
        &self.forward
    }

    pub(crate) fn rollback(&self) -> &Script {
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
    /// [`Error::Io`] when the directory cannot be read, and the validation errors listed in
    /// the [module documentation](self).
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
        Self::from_files(files)
    }

    /// Loads the migrations of a directory embedded at compile time with
    /// [`include_dir`](https://docs.rs/include_dir). Most callers use
    /// [`embed_migrations!`](crate::embed_migrations) instead.
    pub fn from_embedded(dir: &include_dir::Dir<'_>) -> Result<Self, Error> {
        let files = dir
            .files()
            .filter(|f| {
                f.path()
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(is_candidate)
            })
            .map(|f| (f.path().to_owned(), f.contents().to_vec()))
            .collect();
        Self::from_files(files)
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

    fn from_files(mut files: Vec<(PathBuf, Vec<u8>)>) -> Result<Self, Error> {
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
        }
        let mut by_version: BTreeMap<i64, (FileName, PathBuf, Parts)> = BTreeMap::new();
        for (name, path, bytes) in parsed {
            let script = Script::new(path.clone(), decode(&path, bytes)?, name.kind)?;
            let kind = name.kind;
            let (_, _, parts) = by_version
                .entry(name.version)
                .or_insert_with(|| (name, path, Parts::default()));
            match kind {
                Kind::Forward => parts.forward = Some(script),
                Kind::Rollback => parts.rollback = Some(script),
                Kind::Probe => parts.probe = Some(script),
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
                checksum: Checksum::of(&forward.text),
                forward,
                rollback,
                probe,
            });
        }
        Ok(Source { migrations })
    }
}

/// Files the loader looks at: visible `.sql` files.
fn is_candidate(name: &str) -> bool {
    name.ends_with(".sql") && !name.starts_with('.')
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Forward,
    Rollback,
    Probe,
}

struct FileName {
    version: i64,
    description: String,
    /// `NNN_description` as written (with its zero-padding).
    stem: String,
    kind: Kind,
}

impl FileName {
    fn parse(path: &Path) -> Result<Self, Error> {
        let invalid = |reason: &str| Error::InvalidFileName {
            path: path.to_owned(),
            reason: format!(
                "{reason} (expected NNN_description.sql, NNN_description.rollback.sql or \
                 NNN_description.probe.sql; NNN a positive version, the description made of \
                 letters, digits, '_' and '-')"
            ),
        };
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| invalid("the name is not valid UTF-8"))?;
        let stem = name.strip_suffix(".sql").unwrap_or(name);
        let (stem, kind) = if let Some(s) = stem.strip_suffix(".rollback") {
            (s, Kind::Rollback)
        } else if let Some(s) = stem.strip_suffix(".probe") {
            (s, Kind::Probe)
        } else {
            (stem, Kind::Forward)
        };
        let (digits, description) = stem
            .split_once('_')
            .ok_or_else(|| invalid("no '_' between the version and the description"))?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("the version is not a number"));
        }
        let version: i64 = digits
            .parse()
            .map_err(|_| invalid("the version is too large"))?;
        if version == 0 {
            return Err(invalid("the version must be positive"));
        }
        if description.is_empty() {
            return Err(invalid("the description is empty"));
        }
        if let Some(bad) = description
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
        {
            let hint = match description.rsplit_once('.') {
                Some((_, "down" | "undo" | "revert")) => {
                    "; a rollback script is named NNN_description.rollback.sql"
                }
                Some((_, "up")) => "; a forward script is named NNN_description.sql",
                _ => "",
            };
            return Err(invalid(&format!(
                "the description contains {bad:?}, which is not allowed{hint}"
            )));
        }
        Ok(FileName {
            version,
            description: description.to_owned(),
            stem: stem.to_owned(),
            kind,
        })
    }
}

/// The file's text, without a leading byte-order mark (which SQLite would not parse).
fn decode(path: &Path, bytes: Vec<u8>) -> Result<String, Error> {
    let mut text = String::from_utf8(bytes).map_err(|e| Error::InvalidUtf8 {
        path: path.to_owned(),
        offset: e.utf8_error().valid_up_to(),
    })?;
    if text.starts_with('\u{feff}') {
        text.drain(..'\u{feff}'.len_utf8());
    }
    Ok(text)
}

impl Script {
    fn new(path: PathBuf, text: String, kind: Kind) -> Result<Self, Error> {
        let invalid = |line, statement: &str, reason: &str| Error::InvalidScript {
            path: path.clone(),
            line,
            statement: shorten(statement),
            reason: reason.to_owned(),
        };
        let statements = sql::split(&text).map_err(|e| invalid(e.line, &e.statement, e.reason))?;
        if statements.is_empty() {
            return Err(Error::EmptyScript { path });
        }
        for statement in &statements {
            let refused = match statement.keyword.as_str() {
                "BEGIN" | "COMMIT" | "END" | "ROLLBACK" | "SAVEPOINT" | "RELEASE" => Some(
                    "a script may not control the transaction (the runner runs every migration \
                     inside its own transaction)",
                ),
                "VACUUM" => Some("VACUUM cannot run inside the runner's transaction"),
                _ => None,
            };
            if let Some(reason) = refused {
                return Err(invalid(statement.line, &statement.sql, reason));
            }
        }
        if kind == Kind::Probe {
            if statements.len() != 1 {
                let second = &statements[1];
                return Err(invalid(
                    second.line,
                    &second.sql,
                    "a probe must be exactly one SELECT statement",
                ));
            }
            let only = &statements[0];
            if !matches!(only.keyword.as_str(), "SELECT" | "WITH" | "VALUES") {
                return Err(invalid(
                    only.line,
                    &only.sql,
                    "a probe must be a read-only SELECT",
                ));
            }
        }
        Ok(Script {
            path,
            text: text.into(),
            statements: statements.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_ignores_line_endings_and_bom() {
        let lf = Checksum::of("CREATE TABLE t(x);\nINSERT INTO t VALUES (1);\n");
        let crlf = Checksum::of("CREATE TABLE t(x);\r\nINSERT INTO t VALUES (1);\r\n");
        let bom = Checksum::of("\u{feff}CREATE TABLE t(x);\r\nINSERT INTO t VALUES (1);\n");
        assert_eq!(lf, crlf);
        assert_eq!(lf, bom);
        assert_ne!(
            lf,
            Checksum::of("CREATE TABLE t(y);\nINSERT INTO t VALUES (1);\n")
        );
        // Known value: sha256("a\n").
        assert_eq!(
            Checksum::of("a\r\n").to_hex(),
            "87428fc522803d31065e7bce3cf03fe475096631e5e07bbd7a0fde60c4cf25c7"
        );
    }

    #[test]
    fn file_names() {
        let ok = FileName::parse(Path::new("m/007_add-index_2.rollback.sql")).unwrap();
        assert_eq!((ok.version, ok.kind), (7, Kind::Rollback));
        assert_eq!(ok.description, "add-index_2");
        for bad in [
            "abc_x.sql",
            "001.sql",
            "001_.sql",
            "000_zero.sql",
            "1a_x.sql",
            "001_has.dot.sql",
            "001_x.down.sql",
            "001_sp ace.sql",
            "99999999999999999999_big.sql",
        ] {
            assert!(
                matches!(
                    FileName::parse(Path::new(bad)),
                    Err(Error::InvalidFileName { .. })
                ),
                "{bad} should be refused"
            );
        }
    }
}
