//! Rollback by restore, in four steps: [`choose`] the newest verified backup that holds the
//! version; [`prepare`] a safety backup under the write lock; [`PreparedRestore::lock`] the
//! live database again through the restoring connection and verify that nothing was committed
//! in between (else start over); [`copy`] the backup into the live database.

use std::path::{Path, PathBuf};

use sqlx::SqlitePool;

use crate::backup::{
    BackupDir, Check, CopyFailure, LockedRestore, NewBackup, Reason, backup_history, blocking,
    open_source, take,
};
use crate::config::Config;
use crate::connection::{database_file, unlocked_history};
use crate::error::{BackupError, Error};
use crate::ffi::RawConnection;
use crate::history::History;
use crate::report::{BackupInfo, RollbackReport};
use crate::session::{Mode, Outcome, Session, run_locked};

/// How many times a restore starts over when another process commits between the safety
/// backup and the restore's lock.
const RESTORE_ATTEMPTS: usize = 5;

/// Restores the newest backup holding `to`; `report` is the report of a rollback that does
/// nothing.
pub(crate) async fn run(
    pool: &SqlitePool,
    config: &Config,
    to: i64,
    live: &History,
    mode: Mode,
    mut report: RollbackReport,
) -> Result<RollbackReport, Error> {
    let database = report.database.clone();
    let Some(file) = database_file(pool, &database).await? else {
        return Err(Error::NoBackup {
            database,
            version: to,
            dir: PathBuf::new(),
            available: Vec::new(),
        });
    };
    let chosen = choose(&config.backup_dir_of(&file), &database, to, live).await?;
    let nothing_to_do = report.clone();
    report.to_version = to;
    report.restored_from = Some(chosen.path.clone());
    report.discards_changes_since = Some(chosen.taken_at);
    if mode == Mode::DryRun {
        return Ok(report);
    }

    let failed =
        |failure: CopyFailure| failure.into_error(&database, &chosen.path, config.busy_timeout());
    for attempt in 1..=RESTORE_ATTEMPTS {
        let Some(prepared) = prepare(pool, config, &file, to).await? else {
            // Another process rolled back meanwhile.
            return Ok(nothing_to_do);
        };
        let Some(locked) = prepared.lock(&chosen.path).await.map_err(failed)? else {
            tracing::info!(
                attempt,
                "the database changed before the restore took its lock: starting over"
            );
            continue;
        };
        let from_version = locked.from_version;
        let safety = copy(locked, config).await.map_err(failed)?;
        let now_at = unlocked_history(pool, &database).await?.current_version();
        let safety = safety.keep();
        if now_at != to {
            return Err(Error::Backup {
                database,
                path: chosen.path,
                cause: BackupError::RestoredWrongVersion {
                    expected: to,
                    found: now_at,
                    safety,
                },
            });
        }
        tracing::info!(database = %database.display(), from = from_version, to, backup = %chosen.path.display(), "restored");
        config.prune(&file, &[&safety, &chosen.path]);
        report.from_version = from_version;
        report.safety_backup = Some(safety);
        return Ok(report);
    }
    Err(Error::Busy {
        database,
        timeout: config.busy_timeout(),
    })
}

/// The newest backup in `dir` that holds version `to`, shares the live history up to `to`,
/// and passes `PRAGMA integrity_check`.
async fn choose(
    dir: &BackupDir,
    database: &Path,
    to: i64,
    live: &History,
) -> Result<BackupInfo, Error> {
    let backups = dir.list().await.map_err(|cause| Error::Backup {
        database: database.to_owned(),
        path: dir.path().to_owned(),
        cause,
    })?;
    for candidate in backups.iter().filter(|b| b.version == Some(to)) {
        let held = backup_history(&candidate.path, Check::Integrity)
            .await
            .map_err(|cause| Error::Backup {
                database: database.to_owned(),
                path: candidate.path.clone(),
                cause: BackupError::NewestRefused {
                    version: to,
                    cause: Box::new(cause),
                },
            })?;
        if !held.is_past_of(live, to) {
            tracing::info!(path = %candidate.path.display(), "skipping a backup of another history");
            continue;
        }
        if candidate.size < 512 {
            continue;
        }
        return Ok(candidate.clone());
    }
    Err(Error::NoBackup {
        database: database.to_owned(),
        version: to,
        dir: dir.path().to_owned(),
        available: backups
            .iter()
            .map(|b| (b.path.clone(), b.version))
            .collect(),
    })
}

/// What the restore needs once the safety backup is taken.
struct PreparedRestore {
    /// The version before the restore.
    from_version: i64,
    /// The connection the safety backup was read through, which will restore.
    live: RawConnection,
    /// Its data version when the safety backup was taken.
    seen: u32,
    safety: NewBackup,
}

impl Outcome for Option<PreparedRestore> {
    fn changed_database(&self) -> bool {
        false
    }
}

/// Under the write lock: takes the safety backup through a new connection to the live
/// database. `None`: the database is already at or below `to`.
async fn prepare(
    pool: &SqlitePool,
    config: &Config,
    file: &Path,
    to: i64,
) -> Result<Option<PreparedRestore>, Error> {
    run_locked(pool, config, Mode::Apply, async |session: &mut Session| {
        let current = session.history().await?.current_version();
        if to >= current {
            return Ok(None);
        }
        let database = session.database().to_owned();
        let live = open_source(&database, file, config.busy_timeout()).await?;
        let (safety, live) = take(
            &config.backup_dir_of(file),
            &database,
            live,
            current,
            Reason::Rollback,
            config.busy_timeout(),
            config.progress(),
        )
        .await?;
        let seen = live.data_version().map_err(|failure| Error::Backup {
            database,
            path: file.to_owned(),
            cause: BackupError::Sqlite {
                doing: "cannot read the data version",
                failure,
            },
        })?;
        Ok(Some(PreparedRestore {
            from_version: current,
            live,
            seen,
            safety,
        }))
    })
    .await
}

/// A restore holding the live database's write lock, nothing committed since the safety
/// backup.
struct Locked {
    from_version: i64,
    restore: LockedRestore,
    safety: NewBackup,
}

impl PreparedRestore {
    /// Takes the live database's write lock again through the restoring connection. `None`:
    /// something was committed since the safety backup was read (it would miss it), and the
    /// lock is released.
    async fn lock(self, backup: &Path) -> Result<Option<Locked>, CopyFailure> {
        let PreparedRestore {
            from_version,
            live,
            seen,
            safety,
        } = self;
        let backup = backup.to_owned();
        let restore = blocking(move || {
            let restore = LockedRestore::lock(live, &backup)?;
            let unchanged = restore.data_version()? == seen;
            Ok::<_, CopyFailure>(unchanged.then_some(restore))
        })
        .await?;
        Ok(restore.map(|restore| Locked {
            from_version,
            restore,
            safety,
        }))
    }
}

/// Copies the backup into the live database and commits; hands back the safety backup. On
/// failure the live database is unchanged and the safety backup is removed.
async fn copy(locked: Locked, config: &Config) -> Result<NewBackup, CopyFailure> {
    let Locked {
        restore, safety, ..
    } = locked;
    let progress = config.progress();
    blocking(move || restore.run(progress.as_ref())).await?;
    Ok(safety)
}
