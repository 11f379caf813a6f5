//! SQLite's online backup API (`sqlite3_backup_*`) as one owned value, in the shape of
//! rusqlite's `backup` module: finished on drop, busy as a value ([`Step::Busy`]).

use std::ffi::c_int;
use std::ptr::{self, NonNull};

use libsqlite3_sys as sys;

use super::{RawConnection, SqliteFailure, error_string};

/// An online backup from one connection's main database to another's, finished on drop.
///
/// `D` and `S` are the destination and source connections, owned or borrowed. SQLite forbids
/// any use of the destination while the backup is open; owning it, or holding the only
/// `&mut` to it, makes sure of that.
pub(crate) struct Backup<D: AsRef<RawConnection>, S: AsRef<RawConnection>> {
    raw: NonNull<sys::sqlite3_backup>,
    dest: D,
    src: S,
}

// SAFETY: the backup object belongs to its two connections, which move with it (see the
// `Send` impl of `RawConnection`); it is used by one thread at a time.
unsafe impl<D: AsRef<RawConnection> + Send, S: AsRef<RawConnection> + Send> Send for Backup<D, S> {}

/// Outcome of one [`Backup::step`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Every page is copied.
    Done,
    /// Pages remain.
    More,
    /// A lock of another connection was held past the busy timeout; nothing was lost, and
    /// stepping again retries.
    Busy,
}

impl<D: AsRef<RawConnection>, S: AsRef<RawConnection>> Backup<D, S> {
    /// Starts a backup of `src`'s main database into `dest`'s. The destination may have no
    /// open transaction.
    pub fn new(dest: D, src: S) -> Result<Self, SqliteFailure> {
        let main = c"main";
        // SAFETY: both connections are open and, being fields of the returned value, outlive
        // the backup object, which `Drop` finishes before they are released.
        let raw = unsafe {
            sys::sqlite3_backup_init(
                dest.as_ref().db.as_ptr(),
                main.as_ptr(),
                src.as_ref().db.as_ptr(),
                main.as_ptr(),
            )
        };
        match NonNull::new(raw) {
            Some(raw) => Ok(Backup { raw, dest, src }),
            None => Err(dest.as_ref().last_failure()),
        }
    }

    /// Copies up to `pages` pages (-1: all). The first step takes the destination's write
    /// lock, which is held until the backup is done or finished: a step of 0 pages only takes
    /// the lock (unless the source is empty, in which case the backup completes).
    pub fn step(&mut self, pages: c_int) -> Result<Step, SqliteFailure> {
        // SAFETY: the backup object is live until `finish`/drop.
        let rc = unsafe { sys::sqlite3_backup_step(self.raw.as_ptr(), pages) };
        // Read at once: the OS error of a failed read or write (what SQLite's unix VFS reports
        // as its "last error"), before anything else can change it.
        let os_error = std::io::Error::last_os_error();
        match rc {
            sys::SQLITE_DONE => Ok(Step::Done),
            sys::SQLITE_OK => Ok(Step::More),
            rc if matches!(rc & 0xff, sys::SQLITE_BUSY | sys::SQLITE_LOCKED) => Ok(Step::Busy),
            rc => Err(step_failure(rc, &os_error)),
        }
    }

    /// `(pages copied so far, pages in all)`, as of the last step.
    pub fn progress(&self) -> (u64, u64) {
        // SAFETY: the backup object is live.
        let (remaining, total) = unsafe {
            (
                sys::sqlite3_backup_remaining(self.raw.as_ptr()),
                sys::sqlite3_backup_pagecount(self.raw.as_ptr()),
            )
        };
        let total = u64::try_from(total).unwrap_or(0);
        let remaining = u64::try_from(remaining).unwrap_or(0);
        (total.saturating_sub(remaining), total)
    }

    /// The destination connection (only to read its pager's state; never to run SQL).
    pub fn dest(&self) -> &RawConnection {
        self.dest.as_ref()
    }

    /// Releases the backup object, reports any error of the whole operation and hands the
    /// connections back. Finishing a backup that is not done rolls the destination's
    /// transaction back: nothing is written.
    pub fn finish(self) -> Result<(D, S), SqliteFailure> {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: the object is live; `this` is never dropped, so it is finished exactly once.
        let rc = unsafe { sys::sqlite3_backup_finish(this.raw.as_ptr()) };
        // SAFETY: each field is moved out once and `this` is never used again.
        let (dest, src) = unsafe { (ptr::read(&this.dest), ptr::read(&this.src)) };
        match rc {
            sys::SQLITE_OK => Ok((dest, src)),
            rc => {
                let said = dest.as_ref().last_failure();
                Err(SqliteFailure::new(
                    rc,
                    format!("{} ({})", error_string(rc), said.message),
                ))
            }
        }
    }
}

impl<D: AsRef<RawConnection>, S: AsRef<RawConnection>> Drop for Backup<D, S> {
    fn drop(&mut self) {
        // SAFETY: the object is live; finishing releases it (errors are moot on this path).
        unsafe { sys::sqlite3_backup_finish(self.raw.as_ptr()) };
    }
}

/// What went wrong in a backup step: `sqlite3_backup_step` sets no connection's error message,
/// so the code says it, with the OS error for I/O failures (a full disk, a file-size limit).
fn step_failure(rc: c_int, os_error: &std::io::Error) -> SqliteFailure {
    let message = error_string(rc);
    let io = matches!(
        rc & 0xff,
        sys::SQLITE_IOERR | sys::SQLITE_FULL | sys::SQLITE_CANTOPEN
    );
    match os_error.raw_os_error() {
        Some(errno) if io && errno != 0 => SqliteFailure::new(rc, format!("{message}: {os_error}")),
        _ => SqliteFailure::new(rc, message),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::ffi::OpenMode;

    #[test]
    fn a_busy_destination_is_a_value_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("live.db");
        let saved = dir.path().join("saved.db");
        let holder = RawConnection::open(&live, OpenMode::Create).unwrap();
        holder
            .exec("CREATE TABLE t (x); BEGIN IMMEDIATE; INSERT INTO t VALUES (1);")
            .unwrap();
        RawConnection::open(&saved, OpenMode::Create)
            .unwrap()
            .exec("CREATE TABLE t (x);")
            .unwrap();
        let dest = RawConnection::open(&live, OpenMode::Existing).unwrap();
        dest.set_busy_timeout(Duration::from_millis(10));
        let source = RawConnection::open(&saved, OpenMode::Existing).unwrap();
        let mut restore = Backup::new(dest, source).unwrap();
        assert_eq!(restore.step(-1).unwrap(), Step::Busy);
        holder.exec("COMMIT").unwrap();
        assert_eq!(restore.step(-1).unwrap(), Step::Done);
        restore.finish().unwrap();
    }
}
