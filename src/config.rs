//! What a [`Migrator`](crate::Migrator) is configured with: where backups go and how many are
//! kept, how long to wait for other writers, and who hears of a backup's progress.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::backup::{BackupCopy, BackupDir, CopySettings, ProgressFn};
use crate::error::Error;
use crate::history::Live;

/// Default number of backups kept per database.
pub const DEFAULT_KEEP_BACKUPS: usize = 10;
/// Default time to wait for another writer to release the database.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest busy timeout SQLite can take (`i32::MAX` milliseconds, about 24.8 days); longer
/// ones are cut to it.
pub const MAX_BUSY_TIMEOUT: Duration = Duration::from_millis(i32::MAX as u64);

/// Whether runs take backups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backups {
    /// Before every change (the default).
    Take,
    /// Never: for throw-away databases.
    Skip,
}

/// Whether a database migrated by a newer build (versions this build does not know) is
/// accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Newer {
    /// Refused ([`Error::UnknownVersions`](crate::Error::UnknownVersions)).
    Refuse,
    /// Accepted when every unknown version is above every known one: nothing is applied.
    Accept,
}

/// Whether a file named for a restore must be proven to be a backup of the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proof {
    /// It must hold the database's identity (or, taken by an older build, a history that
    /// agrees with the database's).
    Required,
    /// The user restores it anyway: what was found is logged.
    Waived,
}

/// The configuration of a migrator.
#[derive(Clone)]
pub(crate) struct Config {
    backup_dir: Option<PathBuf>,
    keep_backups: usize,
    busy_timeout: Duration,
    backups: Backups,
    newer: Newer,
    proof: Proof,
    progress: Option<ProgressFn>,
    backup_copy: BackupCopy,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            backup_dir: None,
            keep_backups: DEFAULT_KEEP_BACKUPS,
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            backups: Backups::Take,
            newer: Newer::Refuse,
            proof: Proof::Required,
            progress: None,
            backup_copy: BackupCopy::Fastest,
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("backup_dir", &self.backup_dir)
            .field("keep_backups", &self.keep_backups)
            .field("busy_timeout", &self.busy_timeout)
            .field("backups", &self.backups)
            .field("newer", &self.newer)
            .field("proof", &self.proof)
            .field("backup_copy", &self.backup_copy)
            .finish_non_exhaustive()
    }
}

impl Config {
    pub fn set_backup_dir(&mut self, dir: PathBuf) {
        self.backup_dir = Some(dir);
    }

    #[cfg(feature = "cli")]
    pub fn backup_dir(&self) -> Option<&Path> {
        self.backup_dir.as_deref()
    }

    #[cfg(feature = "cli")]
    pub fn keep_backups(&self) -> usize {
        self.keep_backups
    }

    pub fn set_keep_backups(&mut self, keep: usize) {
        self.keep_backups = keep.max(1);
    }

    /// At most [`MAX_BUSY_TIMEOUT`]: SQLite counts it in milliseconds in a C `int`.
    pub fn set_busy_timeout(&mut self, timeout: Duration) {
        self.busy_timeout = timeout.min(MAX_BUSY_TIMEOUT);
    }

    pub fn set_backups(&mut self, backups: Backups) {
        self.backups = backups;
    }

    pub fn set_newer(&mut self, newer: Newer) {
        self.newer = newer;
    }

    pub fn newer(&self) -> Newer {
        self.newer
    }

    pub fn set_proof(&mut self, proof: Proof) {
        self.proof = proof;
    }

    pub fn proof(&self) -> Proof {
        self.proof
    }

    pub fn set_progress(&mut self, progress: Option<ProgressFn>) {
        self.progress = progress;
    }

    pub fn set_backup_copy(&mut self, copy: BackupCopy) {
        self.backup_copy = copy;
    }

    #[cfg(feature = "cli")]
    pub fn backup_copy(&self) -> BackupCopy {
        self.backup_copy
    }

    /// How this migrator's backups are copied.
    pub fn copy_settings(&self) -> CopySettings {
        CopySettings {
            busy_timeout: self.busy_timeout,
            progress: self.progress.clone(),
            allowed: self.backup_copy,
        }
    }

    pub fn busy_timeout(&self) -> Duration {
        self.busy_timeout
    }

    pub fn backups(&self) -> Backups {
        self.backups
    }

    pub fn progress(&self) -> Option<ProgressFn> {
        self.progress.clone()
    }

    /// The backups of the database `file` (named `database` in errors).
    pub fn backup_dir_of(&self, database: &Path, file: &Path) -> Result<BackupDir, Error> {
        BackupDir::of(database, file, self.backup_dir.as_deref())
    }

    /// Applies retention to `dir` after a successful run, keeping `protect`: only backups of
    /// the database `live` (by its identity) count and go. Failures are logged, not
    /// returned: the run itself succeeded.
    pub async fn prune(&self, dir: &BackupDir, protect: &[&Path], live: &Live) {
        if let Err(err) = dir.prune(self.keep_backups, protect, live).await {
            tracing::warn!(dir = %dir.path().display(), %err, "could not prune old backups");
        }
    }
}
