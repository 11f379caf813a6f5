//! The [`Migrator`]: a source of migrations, a configuration, and one method per operation.
//! Each method hands the work to the module that holds it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sqlx::SqlitePool;

use crate::backup::BackupCopy;
use crate::backup::BackupProgress;
use crate::config::{Backups, Config, Proof};
use crate::connection::display_name;
use crate::error::Error;
use crate::ops::backup::backup_now;
use crate::ops::export_sqlx::ExportReport;
use crate::ops::import_sqlx::ImportReport;
use crate::ops::status::status;
use crate::report::{BackupInfo, MigrateReport, RollbackReport, RollbackStrategy, StatusReport};
use crate::run::database::Database;
use crate::run::plan::Newer;
use crate::run::session::Mode;
use crate::run::trace::{self, Operation, traced};
use crate::source::Source;
use run::Run;

mod fleet;
mod run;

/// Migrates a SQLite database with the migrations of a [`Source`].
///
/// A `Migrator` holds only configuration; it is cheap to clone and every method takes the pool
/// to work on. See the [crate documentation](crate) for the guarantees and the order of the
/// steps.
#[derive(Clone)]
pub struct Migrator {
    source: Source,
    config: Config,
}

impl std::fmt::Debug for Migrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Migrator")
            .field("migrations", &self.source.migrations().len())
            .field("config", &self.config)
            .finish()
    }
}

impl Migrator {
    /// A migrator with the default options: backups in `backups/` beside the database file,
    /// the newest [`DEFAULT_KEEP_BACKUPS`](crate::DEFAULT_KEEP_BACKUPS) kept, a busy timeout of
    /// [`DEFAULT_BUSY_TIMEOUT`](crate::DEFAULT_BUSY_TIMEOUT).
    pub fn new(source: Source) -> Self {
        Migrator {
            source,
            config: Config::default(),
        }
    }

    /// A migrator of `source` with `config` (the command line's: the program's settings with
    /// its flags and variables over them).
    #[cfg(feature = "cli")]
    pub(crate) fn configured(source: Source, config: Config) -> Self {
        Migrator { source, config }
    }

    /// The migrator's migrations and settings, apart (for the command line, which draws its
    /// own progress: a progress callback is dropped).
    #[cfg(feature = "cli")]
    pub(crate) fn into_parts(mut self) -> (Source, Config) {
        self.config.set_progress(None);
        (self.source, self.config)
    }

    /// Where backups are written (created when missing).
    pub fn backup_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.set_backup_dir(dir.into());
        self
    }

    /// How many backups of the database to keep; older ones are removed after a successful
    /// run. The backup a run depends on is never removed. At least 1.
    pub fn keep_backups(mut self, keep: usize) -> Self {
        self.config.set_keep_backups(keep);
        self
    }

    /// How long to wait for other writers before giving up with [`Error::Busy`] (at most
    /// [`MAX_BUSY_TIMEOUT`](crate::MAX_BUSY_TIMEOUT); a longer one is cut to it).
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.config.set_busy_timeout(timeout);
        self
    }

    /// Runs without taking backups. This gives up the way back by restore: meant for
    /// throw-away databases (tests, benchmarks), never for data that matters. (A restore
    /// still takes its safety backup.)
    pub fn without_backups(mut self) -> Self {
        self.config.set_backups(Backups::Skip);
        self
    }

    /// Accepts a database that a newer build migrated (versions this build does not know),
    /// when every unknown version is above every version of the source: `migrate` applies
    /// nothing and says so, `status` counts the database as clean. Without it such a database
    /// is refused ([`Error::UnknownVersions`]). A rollback by scripts over the unknown versions
    /// works either way, with the scripts the history stored.
    pub fn allow_newer_database(mut self) -> Self {
        self.config.set_newer(Newer::Accept);
        self
    }

    /// Lets [`restore_file`](Self::restore_file) restore a file that is not proven to be a
    /// backup of this database: one that holds another database's identity, or no identity and
    /// no history to compare (a file from elsewhere, or the user's own copy). What was found is
    /// logged as a warning; the safety backup is taken as always. Without it such a file is
    /// refused ([`Error::ForeignBackup`]).
    pub fn restore_foreign_files(mut self) -> Self {
        self.config.set_proof(Proof::Waived);
        self
    }

    /// How backups of a database in WAL mode copy its file: by default the fastest way the
    /// system offers (a clone where the file system can, else a copy inside the kernel); see
    /// [`BackupCopy`]. The backup is the database exactly whichever way is used.
    pub fn backup_copy(mut self, copy: BackupCopy) -> Self {
        self.config.set_backup_copy(copy);
        self
    }

    /// Calls `report` after each step of a backup or restore (for a progress bar).
    pub fn on_backup_progress(
        mut self,
        report: impl Fn(BackupProgress) + Send + Sync + 'static,
    ) -> Self {
        self.config.set_progress(Some(Arc::new(report)));
        self
    }

    /// The migrations this migrator applies.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// Applies every pending migration, all or nothing.
    ///
    /// Returns at once, taking no lock and writing nothing, when nothing is pending. Otherwise
    /// takes the write lock, backs the database up, runs each pending migration (adopting
    /// those whose probe says their effect is present) and commits; on any error the
    /// database is exactly as it was and the backup of this run is removed.
    pub async fn migrate(&self, pool: &SqlitePool) -> Result<MigrateReport, Error> {
        self.run(Mode::Apply).migrate(pool, None).await
    }

    /// Like [`migrate`](Self::migrate), but stops at `target`, which must be a version of the
    /// source at or above the current one.
    pub async fn migrate_to(&self, pool: &SqlitePool, target: i64) -> Result<MigrateReport, Error> {
        self.run(Mode::Apply).migrate(pool, Some(target)).await
    }

    /// Reports the version, each migration's state, whether its checksum matches and what its
    /// probe says now. Reads only: its connection is `query_only`, and it takes no lock beyond
    /// a read transaction.
    pub async fn status(&self, pool: &SqlitePool) -> Result<StatusReport, Error> {
        let span = trace::operation(Operation::Status, &display_name(pool), false);
        traced(span, async {
            let db = Database::resolve(pool).await?;
            status(&db, &self.source, self.config.newer()).await
        })
        .await
    }

    /// Brings the database back to `to_version`: by restoring the newest verified backup that
    /// holds that version ([`RollbackStrategy::Backup`]), or by running the rollback scripts
    /// of the newer migrations, newest first ([`RollbackStrategy::Scripts`]).
    ///
    /// Either way a backup of the current state is taken first (the report's
    /// `safety_backup`), so the rollback can itself be undone. A `to_version` at or above the
    /// current version is not an error: nothing is done and the report says so.
    ///
    /// A restore discards everything written to the database after the restored backup was
    /// taken (see [`RollbackReport::discards_changes_since`]); the safety backup keeps it.
    /// Other connections see the old content or the restored one, never a mix.
    pub async fn rollback(
        &self,
        pool: &SqlitePool,
        to_version: i64,
        strategy: RollbackStrategy,
    ) -> Result<RollbackReport, Error> {
        self.run(Mode::Apply)
            .rollback(pool, to_version, strategy)
            .await
    }

    /// Restores the backup file at `path`, whatever version it holds (also a newer one than
    /// the database's: this is how a rollback is undone, by restoring its safety backup).
    ///
    /// The file is checked like the backup a rollback restores: it must belong to the user
    /// running backstop and be writable by nobody else, be a whole SQLite database that passes
    /// `PRAGMA integrity_check`, and be this database's: it holds this database's identity (or,
    /// taken by an older build, a history that agrees with the database's), whatever its name
    /// ([`restore_foreign_files`](Self::restore_foreign_files) waives this). The database
    /// file itself is refused. A safety backup is taken first; the restore goes through
    /// SQLite's backup API under the write lock, and the database keeps its identity.
    pub async fn restore_file(
        &self,
        pool: &SqlitePool,
        path: impl AsRef<Path>,
    ) -> Result<RollbackReport, Error> {
        self.run(Mode::Apply)
            .restore_file(pool, path.as_ref())
            .await
    }

    /// Moves a database that sqlx migrated to backstop: records every version sqlx applied
    /// (in `_sqlx_migrations`) as applied in backstop's history, running neither scripts nor
    /// probes, in one locked transaction after a backup. Each sqlx checksum must match the
    /// source's forward script; a failed sqlx migration or a version the source lacks is
    /// refused. `_sqlx_migrations` is left in place; running it again does nothing.
    pub async fn import_sqlx(&self, pool: &SqlitePool) -> Result<ImportReport, Error> {
        self.run(Mode::Apply).import_sqlx(pool).await
    }

    /// The way back to sqlx: makes sqlx's history (`_sqlx_migrations`, created when missing)
    /// say what backstop's says, so that a sqlx build whose migrations are these forward
    /// scripts runs on the database and applies only what comes after. Every applied version
    /// gets the row sqlx would write for its file (SHA-384 of the forward script, `success`);
    /// a row of sqlx's for a version that is not applied, whose probe says its effect is
    /// absent, is removed (backstop rolled it back after an import). One locked transaction
    /// after a backup; nothing when sqlx's history already agrees.
    ///
    /// # Errors
    /// [`Error::SqlxExportRefused`] listing every version at fault: applied but not among the
    /// source's migrations (sqlx could not read it), or in sqlx's history only with its effect
    /// present (sqlx applied it: import first); [`Error::ChecksumMismatch`] for an applied
    /// file modified since. Nothing is changed.
    pub async fn export_sqlx(&self, pool: &SqlitePool) -> Result<ExportReport, Error> {
        self.run(Mode::Apply).export_sqlx(pool).await
    }

    /// The operations that change a database, as dry runs: each goes through the same checks
    /// and reports what it would do, and none changes the database or writes a backup.
    ///
    /// ```no_run
    /// # async fn f(migrator: backstop::Migrator, pool: sqlx::SqlitePool) -> Result<(), backstop::Error> {
    /// let would = migrator.dry_run().migrate(&pool).await?;
    /// println!("{would}");
    /// # Ok(()) }
    /// ```
    pub fn dry_run(&self) -> DryRun<'_> {
        DryRun {
            run: self.run(Mode::DryRun),
        }
    }

    fn run(&self, mode: Mode) -> Run<'_> {
        Run::new(self, mode)
    }

    /// Takes a backup of the database now and applies retention.
    ///
    /// The copy is made from a read snapshot while other connections go on writing, then
    /// brought up to date under the write lock (other writers wait only for that; readers
    /// never): the backup is exactly the database at the moment the lock was taken.
    ///
    /// # Errors
    /// [`Error::Backup`] when backups are off ([`without_backups`](Self::without_backups)),
    /// the database is in memory, or the copy fails; [`Error::Busy`] when the lock cannot be
    /// taken in time.
    pub async fn backup(&self, pool: &SqlitePool) -> Result<BackupInfo, Error> {
        let span = trace::operation(Operation::Backup, &display_name(pool), false);
        traced(span, async {
            backup_now(&Database::resolve(pool).await?, &self.config).await
        })
        .await
    }

    /// Every backup of the pool's database, newest first, with the version each holds (read
    /// from the backup itself).
    pub async fn backups(&self, pool: &SqlitePool) -> Result<Vec<BackupInfo>, Error> {
        let db = Database::resolve(pool).await?;
        match db.backups(&self.config)? {
            Some(dir) => dir.list(&db.live().await?).await,
            None => Ok(Vec::new()),
        }
    }
}

/// The operations of a [`Migrator`] that change a database, as dry runs
/// ([`Migrator::dry_run`]): each goes through the same checks as the real one and reports what
/// it would do; none changes the database's content or writes a backup.
#[derive(Debug, Clone, Copy)]
pub struct DryRun<'m> {
    run: Run<'m>,
}

impl DryRun<'_> {
    /// What [`Migrator::migrate`] would do: runs the pending migrations and their probes for
    /// real, in a transaction that is always rolled back.
    ///
    /// It takes the write lock (`BEGIN IMMEDIATE`) for as long as it lasts, so other writers
    /// wait as they would for a real run; readers are not blocked in WAL mode. Its connection
    /// does not spill changes to the database file mid-transaction (`cache_spill = OFF`), so a
    /// large dry run holds its changes in memory.
    pub async fn migrate(&self, pool: &SqlitePool) -> Result<MigrateReport, Error> {
        self.run.migrate(pool, None).await
    }

    /// What [`Migrator::migrate_to`] would do, as [`migrate`](Self::migrate).
    pub async fn migrate_to(&self, pool: &SqlitePool, target: i64) -> Result<MigrateReport, Error> {
        self.run.migrate(pool, Some(target)).await
    }

    /// What [`Migrator::rollback`] would do: for a restore, which backup would be restored
    /// (verified as a real restore would verify it); for the scripts, a run in a transaction
    /// that is rolled back (which holds the write lock while it runs).
    pub async fn rollback(
        &self,
        pool: &SqlitePool,
        to_version: i64,
        strategy: RollbackStrategy,
    ) -> Result<RollbackReport, Error> {
        self.run.rollback(pool, to_version, strategy).await
    }

    /// What [`Migrator::restore_file`] would do, after the same checks.
    pub async fn restore_file(
        &self,
        pool: &SqlitePool,
        path: impl AsRef<Path>,
    ) -> Result<RollbackReport, Error> {
        self.run.restore_file(pool, path.as_ref()).await
    }

    /// What [`Migrator::import_sqlx`] would record, after the same checks.
    pub async fn import_sqlx(&self, pool: &SqlitePool) -> Result<ImportReport, Error> {
        self.run.import_sqlx(pool).await
    }

    /// What [`Migrator::export_sqlx`] would write, after the same checks.
    pub async fn export_sqlx(&self, pool: &SqlitePool) -> Result<ExportReport, Error> {
        self.run.export_sqlx(pool).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send<T: Send>(_: T) {}

    /// Services spawn these futures on a multi-threaded runtime: they must be `Send`.
    #[allow(dead_code, clippy::let_underscore_future)]
    fn every_operation_can_be_spawned(migrator: &Migrator, pool: &SqlitePool) {
        send(migrator.migrate(pool));
        send(migrator.migrate_to(pool, 1));
        send(migrator.status(pool));
        send(migrator.rollback(pool, 0, RollbackStrategy::Backup));
        send(migrator.backup(pool));
        send(migrator.backups(pool));
        send(migrator.restore_file(pool, "x"));
        send(migrator.import_sqlx(pool));
        send(migrator.export_sqlx(pool));
        let dry = migrator.dry_run();
        send(dry.migrate(pool));
        send(dry.migrate_to(pool, 1));
        send(dry.rollback(pool, 0, RollbackStrategy::Scripts));
        send(dry.restore_file(pool, "x"));
        send(dry.import_sqlx(pool));
        send(dry.export_sqlx(pool));
    }
}
