//! A small safe wrapper over SQLite's online backup API (`sqlite3_backup_*`) and the raw
//! connections it needs, in the shape of rusqlite's `backup` module: every raw object is owned
//! by a value whose `Drop` releases it.
//!
//! These connections are private to the blocking thread that opens them; they never cross an
//! `.await` and are never shared with sqlx's worker threads.

use std::ffi::{CStr, CString, c_int};
use std::marker::PhantomData;
use std::path::Path;
use std::ptr::{self, NonNull};
use std::time::Duration;

use libsqlite3_sys as ffi;

/// A raw connection opened with `sqlite3_open_v2`, closed on drop.
pub(crate) struct RawConnection {
    db: NonNull<ffi::sqlite3>,
}

/// How to open a [`RawConnection`].
#[derive(Clone, Copy)]
pub(crate) enum OpenMode {
    /// An existing file, read-write (reading only, but able to recover a hot journal).
    Existing,
    /// A file that may not exist yet.
    Create,
}

impl RawConnection {
    pub fn open(path: &Path, mode: OpenMode) -> Result<Self, String> {
        let c_path = path
            .to_str()
            .and_then(|s| CString::new(s).ok())
            .ok_or_else(|| format!("unsupported path {}", path.display()))?;
        let flags = match mode {
            OpenMode::Existing => ffi::SQLITE_OPEN_READWRITE,
            OpenMode::Create => ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_CREATE,
        } | ffi::SQLITE_OPEN_NOMUTEX;
        let mut db = ptr::null_mut();
        // SAFETY: valid NUL-terminated path, out-pointer to a local; a null VFS name means the
        // default VFS.
        let rc = unsafe { ffi::sqlite3_open_v2(c_path.as_ptr(), &mut db, flags, ptr::null()) };
        // Even on failure SQLite usually hands back a handle that must be closed.
        let conn = NonNull::new(db).map(|db| RawConnection { db });
        match (rc, conn) {
            (ffi::SQLITE_OK, Some(conn)) => Ok(conn),
            (_, Some(conn)) => Err(conn.errmsg()),
            (rc, None) => Err(error_string(rc)),
        }
    }

    pub fn set_busy_timeout(&self, timeout: Duration) {
        let ms = c_int::try_from(timeout.as_millis()).unwrap_or(c_int::MAX);
        // SAFETY: `self.db` is an open connection.
        unsafe { ffi::sqlite3_busy_timeout(self.db.as_ptr(), ms) };
    }

    /// Runs SQL that returns no rows that matter.
    pub fn exec(&self, sql: &str) -> Result<(), String> {
        let c_sql = CString::new(sql).map_err(|e| e.to_string())?;
        // SAFETY: open connection, valid SQL string, no callback, no error out-pointer.
        let rc = unsafe {
            ffi::sqlite3_exec(
                self.db.as_ptr(),
                c_sql.as_ptr(),
                None,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        if rc == ffi::SQLITE_OK {
            Ok(())
        } else {
            Err(self.errmsg())
        }
    }

    fn errmsg(&self) -> String {
        // SAFETY: open connection; the message is copied before any other call on it.
        unsafe {
            let msg = ffi::sqlite3_errmsg(self.db.as_ptr());
            if msg.is_null() {
                error_string(ffi::sqlite3_extended_errcode(self.db.as_ptr()))
            } else {
                CStr::from_ptr(msg).to_string_lossy().into_owned()
            }
        }
    }
}

impl Drop for RawConnection {
    fn drop(&mut self) {
        // SAFETY: the handle was opened by us; every backup object borrowing it has been
        // finished (the borrow checker guarantees `Backup` does not outlive it).
        unsafe { ffi::sqlite3_close(self.db.as_ptr()) };
    }
}

/// An online backup from one connection to another, finished on drop.
pub(crate) struct Backup<'a> {
    raw: NonNull<ffi::sqlite3_backup>,
    dest: &'a RawConnection,
    _src: PhantomData<&'a RawConnection>,
}

/// Outcome of one [`Backup::step`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Every page is copied.
    Done,
    /// Pages remain.
    More,
}

impl<'a> Backup<'a> {
    /// Starts a backup of `src`'s main database into `dest`'s. `dest` is borrowed mutably: SQLite
    /// forbids using the destination while the backup is open.
    pub fn new(dest: &'a mut RawConnection, src: &'a RawConnection) -> Result<Self, String> {
        let main = c"main";
        // SAFETY: both connections are open and outlive the backup object (lifetime `'a`).
        let raw = unsafe {
            ffi::sqlite3_backup_init(
                dest.db.as_ptr(),
                main.as_ptr(),
                src.db.as_ptr(),
                main.as_ptr(),
            )
        };
        let dest: &'a RawConnection = dest;
        match NonNull::new(raw) {
            Some(raw) => Ok(Backup {
                raw,
                dest,
                _src: PhantomData,
            }),
            None => Err(dest.errmsg()),
        }
    }

    /// Copies up to `pages` pages (-1: all).
    pub fn step(&mut self, pages: c_int) -> Result<Step, String> {
        // SAFETY: the backup object is live until `finish`/drop.
        match unsafe { ffi::sqlite3_backup_step(self.raw.as_ptr(), pages) } {
            ffi::SQLITE_DONE => Ok(Step::Done),
            ffi::SQLITE_OK => Ok(Step::More),
            ffi::SQLITE_BUSY | ffi::SQLITE_LOCKED => {
                Err("the source database stayed locked past the busy timeout".into())
            }
            rc => Err(format!("{} ({})", self.dest.errmsg(), error_string(rc))),
        }
    }

    /// `(pages copied so far, pages in all)`, as of the last step.
    pub fn progress(&self) -> (u64, u64) {
        // SAFETY: the backup object is live.
        let (remaining, total) = unsafe {
            (
                ffi::sqlite3_backup_remaining(self.raw.as_ptr()),
                ffi::sqlite3_backup_pagecount(self.raw.as_ptr()),
            )
        };
        let total = u64::try_from(total).unwrap_or(0);
        let remaining = u64::try_from(remaining).unwrap_or(0);
        (total.saturating_sub(remaining), total)
    }

    /// Releases the backup object and reports any error of the whole operation.
    pub fn finish(self) -> Result<(), String> {
        let raw = self.raw;
        let dest = self.dest;
        std::mem::forget(self);
        // SAFETY: the object is live and, having forgotten `self`, is finished exactly once.
        match unsafe { ffi::sqlite3_backup_finish(raw.as_ptr()) } {
            ffi::SQLITE_OK => Ok(()),
            rc => Err(format!("{} ({})", dest.errmsg(), error_string(rc))),
        }
    }
}

impl Drop for Backup<'_> {
    fn drop(&mut self) {
        // SAFETY: the object is live; finishing releases it (errors are moot on this path).
        unsafe { ffi::sqlite3_backup_finish(self.raw.as_ptr()) };
    }
}

fn error_string(rc: c_int) -> String {
    // SAFETY: `sqlite3_errstr` returns a static string for any code.
    unsafe {
        let msg = ffi::sqlite3_errstr(rc);
        if msg.is_null() {
            format!("SQLite error {rc}")
        } else {
            CStr::from_ptr(msg).to_string_lossy().into_owned()
        }
    }
}
