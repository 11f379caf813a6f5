//! What a migration script may not contain: anything that would escape the runner's one
//! transaction, or silently do nothing inside it.

use crate::sql::Statement;

/// PRAGMAs refused in scripts: each does nothing inside a transaction (or cannot change there),
/// or changes how the runner's own connection behaves. What to do instead is in the README.
const REFUSED_PRAGMAS: &[(&str, &str)] = &[
    (
        "journal_mode",
        "the journal mode cannot change inside a transaction; set it where the application opens the database",
    ),
    (
        "foreign_keys",
        "foreign_keys does nothing inside a transaction; the runner turns foreign keys off for the run and checks them before committing",
    ),
    (
        "locking_mode",
        "the locking mode belongs to a connection, not to the database; set it where the application opens the database",
    ),
    (
        "page_size",
        "the page size cannot change inside a transaction (only a VACUUM outside one applies it)",
    ),
    (
        "auto_vacuum",
        "auto_vacuum cannot change inside a transaction (only a VACUUM outside one applies it)",
    ),
    (
        "synchronous",
        "synchronous belongs to a connection and cannot change inside a transaction; set it where the application opens the database",
    ),
    (
        "query_only",
        "query_only would forbid the runner's own writes; a migration writes",
    ),
    (
        "busy_timeout",
        "busy_timeout belongs to the runner's connection; set it with Migrator::busy_timeout or --busy-timeout",
    ),
    (
        "wal_checkpoint",
        "a checkpoint cannot run inside the runner's transaction",
    ),
    (
        "encoding",
        "the encoding of an existing database cannot change",
    ),
];

/// Why `statement` may not be part of a migration script, if it may not.
pub(crate) fn refusal(statement: &Statement) -> Option<String> {
    match statement.keyword() {
        "BEGIN" | "COMMIT" | "END" | "ROLLBACK" | "SAVEPOINT" | "RELEASE" => Some(
            "a script may not control the transaction (the runner runs every migration inside \
             its own transaction)"
                .to_owned(),
        ),
        "VACUUM" => Some("VACUUM cannot run inside the runner's transaction".to_owned()),
        "ATTACH" | "DETACH" => Some(
            "a script may not attach other databases: their changes would commit with the \
             migration, but no backup covers them and no rollback undoes them"
                .to_owned(),
        ),
        "PRAGMA" => {
            let name = pragma_name(statement.sql())?;
            REFUSED_PRAGMAS
                .iter()
                .find(|(refused, _)| *refused == name)
                .map(|(_, why)| format!("PRAGMA {name} is refused: {why}"))
        }
        _ => None,
    }
}

/// The line of sqlx's `-- no-transaction` marker, if the script starts with it.
pub(crate) fn no_transaction_marker(text: &str) -> Option<usize> {
    let first = text
        .lines()
        .enumerate()
        .find(|(_, l)| !l.trim().is_empty())?;
    let words: Vec<&str> = first.1.split_whitespace().collect();
    (words.first() == Some(&"--") && words.get(1) == Some(&"no-transaction")
        || words.first() == Some(&"--no-transaction"))
    .then_some(first.0 + 1)
}

/// Why sqlx's marker is refused.
pub(crate) const NO_TRANSACTION: &str = "sqlx's `-- no-transaction` marker is refused: backstop \
    runs every pending migration in one transaction, so that a failure leaves the database \
    exactly as it was; what cannot run in a transaction (VACUUM, PRAGMA journal_mode, ...) \
    does not belong in a migration: run it outside backstop";

/// The lower-cased name of a `PRAGMA [schema.]name ...` statement.
fn pragma_name(sql: &str) -> Option<String> {
    let rest = sql.get("PRAGMA".len()..)?.trim_start();
    let ident = |s: &str| -> (String, usize) {
        let bytes = s.as_bytes();
        match bytes.first() {
            Some(&q @ (b'"' | b'`' | b'[')) => {
                let close = if q == b'[' { b']' } else { q };
                let end = bytes[1..]
                    .iter()
                    .position(|&b| b == close)
                    .map_or(s.len(), |i| i + 1);
                (s[1..end].to_owned(), (end + 1).min(s.len()))
            }
            _ => {
                let end = s
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(s.len());
                (s[..end].to_owned(), end)
            }
        }
    };
    let (first, used) = ident(rest);
    let after = rest[used..].trim_start();
    let name = match after.strip_prefix('.') {
        Some(more) => ident(more.trim_start()).0,
        None => first,
    };
    (!name.is_empty()).then(|| name.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pragma_names_with_schemas_quotes_and_values() {
        for (sql, name) in [
            ("PRAGMA journal_mode = WAL;", "journal_mode"),
            ("pragma  main.journal_mode=wal", "journal_mode"),
            ("PRAGMA \"foreign_keys\" = ON", "foreign_keys"),
            ("PRAGMA main . [page_size] (8192)", "page_size"),
            ("PRAGMA user_version = 7;", "user_version"),
        ] {
            assert_eq!(pragma_name(sql).as_deref(), Some(name), "{sql}");
        }
    }

    #[test]
    fn the_marker_is_the_first_line_that_is_not_blank() {
        assert_eq!(no_transaction_marker("-- no-transaction\nVACUUM;"), Some(1));
        assert_eq!(no_transaction_marker("\n\n  --  no-transaction\n"), Some(3));
        assert_eq!(
            no_transaction_marker("CREATE TABLE t (x);\n-- no-transaction\n"),
            None
        );
        assert_eq!(no_transaction_marker("-- no transaction here\n"), None);
    }
}
