//! The operations of a [`Migrator`] over a fleet of databases.

use crate::fleet::{self, FleetDatabase, FleetOptions, FleetReport};
use crate::report::{BackupInfo, MigrateReport, StatusReport};

use super::Migrator;

impl Migrator {
    /// Migrates each database of a fleet (one file per tenant, user or session) exactly as
    /// [`migrate`](Self::migrate) does it alone: its own backup, its own all-or-nothing
    /// transaction, its own lock. A fleet is **not** one transaction: a failure in one database
    /// leaves that one as it was and never touches another; the report says what happened to
    /// each (in the order given), and running the fleet again does only what is still pending
    /// (an up-to-date database costs a read: no lock, no backup). Two fleets over the same
    /// files at once migrate each database once (its lock decides).
    ///
    /// Each database gets a pool of its own, opened when its turn comes and closed after it, so
    /// that connections, descriptors and memory are bounded by
    /// [`FleetOptions::jobs`], not by the fleet's size. A missing file is that database's
    /// error: a fleet never creates a database.
    ///
    /// ```no_run
    /// # async fn f(migrator: backstop::Migrator) {
    /// use backstop::FleetOptions;
    ///
    /// let tenants = ["data/acme.sqlite3", "data/globex.sqlite3"];
    /// let report = migrator
    ///     .migrate_each(tenants, &FleetOptions::default().jobs(4).canary(1))
    ///     .await;
    /// for entry in &report.databases {
    ///     if let Some(e) = entry.outcome.error() {
    ///         eprintln!("{}: {e}", entry.database.display());
    ///     }
    /// }
    /// assert!(report.is_ok(), "{report}");
    /// # }
    /// ```
    pub async fn migrate_each<D: Into<FleetDatabase>>(
        &self,
        databases: impl IntoIterator<Item = D>,
        options: &FleetOptions,
    ) -> FleetReport<MigrateReport> {
        self.each(databases, options, async |pool| self.migrate(pool).await)
            .await
    }

    /// Like [`migrate_each`](Self::migrate_each), as a [`dry_run`](Self::dry_run) (with
    /// `target`, up to that version).
    pub async fn dry_run_each<D: Into<FleetDatabase>>(
        &self,
        databases: impl IntoIterator<Item = D>,
        target: Option<i64>,
        options: &FleetOptions,
    ) -> FleetReport<MigrateReport> {
        self.each(databases, options, async |pool| match target {
            Some(target) => self.dry_run().migrate_to(pool, target).await,
            None => self.dry_run().migrate(pool).await,
        })
        .await
    }

    /// Like [`migrate_each`](Self::migrate_each), up to `target`.
    pub async fn migrate_each_to<D: Into<FleetDatabase>>(
        &self,
        databases: impl IntoIterator<Item = D>,
        target: i64,
        options: &FleetOptions,
    ) -> FleetReport<MigrateReport> {
        self.each(databases, options, async |pool| {
            self.migrate_to(pool, target).await
        })
        .await
    }

    /// The [`status`](Self::status) of each database of a fleet; every database is read,
    /// whatever [`FleetOptions::keep_going`] and [`FleetOptions::canary`] say (reading
    /// changes nothing). [`FleetReport::versions`] counts the databases at each version.
    pub async fn status_each<D: Into<FleetDatabase>>(
        &self,
        databases: impl IntoIterator<Item = D>,
        options: &FleetOptions,
    ) -> FleetReport<StatusReport> {
        let options = options.clone().keep_going().canary(0);
        self.each(databases, &options, async |pool| self.status(pool).await)
            .await
    }

    /// A [`backup`](Self::backup) of each database of a fleet, as
    /// [`migrate_each`](Self::migrate_each) runs them.
    pub async fn backup_each<D: Into<FleetDatabase>>(
        &self,
        databases: impl IntoIterator<Item = D>,
        options: &FleetOptions,
    ) -> FleetReport<BackupInfo> {
        self.each(databases, options, async |pool| self.backup(pool).await)
            .await
    }

    async fn each<D: Into<FleetDatabase>, T>(
        &self,
        databases: impl IntoIterator<Item = D>,
        options: &FleetOptions,
        work: impl AsyncFn(&sqlx::SqlitePool) -> Result<T, crate::error::Error>,
    ) -> FleetReport<T> {
        let databases = databases.into_iter().map(Into::into).collect();
        fleet::each(databases, options, self.config.busy_timeout(), work).await
    }
}
