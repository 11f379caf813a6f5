//! Which backup a restore restores: the newest of this database's backups that holds the
//! version asked for ([`by_version`]), or a file the user named ([`by_path`]). Either way the
//! file must be trusted (its owner and mode), whole and intact, this database's, and
//! restorable into it (page size).

use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use crate::backup::{
    BackupDir, Check, Header, Whose, backup_history, check_file, is_first_backup, read_header,
    whose,
};
use crate::config::Proof;
use crate::error::{BackupError, Error};
use crate::history::Live;
use crate::run::database::Database;

/// The backup a restore will copy.
#[derive(Debug, Clone)]
pub(crate) struct Chosen {
    pub path: PathBuf,
    /// The version it holds.
    pub version: i64,
    /// When it was taken: everything written since is discarded.
    pub taken_at: OffsetDateTime,
    pub header: Header,
}

/// The newest backup of this database in `dir` that holds version `to`, shares the live
/// history up to `to`, and passes `PRAGMA integrity_check`.
///
/// The newest backup whose name or content says `to` must be usable: when it cannot be
/// read, is damaged or is writable by others, the rollback stops with an error naming it; it
/// is never passed over for an older one in silence. Backups of another history at `to` (the
/// database was rolled back by scripts and migrated again since) are passed over.
pub(crate) async fn by_version(dir: &BackupDir, to: i64, live: &Live) -> Result<Chosen, Error> {
    let refused = |path: &Path, cause| {
        BackupError::NewestRefused {
            version: to,
            cause: Box::new(cause),
        }
        .at(dir.database(), path)
    };
    for entry in dir.entries()?.iter().filter(|e| !e.untagged) {
        let meta = std::fs::metadata(&entry.path)
            .map_err(|e| refused(&entry.path, BackupError::io("cannot read its metadata")(e)))?;
        let claims_to = entry.named_version == to;
        if let Err(untrusted) = check_file(&entry.path, &meta) {
            if claims_to {
                return Err(untrusted);
            }
            continue;
        }
        let held = match backup_history(&entry.path, Check::HistoryOnly).await {
            Ok(held) => held,
            Err(cause) if claims_to => return Err(refused(&entry.path, cause)),
            Err(_) => continue,
        };
        if let Whose::Foreign(why) | Whose::Unknown(why) = whose(&entry.path, &held, live) {
            tracing::info!(path = %entry.path.display(), why, "skipping a backup that is not this database's");
            continue;
        }
        if held.current_version() != to {
            continue;
        }
        if held.history.first_disagreement(&live.history).is_some() {
            tracing::info!(path = %entry.path.display(), "skipping a backup of another history");
            continue;
        }
        backup_history(&entry.path, Check::Integrity)
            .await
            .map_err(|cause| refused(&entry.path, cause))?;
        let header = read_header(&entry.path).map_err(|cause| refused(&entry.path, cause))?;
        return Ok(Chosen {
            path: entry.path.clone(),
            version: to,
            taken_at: entry.taken_at,
            header,
        });
    }
    Err(Error::NoBackup {
        database: dir.database().to_owned(),
        version: to,
        dir: dir.path().to_owned(),
        available: dir
            .list(live)
            .await?
            .into_iter()
            .map(|b| (b.path, b.version))
            .collect(),
    })
}

/// The backup file at `path`, named by the user, whatever version it holds. It must be the
/// user's own and writable by nobody else, whole and intact, and (unless `proof` is waived)
/// this database's ([`whose`]).
pub(crate) async fn by_path(
    dir: &BackupDir,
    path: &Path,
    live: &Live,
    proof: Proof,
) -> Result<Chosen, Error> {
    let failed = |cause: BackupError| cause.at(dir.database(), path);
    let meta = std::fs::metadata(path).map_err(|e| failed(BackupError::io("cannot read it")(e)))?;
    if !meta.is_file() {
        let cause = std::io::Error::other("not a regular file");
        return Err(failed(BackupError::io("cannot restore it")(cause)));
    }
    check_file(path, &meta)?;
    let held = backup_history(path, Check::Integrity)
        .await
        .map_err(failed)?;
    let header = read_header(path).map_err(failed)?;
    match (whose(path, &held, live), proof) {
        (Whose::Ours, _) => {
            let checked = match held.identity {
                Some(_) => "it holds this database's identity",
                None if is_first_backup(path, live) => {
                    "it is the backup taken as this database got its identity"
                }
                None => {
                    "it holds no identity (an older build took it), and its history agrees with the database's"
                }
            };
            tracing::info!(path = %path.display(), checked, "restoring a named backup of this database");
        }
        (Whose::Foreign(reason) | Whose::Unknown(reason), Proof::Required) => {
            return Err(Error::ForeignBackup {
                database: dir.database().to_owned(),
                path: path.to_owned(),
                reason,
            });
        }
        (Whose::Foreign(reason) | Whose::Unknown(reason), Proof::Waived) => {
            tracing::warn!(path = %path.display(), %reason, "restoring, as forced, a file that is not known to be a backup of this database");
        }
    }
    let taken_at = meta
        .modified()
        .map(OffsetDateTime::from)
        .unwrap_or_else(|_| OffsetDateTime::now_utc());
    let taken_at = crate::backup::taken_at_in_name(path).unwrap_or(taken_at);
    Ok(Chosen {
        path: path.to_owned(),
        version: held.current_version(),
        taken_at,
        header,
    })
}

/// Refuses a restore that SQLite cannot do: a backup whose page size differs from the
/// database's, into a database in WAL mode. (Other differences, such as the journal mode,
/// restore fine.)
pub(crate) async fn check_restorable(db: &Database<'_>, chosen: &Chosen) -> Result<(), Error> {
    let doing = "reading the page size and journal mode";
    let (page_size, journal_mode) = db
        .read(doing, async |conn| {
            let page_size: i64 = sqlx::query_scalar("PRAGMA page_size")
                .fetch_one(&mut *conn)
                .await?;
            let journal_mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(&mut *conn)
                .await?;
            Ok((page_size, journal_mode))
        })
        .await?;
    if page_size != i64::from(chosen.header.page_size) && journal_mode.eq_ignore_ascii_case("wal") {
        return Err(BackupError::PageSizeMismatch {
            backup: chosen.header.page_size,
            database: u32::try_from(page_size).unwrap_or(0),
        }
        .at(db.name(), &chosen.path));
    }
    Ok(())
}
