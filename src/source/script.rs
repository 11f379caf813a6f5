//! A script of a migration: its text, split into statements and validated.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::file_name::Kind;
use super::rules;
use crate::error::{Error, shorten};
use crate::ffi::Judge;
use crate::source::sql::{self, Statement};

thread_local! {
    /// Judges each statement by preparing it against an empty in-memory database (one per
    /// thread that loads scripts).
    static JUDGE: Judge = Judge::new(rules::judge)
        .expect("SQLite opens an empty in-memory database");
}

/// Which stored script [`Script::from_history`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoredKind {
    Rollback,
    Probe,
}

/// A validated script: its file, its text and its statements.
#[derive(Debug, Clone)]
pub(crate) struct Script {
    path: PathBuf,
    text: Arc<str>,
    statements: Arc<[Statement]>,
}

/// The file's text, without a leading byte-order mark (which SQLite would not parse).
pub(super) fn decode(path: &Path, bytes: Vec<u8>) -> Result<String, Error> {
    let mut text = String::from_utf8(bytes).map_err(|e| Error::InvalidUtf8 {
        path: path.to_owned(),
        offset: e.utf8_error().valid_up_to(),
    })?;
    if text.starts_with('\u{feff}') {
        text.drain(..'\u{feff}'.len_utf8());
    }
    Ok(text)
}

impl Script {
    pub(super) fn new(path: PathBuf, text: String, kind: Kind) -> Result<Self, Error> {
        let invalid = |line, statement: &str, reason: &str| Error::InvalidScript {
            path: path.clone(),
            line,
            statement: shorten(statement),
            reason: reason.to_owned(),
        };
        let statements = sql::split(&text).map_err(|e| invalid(e.line, &e.statement, e.reason))?;
        if statements.is_empty() {
            let expected = match kind {
                Kind::Forward => "write the migration's SQL",
                Kind::Rollback => {
                    "write the SQL that undoes the forward script exactly (a DROP TABLE for its \
                     CREATE TABLE, an ALTER TABLE ... DROP COLUMN for its ADD COLUMN, the old \
                     values back for an UPDATE); after it runs, the probe must say 0"
                }
                Kind::Probe => {
                    "write one SELECT that returns 1 when the migration's effect is present and 0 \
                     when it is absent"
                }
            };
            return Err(Error::EmptyScript { path, expected });
        }
        if let Some(line) = rules::no_transaction_marker(&text) {
            let marker = text.lines().nth(line - 1).unwrap_or_default();
            return Err(invalid(line, marker, rules::NO_TRANSACTION));
        }
        let refused = JUDGE.with(|judge| {
            statements
                .iter()
                .find_map(|s| rules::refusal(s, judge).map(|reason| (s, reason)))
        });
        if let Some((statement, reason)) = refused {
            return Err(invalid(statement.line(), statement.sql(), &reason));
        }
        if kind == Kind::Probe {
            if statements.len() != 1 {
                let second = &statements[1];
                return Err(invalid(
                    second.line(),
                    second.sql(),
                    "a probe must be exactly one SELECT statement",
                ));
            }
            let only = &statements[0];
            if !matches!(only.keyword(), "SELECT" | "WITH" | "VALUES") {
                return Err(invalid(
                    only.line(),
                    only.sql(),
                    "a probe must be a read-only SELECT",
                ));
            }
        }
        Ok(Script {
            path,
            text: text.into(),
            statements: statements.into(),
        })
    }
}

impl Script {
    /// A rollback script or probe as the history stored it for `version`, validated like a
    /// file's (its "path" says where it came from).
    pub(crate) fn from_history(version: i64, kind: StoredKind, text: &str) -> Result<Self, Error> {
        let (name, kind) = match kind {
            StoredKind::Rollback => ("rollback script", Kind::Rollback),
            StoredKind::Probe => ("probe", Kind::Probe),
        };
        let path = PathBuf::from(format!(
            "<the {name} of migration {version}, stored in the history>"
        ));
        Script::new(path, text.to_owned(), kind)
    }

    /// The file (for embedded sources, its path inside the embedded directory).
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn statements(&self) -> &[Statement] {
        &self.statements
    }
}
