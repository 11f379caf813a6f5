//! A backup's name: whose it is, when it was taken, the version it held and why, as in
//! `app.sqlite3.backup-<tag>-20261124T022550123456Z-v3-migrate.sqlite3`, where `<tag>` is the
//! database's identity ([`DatabaseTag`]). Backups named before they carried a tag lack it.

use std::path::{Path, PathBuf};

use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

use super::BackupReason;
use super::identity::DatabaseTag;

/// The time stamp in backup names: UTC, to the microsecond.
const STAMP: &[BorrowedFormatItem<'static>] =
    format_description!("[year][month][day]T[hour][minute][second][subsecond digits:6]Z");

/// The names a new backup is written under.
#[derive(Debug, Clone)]
pub(crate) struct NewNames {
    /// The hidden temporary file the copy is written to.
    pub partial: PathBuf,
    dir: PathBuf,
    /// `<db>.backup-<tag>-<stamp>`.
    base: String,
    reason: BackupReason,
}

impl NewNames {
    /// The names of a new backup of the database whose backups are `prefix…` in `dir`,
    /// tagged `tag`, holding `version`, taken now.
    pub fn new(
        dir: &Path,
        prefix: &str,
        tag: &DatabaseTag,
        version: i64,
        reason: BackupReason,
    ) -> Self {
        let stamp = timestamp(OffsetDateTime::now_utc());
        let base = format!("{prefix}{}-{stamp}", tag.as_str());
        NewNames {
            partial: dir.join(format!(".{base}-v{version}-{}.partial", reason.as_str())),
            dir: dir.to_owned(),
            base,
            reason,
        }
    }

    /// The name the copy is renamed to once complete, holding `version`.
    pub fn complete_for(&self, version: i64) -> PathBuf {
        self.dir.join(format!(
            "{}-v{version}-{}.sqlite3",
            self.base,
            self.reason.as_str()
        ))
    }
}

/// What the name of a file in a backup directory says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Name {
    pub tag: Option<String>,
    pub taken_at: OffsetDateTime,
    pub version: i64,
    pub reason: BackupReason,
}

/// What a backup file's name says, without the `<db>.backup-` prefix and the suffix:
/// `[<tag>-]20261124T022550123456Z-v3-migrate`.
pub(super) fn parse_name(rest: &str) -> Option<Name> {
    let parts: Vec<&str> = rest.split('-').collect();
    let (tag, stamp, version, reason) = match parts[..] {
        [tag, stamp, version, reason] if DatabaseTag::looks_like(tag) => {
            (Some(tag.to_owned()), stamp, version, reason)
        }
        [stamp, version, reason] => (None, stamp, version, reason),
        _ => return None,
    };
    let digits = version.strip_prefix('v')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(Name {
        tag,
        taken_at: time::PrimitiveDateTime::parse(stamp, STAMP)
            .ok()?
            .assume_utc(),
        version: digits.parse().ok()?,
        reason: reason.parse().ok()?,
    })
}

/// The time stamp of a backup taken at `at`.
fn timestamp(at: OffsetDateTime) -> String {
    at.format(STAMP)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

/// What the name of the backup file at `path` says, wherever it is.
fn name_of(path: &Path) -> Option<Name> {
    let name = path.file_name()?.to_str()?;
    let rest = name.rsplit_once(".backup-")?.1.strip_suffix(".sqlite3")?;
    parse_name(rest)
}

/// When a backup file's name says it was taken.
pub(crate) fn taken_at_in_name(path: &Path) -> Option<OffsetDateTime> {
    Some(name_of(path)?.taken_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_foreign_names_are_ignored() {
        let at = time::macros::datetime!(2026-11-24 02:25:50.123456 UTC);
        let name = format!("0123456789ab-{}-v12-rollback", timestamp(at));
        assert_eq!(name, "0123456789ab-20261124T022550123456Z-v12-rollback");
        let parsed = parse_name(&name).unwrap();
        assert_eq!(
            (
                parsed.tag.as_deref(),
                parsed.taken_at,
                parsed.version,
                parsed.reason
            ),
            (Some("0123456789ab"), at, 12, BackupReason::Rollback)
        );
        let untagged = parse_name("20261124T022550123456Z-v3-migrate").unwrap();
        assert_eq!((untagged.tag, untagged.version), (None, 3));
        for foreign in [
            "20261124T022550123456Z-v12-other",
            "20261124T022550123456Z-12-migrate",
            "20261124T022550123456Z-v-migrate",
            "notadate-v1-migrate",
            "20261124T022550123456Z-v1-migrate-x",
            "nottag-20261124T022550123456Z-v1-migrate",
        ] {
            assert_eq!(parse_name(foreign), None, "{foreign}");
        }
    }
}
