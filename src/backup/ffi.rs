//! A small safe wrapper over SQLite's online backup API (`sqlite3_backup_*`) and the raw
//! connections it needs, in the shape of rusqlite's `backup` module: every raw object is owned
//! by a value whose `Drop` releases it.
//!
//! These connections are opened by this crate, never shared with sqlx's worker threads, and
//! used by one thread at a time (they may move between blocking tasks, never be shared).

use std::ffi::{CStr, CString, c_int};
use std::path::Path;
use std::ptr::{self, NonNull};
use std::time::Duration;

use libsqlite3_sys as ffi;

/// A raw connection opened with `sqlite3_open_v2`, closed on drop.
pub(crate) struct RawConnection {
    db: NonNull<ffi::sqlite3>,
}

// SAFETY: SQLite connections (here opened in the multi-thread mode, `SQLITE_OPEN_NOMUTEX`) may be
// used from any thread as long as no two threads use one at the same time. `RawConnection` is
// not `Sync` and every method takes `&self`/`&mut self` from its single owner, so moving it to
// another thread (e.g. into a blocking task) is sound. File locks are per process, not per thread.
unsafe impl Send for RawConnection {}

impl AsRef<RawConnection> for RawConnection {
    fn as_ref(&self) -> &RawConnection {
        self
    }
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

    /// The "data version" of the main database's pager: it changes whenever the database file
    /// changes, through this connection or any other (`SQLITE_FCNTL_DATA_VERSION`).
    pub fn data_version(&self) -> Result<u32, String> {
        let mut version: u32 = 0;
        // SAFETY: open connection; the file control writes one `unsigned int` to the pointer.
        let rc = unsafe {
            ffi::sqlite3_file_control(
                self.db.as_ptr(),
                c"main".as_ptr(),
                ffi::SQLITE_FCNTL_DATA_VERSION,
                (&raw mut version).cast(),
            )
        };
        if rc == ffi::SQLITE_OK {
            Ok(version)
        } else {
            Err(error_string(rc))
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

/// An online backup from one connection's main database to another's, finished on drop.
///
/// `D` and `S` are the destination and source connections, owned or borrowed. SQLite forbids
/// any use of the destination while the backup is open; owning it, or holding the only
/// `&mut` to it, makes sure of that.
pub(crate) struct Backup<D: AsRef<RawConnection>, S: AsRef<RawConnection>> {
    raw: NonNull<ffi::sqlite3_backup>,
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
}

impl<D: AsRef<RawConnection>, S: AsRef<RawConnection>> Backup<D, S> {
    /// Starts a backup of `src`'s main database into `dest`'s. The destination may have no
    /// open transaction.
    pub fn new(dest: D, src: S) -> Result<Self, String> {
        let main = c"main";
        // SAFETY: both connections are open and, being fields of the returned value, outlive
        // the backup object, which `Drop` finishes before they are released.
        let raw = unsafe {
            ffi::sqlite3_backup_init(
                dest.as_ref().db.as_ptr(),
                main.as_ptr(),
                src.as_ref().db.as_ptr(),
                main.as_ptr(),
            )
        };
        match NonNull::new(raw) {
            Some(raw) => Ok(Backup { raw, dest, src }),
            None => Err(dest.as_ref().errmsg()),
        }
    }

    /// Copies up to `pages` pages (-1: all). The first step takes the destination's write
    /// lock, which is held until the backup is done or finished: a step of 0 pages only takes
    /// the lock (unless the source is empty, in which case the backup completes).
    pub fn step(&mut self, pages: c_int) -> Result<Step, String> {
        // SAFETY: the backup object is live until `finish`/drop.
        let rc = unsafe { ffi::sqlite3_backup_step(self.raw.as_ptr(), pages) };
        // Read at once: the OS error of a failed read or write (what SQLite's unix VFS reports
        // as its "last error"), before anything else can change it.
        let os_error = std::io::Error::last_os_error();
        match rc {
            ffi::SQLITE_DONE => Ok(Step::Done),
            ffi::SQLITE_OK => Ok(Step::More),
            ffi::SQLITE_BUSY | ffi::SQLITE_LOCKED => {
                Err("the database stayed locked past the busy timeout".into())
            }
            rc => Err(describe(rc, &os_error)),
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

    /// The destination connection (only to read its pager's state; never to run SQL).
    pub fn dest(&self) -> &RawConnection {
        self.dest.as_ref()
    }

    /// Releases the backup object, reports any error of the whole operation and hands the
    /// connections back. Finishing a backup that is not done rolls the destination's
    /// transaction back: nothing is written.
    pub fn finish(self) -> Result<(D, S), String> {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: the object is live; `this` is never dropped, so it is finished exactly once.
        let rc = unsafe { ffi::sqlite3_backup_finish(this.raw.as_ptr()) };
        // SAFETY: each field is moved out once and `this` is never used again.
        let (dest, src) = unsafe { (ptr::read(&this.dest), ptr::read(&this.src)) };
        match rc {
            ffi::SQLITE_OK => Ok((dest, src)),
            rc => Err(format!("{} ({})", error_string(rc), dest.as_ref().errmsg())),
        }
    }
}

impl<D: AsRef<RawConnection>, S: AsRef<RawConnection>> Drop for Backup<D, S> {
    fn drop(&mut self) {
        // SAFETY: the object is live; finishing releases it (errors are moot on this path).
        unsafe { ffi::sqlite3_backup_finish(self.raw.as_ptr()) };
    }
}

/// What went wrong in a backup step: `sqlite3_backup_step` sets no connection's error message,
/// so the code says it, with the OS error for I/O failures (a full disk, a file-size limit).
fn describe(rc: c_int, os_error: &std::io::Error) -> String {
    let message = error_string(rc);
    let io = matches!(
        rc & 0xff,
        ffi::SQLITE_IOERR | ffi::SQLITE_FULL | ffi::SQLITE_CANTOPEN
    );
    match os_error.raw_os_error() {
        Some(errno) if io && errno != 0 => format!("{message}: {os_error}"),
        _ => message,
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
