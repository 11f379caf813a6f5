//! Restores, in four steps: [`choose`](super::choose) the backup; [`prepare`] a safety backup
//! under the write lock; [`PreparedRestore::lock`] the live database again through the
//! restoring connection and verify that nothing was committed in between (else start over);
//! [`copy`] the backup into the live database.

use std::path::Path;

use super::choose::{self, Chosen, check_restorable};
use crate::backup::{
    BackupDir, BackupReason, CopyFailure, LockedRestore, NewBackup, Reader, blocking,
};
use crate::config::{Config, Proof};
use crate::connection::execute;
use crate::error::{BackupError, Error, LockHolder};
use crate::history::{Identified, Live, identity};
use crate::report::{RollbackReport, RollbackStrategy};
use crate::run::database::Database;
use crate::run::session::{Intent, Mode, Outcome, Session, run_locked};

/// How many times a restore starts over when another process commits between the safety
/// backup and the restore's lock.
const RESTORE_ATTEMPTS: usize = 5;

/// When a prepared restore goes ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proceed {
    /// Only while the database is above this version (a rollback: another process may have
    /// rolled back meanwhile).
    WhileAbove(i64),
    /// Whatever the version (a restore of a named file).
    Always,
}

/// Rolls back to `to` by restoring the newest backup that holds it; `report` is the report
/// of a rollback that does nothing.
pub(crate) async fn to_version(
    db: &Database<'_>,
    config: &Config,
    to: i64,
    live: &Live,
    mode: Mode,
    report: RollbackReport,
) -> Result<RollbackReport, Error> {
    let Some(dir) = db.backups(config)? else {
        return Err(Error::NoBackup {
            database: db.name().to_owned(),
            version: to,
            dir: Default::default(),
            available: Vec::new(),
        });
    };
    let chosen = choose::by_version(&dir, to, live).await?;
    let target = Target {
        dir: &dir,
        chosen,
        proceed: Proceed::WhileAbove(to),
    };
    restore(db, config, target, mode, report).await
}

/// Restores the backup file at `path`, whatever version it holds; it must be proven to be
/// this database's unless `proof` is waived.
pub(crate) async fn named_file(
    db: &Database<'_>,
    config: &Config,
    path: &Path,
    (mode, proof): (Mode, Proof),
) -> Result<RollbackReport, Error> {
    let database = db.name().to_owned();
    let live = db.live().await?;
    let file = db.file_for(path)?;
    if same_file(path, file) {
        return Err(BackupError::IsTheDatabase.at(&database, path));
    }
    let dir = config.backup_dir_of(&database, file)?;
    let chosen = choose::by_path(&dir, path, &live, proof).await?;
    let current = live.history.current_version();
    let report = RollbackReport::at(
        database,
        current,
        RollbackStrategy::Backup,
        mode == Mode::DryRun,
    );
    let target = Target {
        dir: &dir,
        chosen,
        proceed: Proceed::Always,
    };
    restore(db, config, target, mode, report).await
}

/// What a restore restores, and where.
struct Target<'a> {
    /// The database's backups.
    dir: &'a BackupDir,
    chosen: Chosen,
    proceed: Proceed,
}

/// Restores the target's backup into the pool's database (after a safety backup), or for a
/// dry run says that it would.
async fn restore(
    db: &Database<'_>,
    config: &Config,
    target: Target<'_>,
    mode: Mode,
    mut report: RollbackReport,
) -> Result<RollbackReport, Error> {
    let Target {
        dir,
        chosen,
        proceed,
    } = target;
    let database = report.database.clone();
    check_restorable(db, &chosen).await?;
    let nothing_to_do = report.clone();
    report.to_version = chosen.version;
    // Absolute, as every file a report names (the user may have given it relative).
    report.restored_from = Some(std::path::absolute(&chosen.path).unwrap_or(chosen.path.clone()));
    report.discards_changes_since = Some(chosen.taken_at);
    if mode == Mode::DryRun {
        return Ok(report);
    }

    let failed =
        |failure: CopyFailure| failure.into_error(&database, &chosen.path, config.busy_timeout());
    for attempt in 1..=RESTORE_ATTEMPTS {
        let Some(prepared) = prepare(db, config, dir, proceed).await? else {
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
        let (from_version, identity) = (locked.from_version, locked.identity.clone());
        let safety = copy(locked, config).await.map_err(failed)?;
        keep_identity(db, &identity).await?;
        let now_at = db.history().await?.current_version();
        let safety = safety.keep();
        if now_at != chosen.version {
            return Err(BackupError::RestoredWrongVersion {
                expected: chosen.version,
                found: now_at,
                safety,
            }
            .at(&database, &chosen.path));
        }
        tracing::info!(database = %database.display(), from = from_version, to = chosen.version, backup = %chosen.path.display(), "restored");
        let live = Live::identified(identity);
        config.prune(dir, &[&safety, &chosen.path], &live).await;
        report.from_version = from_version;
        report.safety_backup = Some(safety);
        return Ok(report);
    }
    Err(Error::Busy {
        database,
        timeout: config.busy_timeout(),
        holder: LockHolder::Connection,
    })
}

/// What the restore needs once the safety backup is taken.
struct PreparedRestore {
    /// The version before the restore.
    from_version: i64,
    /// The connection the safety backup was read through, which will restore.
    live: Reader,
    /// Its data version when the safety backup was taken.
    seen: u32,
    safety: NewBackup,
    /// The database's identity, which the restored database keeps.
    identity: Identified,
}

impl Outcome for Option<PreparedRestore> {
    fn changed_database(&self) -> bool {
        false
    }
}

/// Under the write lock: takes the safety backup through a new connection to the live
/// database. `None`: the rollback has nothing left to do.
async fn prepare(
    db: &Database<'_>,
    config: &Config,
    dir: &BackupDir,
    proceed: Proceed,
) -> Result<Option<PreparedRestore>, Error> {
    let intent = Intent::SafetyBackup(BackupReason::Rollback);
    run_locked(
        db,
        config,
        (Mode::Apply, intent),
        async |session: &mut Session| {
            let current = session.history().await?.current_version();
            if let Proceed::WhileAbove(to) = proceed
                && to >= current
            {
                return Ok(None);
            }
            let database = session.database().to_owned();
            let Some((safety, live)) = session.finish_copy(current).await? else {
                return Err(BackupError::InMemory.at(&database, dir.path()));
            };
            let seen = live.data_version().map_err(|failure| {
                BackupError::Sqlite {
                    doing: "cannot read the data version",
                    failure,
                }
                .at(&database, dir.path())
            })?;
            let identity = session.identity().cloned().expect("a backup was taken");
            Ok(Some(PreparedRestore {
                from_version: current,
                live,
                seen,
                safety,
                identity,
            }))
        },
    )
    .await
}

/// A restore holding the live database's write lock, nothing committed since the safety
/// backup.
struct Locked {
    from_version: i64,
    restore: LockedRestore,
    safety: NewBackup,
    identity: Identified,
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
            identity,
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
            identity,
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

/// Gives the restored database its identity back (the restored content may hold none, from an
/// older build), in a transaction of its own.
async fn keep_identity(db: &Database<'_>, identity: &Identified) -> Result<(), Error> {
    let doing = "writing the database's identity after the restore";
    db.read(doing, async |conn| {
        execute(conn, "BEGIN IMMEDIATE").await?;
        match identity::write(conn, identity).await {
            Ok(_) => execute(conn, "COMMIT").await,
            Err(e) => {
                let _ = execute(conn, "ROLLBACK").await;
                Err(e)
            }
        }
    })
    .await
}

/// Whether `a` and `b` are one file.
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
