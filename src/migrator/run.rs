//! The operations that change a database, for real or as dry runs: each resolves the
//! database once, in the operation's span, and hands it to the operation.

use std::path::Path;

use sqlx::SqlitePool;

use super::Migrator;
use crate::config::Config;
use crate::connection::display_name;
use crate::error::Error;
use crate::ops::export_sqlx::{ExportReport, export_sqlx};
use crate::ops::import_sqlx::{ImportReport, import_sqlx};
use crate::ops::migrate::migrate;
use crate::ops::rollback::{restore_file, rollback};
use crate::report::{MigrateReport, RollbackReport, RollbackStrategy};
use crate::run::database::Database;
use crate::run::session::Mode;
use crate::run::trace::{self, Operation, Versions, traced};
use crate::source::Source;

/// The operations that change a database, for real or as dry runs: where the database is
/// resolved once and handed to the operation with the migrator's source and settings.
#[derive(Debug, Clone, Copy)]
pub(super) struct Run<'m> {
    migrator: &'m Migrator,
    mode: Mode,
}

impl<'m> Run<'m> {
    pub(super) fn new(migrator: &'m Migrator, mode: Mode) -> Self {
        Run { migrator, mode }
    }

    /// The span of `operation` on the pool's database, in this run's mode.
    fn span(self, operation: Operation, pool: &SqlitePool) -> tracing::Span {
        trace::operation(operation, &display_name(pool), self.mode == Mode::DryRun)
    }

    /// Runs `work` on the pool's database, resolved once, in the span of `operation`.
    async fn on<T: Versions>(
        self,
        operation: Operation,
        pool: &SqlitePool,
        work: impl AsyncFnOnce(&Database<'_>, &Source, &Config) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let Migrator { source, config } = self.migrator;
        traced(self.span(operation, pool), async {
            let db = Database::resolve(pool).await?;
            work(&db, source, config).await
        })
        .await
    }

    pub(super) async fn migrate(
        self,
        pool: &SqlitePool,
        target: Option<i64>,
    ) -> Result<MigrateReport, Error> {
        let mode = self.mode;
        self.on(Operation::Migrate, pool, async |db, source, config| {
            migrate(db, source, config, target, mode).await
        })
        .await
    }

    pub(super) async fn rollback(
        self,
        pool: &SqlitePool,
        to: i64,
        strategy: RollbackStrategy,
    ) -> Result<RollbackReport, Error> {
        let mode = self.mode;
        self.on(Operation::Rollback, pool, async |db, source, config| {
            rollback(db, source, config, to, strategy, mode).await
        })
        .await
    }

    pub(super) async fn restore_file(
        self,
        pool: &SqlitePool,
        path: &Path,
    ) -> Result<RollbackReport, Error> {
        let mode = self.mode;
        self.on(Operation::Restore, pool, async |db, _, config| {
            restore_file(db, config, path, (mode, config.proof())).await
        })
        .await
    }

    pub(super) async fn import_sqlx(self, pool: &SqlitePool) -> Result<ImportReport, Error> {
        let mode = self.mode;
        self.on(Operation::ImportSqlx, pool, async |db, source, config| {
            import_sqlx(db, source, config, mode).await
        })
        .await
    }

    pub(super) async fn export_sqlx(self, pool: &SqlitePool) -> Result<ExportReport, Error> {
        let mode = self.mode;
        self.on(Operation::ExportSqlx, pool, async |db, source, config| {
            export_sqlx(db, source, config, mode).await
        })
        .await
    }
}
