//! What the runner did or would do: values returned by [`Migrator`](crate::Migrator), all
//! serialisable to JSON (the CLI's `--json` output is exactly these values).
//!
//! Paths: `database` is the database as the pool names it (the name it was given, so that a
//! report reads like the command that made it); every file a report points to (a backup, a
//! safety backup, the file a restore read) is given by its absolute path, whether the backup
//! directory or the file was given relative or not.

mod backups;
mod text;

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;
use time::OffsetDateTime;

pub use backups::{BackupInfo, BackupProgress, BackupReason};
pub use text::UnknownStrategy;
#[cfg(feature = "cli")]
pub(crate) use text::{table, time_text};

/// The outcome of [`Migrator::migrate`](crate::Migrator::migrate),
/// [`migrate_to`](crate::Migrator::migrate_to) or [`dry_run`](crate::Migrator::dry_run).
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct MigrateReport {
    /// The database file.
    pub database: PathBuf,
    /// The version before the run.
    pub from_version: i64,
    /// The version after the run (for a dry run: the version the run would reach).
    pub to_version: i64,
    /// Whether this was a dry run, which changed nothing.
    pub dry_run: bool,
    /// The backup taken before the run, if any was taken.
    pub backup: Option<PathBuf>,
    /// What happened to each pending migration, in order. Empty when nothing was pending.
    pub migrations: Vec<MigrationOutcome>,
    /// Versions a newer build applied, which this build does not know, accepted
    /// ([`allow_newer_database`](crate::Migrator::allow_newer_database)).
    pub newer_versions: Vec<i64>,
}

impl MigrateReport {
    /// Whether nothing was pending.
    pub fn is_up_to_date(&self) -> bool {
        self.migrations.is_empty()
    }
}

/// What happened (or would happen) to one migration.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct MigrationOutcome {
    /// Its version.
    pub version: i64,
    /// Its description.
    pub description: String,
    /// What was done.
    pub action: MigrationAction,
    /// Time spent on it (probes, script and history row), in milliseconds.
    pub duration_ms: u64,
    /// Values returned by the script's top-level `SELECT` statements (see the crate docs).
    pub notices: Vec<String>,
    /// The script that would run (dry runs only): the forward script, or for a rollback the
    /// rollback script.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
}

impl MigrationOutcome {
    /// The outcome of `action` on the migration `(version, description)`; dry runs carry
    /// `script`, the script that would run.
    pub(crate) fn of(
        (version, description): (i64, &str),
        action: MigrationAction,
        started: Instant,
        notices: Vec<String>,
        script: &str,
    ) -> Self {
        let dry_run = action.is_dry_run();
        MigrationOutcome {
            version,
            description: description.to_owned(),
            action,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            notices,
            sql: dry_run.then(|| script.to_owned()),
        }
    }
}

/// What was done to a migration.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, strum::IntoStaticStr, strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum MigrationAction {
    /// The forward script ran and its probe confirmed it.
    Applied,
    /// The probe found the effect already present; the script did not run.
    Adopted,
    /// Dry run: the script would run.
    WouldApply,
    /// Dry run: the probe would adopt it.
    WouldAdopt,
    /// Its rollback script ran and its probe confirmed the effect is gone.
    RolledBack,
    /// Dry run: its rollback script would run.
    WouldRollBack,
}

/// How [`Migrator::rollback`](crate::Migrator::rollback) goes back.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, strum::IntoStaticStr, strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum RollbackStrategy {
    /// Restore the newest verified backup that holds the version (the default). Exact, but
    /// discards whatever was written after that backup was taken (the safety backup keeps it).
    #[default]
    Backup,
    /// Run the rollback scripts, newest first, in one transaction. Keeps data written since,
    /// as far as the scripts do.
    Scripts,
}

/// The outcome of [`Migrator::rollback`](crate::Migrator::rollback) or
/// [`Migrator::restore_file`](crate::Migrator::restore_file), or of their dry runs
/// ([`DryRun`](crate::DryRun)).
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct RollbackReport {
    /// The database file.
    pub database: PathBuf,
    /// The version before the rollback.
    pub from_version: i64,
    /// The version after it (for a dry run: the version it would reach).
    pub to_version: i64,
    /// How it went back.
    pub strategy: RollbackStrategy,
    /// Whether this was a dry run, which changed nothing.
    pub dry_run: bool,
    /// The backup restored (or, for a dry run, that would be restored).
    pub restored_from: Option<PathBuf>,
    /// The backup of the state before the rollback, taken first so that the rollback itself
    /// can be undone.
    pub safety_backup: Option<PathBuf>,
    /// For a restore: when the restored backup was taken. Everything written to the database
    /// after that moment is gone from it (and kept in the safety backup).
    #[serde(with = "time::serde::rfc3339::option")]
    pub discards_changes_since: Option<OffsetDateTime>,
    /// For the scripts strategy: each migration rolled back, newest first.
    pub rolled_back: Vec<MigrationOutcome>,
}

impl RollbackReport {
    /// The report of a rollback that has done nothing yet: the database at `version`, nothing
    /// restored or rolled back (filled in as the rollback goes).
    pub(crate) fn at(
        database: PathBuf,
        version: i64,
        strategy: RollbackStrategy,
        dry_run: bool,
    ) -> Self {
        RollbackReport {
            database,
            from_version: version,
            to_version: version,
            strategy,
            dry_run,
            restored_from: None,
            safety_backup: None,
            discards_changes_since: None,
            rolled_back: Vec::new(),
        }
    }

    /// Whether nothing was (or would be) done: nothing to roll back, nothing restored.
    pub fn is_noop(&self) -> bool {
        self.from_version == self.to_version
            && self.restored_from.is_none()
            && self.rolled_back.is_empty()
    }
}

/// The outcome of [`Migrator::status`](crate::Migrator::status).
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct StatusReport {
    /// The database file.
    pub database: PathBuf,
    /// The highest applied version (0 when none).
    pub current_version: i64,
    /// The highest version of the source.
    pub latest_version: i64,
    /// Every migration of the source, and every applied migration the source does not know,
    /// in version order.
    pub migrations: Vec<MigrationStatus>,
    /// Whether versions of a newer build above every known one are accepted
    /// ([`allow_newer_database`](crate::Migrator::allow_newer_database)).
    pub newer_accepted: bool,
    /// What the migrations add up to: pending, drifted, modified, unknown, or clean.
    pub summary: StatusSummary,
}

impl StatusReport {
    /// Whether nothing is pending, nothing drifted, every checksum matches and every applied
    /// migration is known, or accepted as a newer build's (what `status --check` tests).
    pub fn is_clean(&self) -> bool {
        self.summary.is_clean()
    }
}

/// What a [`StatusReport`] counts: the migrations that keep a database from being clean, and
/// the newer build's versions that were accepted. Its text says what is wrong, in words
/// ("2 pending, 1 modified"), or "clean".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[non_exhaustive]
pub struct StatusSummary {
    /// Whether the database is clean ([`StatusReport::is_clean`]).
    pub clean: bool,
    /// Migrations of the source not applied yet.
    pub pending: usize,
    /// Applied migrations whose effect is gone (a data probe never drifts).
    pub drifted: usize,
    /// Applied migrations whose file changed since.
    pub modified: usize,
    /// Applied versions this build does not know and does not accept.
    pub unknown: usize,
    /// A newer build's versions, accepted
    /// ([`allow_newer_database`](crate::Migrator::allow_newer_database)).
    pub newer: usize,
}

impl StatusSummary {
    /// Counts `migrations` (in version order, as a report holds them).
    pub(crate) fn of(migrations: &[MigrationStatus], newer_accepted: bool) -> Self {
        let newest_known = migrations
            .iter()
            .filter(|m| m.known)
            .map(|m| m.version)
            .max()
            .unwrap_or(0);
        let mut summary = StatusSummary::default();
        for m in migrations {
            if !m.known {
                match newer_accepted && m.version > newest_known {
                    true => summary.newer += 1,
                    false => summary.unknown += 1,
                }
                continue;
            }
            summary.pending += usize::from(m.state == MigrationState::Pending);
            summary.drifted += usize::from(m.drift);
            summary.modified += usize::from(m.checksum_ok == Some(false));
        }
        summary.clean = summary.pending + summary.drifted + summary.modified + summary.unknown == 0;
        summary
    }

    /// Whether the database is clean.
    pub fn is_clean(&self) -> bool {
        self.clean
    }
}

/// The state of one migration in a database.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct MigrationStatus {
    /// Its version.
    pub version: i64,
    /// Its description.
    pub description: String,
    /// SQL files or code (`None` for a version this build does not know).
    pub kind: Option<MigrationKind>,
    /// Applied, adopted or pending.
    pub state: MigrationState,
    /// When it was recorded (`None` when pending).
    #[serde(with = "time::serde::rfc3339::option")]
    pub applied_at: Option<OffsetDateTime>,
    /// Whether the recorded checksum matches the file (`None` when pending, or when the
    /// migration is not in the source).
    pub checksum_ok: Option<bool>,
    /// What its probe says now: 1 present, 0 absent, `None` when it could not run.
    pub probe: Option<i64>,
    /// Why the probe could not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe_error: Option<String>,
    /// A later migration that removed this one's effect (so its probe says 0, and that is
    /// not drift).
    pub superseded_by: Option<i64>,
    /// Recorded as applied, adopted or imported but the probe says 0 (and no later migration
    /// superseded it, and the probe does not speak of data: see
    /// [`Migration::has_data_probe`](crate::Migration::has_data_probe)). A pending migration is
    /// never drift (one whose probe says 1 will be adopted).
    pub drift: bool,
    /// Whether the source has this migration (false: applied by a newer build).
    pub known: bool,
}

/// What a migration is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MigrationKind {
    /// SQL files.
    Sql,
    /// A [`CodeMigration`](crate::CodeMigration): a Rust function.
    Code,
}

/// The state of a migration in a database: how it came to be recorded in the history
/// (`Applied`, `Adopted`, `Imported`: the words the history table holds), or why it is not
/// there (`Pending`), or that the build does not know it (`Unknown`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
#[non_exhaustive]
pub enum MigrationState {
    /// Its forward script ran.
    Applied,
    /// Its probe found the effect present; recorded without running the script.
    Adopted,
    /// Taken over from sqlx's history (`import-sqlx`), where it was applied.
    Imported,
    /// Not recorded yet.
    Pending,
    /// Recorded, but not a migration of this build (a newer build applied it).
    Unknown,
}
