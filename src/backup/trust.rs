//! Who can read and plant backups. Every file and directory backstop writes for a backup gets
//! no group or other permission that the database lacks; backups are only written to, and read
//! from, directories that no other local user can write; a file that another user owns is never
//! taken for a backup. Root is no exception.

use std::fs::Metadata;
use std::path::{Path, PathBuf};

use crate::error::Error;

/// Group and other permission bits.
const GROUP_OTHER: u32 = 0o077;
/// Group and other write bits.
const GROUP_OTHER_WRITE: u32 = 0o022;
const STICKY: u32 = 0o1000;

/// The permission bits of a database file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DatabaseMode(u32);

impl DatabaseMode {
    #[cfg(unix)]
    pub fn of(meta: &Metadata) -> Self {
        use std::os::unix::fs::PermissionsExt;
        DatabaseMode(meta.permissions().mode() & 0o7777)
    }

    #[cfg(not(unix))]
    pub fn of(_meta: &Metadata) -> Self {
        DatabaseMode(0o600)
    }

    /// The mode of a backup file: read and write for its owner (the user running backstop),
    /// and for group and others no more than the database grants them (never execute).
    pub fn for_file(self) -> u32 {
        0o600 | (self.0 & GROUP_OTHER & 0o066)
    }

    /// The mode of a backup directory backstop creates: everything for its owner; for group
    /// and others, read and search when the database is readable to them, never write.
    pub fn for_dir(self) -> u32 {
        let mut mode = 0o700;
        if self.0 & 0o040 != 0 {
            mode |= 0o050;
        }
        if self.0 & 0o004 != 0 {
            mode |= 0o005;
        }
        mode
    }
}

/// Says once per process, as a warning, which guarantees this platform does not give: on Unix
/// every one is given, and nothing is said.
pub(crate) fn warn_of_missing_guarantees() {
    #[cfg(not(unix))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            tracing::warn!(
                "on this platform backstop does not check who owns backup files and directories \
                 or who can read them, does not sync the backup directory after a backup is \
                 renamed into place (a power loss can lose the name), and tells databases apart \
                 by their canonical path (the identity inside each backup still decides whose \
                 it is): see the platform table in the README"
            );
        });
    }
}

/// The user this process runs as.
#[cfg(unix)]
fn me() -> u32 {
    crate::ffi::effective_uid()
}

/// Whether `meta` is owned by the user running backstop.
#[cfg(unix)]
pub(crate) fn is_mine(meta: &Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    meta.uid() == me()
}

#[cfg(not(unix))]
pub(crate) fn is_mine(_meta: &Metadata) -> bool {
    true
}

/// Refuses a backup directory that another local user could write to: owned by someone else,
/// or writable by group or others without the sticky bit.
pub(crate) fn check_dir(dir: &Path, meta: &Metadata) -> Result<(), Error> {
    check(
        dir,
        meta,
        "directory",
        "use a directory that only you can write (chown it to yourself and `chmod go-w` it), or \
         another backup directory",
    )
}

/// Refuses a backup directory whose path goes through a symbolic link that belongs to another
/// user (root's links are trusted): that user could point it anywhere, a directory only the
/// user running backstop can write included. Each component of the path is looked at itself
/// (`lstat`), not through the link, so the owner checked is the link's.
#[cfg(unix)]
pub(crate) fn check_links(dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::MetadataExt;
    let absolute = match dir.is_absolute() {
        true => dir.to_owned(),
        false => std::env::current_dir()
            .map(|cwd| cwd.join(dir))
            .unwrap_or_else(|_| dir.to_owned()),
    };
    let mut prefix = PathBuf::new();
    for component in absolute.components() {
        prefix.push(component);
        let Ok(meta) = std::fs::symlink_metadata(&prefix) else {
            break; // not there yet: created by backstop, as a directory
        };
        let owner = meta.uid();
        if meta.file_type().is_symlink() && owner != me() && owner != 0 {
            return Err(Error::UnsafeBackupPath {
                path: prefix,
                owner,
                mode: meta.mode() & 0o7777,
                uid: me(),
                problem: format!(
                    "the backup directory {} goes through this symbolic link, which belongs to \
                     another user, who can point it anywhere; use a directory whose path only \
                     you (or root) control",
                    dir.display()
                ),
            });
        }
    }
    Ok(())
}

#[cfg(not(unix))]
pub(crate) fn check_links(_dir: &Path) -> Result<(), Error> {
    Ok(())
}

/// Refuses a backup file that another local user could have written.
pub(crate) fn check_file(file: &Path, meta: &Metadata) -> Result<(), Error> {
    check(
        file,
        meta,
        "file",
        "a backup must belong to you and be writable by you only; if you trust this file's \
         content, copy it to a file of your own (`cp` then `chmod go-w`) and restore that",
    )
}

#[cfg(unix)]
fn check(path: &Path, meta: &Metadata, what: &str, advice: &str) -> Result<(), Error> {
    use std::os::unix::fs::MetadataExt;
    let (owner, mode, uid) = (meta.uid(), meta.mode() & 0o7777, me());
    let problem = if owner != uid {
        format!("the {what} belongs to another user")
    } else if mode & GROUP_OTHER_WRITE != 0 && !(meta.is_dir() && mode & STICKY != 0) {
        format!("the {what} is writable by group or others")
    } else {
        return Ok(());
    };
    Err(Error::UnsafeBackupPath {
        path: path.to_owned(),
        owner,
        mode,
        uid,
        problem: format!("{problem}; {advice}"),
    })
}

#[cfg(not(unix))]
fn check(_path: &Path, _meta: &Metadata, _what: &str, _advice: &str) -> Result<(), Error> {
    Ok(())
}

/// Creates `dir` and its missing parents with `mode`; returns the directories created,
/// deepest first (so that a failed run can remove them again).
pub(crate) fn create_dir(dir: &Path, mode: u32) -> std::io::Result<Vec<PathBuf>> {
    let created: Vec<PathBuf> = dir
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .map(Path::to_owned)
        .collect();
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    builder.create(dir)?;
    Ok(created)
}

/// Creates a new file for a backup with `mode`; fails if it exists.
pub(crate) fn create_file(path: &Path, mode: u32) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    options.open(path).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backups_never_grant_what_the_database_does_not() {
        for (db, file, dir) in [
            (0o600, 0o600, 0o700),
            (0o640, 0o640, 0o750),
            (0o644, 0o644, 0o755),
            (0o666, 0o666, 0o755),
            (0o400, 0o600, 0o700),
            (0o604, 0o604, 0o705),
            (0o777, 0o666, 0o755),
        ] {
            let mode = DatabaseMode(db);
            assert_eq!(mode.for_file(), file, "{db:o}");
            assert_eq!(mode.for_dir(), dir, "{db:o}");
        }
    }
}
