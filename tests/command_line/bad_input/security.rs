//! What another local user could try (backup directories and files they own or can write,
//! files they plant), backups of another database, and broken backups. The cases that need
//! a file owned by another user run only as root (chown).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use backstop::{Error, RollbackStrategy};

use super::setup::*;
use crate::common::*;

/// A user id other than the one running the tests (nobody).
const OTHER_UID: u32 = 65534;

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The base workspace's one backup (of version 0).
fn the_backup(ws: &Workspace) -> PathBuf {
    let files = ws.backup_files();
    assert_eq!(files.len(), 1, "{files:?}");
    ws.backups_dir().join(&files[0])
}

/// A copy of the base workspace's backup outside the backups directory.
fn copy_of_the_backup(ws: &Workspace, name: &str) -> PathBuf {
    let copy = ws.path().join(name);
    std::fs::copy(the_backup(ws), &copy).unwrap();
    copy
}

fn restore(ws: &Workspace, path: &Path) -> Setup {
    let path_arg = path.to_string_lossy().into_owned();
    Setup::new(ws, Lib::Restore(path.to_owned()), &["restore", &path_arg]).names(path)
}

fn unsafe_path(e: &Error) -> bool {
    matches!(e, Error::UnsafeBackupPath { .. })
}

pub fn cases() -> Vec<Case> {
    let mut cases = vec![
        case(
            "backup directory writable by group and others",
            "unsafe_backup_path",
            Some(unsafe_path),
            |_, ws| {
                set_mode(&ws.backups_dir(), 0o777);
                valid_pending(ws);
                Setup::new(ws, Lib::Migrate, &["migrate"])
                    .names(ws.backups_dir())
                    .names("writable by group or others")
            },
        ),
        case(
            "backups listed from a directory writable by others",
            "unsafe_backup_path",
            Some(unsafe_path),
            |_, ws| {
                set_mode(&ws.backups_dir(), 0o757);
                Setup::new(ws, Lib::Backups, &["backups"])
                    .names(ws.backups_dir())
                    .names("writable by group or others")
            },
        ),
        case(
            "restore of a backup writable by others",
            "unsafe_backup_path",
            Some(unsafe_path),
            |_, ws| {
                let copy = copy_of_the_backup(ws, "shared.sqlite3");
                set_mode(&copy, 0o666);
                restore(ws, &copy).names("writable by group or others")
            },
        ),
        case(
            "restore of another database's backup",
            "foreign_backup",
            Some(|e| matches!(e, Error::ForeignBackup { .. })),
            |rt, ws| {
                let other = Workspace::new();
                let backup = rt.block_on(async {
                    exec(&other.db(), "CREATE TABLE theirs (x);").await;
                    let pool = other.pool().await;
                    let migrator = backstop::Migrator::new(ws.source());
                    migrator.migrate(&pool).await.unwrap();
                    // Taken once it has its identity, the backup holds it.
                    let backup = migrator.backup(&pool).await.unwrap().path;
                    pool.close().await;
                    backup
                });
                let here = ws.backups_dir().join(backup.file_name().unwrap());
                std::fs::copy(&backup, &here).unwrap();
                restore(ws, &here).names("identity of database")
            },
        ),
        case(
            "restore of a stranger (a database with no history)",
            "foreign_backup",
            Some(|e| matches!(e, Error::ForeignBackup { .. })),
            |rt, ws| {
                let stranger = ws.path().join("other.sqlite3");
                rt.block_on(exec(
                    &stranger,
                    "CREATE TABLE theirs (x); INSERT INTO theirs VALUES (1);",
                ));
                restore(ws, &stranger).names("no history to compare")
            },
        ),
        case(
            "restore of a backup, renamed, of version 0 (nothing to compare)",
            "foreign_backup",
            Some(|e| matches!(e, Error::ForeignBackup { .. })),
            |_, ws| {
                let copy = copy_of_the_backup(ws, "renamed-v0.sqlite3");
                restore(ws, &copy).names("no history to compare")
            },
        ),
        case(
            "restore of the database onto itself",
            "backup",
            Some(|e| matches!(e, Error::Backup { .. })),
            |_, ws| restore(ws, &ws.db()).names("the database file itself"),
        ),
        case(
            "restore of an empty file",
            "backup",
            Some(|e| matches!(e, Error::Backup { .. })),
            |_, ws| {
                let empty = ws.path().join("empty.sqlite3");
                std::fs::write(&empty, b"").unwrap();
                restore(ws, &empty).names("not a SQLite database")
            },
        ),
        case(
            "restore of a file that does not exist",
            "backup",
            Some(|e| matches!(e, Error::Backup { .. })),
            |_, ws| restore(ws, &ws.path().join("no-such-backup.sqlite3")),
        ),
        case(
            "rollback whose newest backup is cut short",
            "backup",
            Some(|e| matches!(e, Error::Backup { .. })),
            |_, ws| {
                let backup = the_backup(ws);
                let bytes = std::fs::read(&backup).unwrap();
                std::fs::write(&backup, &bytes[..bytes.len() / 2]).unwrap();
                Setup::new(
                    ws,
                    Lib::Rollback(0, RollbackStrategy::Backup),
                    &["rollback", "--to-version", "0"],
                )
                .names(&backup)
                .names("move it away")
            },
        ),
        case(
            "rollback across page sizes into a WAL database",
            "backup",
            Some(|e| matches!(e, Error::Backup { .. })),
            |rt, ws| {
                rt.block_on(exec(
                    &ws.db(),
                    "PRAGMA page_size = 8192; VACUUM; PRAGMA journal_mode = WAL;",
                ));
                Setup::new(
                    ws,
                    Lib::Rollback(0, RollbackStrategy::Backup),
                    &["rollback", "--to-version", "0"],
                )
                .names(the_backup(ws))
                .names("page size is 4096")
                .names("WAL mode")
            },
        ),
    ];
    if running_as_root() {
        cases.extend([
            case(
                "backup directory owned by another user",
                "unsafe_backup_path",
                Some(unsafe_path),
                |_, ws| {
                    std::os::unix::fs::chown(ws.backups_dir(), Some(OTHER_UID), None).unwrap();
                    valid_pending(ws);
                    Setup::new(ws, Lib::Migrate, &["migrate"])
                        .names(ws.backups_dir())
                        .names(format!("owner uid {OTHER_UID}"))
                },
            ),
            case(
                "backup directory through another user's symbolic link",
                "unsafe_backup_path",
                Some(unsafe_path),
                |_, ws| {
                    // Another user points a link they own at a directory only root can write.
                    let root_only = ws.path().join("root-only");
                    std::fs::create_dir(&root_only).unwrap();
                    set_mode(&root_only, 0o700);
                    let link = ws.path().join("theirs");
                    std::os::unix::fs::symlink(&root_only, &link).unwrap();
                    std::os::unix::fs::lchown(&link, Some(OTHER_UID), None).unwrap();
                    valid_pending(ws);
                    let mut setup = Setup::new(ws, Lib::Migrate, &["migrate"])
                        .names(&link)
                        .names("symbolic link");
                    setup.backup_dir = Some(link.join("backups"));
                    setup
                },
            ),
            case(
                "restore of a backup another user owns",
                "unsafe_backup_path",
                Some(unsafe_path),
                |_, ws| {
                    let copy = copy_of_the_backup(ws, "theirs.sqlite3");
                    std::os::unix::fs::chown(&copy, Some(OTHER_UID), None).unwrap();
                    restore(ws, &copy).names(format!("owner uid {OTHER_UID}"))
                },
            ),
        ]);
    } else {
        eprintln!("not root: the cases with another user's files (chown) are left out");
    }
    cases
}
