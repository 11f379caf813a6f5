//! What a migration script may not contain: anything that would escape the runner's one
//! transaction, or silently do nothing inside it.

use crate::ffi::{Action, Judge};
use crate::source::sql::Statement;

/// Why some PRAGMAs are refused: each does nothing inside a transaction (or cannot change
/// there), or changes how the runner's own connection behaves. What to do instead is in the
/// README. Their queries (no value) are allowed.
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
        "busy_timeout belongs to the runner's connection; set the migrator's busy timeout instead",
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

/// PRAGMAs that are safe inside the runner's transaction, with or without a value: the two
/// numbers a database keeps for its application (they change in the transaction like any
/// other write), and read-only introspection.
const ALLOWED_PRAGMAS: &[&str] = &[
    "user_version",
    "application_id",
    "table_info",
    "table_xinfo",
    "table_list",
    "index_list",
    "index_info",
    "index_xinfo",
    "foreign_key_list",
    "foreign_key_check",
    "integrity_check",
    "quick_check",
    "collation_list",
    "function_list",
    "module_list",
    "pragma_list",
    "compile_options",
    "database_list",
    "data_version",
    "page_count",
    "freelist_count",
    "defer_foreign_keys",
];

/// PRAGMAs whose query (without a value) only reads a setting; setting them is refused.
const READABLE_PRAGMAS: &[&str] = &[
    "journal_mode",
    "foreign_keys",
    "locking_mode",
    "page_size",
    "auto_vacuum",
    "synchronous",
    "query_only",
    "busy_timeout",
    "encoding",
    "schema_version",
    "cache_size",
    "max_page_count",
    "secure_delete",
    "temp_store",
    "recursive_triggers",
    "legacy_alter_table",
    "cell_size_check",
    "automatic_index",
    "journal_size_limit",
    "wal_autocheckpoint",
];

/// Why a script may not take `action` (as SQLite parsed the statement), if it may not: the
/// policy of the authorizer that judges scripts when they load and when they run.
pub(crate) fn judge(action: &Action) -> Option<String> {
    match action {
        Action::Transaction | Action::Savepoint => Some(
            "a script may not control the transaction (the runner runs every migration inside \
             its own transaction)"
                .to_owned(),
        ),
        Action::Attach | Action::Detach => Some(
            "a script may not attach other databases: their changes would commit with the \
             migration, but no backup covers them and no rollback undoes them"
                .to_owned(),
        ),
        Action::Pragma { name, value, .. } => {
            let name = name.to_ascii_lowercase();
            let listed = |list: &[&str]| list.contains(&name.as_str());
            if listed(ALLOWED_PRAGMAS) || (value.is_none() && listed(READABLE_PRAGMAS)) {
                return None;
            }
            let why = REFUSED_PRAGMAS
                .iter()
                .find(|(refused, _)| *refused == name)
                .map_or(
                    "only PRAGMAs that are safe inside the runner's transaction may run in a \
                     script: user_version, application_id, and those that only read (table_info, \
                     index_list, foreign_key_list, ...)",
                    |(_, why)| why,
                );
            Some(format!("PRAGMA {name} is refused: {why}"))
        }
    }
}

/// Why `statement` may not be part of a migration script, if it may not: what SQLite's parser
/// finds in it ([`judge`], through `judge`'s authorizer), and `VACUUM`, which cannot run in a
/// transaction.
pub(crate) fn refusal(statement: &Statement, judge: &Judge) -> Option<String> {
    if statement.keyword() == "VACUUM" {
        return Some("VACUUM cannot run inside the runner's transaction".to_owned());
    }
    judge.refusal(statement.sql()).map(|refusal| refusal.reason)
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

/// Whether a probe says that it speaks of data the application keeps writing: a line
/// `-- probe: when-run` (its effect is checked when the migration runs, never read as drift).
pub(super) fn is_data_probe(probe: &str) -> bool {
    probe
        .lines()
        .any(|line| line.trim().eq_ignore_ascii_case("-- probe: when-run"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every spelling of a refused statement is refused, whatever its comments, quotes,
    /// schema prefix or case: SQLite parses it, not us.
    #[test]
    fn sqlite_parses_every_spelling() {
        let judge = Judge::new(super::judge).unwrap();
        for (sql, says) in [
            (
                "PRAGMA/**/journal_mode = OFF",
                "PRAGMA journal_mode is refused",
            ),
            (
                "PRAGMA -- c\n journal_mode = OFF",
                "PRAGMA journal_mode is refused",
            ),
            (
                "PRAGMA 'journal_mode' = OFF",
                "PRAGMA journal_mode is refused",
            ),
            (
                "PRAGMA main./**/journal_mode = OFF",
                "PRAGMA journal_mode is refused",
            ),
            (
                "pragma MAIN.Journal_Mode=off",
                "PRAGMA journal_mode is refused",
            ),
            (
                "PRAGMA 'locking_mode' = EXCLUSIVE",
                "PRAGMA locking_mode is refused",
            ),
            (
                "PRAGMA \"foreign_keys\" = 0",
                "PRAGMA foreign_keys is refused",
            ),
            (
                "PRAGMA main . [page_size] (8192)",
                "PRAGMA page_size is refused",
            ),
            (
                "PRAGMA `synchronous` = OFF",
                "PRAGMA synchronous is refused",
            ),
            ("PRAGMA wal_checkpoint", "PRAGMA wal_checkpoint is refused"),
            ("PRAGMA optimize", "PRAGMA optimize is refused"),
            (
                "PRAGMA writable_schema = ON",
                "PRAGMA writable_schema is refused",
            ),
            (
                "EXPLAIN PRAGMA journal_mode = OFF",
                "PRAGMA journal_mode is refused",
            ),
            ("ATTACH 'x.db' AS x", "may not attach"),
            ("/* c */ attach database 'x.db' as \"y\"", "may not attach"),
            ("DETACH x", "may not attach"),
            ("BEGIN", "may not control the transaction"),
            ("-- c\nbegin immediate", "may not control the transaction"),
            ("COMMIT", "may not control the transaction"),
            ("END TRANSACTION", "may not control the transaction"),
            ("ROLLBACK", "may not control the transaction"),
            ("SAVEPOINT a", "may not control the transaction"),
            ("RELEASE a", "may not control the transaction"),
            ("ROLLBACK TO a", "may not control the transaction"),
        ] {
            let refusal = judge.refusal(sql);
            let reason = refusal.map(|r| r.reason).unwrap_or_default();
            assert!(reason.contains(says), "{sql}: {reason:?}");
        }
        for sql in [
            "PRAGMA user_version = 7",
            "PRAGMA main.application_id = 1",
            "PRAGMA table_info(t)",
            "PRAGMA journal_mode",
            "PRAGMA main.foreign_keys",
            "PRAGMA defer_foreign_keys = ON",
            "CREATE TABLE t (x)",
            "INSERT INTO nowhere VALUES (1)",
            "SELECT * FROM pragma_table_info('t')",
            "SELECT 'PRAGMA journal_mode = OFF'",
        ] {
            assert_eq!(judge.refusal(sql), None, "{sql}");
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
