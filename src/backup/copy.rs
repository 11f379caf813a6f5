//! Driving SQLite's backup API: a database into a new file, or a backup file into the live
//! database (a restore). Everything here blocks: callers run it on the blocking pool.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use super::{BackupProgress, ProgressFn};
use crate::error::{BackupError, Error, LockHolder};
use crate::ffi::{Backup, OpenMode, RawConnection, Step};

/// Pages copied per backup step: large enough to run at the speed of the disk, small enough
/// for progress to move.
#[doc(hidden)]
pub const STEP_PAGES: i32 = 2048;

/// Why a copy stopped.
#[derive(Debug)]
pub(crate) enum CopyFailure {
    /// Another connection held a lock past the busy timeout.
    Busy,
    /// Other connections kept changing the database while it was copied without a lock (in
    /// rollback-journal mode each commit restarts the backup API).
    Restarted,
    /// Anything else.
    Failed(BackupError),
}

impl From<BackupError> for CopyFailure {
    fn from(error: BackupError) -> Self {
        CopyFailure::Failed(error)
    }
}

impl CopyFailure {
    /// The public error: [`Error::Busy`] or [`Error::Backup`] naming `path`.
    pub fn into_error(self, database: &Path, path: &Path, busy_timeout: Duration) -> Error {
        match self {
            CopyFailure::Busy | CopyFailure::Restarted => Error::Busy {
                database: database.to_owned(),
                timeout: busy_timeout,
                holder: LockHolder::Connection,
            },
            CopyFailure::Failed(cause) => cause.at(database, path),
        }
    }
}

/// Copies the main database of `source` into the file `dest` (created, or overwritten) with
/// the backup API, reading through `source`'s read transaction when it holds one. The file is
/// neither self-contained nor synced yet.
pub(crate) fn copy_pages(
    source: &RawConnection,
    dest: &Path,
    progress: Option<&ProgressFn>,
) -> Result<(), CopyFailure> {
    // A copy made again starts from an empty file (no connection has it open here).
    if let Ok(file) = std::fs::OpenOptions::new().write(true).open(dest) {
        file.set_len(0)
            .map_err(BackupError::io("cannot empty the file"))?;
    }
    let mut target = open_destination(dest, OpenMode::Copy)?;
    let mut backup =
        Backup::new(&mut target, source).map_err(BackupError::sqlite("cannot start the copy"))?;
    run_steps(&mut backup, progress)?;
    backup
        .finish()
        .map_err(BackupError::sqlite("cannot finish the copy"))?;
    Ok(())
}

/// Opens the file a copy is written into. It is thrown away on any failure: no journal, no
/// syncing until the end.
fn open_destination(dest: &Path, mode: OpenMode) -> Result<RawConnection, BackupError> {
    let target =
        RawConnection::open(dest, mode).map_err(BackupError::sqlite("cannot create the file"))?;
    target
        .exec("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF")
        .map_err(BackupError::sqlite("cannot prepare the file"))?;
    Ok(target)
}

/// Copies the database file `src` into a new file `dest` (for a scratch database), only
/// reading it through the backup API, even while others write to it. The connection may write
/// when the file lets it, only so that SQLite, closing it, removes the `-wal` and `-shm` files
/// that opening a WAL database creates (a read-only connection would leave them behind). The
/// copy is not synced: a scratch database is thrown away, never trusted after a crash.
pub(crate) async fn copy_database(src: &Path, dest: &Path) -> Result<(), Error> {
    let (from, to) = (src.to_owned(), dest.to_owned());
    super::blocking(move || {
        let source = RawConnection::open(&from, OpenMode::Existing)
            .or_else(|_| RawConnection::open(&from, OpenMode::ReadOnly))
            .map_err(BackupError::sqlite("cannot open the database"))?;
        source
            .exec("PRAGMA query_only = ON")
            .map_err(BackupError::sqlite("cannot open the database"))?;
        copy_pages(&source, &to, None)?;
        to_rollback_journal(&to).map_err(BackupError::io("cannot finish the file"))?;
        Ok(())
    })
    .await
    .map_err(|failure: CopyFailure| failure.into_error(src, dest, Duration::ZERO))
}

/// How many times a copy made without a lock may start over (another connection committed)
/// before it gives up, to be made under the lock instead.
const MAX_RESTARTS: u32 = 2;

/// Steps a backup to its end, reporting progress.
fn run_steps<D: AsRef<RawConnection>, S: AsRef<RawConnection>>(
    backup: &mut Backup<D, S>,
    progress: Option<&ProgressFn>,
) -> Result<(), CopyFailure> {
    let (mut copied_before, mut restarts) = (0, 0);
    loop {
        let step = backup
            .step(STEP_PAGES)
            .map_err(BackupError::sqlite("copying pages"))?;
        let (copied_pages, total_pages) = backup.progress();
        if let Some(report) = progress {
            report(BackupProgress {
                copied_pages,
                total_pages,
            });
        }
        if copied_pages < copied_before {
            restarts += 1;
            if restarts > MAX_RESTARTS {
                return Err(CopyFailure::Restarted);
            }
        }
        copied_before = copied_pages;
        match step {
            Step::Done => return Ok(()),
            Step::More => {}
            Step::Busy => return Err(CopyFailure::Busy),
        }
    }
}

/// Turns a copy of a WAL-mode database into a rollback-journal one (see
/// [`to_rollback_journal`]), and syncs it to disk.
pub(crate) fn finish_file(path: &Path) -> std::io::Result<()> {
    to_rollback_journal(path)?.sync_all()
}

/// Turns a copy of a WAL-mode database into a rollback-journal one (header bytes 18 and 19,
/// the file format's read and write versions, from 2 to 1), so that it is one self-contained
/// file; the file, not synced.
fn to_rollback_journal(path: &Path) -> std::io::Result<std::fs::File> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    if file.metadata()?.len() >= 100 {
        let mut header = [0u8; 2];
        file.seek(SeekFrom::Start(18))?;
        file.read_exact(&mut header)?;
        if header == [2, 2] {
            file.seek(SeekFrom::Start(18))?;
            file.write_all(&[1, 1])?;
        }
    }
    Ok(file)
}

/// A restore of a backup file into the live database, holding the live database's write lock
/// from [`LockedRestore::lock`] until it is run or dropped (which writes nothing).
pub(crate) struct LockedRestore(Backup<RawConnection, RawConnection>);

impl LockedRestore {
    /// Prepares a restore of `backup` into `live` (a connection with no open transaction) and
    /// takes the live database's write lock, copying nothing yet.
    pub fn lock(live: super::Reader, backup: &Path) -> Result<Self, CopyFailure> {
        let live = live.0;
        let source = RawConnection::open(backup, OpenMode::Existing)
            .map_err(BackupError::sqlite("cannot open the backup"))?;
        let mut restore =
            Backup::new(live, source).map_err(BackupError::sqlite("cannot start the restore"))?;
        // A 0-page step takes the destination's lock. It would complete at once (restoring an
        // empty database) only for a source without pages, which callers refuse beforehand.
        match restore
            .step(0)
            .map_err(BackupError::sqlite("cannot lock the database"))?
        {
            Step::More => Ok(LockedRestore(restore)),
            Step::Busy => Err(CopyFailure::Busy),
            Step::Done => Err(BackupError::Io {
                doing: "cannot restore it",
                cause: std::io::Error::other("the backup is an empty file"),
            }
            .into()),
        }
    }

    /// The live database's data version as seen under the lock.
    pub fn data_version(&self) -> Result<u32, CopyFailure> {
        Ok(self
            .0
            .dest()
            .data_version()
            .map_err(BackupError::sqlite("cannot read the data version"))?)
    }

    /// Copies every page and commits: other connections see the old content or the restored
    /// content, never a mix. On failure the live database is unchanged.
    pub fn run(mut self, progress: Option<&ProgressFn>) -> Result<(), CopyFailure> {
        run_steps(&mut self.0, progress)?;
        self.0
            .finish()
            .map_err(BackupError::sqlite("cannot commit the restore"))?;
        Ok(())
    }
}

/// For the benchmark only (feature `bench`): how [`bench_copy`] copies.
#[cfg(any(test, feature = "bench"))]
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct BenchCopy {
    /// Pages per `sqlite3_backup_step` (-1: all at once).
    pub step_pages: i32,
    /// The source read through a memory map of this many bytes.
    pub mmap_size: Option<u64>,
    /// The destination's page writes gathered into large writes, as a backup does.
    pub gather_writes: bool,
}

/// For the benchmark only (feature `bench`): copies the database file `src` into a new file
/// `dest` the way a backup copies it (no journal, no sync), as `how` says.
#[cfg(any(test, feature = "bench"))]
#[doc(hidden)]
pub fn bench_copy(src: &Path, dest: &Path, how: BenchCopy) -> Result<(), BackupError> {
    let source = RawConnection::open(src, OpenMode::Existing)
        .map_err(BackupError::sqlite("cannot open the database"))?;
    if let Some(size) = how.mmap_size {
        source
            .exec(&format!("PRAGMA mmap_size = {size}"))
            .map_err(BackupError::sqlite("cannot map the database"))?;
    }
    let mode = if how.gather_writes {
        OpenMode::Copy
    } else {
        OpenMode::Create
    };
    let target = open_destination(dest, mode)?;
    let mut backup =
        Backup::new(target, source).map_err(BackupError::sqlite("cannot start the copy"))?;
    while backup
        .step(how.step_pages)
        .map_err(BackupError::sqlite("copying pages"))?
        != Step::Done
    {}
    backup
        .finish()
        .map_err(BackupError::sqlite("cannot finish the copy"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The data version seen under the restore's lock tells whether another connection
    /// committed since the safety copy was read, in both journal modes.
    #[test]
    fn the_data_version_detects_a_commit_between_copy_and_lock() {
        for mode in ["WAL", "DELETE"] {
            for commit_in_between in [false, true] {
                let dir = tempfile::tempdir().unwrap();
                let live = dir.path().join("live.db");
                let saved = dir.path().join("saved.db");
                let writer = RawConnection::open(&live, OpenMode::Create).unwrap();
                writer
                    .exec(&format!(
                        "PRAGMA journal_mode = {mode}; CREATE TABLE t (x); INSERT INTO t VALUES (1);"
                    ))
                    .unwrap();
                let other = RawConnection::open(&saved, OpenMode::Create).unwrap();
                other.exec("CREATE TABLE t (x);").unwrap();
                drop(other);

                let reader = RawConnection::open(&live, OpenMode::Existing).unwrap();
                copy_pages(&reader, &dir.path().join("copy.db"), None).unwrap();
                let before = reader.data_version().unwrap();
                if commit_in_between {
                    writer.exec("INSERT INTO t VALUES (2);").unwrap();
                }
                let restore = LockedRestore::lock(super::super::Reader(reader), &saved).unwrap();
                let changed = restore.data_version().unwrap() != before;
                assert_eq!(changed, commit_in_between, "{mode}");
            }
        }
    }

    /// Makes a database of about `rows` KiB at `path`, with pages of `page_size` bytes.
    fn database(path: &Path, page_size: u32, rows: u32) {
        let conn = RawConnection::open(path, OpenMode::Create).unwrap();
        conn.exec(&format!(
            "PRAGMA page_size = {page_size}; CREATE TABLE t (x BLOB); \
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows}) \
             INSERT INTO t SELECT randomblob(1000) FROM n; CREATE INDEX t_x ON t (x);"
        ))
        .unwrap();
    }

    /// Gathered writes leave the same bytes as SQLite's own page writes: across the 1 MiB
    /// chunks, for small and large pages, and over a larger file the copy must shrink.
    #[test]
    fn gathered_writes_make_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let (big, small) = (dir.path().join("big.db"), dir.path().join("small.db"));
        database(&big, 4096, 12_000);
        for page_size in [1024, 4096, 65536] {
            std::fs::remove_file(&small).ok();
            database(&small, page_size, 9_000);
            let copy = |dest: &Path, src: &Path, gather_writes: bool| {
                let how = BenchCopy {
                    step_pages: STEP_PAGES,
                    mmap_size: None,
                    gather_writes,
                };
                bench_copy(src, dest, how).unwrap();
            };
            let (plain, gathered) = (dir.path().join("plain.db"), dir.path().join("gathered.db"));
            copy(&plain, &big, false);
            copy(&plain, &small, false);
            copy(&gathered, &big, true);
            copy(&gathered, &small, true);
            let plain_bytes = std::fs::read(&plain).unwrap();
            assert!(plain_bytes.len() > 8 << 20, "{}", plain_bytes.len());
            assert!(
                std::fs::read(&gathered).unwrap() == plain_bytes,
                "page size {page_size}: the files differ"
            );
            std::fs::remove_file(&plain).unwrap();
            std::fs::remove_file(&gathered).unwrap();
        }
    }
}
