//! A backup on demand ([`Migrator::backup`](crate::Migrator::backup)): taken under the write
//! lock like any other, then retention.

use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use crate::backup::{BackupInfo, BackupReason, taken_at_in_name};
use crate::config::{Backups, Config};
use crate::error::{BackupError, Error};
use crate::history::{Identified, Live};
use crate::run::database::Database;
use crate::run::session::{Intent, Mode, Outcome, Session, run_locked};

/// A backup taken on demand, and the database file it belongs to.
struct Taken {
    path: PathBuf,
    version: i64,
    file: PathBuf,
    identity: Identified,
}

impl Outcome for Taken {
    fn changed_database(&self) -> bool {
        false
    }
}

/// Takes a backup of the pool's database now and applies retention; returns what it is.
pub(crate) async fn backup_now(db: &Database<'_>, config: &Config) -> Result<BackupInfo, Error> {
    let intent = Intent::Backup(BackupReason::Manual);
    let taken = run_locked(
        db,
        config,
        (Mode::Apply, intent),
        async |session: &mut Session| {
            let version = session.history().await?.current_version();
            session.take_backup(version).await?;
            match (
                session.take_out_backup(),
                session.file(),
                session.identity(),
            ) {
                (Some(backup), Some(file), Some(identity)) => Ok(Taken {
                    version,
                    file: file.to_owned(),
                    identity: identity.clone(),
                    path: backup.keep(),
                }),
                (_, file, _) => Err(match config.backups() {
                    Backups::Skip => BackupError::Off,
                    Backups::Take => BackupError::InMemory,
                }
                .at(session.database(), file.unwrap_or(Path::new("")))),
            }
        },
    )
    .await?;
    let dir = config.backup_dir_of(db.name(), &taken.file)?;
    let live = Live::identified(taken.identity);
    config.prune(&dir, &[&taken.path], &live).await;
    let size = std::fs::metadata(&taken.path).map_or(0, |m| m.len());
    Ok(BackupInfo {
        taken_at: taken_at_in_name(&taken.path).unwrap_or_else(OffsetDateTime::now_utc),
        path: taken.path,
        version: Some(taken.version),
        size,
        reason: BackupReason::Manual,
        untagged: false,
        error: None,
    })
}
