//! Retention: after a successful run, only the newest backups of the database are kept.

use std::path::{Path, PathBuf};

use super::{BackupDir, Entry};
use crate::backup::file::{Check, backup_history};
use crate::backup::identity::is_first_backup;
use crate::error::{BackupError, Error};
use crate::history::Live;

impl BackupDir {
    /// Keeps the newest `keep` backups of the database `live`, and those in `protect`;
    /// removes its other backups: those that hold its identity, and the one taken as it got
    /// it. Backups of older builds (no identity), files that cannot be read, and every other
    /// file are never touched.
    pub async fn prune(
        &self,
        keep: usize,
        protect: &[&Path],
        live: &Live,
    ) -> Result<Vec<PathBuf>, Error> {
        let mut removed = Vec::new();
        let mut kept = 0;
        let identity = live.identity.as_ref().map(|i| &i.identity);
        let tagged: Vec<Entry> = self
            .entries()?
            .into_iter()
            .filter(|e| !e.untagged)
            .collect();
        // Fewer candidates than backups to keep: none can go, and none is opened (a fleet's
        // database has one or two).
        if tagged.len() <= keep {
            return Ok(removed);
        }
        for entry in tagged {
            let held = backup_history(&entry.path, Check::HistoryOnly).await;
            let ours = is_first_backup(&entry.path, live)
                || held.is_ok_and(|held| {
                    held.identity.is_some() && held.identity.as_ref() == identity
                });
            if !ours {
                continue;
            }
            if kept < keep || protect.contains(&entry.path.as_path()) {
                kept += 1;
                continue;
            }
            std::fs::remove_file(&entry.path).map_err(|cause| {
                self.error(
                    &entry.path,
                    BackupError::io("cannot remove an old backup")(cause),
                )
            })?;
            tracing::info!(path = %entry.path.display(), "removed an old backup");
            removed.push(entry.path);
        }
        Ok(removed)
    }
}
