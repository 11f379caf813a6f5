//! The database an operation works on, resolved once when the operation starts: the pool, the
//! database's name as the pool gives it (for messages and reports), and its main file as
//! SQLite resolved it (`None` in memory). Operations and the session take it; nothing below
//! resolves the file or names the database again.

use std::path::{Path, PathBuf};

use sqlx::{SqliteConnection, SqlitePool};

use crate::backup::BackupDir;
use crate::config::Config;
use crate::connection::{acquire, database_file, display_name, read_error};
use crate::error::{BackupError, Error};
use crate::history::{History, Live};

/// The database of a pool, resolved.
#[derive(Debug, Clone)]
pub(crate) struct Database<'p> {
    pool: &'p SqlitePool,
    name: PathBuf,
    file: Option<PathBuf>,
}

impl<'p> Database<'p> {
    /// Resolves the pool's database: its name, and its file (one pool connection, borrowed).
    pub async fn resolve(pool: &'p SqlitePool) -> Result<Self, Error> {
        let name = display_name(pool);
        let file = database_file(pool, &name).await?;
        Ok(Database { pool, name, file })
    }

    pub fn pool(&self) -> &'p SqlitePool {
        self.pool
    }

    /// The database as the pool names it.
    pub fn name(&self) -> &Path {
        &self.name
    }

    /// Its file, `None` in memory.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Its file, or the error of an operation that needs one (`doing` it at `path`).
    pub fn file_for(&self, path: &Path) -> Result<&Path, Error> {
        self.file()
            .ok_or_else(|| BackupError::InMemory.at(&self.name, path))
    }

    /// Its backups as `config` places them; `None` in memory.
    pub fn backups(&self, config: &Config) -> Result<Option<BackupDir>, Error> {
        self.file()
            .map(|file| config.backup_dir_of(&self.name, file))
            .transpose()
    }

    /// Reads with `read` on a pool connection, without a lock; a lock held past the pool's
    /// busy timeout is [`Error::Busy`], like every lock wait.
    pub async fn read<T>(
        &self,
        doing: &str,
        read: impl AsyncFnOnce(&mut SqliteConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, Error> {
        let mut conn = acquire(self.pool, &self.name).await?;
        match read(&mut conn).await {
            Ok(value) => Ok(value),
            Err(e) => Err(read_error(&mut conn, &self.name, doing, e).await),
        }
    }

    /// The history, read without a lock.
    pub async fn history(&self) -> Result<History, Error> {
        self.read("reading the history", async |conn| {
            History::read(conn).await
        })
        .await
    }

    /// The history and the identity, read without a lock.
    pub async fn live(&self) -> Result<Live, Error> {
        self.read("reading the history", async |conn| Live::read(conn).await)
            .await
    }
}
