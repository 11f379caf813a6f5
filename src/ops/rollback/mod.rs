//! Going back to an earlier version: by a verified restore of a backup ([`restore`], which
//! [`choose`]s it), or by the rollback scripts ([`scripts`]); and the restore of a backup file
//! named by the user. This part checks the request and chooses the way.

mod choose;
mod restore;
mod scripts;

use std::path::Path;

use crate::config::{Config, Proof};
use crate::error::Error;
use crate::report::{RollbackReport, RollbackStrategy};
use crate::run::database::Database;
use crate::run::session::{Mode, Outcome};
use crate::source::Source;

impl Outcome for RollbackReport {
    fn changed_database(&self) -> bool {
        !self.is_noop()
    }
}

/// Brings the pool's database back to version `to` with `strategy`.
pub(crate) async fn rollback(
    db: &Database<'_>,
    source: &Source,
    config: &Config,
    to: i64,
    strategy: RollbackStrategy,
    mode: Mode,
) -> Result<RollbackReport, Error> {
    let database = db.name().to_owned();
    let live = db.live().await?;
    let history = &live.history;
    let current = history.current_version();
    let nothing_to_do =
        RollbackReport::at(database.clone(), current, strategy, mode == Mode::DryRun);
    if to >= current {
        return Ok(nothing_to_do);
    }
    if to < 0 || (to != 0 && history.get(to).is_none()) {
        return Err(Error::VersionNotApplied {
            database,
            version: to,
            applied: history.records().iter().map(|r| r.version).collect(),
        });
    }
    match strategy {
        RollbackStrategy::Scripts => {
            scripts::run(db, source, config, to, mode, nothing_to_do).await
        }
        RollbackStrategy::Backup => {
            restore::to_version(db, config, to, &live, mode, nothing_to_do).await
        }
    }
}

/// Restores the backup file at `path` into the pool's database, whatever version it holds;
/// it must be proven to be this database's unless `proof` is waived.
pub(crate) async fn restore_file(
    db: &Database<'_>,
    config: &Config,
    path: &Path,
    how: (Mode, Proof),
) -> Result<RollbackReport, Error> {
    restore::named_file(db, config, path, how).await
}
