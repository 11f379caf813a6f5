//! Safe SQLite migrations for [sqlx]: nothing is ever half-applied and nothing is ever lost.
//!
//! `backstop` migrates a SQLite database that other processes may have open, and keeps the way
//! back open:
//!
//! - **Online backup first, writers don't wait for it.** Before any change the runner copies
//!   the database without the write lock, then, under it, brings the copy up to date with what
//!   was committed meanwhile: the copy is exactly the pre-migration state, and other writers
//!   wait only for the catch-up. It never waits for a lock while holding a read snapshot (a
//!   checkpointer would wait for it), and concurrent runs of one database copy it once.
//! - **All or nothing.** Every pending migration runs in one `BEGIN IMMEDIATE` transaction;
//!   on any error the database is exactly as before. SQLite's own parser judges every
//!   statement of a script (an authorizer refuses what would escape the transaction, however
//!   it is spelled).
//! - **Idempotency probes.** Each migration has a probe query that says whether its effect is
//!   already present. A present effect is *adopted* (recorded, not re-run); after a script runs,
//!   its probe must confirm it.
//! - **Versioned, checksummed history** in a table the runner owns, `_backstop_migrations`.
//!   A modified applied migration, or a database migrated by a newer build, is refused.
//! - **Concurrent migrators are safe.** The write lock serialises them; the ones that wait find
//!   the work done and return "up to date".
//!
//! # Migration files
//!
//! Each migration is three files in one directory (see [`Source`] for the rules):
//!
//! ```text
//! migrations/001_create_users.sql            the forward script
//! migrations/001_create_users.rollback.sql   the script that undoes it
//! migrations/001_create_users.probe.sql      SELECT returning 1 when the effect is present, else 0
//! ```
//!
//! Scripts may not control the transaction (`BEGIN`, `COMMIT`, `ROLLBACK`, `SAVEPOINT`, ...):
//! the runner owns it. A forward script's top-level `SELECT` statements are *notices*: each
//! non-NULL value of their first column is reported to the user
//! ([`MigrationOutcome::notices`]), so a script can say what it did
//! (`SELECT 'kept ' || n || ' rows in t_unmerged' FROM (SELECT count(*) AS n FROM t_unmerged)
//! WHERE n > 0;`).
//!
//! What SQL cannot express is a [`CodeMigration`]: an `async fn` on the runner's connection,
//! in the same transaction, with a probe and a rollback, registered with
//! [`Source::with_code`] next to the files. A probe that speaks of data the application keeps
//! writing (a backfill's condition) says so (`-- probe: when-run`,
//! [`CodeMigration::data_probe`]): it decides adoption and confirms the run, and is never drift.
//!
//! # Use it in your project
//!
//! ```toml
//! [dependencies]
//! backstop = { version = "0.1", features = ["cli"] }  # "cli" for your own migrate binary
//! ```
//!
//! Any SQLite that sqlx 0.9 accepts works (`libsqlite3-sys` 0.30.1 up). Embed the migrations,
//! with `println!("cargo:rerun-if-changed=migrations");` in `build.rs` (cargo does not notice
//! new files in an embedded directory otherwise), and migrate on every start, with the
//! service's settings in one function that its command line shares:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use backstop::Migrator;
//! use sqlx::sqlite::SqlitePoolOptions;
//!
//! /// The service's settings, for its startup and its `migrate` binary.
//! fn migrator_settings(migrator: Migrator) -> Migrator {
//!     migrator.backup_dir("/var/backups/app").keep_backups(20)
//! }
//!
//! let pool = SqlitePoolOptions::new()
//!     .connect("sqlite:app.sqlite3?mode=rwc")
//!     .await?;
//! let source = backstop::embed_migrations!("$CARGO_MANIFEST_DIR/migrations")?;
//! let report = migrator_settings(Migrator::new(source))
//!     .allow_newer_database() // rolling deploys: an old instance runs on a newer database
//!     .migrate(&pool)
//!     .await?;
//! println!("version {} -> {}", report.from_version, report.to_version);
//! # Ok(()) }
//! ```
//!
//! A service almost always wants [`allow_newer_database`](Migrator::allow_newer_database):
//! during a rolling deploy an old instance that restarts meets versions the new build applied,
//! and without it refuses the database ([`Error::UnknownVersions`]) and crash-loops.
//!
//! - **Your `migrate` binary**: `backstop::cli::Cli` (feature `cli`) gives `status`,
//!   `migrate`, `rollback`, `restore`, `backups`, `backup`, `add`, `verify`, `import-sqlx` and
//!   `export-sqlx` in six lines; `Cli::configure` takes the same settings function, and
//!   `BACKSTOP_*` variables override it (see the `cli` module).
//! - **Proof before deploy**: [`verify`] proves each migration, its probe and its rollback on a
//!   scratch database (or a copy of a real one): one `#[tokio::test]`.
//! - **From sqlx and back**: [`Migrator::import_sqlx`] takes over `_sqlx_migrations`;
//!   [`Migrator::export_sqlx`] writes it again so that a sqlx build runs on the database.
//! - **Traces**: each operation is one `tracing` span with the database and the versions, and
//!   the backup, the lock wait, each migration and the commit inside it.
//!
//! [`Migrator::migrate`] does, in this order:
//!
//! 1. Reads the history without a lock and refuses a modified applied migration
//!    ([`Error::ChecksumMismatch`]) or a newer database ([`Error::UnknownVersions`]). When
//!    nothing is pending it returns at once: no lock, no backup (services call it on every
//!    start).
//! 2. Opens its own connection (with the pool's options, foreign keys off, a journal on disk,
//!    the scripts' authorizer), waits for other runs of the database that are backing it up,
//!    copies the database into a temporary file without the write lock, and takes the write
//!    lock with `BEGIN IMMEDIATE`, waiting up to the busy timeout for other writers (with no
//!    read snapshot held). It reads the history again under the lock: if another process
//!    migrated meanwhile, it rolls back and reports "up to date".
//! 3. Brings the copy up to date (the pages committed since it was made, from the log) and
//!    checks, syncs and renames it. A failed backup aborts the run before anything is written.
//! 4. Runs each pending migration: probe; if 1, adopt; if 0, run the script and require the
//!    probe to say 1 now; record the history row.
//! 5. Runs `PRAGMA foreign_key_check` and fails on any violation that was not there before,
//!    then commits. On any error it rolls back and removes the backup of this run (it would
//!    duplicate the unchanged database).
//!
//! The pool's own connections are never changed: the runner's connection is its own, and is
//! closed at the end. The runner borrows one connection of the pool briefly, to read the
//! history without a lock.
//!
//! # Getting back
//!
//! [`Migrator::rollback`] brings the database back to an earlier version, after taking a
//! backup of its current state:
//!
//! - [`RollbackStrategy::Backup`] restores the newest backup that holds the version (read from
//!   the backup itself, checked with `PRAGMA integrity_check`) through the backup API, under the
//!   write lock: other connections see the old content or the restored one, never a mix. It
//!   discards what was written after that backup was taken; the safety backup keeps it.
//! - [`RollbackStrategy::Scripts`] runs the rollback scripts, newest first, in one transaction;
//!   after each, the probe must say 0.
//!
//! [`Migrator::restore_file`] restores a backup file named by the user, whatever version it holds
//! (restoring a rollback's safety backup undoes the rollback). [`Migrator::backups`] lists the
//! backups with the version each holds; [`Migrator::backup`] takes one on demand. After each
//! successful run the newest [`keep_backups`](Migrator::keep_backups) backups are kept.
//!
//! Each backup's name carries a tag of its database's file (device, inode, birth time), and each
//! backup holds the database's identity (a random value the first backup-taking run gives it),
//! so databases with the same file name can share a backup directory without ever seeing each
//! other's backups, even where a file system reuses inodes and gives no birth time. Backups get no permission the database lacks; a backup directory or file
//! that another user owns or can write is refused ([`Error::UnsafeBackupPath`]).
//!
//! # Fleets
//!
//! [`Migrator::migrate_each`] migrates many databases (one file per tenant, user or session),
//! each exactly as [`Migrator::migrate`] does it alone, at most [`FleetOptions::jobs`] at once,
//! with canaries first and a choice to stop or go on after a failure; the [`FleetReport`] has
//! each database's outcome. A fleet is not one transaction: a failure in one database never
//! touches another, and running the fleet again does only what is still pending.
//! [`Migrator::status_each`] counts the databases at each version; `dry_run_each`,
//! `migrate_each_to` and `backup_each` do the rest.
//!
//! # Dry runs
//!
//! [`Migrator::dry_run`] gives every operation that changes a database as a dry run
//! ([`DryRun`]): `migrator.dry_run().migrate(&pool)`, `.rollback(..)`, `.restore_file(..)`,
//! `.import_sqlx(..)`, `.export_sqlx(..)`. Each goes through the same checks and returns the same report, marked
//! as a dry run; none changes the database or writes a backup.
//!
//! # Errors
//!
//! Every method returns [`Error`], whose variants name the file, version, statement or path
//! at fault; [`Error::kind`] is a stable snake_case name for each variant (what the command
//! line prints under `--json`), and [`std::error::Error::source`] gives the underlying cause (a
//! sqlx error, a [`BackupError`], an I/O error). Whenever an error is returned, the database is
//! as it was.

#![warn(missing_docs)]
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod backup;
#[cfg(feature = "cli")]
pub mod cli;
mod config;
mod connection;
mod error;
#[allow(unsafe_code)]
mod ffi;
mod fleet;
mod history;
mod migrator;
mod ops;
mod report;
mod run;
mod source;

pub use backup::BackupCopy;
pub use config::{DEFAULT_BUSY_TIMEOUT, DEFAULT_KEEP_BACKUPS, MAX_BUSY_TIMEOUT};
pub use error::{BackupError, Error, ForeignKeyViolation, LockHolder, SqliteFailure};
pub use fleet::{
    FleetDatabase, FleetEntry, FleetOptions, FleetOutcome, FleetProgress, FleetReport,
};
pub use migrator::{DryRun, Migrator};
pub use ops::add::{NewMigration, add_migration};
pub use ops::export_sqlx::ExportReport;
pub use ops::import_sqlx::ImportReport;
pub use ops::verify::{
    MigrationCheck, TableChange, VerifyProblem, VerifyProblemKind, VerifyReport, verify,
};
pub use report::{
    BackupInfo, BackupProgress, BackupReason, MigrateReport, MigrationAction, MigrationOutcome,
    MigrationState, MigrationStatus, RollbackReport, RollbackStrategy, StatusReport, StatusSummary,
    UnknownStrategy,
};
pub use source::{
    Checksum, CodeError, CodeFn, CodeFuture, CodeMigration, Migration, MigrationKind, Source,
};

/// Embeds a directory of migrations in the binary at compile time and loads it as a
/// [`Source`] (validated at run time, like [`Source::from_dir`]).
///
/// The path is [`include_dir`](https://docs.rs/include_dir)'s: environment variables are
/// expanded, so `"$CARGO_MANIFEST_DIR/migrations"` names the `migrations` directory beside the
/// crate's `Cargo.toml`.
///
/// ```no_run
/// let source: backstop::Source = backstop::embed_migrations!("$CARGO_MANIFEST_DIR/migrations")?;
/// # Ok::<(), backstop::Error>(())
/// ```
///
/// Cargo does not notice files *added* to an embedded directory; add
/// `println!("cargo:rerun-if-changed=migrations");` to the crate's `build.rs`.
#[macro_export]
macro_rules! embed_migrations {
    ($dir:tt) => {{
        use $crate::__private::include_dir;
        static DIR: include_dir::Dir<'static> = include_dir::include_dir!($dir);
        $crate::__private::embedded(
            $dir,
            env!("CARGO_MANIFEST_DIR"),
            DIR.files().map(|f| (f.path(), f.contents())),
        )
    }};
}

/// Wraps a plain `async fn(&mut SqliteConnection) -> Result<(), E>` (any `E` that converts
/// into a boxed error: `sqlx::Error`, `anyhow::Error`, ...) as a [`CodeFn`] for a
/// [`CodeMigration`].
#[macro_export]
macro_rules! code {
    ($f:path) => {{
        fn wrapped<'c>(
            conn: &'c mut $crate::__private::SqliteConnection,
        ) -> $crate::CodeFuture<'c> {
            ::std::boxed::Box::pin(
                async move { $f(conn).await.map_err(::std::convert::Into::into) },
            )
        }
        wrapped as $crate::CodeFn
    }};
}

#[doc(hidden)]
pub mod __private {
    #[cfg(feature = "bench")]
    pub use crate::backup::{BenchCopy, STEP_PAGES, bench_copy};
    pub use include_dir;
    pub use sqlx::SqliteConnection;

    use std::path::{Path, PathBuf};

    /// The migrations `embed_migrations!($dir)` embedded in a crate whose manifest is in
    /// `manifest_dir`, said to come from that directory.
    pub fn embedded<'f>(
        dir: &str,
        manifest_dir: &str,
        files: impl Iterator<Item = (&'f Path, &'f [u8])>,
    ) -> Result<crate::Source, crate::Error> {
        let source = crate::Source::from_files(files)?;
        Ok(source.embedded_from(embedded_dir(dir, manifest_dir)))
    }

    /// The directory `include_dir!` reads for `dir`, with `$CARGO_MANIFEST_DIR` the crate's
    /// manifest directory; `None` when that is not known here: `dir` names another variable,
    /// or is relative (to the directory the compiler ran in).
    fn embedded_dir(dir: &str, manifest_dir: &str) -> Option<PathBuf> {
        let dir = PathBuf::from(dir.replace("$CARGO_MANIFEST_DIR", manifest_dir));
        (dir.is_absolute() && !dir.to_string_lossy().contains('$')).then_some(dir)
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn embedded_directories_are_the_ones_include_dir_reads() {
            let dir = |d| super::embedded_dir(d, "/src/app");
            assert_eq!(
                dir("$CARGO_MANIFEST_DIR/migrations"),
                Some("/src/app/migrations".into())
            );
            assert_eq!(dir("migrations"), None);
            assert_eq!(dir("/abs/migrations"), Some("/abs/migrations".into()));
            assert_eq!(dir("$OUT_DIR/migrations"), None);
        }
    }
}
