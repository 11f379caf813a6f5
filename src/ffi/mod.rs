//! Every direct call into SQLite's C API (and the calls into the C library: the user this
//! process runs as, and [`writeback`] of a copy's pages), and the only module of the crate with
//! `unsafe` code.
//!
//! It wraps what sqlx does not offer, in the shape of rusqlite's `backup` module: raw
//! connections ([`RawConnection`]), the online backup API ([`Backup`]) and the statement
//! completeness test of the `sqlite3` shell ([`is_complete`]). Every raw object is owned by a
//! value whose `Drop` releases it, and every failure is a typed [`SqliteFailure`] (its result
//! code and SQLite's message); a busy database is a value ([`Step::Busy`]), not an error
//! string to search.
//!
//! These connections are opened by this crate, never shared with sqlx's worker threads, and
//! used by one thread at a time (they may move between blocking tasks, never be shared).

use std::ffi::{CStr, CString, c_int};
use std::path::Path;
use std::ptr::{self, NonNull};
use std::time::Duration;

use libsqlite3_sys as sys;

mod authorizer;
mod backup;
mod coalesce;
mod file;
pub(crate) mod writeback;

pub(crate) use authorizer::{Action, Authorizer, Judge, Policy, is_denial};
pub(crate) use backup::{Backup, Step};

/// A failure reported by SQLite: its (extended) result code and what SQLite said.
///
/// ```
/// # fn f(failure: &backstop::SqliteFailure) {
/// if failure.is_busy() {
///     eprintln!("another connection holds the lock: {failure}");
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SqliteFailure {
    code: c_int,
    message: String,
}

impl SqliteFailure {
    fn new(code: c_int, message: impl Into<String>) -> Self {
        SqliteFailure {
            code,
            message: message.into(),
        }
    }

    /// A failure with SQLite's generic text for `code`.
    fn from_code(code: c_int) -> Self {
        SqliteFailure::new(code, error_string(code))
    }

    /// SQLite's extended result code (`SQLITE_IOERR_WRITE`, ...); `code() & 0xff` is the
    /// primary code.
    pub fn code(&self) -> i32 {
        self.code
    }

    /// What SQLite said, with the operating system's error for I/O failures.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether another connection held a lock past the busy timeout (`SQLITE_BUSY` or
    /// `SQLITE_LOCKED`).
    pub fn is_busy(&self) -> bool {
        is_busy_code(self.code)
    }
}

/// Whether a result code (primary or extended) says another connection held a lock past the
/// busy timeout (`SQLITE_BUSY` or `SQLITE_LOCKED`).
pub(crate) fn is_busy_code(code: i32) -> bool {
    matches!(code & 0xff, sys::SQLITE_BUSY | sys::SQLITE_LOCKED)
}

/// Whether a result code (primary or extended) says the file is not a database, or a damaged
/// one (`SQLITE_NOTADB` or `SQLITE_CORRUPT`).
pub(crate) fn is_not_a_database_code(code: i32) -> bool {
    matches!(code & 0xff, sys::SQLITE_NOTADB | sys::SQLITE_CORRUPT)
}

/// Whether SQLite considers `sql` one or more complete statements (`sqlite3_complete`): the
/// text ends with a `;` outside strings, comments and trigger bodies. A NUL byte makes it
/// incomplete.
pub(crate) fn is_complete(sql: &str) -> bool {
    match CString::new(sql) {
        // SAFETY: `c` is a valid NUL-terminated string that outlives the call;
        // `sqlite3_complete` only reads it and needs no connection.
        Ok(c) => unsafe { sys::sqlite3_complete(c.as_ptr()) != 0 },
        Err(_) => false,
    }
}

/// Whether SQLite opened the main database of a sqlx connection read-only
/// (`sqlite3_db_readonly`): asked of SQLite, so it covers `mode=ro`, `immutable` and a file
/// that cannot be written alike.
pub(crate) async fn is_read_only(conn: &mut sqlx::SqliteConnection) -> Result<bool, sqlx::Error> {
    let mut handle = conn.lock_handle().await?;
    let db = handle.as_raw_handle();
    // SAFETY: `db` is the open connection, which sqlx's worker does not use while the handle is
    // locked; "main" is a NUL-terminated string.
    let answer = unsafe { sys::sqlite3_db_readonly(db.as_ptr(), c"main".as_ptr()) };
    Ok(answer == 1)
}

/// The effective user id of this process: the owner that files it creates get.
#[cfg(unix)]
pub(crate) fn effective_uid() -> u32 {
    // SAFETY: `geteuid` takes no arguments, touches no memory of ours and cannot fail.
    unsafe { libc::geteuid() }
}

/// A raw connection opened with `sqlite3_open_v2`, closed on drop.
pub(crate) struct RawConnection {
    db: NonNull<sys::sqlite3>,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenMode {
    /// An existing file, read-write (reading only, but able to recover a hot journal).
    Existing,
    /// A file that may not exist yet.
    Create,
    /// An existing file, read-only (nothing is ever written to it).
    ReadOnly,
    /// A new file that a backup writes from start to end, without a journal: created, or
    /// reused, and written through a VFS that gathers its page writes ([`coalesce`]).
    Copy,
}

impl RawConnection {
    /// Opens the file at `path` (a path, never a URI).
    pub fn open(path: &Path, mode: OpenMode) -> Result<Self, SqliteFailure> {
        let c_path = path
            .to_str()
            .and_then(|s| CString::new(s).ok())
            .ok_or_else(|| {
                SqliteFailure::new(
                    sys::SQLITE_CANTOPEN,
                    format!("unsupported path {}", path.display()),
                )
            })?;
        let flags = match mode {
            OpenMode::Existing => sys::SQLITE_OPEN_READWRITE,
            OpenMode::Create | OpenMode::Copy => {
                sys::SQLITE_OPEN_READWRITE | sys::SQLITE_OPEN_CREATE
            }
            OpenMode::ReadOnly => sys::SQLITE_OPEN_READONLY,
        } | sys::SQLITE_OPEN_NOMUTEX;
        let vfs = match mode {
            OpenMode::Copy => match coalesce::register() {
                sys::SQLITE_OK => coalesce::NAME.as_ptr(),
                rc => return Err(SqliteFailure::from_code(rc)),
            },
            _ => ptr::null(),
        };
        let mut db = ptr::null_mut();
        // SAFETY: valid NUL-terminated path, out-pointer to a local; the VFS name is null (the
        // default VFS) or a registered VFS's.
        let rc = unsafe { sys::sqlite3_open_v2(c_path.as_ptr(), &mut db, flags, vfs) };
        // Even on failure SQLite usually hands back a handle that must be closed.
        let conn = NonNull::new(db).map(|db| RawConnection { db });
        match (rc, conn) {
            (sys::SQLITE_OK, Some(conn)) => Ok(conn),
            (_, Some(conn)) => Err(conn.last_failure()),
            (rc, None) => Err(SqliteFailure::from_code(rc)),
        }
    }

    /// How long a statement waits for another connection's lock before failing as busy.
    pub fn set_busy_timeout(&self, timeout: Duration) {
        let ms = c_int::try_from(timeout.as_millis()).unwrap_or(c_int::MAX);
        // SAFETY: `self.db` is an open connection.
        unsafe { sys::sqlite3_busy_timeout(self.db.as_ptr(), ms) };
    }

    /// Runs SQL whose rows, if any, do not matter.
    pub fn exec(&self, sql: &str) -> Result<(), SqliteFailure> {
        let c_sql = CString::new(sql)
            .map_err(|_| SqliteFailure::new(sys::SQLITE_MISUSE, "SQL with a NUL byte"))?;
        // SAFETY: open connection, valid SQL string, no callback, no error out-pointer.
        let rc = unsafe {
            sys::sqlite3_exec(
                self.db.as_ptr(),
                c_sql.as_ptr(),
                None,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        if rc == sys::SQLITE_OK {
            Ok(())
        } else {
            Err(self.last_failure())
        }
    }

    /// The first column of the first row of `sql` as an integer.
    pub fn query_int(&self, sql: &str) -> Result<i64, SqliteFailure> {
        self.query_first(sql, |stmt| {
            // SAFETY: `stmt` has a row; column 0 exists (checked by the caller of the closure).
            unsafe { sys::sqlite3_column_int64(stmt, 0) }
        })
    }

    /// The first column of the first row of `sql` as text.
    pub fn query_text(&self, sql: &str) -> Result<String, SqliteFailure> {
        self.query_first(sql, |stmt| {
            // SAFETY: as in `query_int`; the text is copied before the statement is stepped
            // again or finalized.
            unsafe {
                let text = sys::sqlite3_column_text(stmt, 0);
                if text.is_null() {
                    String::new()
                } else {
                    CStr::from_ptr(text.cast()).to_string_lossy().into_owned()
                }
            }
        })
    }

    /// Runs `sql` (one statement) and reads its first row's first column with `read`.
    fn query_first<T>(
        &self,
        sql: &str,
        read: impl FnOnce(*mut sys::sqlite3_stmt) -> T,
    ) -> Result<T, SqliteFailure> {
        let c_sql = CString::new(sql)
            .map_err(|_| SqliteFailure::new(sys::SQLITE_MISUSE, "SQL with a NUL byte"))?;
        let mut stmt = ptr::null_mut();
        // SAFETY: open connection, NUL-terminated SQL, out-pointer to a local.
        let rc = unsafe {
            sys::sqlite3_prepare_v2(
                self.db.as_ptr(),
                c_sql.as_ptr(),
                -1,
                &mut stmt,
                ptr::null_mut(),
            )
        };
        if rc != sys::SQLITE_OK {
            return Err(self.last_failure());
        }
        // SAFETY: `stmt` was prepared on this connection and is finalized below, once.
        let result = unsafe {
            match sys::sqlite3_step(stmt) {
                sys::SQLITE_ROW if sys::sqlite3_column_count(stmt) > 0 => Ok(read(stmt)),
                sys::SQLITE_ROW | sys::SQLITE_DONE => Err(SqliteFailure::new(
                    sys::SQLITE_MISUSE,
                    format!("no value from {sql}"),
                )),
                _ => Err(self.last_failure()),
            }
        };
        // SAFETY: as above.
        unsafe { sys::sqlite3_finalize(stmt) };
        result
    }

    /// The "data version" of the main database's pager: it changes whenever the database file
    /// changes, through this connection or any other (`SQLITE_FCNTL_DATA_VERSION`).
    pub fn data_version(&self) -> Result<u32, SqliteFailure> {
        let mut version: u32 = 0;
        // SAFETY: open connection; the file control writes one `unsigned int` to the pointer.
        let rc = unsafe {
            sys::sqlite3_file_control(
                self.db.as_ptr(),
                c"main".as_ptr(),
                sys::SQLITE_FCNTL_DATA_VERSION,
                (&raw mut version).cast(),
            )
        };
        if rc == sys::SQLITE_OK {
            Ok(version)
        } else {
            Err(SqliteFailure::from_code(rc))
        }
    }

    /// The connection's last error, with its extended code.
    fn last_failure(&self) -> SqliteFailure {
        // SAFETY: open connection; the message is copied before any other call on it.
        unsafe {
            let code = sys::sqlite3_extended_errcode(self.db.as_ptr());
            let msg = sys::sqlite3_errmsg(self.db.as_ptr());
            if msg.is_null() {
                SqliteFailure::from_code(code)
            } else {
                SqliteFailure::new(code, CStr::from_ptr(msg).to_string_lossy())
            }
        }
    }
}

impl Drop for RawConnection {
    fn drop(&mut self) {
        // SAFETY: the handle was opened by us; every backup object borrowing it has been
        // finished (the borrow checker guarantees `Backup` does not outlive it).
        unsafe { sys::sqlite3_close(self.db.as_ptr()) };
    }
}

/// SQLite's generic text for a result code.
fn error_string(rc: c_int) -> String {
    // SAFETY: `sqlite3_errstr` returns a static string for any code.
    unsafe {
        let msg = sys::sqlite3_errstr(rc);
        if msg.is_null() {
            format!("SQLite error {rc}")
        } else {
            CStr::from_ptr(msg).to_string_lossy().into_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_carry_their_code_and_message() {
        let dir = tempfile::tempdir().unwrap();
        let err = RawConnection::open(&dir.path().join("none/x.db"), OpenMode::Create)
            .err()
            .unwrap();
        assert_eq!(err.code() & 0xff, sys::SQLITE_CANTOPEN);
        assert!(!err.is_busy());
        let conn = RawConnection::open(&dir.path().join("x.db"), OpenMode::Create).unwrap();
        let err = conn.exec("SELECT * FROM no_such_table").unwrap_err();
        assert_eq!(err.code() & 0xff, sys::SQLITE_ERROR);
        assert!(err.message().contains("no_such_table"), "{err}");
    }

    #[test]
    fn completeness_follows_the_shell() {
        assert!(is_complete("SELECT 1;"));
        assert!(!is_complete("SELECT ';'"));
        assert!(!is_complete(
            "CREATE TRIGGER t AFTER INSERT ON x BEGIN SELECT 1;"
        ));
        assert!(!is_complete("SELECT 1;\0"));
    }
}
