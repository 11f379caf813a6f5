//! The error type of every fallible operation in this crate.

mod backup;
mod format;
mod kind;

use std::path::PathBuf;
use std::time::Duration;

pub use crate::ffi::SqliteFailure;
pub use backup::BackupError;
pub(crate) use format::shorten;
use format::{format_backups, format_versions, format_violations};

/// The error a code migration's function returns: any error (`anyhow::Error`, `sqlx::Error`,
/// your own) converts into it.
pub type CodeError = Box<dyn std::error::Error + Send + Sync>;

/// Everything that can go wrong while loading migrations, migrating, rolling back or
/// inspecting a database.
///
/// Every variant names what is at fault: the file, the version, the statement or the path.
/// Whenever one of these errors is returned by [`Migrator`](crate::Migrator), the database is
/// exactly as it was before the call (the transaction was rolled back, or never started).
///
/// The message of an underlying error (I/O, SQLite, a backup's failure) is part of the
/// variant's message, as in sqlx's own errors, and the underlying error itself is the
/// variant's `cause`, which [`std::error::Error::source`] returns.
#[derive(Debug, thiserror::Error, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
#[non_exhaustive]
pub enum Error {
    // ----- loading a source -------------------------------------------------------------------
    /// A migrations directory (or a file in it) could not be read.
    #[error("cannot read {path}: {cause}")]
    Io {
        /// The directory or file that could not be read.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        cause: std::io::Error,
    },

    /// A file could not be written (the files of a new migration).
    #[error("cannot write {path}: {cause}")]
    Write {
        /// The file or directory that could not be written.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        cause: std::io::Error,
    },

    /// A `.sql` file whose name does not follow `NNN_description[.rollback|.probe].sql`.
    #[error("{path}: not a migration file name: {reason}")]
    InvalidFileName {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with the name.
        reason: String,
    },

    /// Two migrations share one version.
    #[error("{second}: version {version} is already used by {first}")]
    DuplicateVersion {
        /// The version used twice.
        version: i64,
        /// The first file found with that version.
        first: PathBuf,
        /// The second file found with that version.
        second: PathBuf,
    },

    /// A migration lacks one of its three files (forward, rollback, probe).
    #[error(
        "migration {version}: {expected} is missing (every migration needs a forward script, a rollback script and a probe)"
    )]
    MissingFile {
        /// The version whose file is missing.
        version: i64,
        /// The file that was expected.
        expected: PathBuf,
    },

    /// A script is not valid UTF-8.
    #[error("{path}: not valid UTF-8 (invalid byte at offset {offset})")]
    InvalidUtf8 {
        /// The offending file.
        path: PathBuf,
        /// Byte offset of the first invalid sequence.
        offset: usize,
    },

    /// A script holds no statement (only whitespace or comments, as a template from `add`).
    #[error("{path}: the script is empty: {expected}")]
    EmptyScript {
        /// The offending file.
        path: PathBuf,
        /// What to write in it.
        expected: &'static str,
    },

    /// A script holds a statement that the runner does not allow (transaction control, a probe
    /// that is not a single `SELECT`, an unterminated statement, ...).
    #[error("{path}, line {line}: {reason}: `{statement}`")]
    InvalidScript {
        /// The offending file.
        path: PathBuf,
        /// Line (1-based) where the statement starts.
        line: usize,
        /// The statement, shortened for display.
        statement: String,
        /// Why it is refused.
        reason: String,
    },

    // ----- source against database -------------------------------------------------------------
    /// An applied migration's file was changed after it was applied.
    #[error(
        "migration {version} ({path}) was modified after it was applied: recorded checksum {recorded}, file now {actual}"
    )]
    ChecksumMismatch {
        /// The migration's version.
        version: i64,
        /// Its forward script.
        path: PathBuf,
        /// Checksum stored in the history table.
        recorded: String,
        /// Checksum of the file now.
        actual: String,
    },

    /// The database has applied migrations that this build does not know: it was migrated by a
    /// newer build (or a migration file was deleted).
    #[error(
        "database {database} has applied migration(s) {versions:?} that this build does not know (latest known: {latest_known}); it was migrated by a newer build"
    )]
    UnknownVersions {
        /// The database file.
        database: PathBuf,
        /// The versions recorded in the history but absent from the source.
        versions: Vec<i64>,
        /// The latest version of the source.
        latest_known: i64,
    },

    /// A pending migration has a lower version than one already applied.
    #[error(
        "migration {version} ({path}) is pending but the database is already at version {current}: a migration may not be inserted below an applied one; give it a version above {current}"
    )]
    OutOfOrder {
        /// The pending migration's version.
        version: i64,
        /// Its forward script.
        path: PathBuf,
        /// The database's current version.
        current: i64,
    },

    /// A target version that is not a migration of the source.
    #[error("target version {target} does not exist: the known versions are {known:?}")]
    UnknownTarget {
        /// The version asked for.
        target: i64,
        /// The versions of the source.
        known: Vec<i64>,
    },

    /// `migrate` was asked to go down.
    #[error(
        "target version {target} is below the current version {current}: migrate only goes up; use rollback to go down"
    )]
    TargetBelowCurrent {
        /// The version asked for.
        target: i64,
        /// The database's current version.
        current: i64,
    },

    /// A rollback to a version the database never had.
    #[error(
        "database {database} was never at version {version}: the versions applied are {applied:?} (0 is the version before any migration)"
    )]
    VersionNotApplied {
        /// The database file.
        database: PathBuf,
        /// The version asked for.
        version: i64,
        /// The versions recorded in the history.
        applied: Vec<i64>,
    },

    /// No backup of this database holds the version asked for.
    #[error("no backup of {database} holds version {version}; the backups in {dir} are: {}; roll back with the rollback scripts instead, or restore a backup file by name", format_backups(.available))]
    NoBackup {
        /// The database file.
        database: PathBuf,
        /// The version asked for.
        version: i64,
        /// The backup directory.
        dir: PathBuf,
        /// Every backup of the database, with the version it holds (`None`: unreadable).
        available: Vec<(PathBuf, Option<i64>)>,
    },

    // ----- running ------------------------------------------------------------------------------
    /// A lock could not be taken within the busy timeout.
    #[error(
        "database {database} is locked: {holder}; gave up after the busy timeout of {timeout:?}"
    )]
    Busy {
        /// The database file.
        database: PathBuf,
        /// How long the runner waited.
        timeout: Duration,
        /// Who held what the runner waited for.
        holder: LockHolder,
    },

    /// The file is not a SQLite database, or is damaged.
    #[error("{database} is not a usable SQLite database: {message}")]
    NotADatabase {
        /// The database file.
        database: PathBuf,
        /// SQLite's explanation.
        message: String,
    },

    /// A statement of a migration script failed.
    #[error(
        "migration {version} ({path}), line {line}: {cause}; the failing statement: `{statement}`"
    )]
    Statement {
        /// The migration's version.
        version: i64,
        /// The script that holds the statement.
        path: PathBuf,
        /// Line (1-based) where the statement starts.
        line: usize,
        /// The statement, shortened for display.
        statement: String,
        /// SQLite's error.
        #[source]
        cause: sqlx::Error,
    },

    /// A probe could not run, or did not return exactly one row with one integer 0 or 1.
    #[error("probe of migration {version} ({path}): {reason}")]
    Probe {
        /// The migration's version.
        version: i64,
        /// The probe file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },

    /// After a script ran, its probe did not confirm the expected state.
    #[error(
        "migration {version} ({path}) ran, but its probe {probe} still says {value}: the script did not produce the state its probe checks for"
    )]
    ProbeNotConfirmed {
        /// The migration's version.
        version: i64,
        /// The script that ran (forward or rollback).
        path: PathBuf,
        /// The probe file.
        probe: PathBuf,
        /// What the probe said.
        value: i64,
    },

    /// The migrations left foreign-key violations that were not there before.
    ///
    /// Foreign keys are off on the runner's connection during a run (so that table rebuilds
    /// are safe), so `ON DELETE` / `ON UPDATE` actions (`CASCADE`, `SET NULL`, ...) do not fire:
    /// a script that deletes parent rows deletes or updates their children itself.
    #[error("the migration(s) {versions:?} introduced foreign-key violations: {}; foreign keys are off during migrations, so ON DELETE and ON UPDATE actions (CASCADE, SET NULL) do not fire: delete or update the child rows in the script itself", format_violations(.violations))]
    ForeignKeyViolation {
        /// The versions that ran in this transaction.
        versions: Vec<i64>,
        /// The new violations (a sample when there are many).
        violations: Vec<ForeignKeyViolation>,
    },

    /// A backup could not be written, read, verified or restored; nothing was changed.
    #[error("backup of {database} at {path}: {cause}")]
    Backup {
        /// The database file.
        database: PathBuf,
        /// The backup file (or directory) at fault.
        path: PathBuf,
        /// What went wrong.
        #[source]
        cause: BackupError,
    },

    /// A backup directory or file that another local user could have written: owned by
    /// another user, or writable by group or others (a directory with the sticky bit may be
    /// writable by others). Backups are never written into such a directory nor read from such
    /// a file.
    #[error(
        "{} is not safe for backups: {problem} (owner uid {owner}, mode {mode:04o}; backstop runs as uid {uid})",
        path.display()
    )]
    UnsafeBackupPath {
        /// The directory or file.
        path: PathBuf,
        /// Its owner's user id.
        owner: u32,
        /// Its permission bits.
        mode: u32,
        /// The user id backstop runs as.
        uid: u32,
        /// What is wrong, and what to do.
        problem: String,
    },

    /// A backup file named for a restore is not a backup of this database.
    #[error("{} is not a backup of {}: {reason}", path.display(), database.display())]
    ForeignBackup {
        /// The database file.
        database: PathBuf,
        /// The backup file.
        path: PathBuf,
        /// Why it is taken for another database's.
        reason: String,
    },

    /// The pool opens a private database (in memory, or a temporary one with no file name)
    /// with several connections: each connection is a different, empty database, so nothing
    /// migrated on one would be seen on the others. Nothing was run.
    #[error(
        "{} is a private database (in memory, or a temporary one with no file name) and the pool may open {max_connections} connections, each of them a different, empty database: nothing migrated on one would be seen on the others; use max_connections(1), a shared in-memory database (`sqlite::memory:`) or a file",
        database.display()
    )]
    PrivateDatabase {
        /// The database as the pool names it.
        database: PathBuf,
        /// The pool's most connections.
        max_connections: u32,
    },

    /// The database is read-only (the pool opens it with `mode=ro` or `immutable`, or its file
    /// cannot be written), and the operation writes, or takes the write lock. Nothing was run.
    #[error("{} is read-only (opened with mode=ro or immutable, or a file that cannot be written), and this operation takes its write lock; open it read-write", database.display())]
    ReadOnly {
        /// The database as the pool names it.
        database: PathBuf,
    },

    /// `migrate` on a database that sqlx migrated and backstop never did: adopting each
    /// migration by its probe would re-run those whose effect a later migration removed.
    #[error(
        "{} was migrated by sqlx (_sqlx_migrations records {versions} migration(s)) and has no backstop history: import sqlx's history first (Migrator::import_sqlx), which records sqlx's migrations as applied without running anything",
        database.display()
    )]
    SqlxHistory {
        /// The database as the pool names it.
        database: PathBuf,
        /// How many migrations sqlx recorded.
        versions: usize,
    },

    /// An import of sqlx's history on a database without sqlx's history table.
    #[error("{} has no sqlx history (_sqlx_migrations): there is nothing to import", database.display())]
    NoSqlxHistory {
        /// The database as the pool names it.
        database: PathBuf,
    },

    /// sqlx recorded a migration as failed: the database may be half-migrated.
    #[error(
        "sqlx recorded migration {version} ({description}) of {} as failed (success = false): the database may be half-migrated; repair it with sqlx first (`sqlx migrate info`), then import",
        database.display()
    )]
    SqlxDirty {
        /// The database as the pool names it.
        database: PathBuf,
        /// The failed version.
        version: i64,
        /// Its description in sqlx's history.
        description: String,
    },

    /// sqlx applied a migration that the source does not have.
    #[error(
        "sqlx applied migration {version} ({description}) to {}, and the migrations given to backstop have no version {version}: add its file (renamed with a probe and a rollback) before importing",
        database.display()
    )]
    SqlxVersionUnknown {
        /// The database as the pool names it.
        database: PathBuf,
        /// The version sqlx applied.
        version: i64,
        /// Its description in sqlx's history.
        description: String,
    },

    /// sqlx applied migrations up to `latest` but not every migration of the source below it.
    #[error(
        "sqlx applied migrations of {} up to version {latest} but not {missing:?}, which the migrations given to backstop have: imported so, they would be pending below an applied version, which backstop refuses; apply them with sqlx first (its migrator runs the missing ones), then import",
        database.display()
    )]
    SqlxGap {
        /// The database as the pool names it.
        database: PathBuf,
        /// The versions of the source below `latest` that sqlx did not apply.
        missing: Vec<i64>,
        /// The latest version sqlx applied.
        latest: i64,
    },

    /// An export to sqlx's history refused: versions whose row sqlx's history cannot be made
    /// to hold or lose (an applied migration sqlx could not read; a row of sqlx's whose
    /// migration backstop's history lacks but whose effect is present), each with why.
    #[error(
        "sqlx's history of {} cannot be made to say what backstop's says: {}; nothing was changed",
        database.display(),
        format_versions(versions)
    )]
    SqlxExportRefused {
        /// The database as the pool names it.
        database: PathBuf,
        /// Each version at fault, with why.
        versions: Vec<(i64, String)>,
    },

    /// A rollback by scripts over versions a newer build applied whose rollback is Rust code
    /// this build does not have (no SQL rollback was stored for them).
    #[error(
        "migration(s) {versions:?} of {}, applied by a newer build, roll back with Rust code that this build does not have (no SQL rollback was stored for them): restore a backup instead (rollback --strategy backup, or restore PATH)",
        database.display()
    )]
    NoRollbackScript {
        /// The database as the pool names it.
        database: PathBuf,
        /// The versions, in order.
        versions: Vec<i64>,
    },

    /// A code migration's function failed: it returned an error, panicked, or ran a statement
    /// the rules refuse. The run was rolled back.
    #[error("{} (migration {version}) failed: {reason}", path.display())]
    CodeFailed {
        /// The migration's version.
        version: i64,
        /// The function, as `<code migration N (description)>`.
        path: PathBuf,
        /// What went wrong.
        reason: String,
        /// The error it returned.
        #[source]
        cause: Option<CodeError>,
    },

    /// Any other database error, with what the runner was doing.
    #[error("{database}: {context}: {cause}")]
    Database {
        /// The database file.
        database: PathBuf,
        /// What the runner was doing.
        context: String,
        /// The underlying error.
        #[source]
        cause: sqlx::Error,
    },
}

/// Who held a lock that the runner waited for in vain ([`Error::Busy`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LockHolder {
    /// Another connection held the database's lock: a writer in a long transaction (or a
    /// checkpoint that was over when the runner looked).
    Connection,
    /// A checkpoint (`wal_checkpoint(FULL)`, `RESTART` or `TRUNCATE`) held the write lock
    /// while it waited for other connections' read transactions to end.
    Checkpoint,
    /// Another migrator of this database was taking a backup or migrating (migrators that
    /// back up one database take turns, so that only one copies it).
    Migrator,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LockHolder::Connection => {
                "another connection held the write lock (a writer in a long transaction)"
            }
            LockHolder::Checkpoint => {
                "a checkpoint (wal_checkpoint FULL, RESTART or TRUNCATE) held the write lock \
                 while it waited for other connections' read transactions to end"
            }
            LockHolder::Migrator => {
                "another migrator of this database was taking a backup or migrating"
            }
        })
    }
}

/// One row of `PRAGMA foreign_key_check`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ForeignKeyViolation {
    /// The table holding the dangling reference.
    pub table: String,
    /// The row holding it (`None` for a `WITHOUT ROWID` table).
    pub rowid: Option<i64>,
    /// The table it refers to.
    pub parent: String,
}
