//! Which database a backup belongs to. Every backup's name carries a tag of its database's
//! identity: on Unix, the database file's inode number and birth time (the file itself, not
//! its path), so that
//!
//! - two databases with the same file name never share backups, even in one directory;
//! - a database renamed or moved within its file system keeps its backups (the directory
//!   `backups/` beside it moves with it);
//! - a copy of a database, or a database deleted and created again, is another database;
//! - a database moved to another file system (a copy and a delete) is another database too.
//!
//! Restores go through SQLite's backup API into the live file, so they never change its
//! identity.

use std::fs::Metadata;
use std::path::Path;

use sha2::{Digest, Sha256};

/// Hex digits in a tag.
const LEN: usize = 12;

/// The identity tag of a database file, as it appears in its backups' names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DatabaseTag(String);

impl DatabaseTag {
    /// The tag of the database file `file` with metadata `meta`.
    pub fn of(file: &Path, meta: &Metadata) -> Self {
        let born = meta
            .created()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let identity = file_identity(file, meta);
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
    format!("inode {}", meta.ino())
}

#[cfg(not(unix))]
fn file_identity(file: &Path, _meta: &Metadata) -> String {
    let path = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_owned());
    format!("path {}", path.display())
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
