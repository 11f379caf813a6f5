//! What the command line writes: a report as text (its `Display`) or JSON on stdout; log events
//! and errors on stderr (under `--json`, JSON lines, the error last, with its `kind`).

use std::fmt::Display;
use std::io::{IsTerminal, Write};

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
            Format::Json => match serde_json::to_string_pretty(report) {
                Ok(json) => stdout(format_args!("{json}\n")),
                Err(e) => stderr(format_args!("cannot write the report as JSON: {e}")),
            },
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

    /// Reports an error on stderr.
    pub fn error(self, error: &Failure) {
        let (kind, message) = error.kind_and_message();
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

/// Writes `text` on stdout. A reader that went away (`status | head -2`) ends the output
/// quietly; any other failure (`> /dev/full`) is said on stderr. Neither is a failure of the
/// command, whose exit code stays what the command did (a committed migration stays reported
/// as committed), and neither panics.
pub(crate) fn stdout(text: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let written = out.write_fmt(text).and_then(|()| out.flush());
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

/// An error of the command line itself (not of the library), with its kind for `--json`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub(crate) struct CliError {
    kind: &'static str,
    message: String,
}

impl CliError {
    pub fn new(kind: &'static str, message: String) -> Self {
        CliError { kind, message }
    }
}

/// Why a command failed: the library's error or the command line's own.
#[derive(Debug)]
pub(crate) enum Failure {
    Library(Error),
    Cli(CliError),
}

impl Failure {
    fn kind_and_message(&self) -> (&'static str, String) {
        match self {
            Failure::Library(e) => (e.kind(), e.to_string()),
            Failure::Cli(e) => (e.kind, e.message.clone()),
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
