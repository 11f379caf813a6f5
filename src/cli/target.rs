//! Which database the command line works on, and the pool it opens on it.
//!
//! `--database` is a file path, always (a file named `file:x.db` is that file). A URL comes
//! from `DATABASE_URL` only, with its options (`mode=ro`, `immutable`); an in-memory or empty
//! URL is refused (nothing migrated would outlive the process). Else the program's default.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

use super::output::{CliError, CliKind};

/// Whether a command may create the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Create {
    /// `migrate`: a missing database (and its directory) is created.
    IfMissing,
    /// Everything else: a missing database is an error.
    Never,
}

/// The database a command works on.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    options: SqliteConnectOptions,
    /// The file on disk (for the checks and the cleanup of a failed migrate).
    file: PathBuf,
}

impl Target {
    /// `--database`, else `DATABASE_URL`, else `default`.
    pub fn resolve(flag: Option<&Path>, default: Option<&Path>) -> Result<Self, CliError> {
        if let Some(path) = flag {
            if path.to_string_lossy().starts_with("sqlite:") && !path.exists() {
                return Err(CliError::new(
                    CliKind::InvalidArgument,
                    format!(
                        "--database {}: no such file, and --database takes a file path, never \
                         a URL: pass the file's path, or set DATABASE_URL={} instead",
                        path.display(),
                        path.display()
                    ),
                ));
            }
            return Ok(Target::path(path));
        }
        match std::env::var("DATABASE_URL") {
            Ok(url) if !url.is_empty() => Target::url(&url),
            _ => match default {
                Some(path) => Ok(Target::path(path)),
                None => Err(CliError::new(
                    CliKind::InvalidArgument,
                    "no database given: pass --database PATH or set DATABASE_URL".to_owned(),
                )),
            },
        }
    }

    /// A file path, taken literally: SQLite reads a name starting with `file:` as a URI, so a
    /// relative one is given as `./file:...`.
    fn path(path: &Path) -> Self {
        let literal = if path.is_relative() && path.to_string_lossy().starts_with("file:") {
            Path::new(".").join(path)
        } else {
            path.to_owned()
        };
        Target {
            options: SqliteConnectOptions::new().filename(&literal),
            file: literal,
        }
    }

    fn url(url: &str) -> Result<Self, CliError> {
        let invalid = |why: String| {
            CliError::new(
                CliKind::InvalidArgument,
                format!("DATABASE_URL={url:?} {why}"),
            )
        };
        if !url.starts_with("sqlite:") {
            return Err(invalid(
                "is not a sqlite: URL; pass --database PATH instead".to_owned(),
            ));
        }
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| invalid(format!("is not a valid sqlite: URL: {e}")))?;
        let name = options.get_filename().to_string_lossy().into_owned();
        if crate::connection::names_no_file(&options) {
            return Err(invalid(
                "names no database file (an in-memory or temporary database): nothing the \
                 command line migrates would outlive it; point it at a file"
                    .to_owned(),
            ));
        }
        Ok(Target {
            file: uri_path(&name),
            options,
        })
    }

    /// The database as reports name it.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Opens a pool on the database (two connections: the runner borrows one).
    pub async fn open(
        &self,
        create: Create,
        busy_timeout: Duration,
    ) -> Result<SqlitePool, CliError> {
        let path = &self.file;
        let fail = |message: String| CliError::new(CliKind::DatabasePath, message);
        if path.is_dir() {
            return Err(fail(format!(
                "{}: is a directory, not a database file",
                path.display()
            )));
        }
        if create == Create::Never && !path.exists() {
            return Err(fail(format!("database {} does not exist", path.display())));
        }
        if create == Create::IfMissing
            && let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).map_err(|e| {
                fail(format!(
                    "cannot create the directory {}: {e}",
                    parent.display()
                ))
            })?;
        }
        let options = crate::connection::quiet(
            self.options
                .clone()
                .create_if_missing(create == Create::IfMissing)
                .busy_timeout(busy_timeout),
        );
        SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .map_err(|e| fail(format!("cannot open the database {}: {e}", path.display())))
    }
}

/// The file a SQLite URI filename (`file:x.db`, `file:///abs/x.db`) names.
fn uri_path(name: &str) -> PathBuf {
    let Some(rest) = name.strip_prefix("file:") else {
        return PathBuf::from(name);
    };
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    match rest.strip_prefix("//") {
        // file://host/path: the path starts at the first '/' after the host.
        Some(after) => PathBuf::from(&after[after.find('/').unwrap_or(after.len())..]),
        None => PathBuf::from(rest),
    }
}

/// What `migrate` is about to create for a new database: the file and missing directories,
/// removed again when the migration fails (the run changed nothing, so nothing should remain).
pub(crate) struct Fresh {
    file: Option<PathBuf>,
    dirs: Vec<PathBuf>,
}

impl Fresh {
    pub fn before_creating(path: &Path) -> Self {
        let dirs = path
            .ancestors()
            .skip(1)
            .filter(|d| !d.as_os_str().is_empty())
            .take_while(|d| !d.exists())
            .map(Path::to_owned)
            .collect();
        Fresh {
            file: (!path.exists()).then(|| path.to_owned()),
            dirs,
        }
    }

    pub fn undo(self) {
        if let Some(file) = &self.file
            && std::fs::metadata(file).is_ok_and(|m| m.len() == 0)
        {
            for suffix in ["", "-journal", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
            }
        }
        for dir in &self.dirs {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_names_give_their_file() {
        assert_eq!(uri_path("file:real.db"), PathBuf::from("real.db"));
        assert_eq!(uri_path("file:real.db?mode=ro"), PathBuf::from("real.db"));
        assert_eq!(
            uri_path("file:///abs/real.db"),
            PathBuf::from("/abs/real.db")
        );
        assert_eq!(
            uri_path("file://localhost/abs/x.db"),
            PathBuf::from("/abs/x.db")
        );
        assert_eq!(uri_path("plain.db"), PathBuf::from("plain.db"));
    }

    #[test]
    fn a_path_is_a_path() {
        let target = Target::path(Path::new("file:real.db"));
        assert_eq!(target.file(), Path::new("./file:real.db"));
        let target = Target::path(Path::new("/tmp/file:real.db"));
        assert_eq!(target.file(), Path::new("/tmp/file:real.db"));
    }
}
