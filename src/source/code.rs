//! Code migrations: Rust functions that run inside the run's one transaction, next to the SQL
//! files, with a probe and a rollback like any migration.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use sqlx::SqliteConnection;

pub use crate::error::CodeError;

/// The future a code migration's function returns, borrowing the runner's connection.
pub type CodeFuture<'c> = Pin<Box<dyn Future<Output = Result<(), CodeError>> + Send + 'c>>;

/// A code migration's function as [`code!`](crate::code) wraps a plain `async fn`: it gets the
/// runner's connection, inside the run's transaction.
pub type CodeFn = for<'c> fn(&'c mut SqliteConnection) -> CodeFuture<'c>;

/// A migration written in Rust: a version and a description (sharing the sequence of the
/// files), a revision, an async function, a probe in SQL, and a rollback in SQL or Rust.
///
/// ```no_run
/// use backstop::{CodeMigration, Source};
/// use sqlx::SqliteConnection;
///
/// /// Lower-cases every email, with the application's own rules.
/// async fn lower_emails(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
///     let rows: Vec<(i64, String)> = sqlx::query_as("SELECT id, email FROM users")
///         .fetch_all(&mut *conn)
///         .await?;
///     for (id, email) in rows {
///         sqlx::query("UPDATE users SET email = ?1 WHERE id = ?2")
///             .bind(email.to_lowercase())
///             .bind(id)
///             .execute(&mut *conn)
///             .await?;
///     }
///     Ok(())
/// }
///
/// # fn source() -> Result<Source, backstop::Error> {
/// let source = backstop::embed_migrations!("$CARGO_MANIFEST_DIR/migrations")?.with_code(
///     CodeMigration::new(3, "lower_emails", "r1", backstop::code!(lower_emails))
///         .probe("SELECT NOT EXISTS (SELECT 1 FROM users WHERE email <> lower(email))")
///         .data_probe()
///         .rollback_sql("SELECT 'emails stay lower-cased'"),
/// )?;
/// # Ok(source) }
/// ```
///
/// **Revision.** A code migration has no file to hash: its checksum is its `revision`, a
/// string you change when the function's effect changes. Changing it after the migration was
/// applied is a modification, refused like a changed file.
///
/// **What the function may do.** It runs on the runner's connection, inside the one
/// transaction, after the backup, with foreign keys off and every statement judged by the same
/// rules as a script's (no `BEGIN`, `COMMIT`, `ATTACH`, ...). It must touch nothing but the
/// database: a dry run executes it too, in the transaction that is rolled back, and `verify`
/// runs it on scratch databases. An `Err` it returns, or a panic inside it, fails the run with
/// its version, and the database is exactly as before.
#[derive(Clone)]
pub struct CodeMigration {
    pub(super) version: i64,
    pub(super) description: String,
    pub(super) revision: String,
    pub(super) run: CodeFn,
    pub(super) probe: Option<String>,
    pub(super) rollback: Option<CodeRollback>,
    pub(super) data_probe: bool,
}

/// How a code migration is undone.
#[derive(Clone)]
pub(super) enum CodeRollback {
    Sql(String),
    Code(CodeFn),
}

impl std::fmt::Debug for CodeMigration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeMigration")
            .field("version", &self.version)
            .field("description", &self.description)
            .field("revision", &self.revision)
            .finish_non_exhaustive()
    }
}

impl CodeMigration {
    /// A code migration of `version`, described as a file's name would (`lower_emails`), at
    /// `revision`, running `run` (made with [`code!`](crate::code)). Give it a
    /// [`probe`](Self::probe) and a rollback ([`rollback_sql`](Self::rollback_sql) or
    /// [`rollback_code`](Self::rollback_code)): [`Source::with_code`](crate::Source::with_code)
    /// refuses it without them.
    pub fn new(
        version: i64,
        description: impl Into<String>,
        revision: impl Into<String>,
        run: CodeFn,
    ) -> Self {
        CodeMigration {
            version,
            description: description.into(),
            revision: revision.into(),
            run,
            probe: None,
            rollback: None,
            data_probe: false,
        }
    }

    /// Its probe: one `SELECT` returning 1 when its effect is present, 0 when absent.
    pub fn probe(mut self, sql: impl Into<String>) -> Self {
        self.probe = Some(sql.into());
        self
    }

    /// Says that the probe speaks of data the application keeps writing (a backfill's
    /// condition), not of schema: it decides adoption and confirms the run, but is never read
    /// as drift afterwards, and `verify` does not count it as loose on an empty database. (A
    /// probe file says the same with a `-- probe: when-run` line.)
    pub fn data_probe(mut self) -> Self {
        self.data_probe = true;
        self
    }

    /// Its rollback, in SQL (stored in the history, so that an older build can run it).
    pub fn rollback_sql(mut self, sql: impl Into<String>) -> Self {
        self.rollback = Some(CodeRollback::Sql(sql.into()));
        self
    }

    /// Its rollback, in Rust (made with [`code!`](crate::code)). An older build, which does not
    /// have the function, cannot roll it back by script: it is told to restore a backup.
    pub fn rollback_code(mut self, run: CodeFn) -> Self {
        self.rollback = Some(CodeRollback::Code(run));
        self
    }

    /// What errors name it by: `<code migration 3 (lower_emails)>`, and the part.
    pub(super) fn path(&self, part: &str) -> PathBuf {
        PathBuf::from(format!(
            "<code migration {} ({}){part}>",
            self.version, self.description
        ))
    }
}

/// How a code migration's function ended.
pub(crate) enum Ran {
    Ok,
    Failed(CodeError),
    Panicked(String),
}

/// Runs `run` on `conn`, catching a panic inside it.
pub(crate) async fn call(run: CodeFn, conn: &mut SqliteConnection) -> Ran {
    match (CatchPanic(run(conn))).await {
        Ok(Ok(())) => Ran::Ok,
        Ok(Err(e)) => Ran::Failed(e),
        Err(panic) => Ran::Panicked(
            panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_owned()),
        ),
    }
}

/// A boxed future, polled with panics caught.
struct CatchPanic<'c>(CodeFuture<'c>);

impl Future for CatchPanic<'_> {
    type Output = std::thread::Result<Result<(), CodeError>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let future = &mut self.0;
        match std::panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(done)) => Poll::Ready(Ok(done)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

/// What a migration runs forward, or to roll back: a script, or a function.
#[derive(Clone)]
pub(crate) enum Step {
    Sql(super::Script),
    Code {
        run: CodeFn,
        /// What errors name it by (`<code migration 3 (x)>`).
        path: PathBuf,
    },
}

impl Step {
    /// The script or function, as errors name it.
    pub fn path(&self) -> &std::path::Path {
        match self {
            Step::Sql(script) => script.path(),
            Step::Code { path, .. } => path,
        }
    }

    /// The SQL text; `None` for a function.
    pub fn sql(&self) -> Option<&str> {
        match self {
            Step::Sql(script) => Some(script.text()),
            Step::Code { .. } => None,
        }
    }

    /// The script; `None` for a function.
    pub fn script(&self) -> Option<&super::Script> {
        match self {
            Step::Sql(script) => Some(script),
            Step::Code { .. } => None,
        }
    }
}

impl std::fmt::Debug for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Sql(script) => f.debug_tuple("Sql").field(&script.path()).finish(),
            Step::Code { path, .. } => f.debug_tuple("Code").field(path).finish(),
        }
    }
}

/// A code migration as a [`Migration`](super::Migration) of the source, validated.
pub(super) fn load(code: CodeMigration) -> Result<super::Migration, crate::error::Error> {
    use super::file_name::Kind;
    use super::{Checksum, Migration, Script};
    use crate::error::Error;

    let invalid = |reason: &str| Error::InvalidFileName {
        path: code.path(""),
        reason: format!(
            "{reason} (a code migration has a positive version and a description made of \
             letters, digits, '_' and '-', as a file's name)"
        ),
    };
    if code.version <= 0 {
        return Err(invalid("the version must be positive"));
    }
    let description_ok = !code.description.is_empty()
        && code
            .description
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !description_ok {
        return Err(invalid(
            "the description is not letters, digits, '_' and '-'",
        ));
    }
    let missing = |part: &str| Error::MissingFile {
        version: code.version,
        expected: code.path(part),
    };
    let probe_sql = code.probe.clone().ok_or_else(|| missing(" probe"))?;
    let probe = Script::new(code.path(" probe"), probe_sql, Kind::Probe)?;
    let rollback = match code.rollback.clone().ok_or_else(|| missing(" rollback"))? {
        CodeRollback::Sql(sql) => {
            Step::Sql(Script::new(code.path(" rollback"), sql, Kind::Rollback)?)
        }
        CodeRollback::Code(run) => Step::Code {
            run,
            path: code.path(" rollback"),
        },
    };
    Ok(Migration {
        version: code.version,
        checksum: Checksum::of(&format!(
            "backstop code migration, revision {}",
            code.revision
        )),
        sqlx_checksum: Vec::new(),
        forward: Step::Code {
            run: code.run,
            path: code.path(""),
        },
        rollback,
        data_probe: code.data_probe || super::rules::is_data_probe(probe.text()),
        probe,
        description: code.description,
    })
}
