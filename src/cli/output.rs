//! What the command line writes: a report as text (its `Display`) or JSON on stdout; log events
//! and errors on stderr (under `--json`, JSON lines, the error last, with its `kind`).

use std::fmt::Display;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use serde::Serialize;

use crate::Error;

/// Text for people, or JSON for tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Text,
    Json,
}

impl Format {
    /// Prints a report on stdout.
    pub fn print<T: Serialize + Display + ?Sized>(self, report: &T) {
        match self {
            Format::Text => stdout(format_args!("{report}")),
            Format::Json => json_stdout(report),
        }
    }

    /// Sends log events to stderr: `RUST_LOG` chooses which (warnings by default); under
    /// `--json` they are JSON lines, so that stderr stays machine-readable.
    pub fn init_logs(self) {
        let filter =
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
        let logs = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr);
        // A program that set up its own subscriber keeps it.
        let _ = match self {
            Format::Json => logs.json().try_init(),
            Format::Text => logs.with_ansi(std::io::stderr().is_terminal()).try_init(),
        };
    }

    /// Reports an error on stderr, with what to try on this command line when there is
    /// something to say.
    pub fn error(self, error: &Failure) {
        let (kind, mut message) = error.kind_and_message();
        if let Some(advice) = advice(kind) {
            message = format!("{message} ({advice})");
        }
        match self {
            Format::Json => {
                stderr(format_args!(
                    "{}",
                    serde_json::json!({ "error": message, "kind": kind })
                ));
            }
            Format::Text => stderr(format_args!("error: {message}")),
        }
    }
}

/// What to try on the command line after an error of `kind`: the library's messages name the
/// library's options, not the command line's flags.
fn advice(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "no_backup" => "try `rollback --strategy scripts`, or `restore PATH`",
        "sqlx_history" => "run `import-sqlx` first",
        "unsafe_backup_path" => "another backup directory: --backup-dir DIR",
        "foreign_backup" => "if you are sure it is this database's: `restore --force PATH`",
        "busy" => "to wait longer: --busy-timeout SECONDS",
        "unknown_versions" => "to run on it as it is: --allow-newer",
        _ => return None,
    })
}

/// Writes `text` on stdout. A reader that went away (`status | head -2`) ends the output
/// quietly; any other failure (`> /dev/full`) is said on stderr. Neither is a failure of the
/// command, whose exit code stays what the command did (a committed migration stays reported
/// as committed), and neither panics.
pub(crate) fn stdout(text: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    said(out.write_fmt(text).and_then(|()| out.flush()));
}

/// Writes `report` as JSON on stdout as it is serialized (a fleet's report of thousands of
/// databases is never held as text), with the failures handled as [`stdout`]'s.
fn json_stdout<T: Serialize + ?Sized>(report: &T) {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let written = serde_json::to_writer_pretty(&mut out, report)
        .map_err(std::io::Error::from)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    said(written);
}

/// How a write on stdout ended: a reader that went away is no failure; any other is said on
/// stderr.
fn said(written: std::io::Result<()>) {
    match written {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            stderr(format_args!("cannot write the report on stdout: {e}"));
        }
        _ => {}
    }
}

/// Writes a line on stderr; a failure to write it is ignored (there is nowhere left to say it).
pub(crate) fn stderr(line: std::fmt::Arguments<'_>) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(line).and_then(|()| err.write_all(b"\n"));
}

/// The kinds of the command line's own errors, beside the library's ([`Error::kind`]): the
/// `kind` of `--json` errors, in snake case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub(crate) enum CliKind {
    /// `--database` names no usable file (a directory, a missing one where one must exist).
    DatabasePath,
    /// An argument or variable the command line cannot take (`DATABASE_URL` not `sqlite:`).
    InvalidArgument,
    /// The command line could not start (its runtime).
    Io,
    /// `add` does not know where the program's migrations are (and `--migrations` was not
    /// given).
    MigrationsDir,
    /// `--databases` and `--databases-from` named no database.
    NoDatabases,
    /// `status --check` found the database not clean (pending, drifted, modified or unknown
    /// migrations).
    NotClean,
}

/// An error of the command line itself (not of the library), with its kind for `--json`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub(crate) struct CliError {
    kind: CliKind,
    message: String,
}

impl CliError {
    pub fn new(kind: CliKind, message: String) -> Self {
        CliError { kind, message }
    }
}

/// Why a command failed: the library's error, one the library gave that the command line
/// only holds (the embedded migrations' load error, reported at each command that needs
/// them), or the command line's own.
#[derive(Debug)]
pub(crate) enum Failure {
    Library(Error),
    Reported { kind: &'static str, message: String },
    Cli(CliError),
}

impl Failure {
    fn kind_and_message(&self) -> (&'static str, String) {
        match self {
            Failure::Library(e) => (e.kind(), e.to_string()),
            Failure::Reported { kind, message } => (kind, message.clone()),
            Failure::Cli(e) => (e.kind.into(), e.message.clone()),
        }
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure::Library(error)
    }
}

impl From<CliError> for Failure {
    fn from(error: CliError) -> Self {
        Failure::Cli(error)
    }
}

/// The exit code of a command that ran: 0 when it ended well, else 1.
pub(super) fn exit_code(ok: bool) -> ExitCode {
    match ok {
        true => ExitCode::SUCCESS,
        false => ExitCode::from(1),
    }
}
