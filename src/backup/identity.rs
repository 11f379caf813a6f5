//! Which database a backup belongs to, in two steps.
//!
//! 1. Every backup's name carries a tag of its database's file: on Unix, a hash of the file's
//!    device, inode number and birth time (the file itself, not its path). Listing, choosing
//!    and pruning only look at files named with this database's tag (or the tag older builds
//!    gave it, without the device). It is a fast filter, not a proof: where the file system
//!    gives no birth time, a database deleted and created again can get the same inode, and so
//!    the same tag.
//! 2. What the backup holds decides ([`whose`]): the database's identity, a random value the
//!    first run that backed it up wrote into it and into every backup of it
//!    ([`history::identity`](crate::history::identity)). A backup of a database without that
//!    identity (taken by an older build) is this database's only when both histories are not
//!    empty and agree.
//!
//! So a database renamed or moved within its file system keeps its backups; a copy, a database
//! created again, or one moved to another file system is another database. Restores go through
//! SQLite's backup API into the live file and keep its identity.

use std::fs::Metadata;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::file::Held;
use crate::history::Live;

/// Hex digits in a tag.
const LEN: usize = 12;

/// The identity tag of a database file, as it appears in its backups' names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DatabaseTag(String);

impl DatabaseTag {
    /// The tag of the database file `file` with metadata `meta`.
    pub fn of(file: &Path, meta: &Metadata) -> Self {
        Self::hash(&file_identity(file, meta), meta)
    }

    /// The tag older builds gave the file (without its device), still recognised in names.
    pub fn legacy(file: &Path, meta: &Metadata) -> Self {
        Self::hash(&legacy_file_identity(file, meta), meta)
    }

    fn hash(identity: &str, meta: &Metadata) -> Self {
        let born = meta
            .created()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let digest = Sha256::digest(format!("backstop database {identity} born {born}"));
        DatabaseTag(hex::encode(&digest[..LEN / 2]))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `text` has the form of a tag.
    pub fn looks_like(text: &str) -> bool {
        text.len() == LEN && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    }
}

#[cfg(unix)]
fn file_identity(_file: &Path, meta: &Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    format!("device {} inode {}", meta.dev(), meta.ino())
}

#[cfg(unix)]
fn legacy_file_identity(_file: &Path, meta: &Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    format!("inode {}", meta.ino())
}

#[cfg(not(unix))]
fn file_identity(file: &Path, _meta: &Metadata) -> String {
    let path = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_owned());
    format!("path {}", path.display())
}

#[cfg(not(unix))]
fn legacy_file_identity(file: &Path, meta: &Metadata) -> String {
    file_identity(file, meta)
}

/// Whose a backup is, by what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Whose {
    /// This database's: it holds the database's identity (or, taken by an older build, a
    /// history that agrees with the database's).
    Ours,
    /// Another database's, and why that is known.
    Foreign(String),
    /// Nothing tells: it holds no identity, and no history to compare. Listed, never chosen
    /// nor pruned; restored by name only when the user says so.
    Unknown(String),
}

/// Whether `path` is the backup taken by the run that gave the live database its identity.
pub(crate) fn is_first_backup(path: &Path, live: &Live) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy());
    let first = live
        .identity
        .as_ref()
        .and_then(|i| i.first_backup.as_deref());
    name.is_some_and(|name| Some(name.as_ref()) == first)
}

/// Whose the backup at `path`, holding `held`, is, for the live database `live`.
pub(crate) fn whose(path: &Path, held: &Held, live: &Live) -> Whose {
    let database = live.identity.as_ref();
    match (&held.identity, database.map(|d| &d.identity)) {
        (Some(backup), Some(database)) if backup == database => Whose::Ours,
        (Some(backup), Some(database)) => Whose::Foreign(format!(
            "it holds the identity of database {backup}, and this database's is {database}"
        )),
        (Some(backup), None) => Whose::Foreign(format!(
            "it holds the identity of database {backup}, and this database has none: no backup \
             of it was ever taken by this build (a database created again at the same place is \
             another database)"
        )),
        (None, _) if is_first_backup(path, live) => Whose::Ours,
        (None, _) => {
            let comparable = held.current_version() > 0 && live.history.current_version() > 0;
            match held.history.first_disagreement(&live.history) {
                None if comparable => Whose::Ours,
                Some(version) => Whose::Foreign(format!(
                    "it holds no database identity (an older build took it), and its history \
                     disagrees with the database's at version {version}"
                )),
                None => Whose::Unknown(
                    "it holds no database identity (an older build took it, or it is not a \
                     backup), and no history to compare with the database's"
                        .to_owned(),
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_keeps_its_tag_when_moved_and_a_copy_gets_another() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.db");
        std::fs::write(&a, b"x").unwrap();
        let tag = DatabaseTag::of(&a, &std::fs::metadata(&a).unwrap());
        assert!(DatabaseTag::looks_like(tag.as_str()), "{tag:?}");

        let moved = dir.path().join("sub");
        std::fs::create_dir(&moved).unwrap();
        let moved = moved.join("a.db");
        std::fs::rename(&a, &moved).unwrap();
        let after_move = DatabaseTag::of(&moved, &std::fs::metadata(&moved).unwrap());
        assert_eq!(after_move, tag);

        let copy = dir.path().join("a.db");
        std::fs::copy(&moved, &copy).unwrap();
        let of_copy = DatabaseTag::of(&copy, &std::fs::metadata(&copy).unwrap());
        assert_ne!(of_copy, tag);
    }

    #[test]
    fn only_tags_look_like_tags() {
        assert!(DatabaseTag::looks_like("0123456789ab"));
        for other in [
            "0123456789a",
            "0123456789abc",
            "0123456789aB",
            "20261124T0225",
        ] {
            assert!(!DatabaseTag::looks_like(other), "{other}");
        }
    }
}
