//! SQLite's authorizer (`sqlite3_set_authorizer`): SQLite calls it while it prepares each
//! statement, with the actions the statement will take as SQLite itself parsed them (a
//! PRAGMA's name with quotes, comments and schema prefix resolved; an ATTACH; a BEGIN). A
//! denied action makes the prepare fail (`SQLITE_AUTH`) before anything runs.
//!
//! Two uses: an [`Authorizer`] installed on a sqlx connection judges the statements of
//! migration scripts while they run (and only those: the runner's own statements pass), and
//! a [`Judge`] prepares a statement against an empty in-memory database to judge it when a
//! script is loaded. The installed authorizer also tells, on demand, which tables the
//! statements prepared on the connection write ([`Authorizer::recording`]): `verify` hashes
//! only the tables a migration touched.

use std::collections::BTreeSet;
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use libsqlite3_sys as sys;
use sqlx::SqliteConnection;

use super::{OpenMode, RawConnection};

/// An action that SQLite asks about, as SQLite parsed it. Actions the policy has no opinion on
/// (reading, writing, creating tables) are not represented: they are always allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// `PRAGMA [schema.]name [= value | (value)]`: the name as written (compare it without
    /// regard to case), the value (`None`: a query), the schema (`None`: none given).
    Pragma {
        name: String,
        value: Option<String>,
        schema: Option<String>,
    },
    /// `ATTACH`.
    Attach,
    /// `DETACH`.
    Detach,
    /// `BEGIN`, `COMMIT`, `END`, `ROLLBACK`.
    Transaction,
    /// `SAVEPOINT`, `RELEASE`, `ROLLBACK TO`.
    Savepoint,
}

/// What a policy says of an action: `None` allows it; otherwise why it is refused.
pub(crate) type Policy = fn(&Action) -> Option<String>;

/// An action a policy refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub action: Action,
    pub reason: String,
}

/// What the callback reads: the policy, whether statements are being judged now, the last
/// refusal (for the error that names it), and the tables written while recording.
struct State {
    policy: Policy,
    judging: AtomicBool,
    refused: Mutex<Option<Refusal>>,
    written: Mutex<Option<BTreeSet<String>>>,
}

impl State {
    fn new(policy: Policy, judging: bool) -> Self {
        State {
            policy,
            judging: AtomicBool::new(judging),
            refused: Mutex::new(None),
            written: Mutex::new(None),
        }
    }

    fn take_refusal(&self) -> Option<Refusal> {
        self.refused.lock().ok()?.take()
    }

    /// Notes that a statement being prepared writes `table`, if recording.
    fn wrote(&self, table: Option<String>) {
        if let (Ok(mut written), Some(table)) = (self.written.lock(), table)
            && let Some(written) = written.as_mut()
        {
            written.insert(table.to_ascii_lowercase());
        }
    }
}

/// The table an action code writes the rows of (or removes, or rebuilds), if any: SQLite names
/// it in the first argument, or the second for `ALTER TABLE`. Writes that triggers make are
/// asked about while the statement that fires them is prepared.
///
/// # Safety
/// As for [`text`]: `a` and `b` are NULL or NUL-terminated strings valid during the call.
unsafe fn written_table(code: c_int, a: *const c_char, b: *const c_char) -> Option<String> {
    let named = match code {
        sys::SQLITE_INSERT
        | sys::SQLITE_UPDATE
        | sys::SQLITE_DELETE
        | sys::SQLITE_DROP_TABLE
        | sys::SQLITE_DROP_TEMP_TABLE
        | sys::SQLITE_DROP_VTABLE => a,
        sys::SQLITE_ALTER_TABLE => b,
        _ => return None,
    };
    // SAFETY: `named` is `a` or `b`, which the caller guarantees.
    unsafe { text(named) }
}

/// Reads a C string argument of the callback (`None` for NULL).
///
/// # Safety
/// `p` is NULL or a NUL-terminated string valid for the duration of the call.
unsafe fn text(p: *const c_char) -> Option<String> {
    // SAFETY: guaranteed by the caller.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

/// The callback SQLite calls. It never unwinds: everything in it is infallible but the lock
/// of the refusal, whose poisoning is ignored.
unsafe extern "C" fn callback(
    user: *mut c_void,
    code: c_int,
    a: *const c_char,
    b: *const c_char,
    schema: *const c_char,
    _trigger: *const c_char,
) -> c_int {
    // SAFETY: `user` is the `State` registered with the callback, kept alive for as long as
    // the callback is installed (see `Authorizer` and `Judge`).
    let state = unsafe { &*(user as *const State) };
    // SAFETY: SQLite passes NUL-terminated strings or NULL, valid during the call.
    state.wrote(unsafe { written_table(code, a, b) });
    if !state.judging.load(Ordering::SeqCst) {
        return sys::SQLITE_OK;
    }
    let action = match code {
        // SAFETY: SQLite passes NUL-terminated strings or NULL, valid during the call.
        sys::SQLITE_PRAGMA => unsafe {
            Action::Pragma {
                name: text(a).unwrap_or_default(),
                value: text(b),
                schema: text(schema),
            }
        },
        sys::SQLITE_ATTACH => Action::Attach,
        sys::SQLITE_DETACH => Action::Detach,
        sys::SQLITE_TRANSACTION => Action::Transaction,
        sys::SQLITE_SAVEPOINT => Action::Savepoint,
        _ => return sys::SQLITE_OK,
    };
    match (state.policy)(&action) {
        None => sys::SQLITE_OK,
        Some(reason) => {
            if let Ok(mut refused) = state.refused.lock() {
                *refused = Some(Refusal { action, reason });
            }
            sys::SQLITE_DENY
        }
    }
}

/// The authorizer installed on a sqlx connection. It judges statements only while a
/// [`Judging`] guard lives; the rest of the time everything passes (the runner's own
/// `BEGIN`, `COMMIT` and settings).
///
/// Remove it with [`remove`](Self::remove) before the connection goes back to a pool, or say
/// that the connection was closed ([`connection_closed`](Self::connection_closed)); dropped
/// otherwise, its state is leaked, so that the callback SQLite still holds stays valid.
pub(crate) struct Authorizer {
    state: Arc<State>,
    installed: bool,
}

impl Authorizer {
    /// Installs `policy` on `conn`, judging nothing until [`judging`](Self::judging).
    pub async fn install(conn: &mut SqliteConnection, policy: Policy) -> Result<Self, sqlx::Error> {
        let state = Arc::new(State::new(policy, false));
        let mut handle = conn.lock_handle().await?;
        let db = handle.as_raw_handle();
        // SAFETY: `db` is the open connection, which sqlx's worker does not use while the
        // handle is locked; the state outlives the registration (removed in `remove`, or
        // leaked on drop).
        unsafe {
            sys::sqlite3_set_authorizer(
                db.as_ptr(),
                Some(callback),
                Arc::as_ptr(&state).cast_mut().cast(),
            )
        };
        Ok(Authorizer {
            state,
            installed: true,
        })
    }

    /// Judges every statement prepared on the connection until the guard is dropped. Clears
    /// any earlier refusal.
    pub fn judging(&self) -> Judging<'_> {
        self.state.take_refusal();
        self.state.judging.store(true, Ordering::SeqCst);
        Judging(&self.state)
    }

    /// The last refusal, if a statement was refused since judging began.
    pub fn take_refusal(&self) -> Option<Refusal> {
        self.state.take_refusal()
    }

    /// Records the tables that the statements prepared on the connection write, until
    /// [`Recording::finish`]. A statement sqlx runs from its cache is not prepared again, so
    /// clear the connection's statement cache first where that matters.
    pub fn recording(&self) -> Recording<'_> {
        if let Ok(mut written) = self.state.written.lock() {
            *written = Some(BTreeSet::new());
        }
        Recording(&self.state)
    }

    /// The tables that `sql` (one statement) would write, as SQLite prepares it on `conn`,
    /// without running it; judged while prepared, so that no setting takes effect that a script
    /// may not make (SQLite applies some PRAGMAs while it prepares them). Empty when it does not
    /// prepare here (it names a table an earlier statement creates).
    pub async fn tables_written_by(
        &self,
        conn: &mut SqliteConnection,
        sql: &str,
    ) -> Result<BTreeSet<String>, sqlx::Error> {
        let Ok(c_sql) = CString::new(sql) else {
            return Ok(BTreeSet::new());
        };
        let recording = self.recording();
        let judging = self.judging();
        let mut handle = conn.lock_handle().await?;
        let db = handle.as_raw_handle();
        let mut stmt = ptr::null_mut();
        // SAFETY: `db` is the open connection, which sqlx's worker does not use while the
        // handle is locked; NUL-terminated SQL, out-pointer to a local; the statement (if
        // any) is finalized at once, without being stepped.
        unsafe {
            sys::sqlite3_prepare_v2(db.as_ptr(), c_sql.as_ptr(), -1, &mut stmt, ptr::null_mut());
            sys::sqlite3_finalize(stmt);
        }
        drop(handle);
        drop(judging);
        self.state.take_refusal();
        Ok(recording.finish())
    }

    /// Removes the authorizer from `conn` (a pool's connection, which outlives the run).
    pub async fn remove(mut self, conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
        let mut handle = conn.lock_handle().await?;
        let db = handle.as_raw_handle();
        // SAFETY: as in `install`; after this call SQLite no longer holds the state.
        unsafe { sys::sqlite3_set_authorizer(db.as_ptr(), None, ptr::null_mut()) };
        self.installed = false;
        Ok(())
    }

    /// The connection it was installed on is closed: SQLite holds its state no more.
    pub fn connection_closed(mut self) {
        self.installed = false;
    }
}

impl Drop for Authorizer {
    fn drop(&mut self) {
        if self.installed {
            // SQLite may still call the callback: its state must stay valid.
            std::mem::forget(Arc::clone(&self.state));
        }
    }
}

/// While it lives, the tables written by the statements prepared on the connection are
/// recorded.
pub(crate) struct Recording<'a>(&'a State);

impl Recording<'_> {
    /// The tables written (their names in lower case), and the end of the recording.
    pub fn finish(self) -> BTreeSet<String> {
        self.0
            .written
            .lock()
            .ok()
            .and_then(|mut written| written.take())
            .unwrap_or_default()
    }
}

impl Drop for Recording<'_> {
    fn drop(&mut self) {
        if let Ok(mut written) = self.0.written.lock() {
            *written = None;
        }
    }
}

/// While it lives, the connection's statements are judged.
pub(crate) struct Judging<'a>(&'a State);

impl Drop for Judging<'_> {
    fn drop(&mut self) {
        self.0.judging.store(false, Ordering::SeqCst);
    }
}

/// Judges statements by preparing them, never running them, against an empty in-memory
/// database with the authorizer installed.
pub(crate) struct Judge {
    // Dropped first: the connection holds a pointer to the state.
    conn: RawConnection,
    state: Box<State>,
}

impl Judge {
    pub fn new(policy: Policy) -> Result<Self, super::SqliteFailure> {
        let conn = RawConnection::open(std::path::Path::new(":memory:"), OpenMode::Create)?;
        let state = Box::new(State::new(policy, true));
        // SAFETY: the connection is open; the boxed state does not move and outlives it
        // (the connection is dropped first, being the first field).
        unsafe {
            sys::sqlite3_set_authorizer(
                conn.db.as_ptr(),
                Some(callback),
                (&raw const *state).cast_mut().cast(),
            )
        };
        Ok(Judge { conn, state })
    }

    /// What the policy refuses in `sql` (one statement), as SQLite parses it; `None` when
    /// nothing is refused, or when the statement does not prepare against an empty database
    /// for another reason (a table it names does not exist here): it is judged again when it
    /// runs.
    pub fn refusal(&self, sql: &str) -> Option<Refusal> {
        self.state.take_refusal();
        let c_sql = CString::new(sql).ok()?;
        let mut stmt = ptr::null_mut();
        // SAFETY: open connection, NUL-terminated SQL, out-pointer to a local; the statement
        // (if any) is finalized at once, without being stepped.
        let rc = unsafe {
            let rc = sys::sqlite3_prepare_v2(
                self.conn.db.as_ptr(),
                c_sql.as_ptr(),
                -1,
                &mut stmt,
                ptr::null_mut(),
            );
            sys::sqlite3_finalize(stmt);
            rc
        };
        match rc & 0xff {
            sys::SQLITE_AUTH => self.state.take_refusal(),
            _ => None,
        }
    }
}

/// Whether a sqlx error is an authorizer's denial.
pub(crate) fn is_denial(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .and_then(|c| c.parse::<c_int>().ok())
        .is_some_and(|c| c & 0xff == sys::SQLITE_AUTH)
}
