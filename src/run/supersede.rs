//! Effects that later migrations remove. In long-lived projects a table created by one migration
//! is dropped years later by another, and the first one's probe then says 0: not drift, but
//! history. A run records it: the applied migrations whose probe said 1 before the run (or
//! right after they ran in it) and says 0 at its end were superseded by a migration of the run,
//! and `status` shows them so (`superseded_by`) instead of as drift.
//!
//! Which migration of the run removed the effect is the first one after it whose SQL removes
//! something its probe looks at (drops, renames or alters a table, column, index, trigger or
//! view it names, or deletes or updates rows of a table it names); failing that, the first one
//! whose SQL names such a thing; failing that, the first one that ran after it.

use std::collections::BTreeSet;
use std::path::Path;

use crate::connection::{Guarded, OnDatabase};
use crate::error::Error;
use crate::history::{self, History};
use crate::run::probe::probe_many_read_only;
use crate::source::{Migration, Script, Source};

/// The applied migrations (known to `source`, not already superseded) whose effect is present
/// now: those a run may supersede.
pub(crate) async fn present(
    on: &mut Guarded<'_>,
    source: &Source,
    history: &History,
    database: &Path,
) -> Result<Vec<i64>, Error> {
    let candidates: Vec<&Migration> = history
        .records()
        .iter()
        .filter(|r| r.superseded_by.is_none())
        .filter_map(|r| source.get(r.version))
        .collect();
    let answers = probe_many_read_only(on, &candidates)
        .await
        .on(database, "probing the applied migrations")?;
    Ok(candidates
        .iter()
        .zip(answers)
        .filter(|(_, answer)| matches!(answer, Ok(1)))
        .map(|(m, _)| m.version())
        .collect())
}

/// At the end of a run: records which of `candidates` (present before or during the run) the
/// migrations that `ran` superseded. Returns `(superseded, by)` pairs. An import is a run in
/// which sqlx ran them: its candidates and `ran` are both the imported migrations.
pub(crate) async fn record(
    on: &mut Guarded<'_>,
    source: &Source,
    candidates: &[i64],
    ran: &[&Migration],
    database: &Path,
) -> Result<Vec<(i64, i64)>, Error> {
    if ran.is_empty() {
        return Ok(Vec::new());
    }
    let candidates: Vec<&Migration> = candidates.iter().filter_map(|v| source.get(*v)).collect();
    let answers = probe_many_read_only(on, &candidates)
        .await
        .on(database, "probing the applied migrations")?;
    let mut superseded = Vec::new();
    for (migration, answer) in candidates.iter().zip(answers) {
        if !matches!(answer, Ok(0)) {
            continue;
        }
        let Some(by) = attribute(migration, ran) else {
            continue;
        };
        history::set_superseded(on.conn, migration.version(), by)
            .await
            .on(database, "recording a superseded migration")?;
        tracing::info!(
            version = migration.version(),
            by,
            "its effect was removed by a later migration"
        );
        superseded.push((migration.version(), by));
    }
    Ok(superseded)
}

/// The migration of `ran` (in version order) that removed `gone`'s effect: the first one after
/// it whose SQL removes something its probe looks at, else the first one whose SQL names such
/// a thing, else the first one after it.
fn attribute(gone: &Migration, ran: &[&Migration]) -> Option<i64> {
    let names = names_in(gone.probe_sql());
    let after: Vec<&&Migration> = ran
        .iter()
        .filter(|m| m.version() > gone.version())
        .collect();
    after
        .iter()
        .find(|m| !names.is_disjoint(&removed_in(m)))
        .or_else(|| {
            after
                .iter()
                .find(|m| !names.is_disjoint(&names_in(m.sql())))
        })
        .or(after.first())
        .map(|m| m.version())
}

/// The lower-cased names of what a migration's statements remove or change: the object of a
/// `DROP`; the table (and the column) of an `ALTER TABLE`, but one that only adds a column;
/// the table of a `DELETE` or an `UPDATE`.
fn removed_in(migration: &Migration) -> BTreeSet<String> {
    let mut removed = BTreeSet::new();
    let statements = migration.forward().script().map(Script::statements);
    for statement in statements.unwrap_or_default() {
        let words = words_of(statement.sql());
        let word = |i: usize| words.get(i).map(String::as_str).unwrap_or("");
        // `[schema .] name` at `i`: the name, and where the next word is.
        let name_at = |i: usize| match word(i + 1) {
            "." => (word(i + 2).to_owned(), i + 3),
            _ => (word(i).to_owned(), i + 1),
        };
        match (word(0), word(1)) {
            ("drop", "table" | "index" | "view" | "trigger") => {
                let at = if (word(2), word(3)) == ("if", "exists") {
                    4
                } else {
                    2
                };
                removed.insert(name_at(at).0);
            }
            ("alter", "table") => {
                let (table, next) = name_at(2);
                if word(next) != "add" {
                    removed.insert(table);
                    let column = if word(next + 1) == "column" {
                        next + 2
                    } else {
                        next + 1
                    };
                    removed.insert(word(column).to_owned());
                }
            }
            ("delete", "from") => {
                removed.insert(name_at(2).0);
            }
            ("update", _) => {
                let at = if word(1) == "or" { 3 } else { 1 };
                removed.insert(name_at(at).0);
            }
            _ => {}
        }
    }
    removed.remove("");
    removed
}

/// The words of a statement, lower-cased: identifiers (quoted ones unquoted) and `.`; string
/// literals and other punctuation are left out.
fn words_of(sql: &str) -> Vec<String> {
    let (mut words, mut word) = (Vec::new(), String::new());
    let mut quote: Option<char> = None;
    let flush = |word: &mut String, words: &mut Vec<String>| {
        if !word.is_empty() {
            words.push(word.to_ascii_lowercase());
            word.clear();
        }
    };
    for c in sql.chars() {
        match quote {
            Some(q) if c == q => {
                if q != '\'' {
                    flush(&mut word, &mut words);
                }
                word.clear();
                quote = None;
            }
            Some(_) => word.push(c),
            None if matches!(c, '\'' | '"' | '`' | '[') => {
                flush(&mut word, &mut words);
                quote = Some(if c == '[' { ']' } else { c });
            }
            None if c.is_ascii_alphanumeric() || c == '_' => word.push(c),
            None => {
                flush(&mut word, &mut words);
                if c == '.' {
                    words.push(".".to_owned());
                }
            }
        }
    }
    flush(&mut word, &mut words);
    words
}

/// Words that name nothing of a schema in a probe.
const NOT_NAMES: &[&str] = &[
    "select",
    "from",
    "where",
    "and",
    "or",
    "not",
    "exists",
    "count",
    "case",
    "when",
    "then",
    "else",
    "end",
    "as",
    "in",
    "is",
    "null",
    "like",
    "limit",
    "name",
    "type",
    "table",
    "index",
    "trigger",
    "view",
    "sqlite_master",
    "sqlite_schema",
    "pragma_table_info",
    "pragma_index_list",
    "pragma_table_xinfo",
    "pragma_user_version",
    "user_version",
    "sql",
    "tbl_name",
    "with",
    "values",
    "distinct",
    "group",
    "by",
    "order",
    "having",
    "coalesce",
    "lower",
    "upper",
    "length",
    "ifnull",
    "nullif",
    "max",
    "min",
    "sum",
    "total",
    "one",
];

/// The lower-cased identifiers and string literals of a script, but SQL's own words.
fn names_in(sql: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut flush = |word: &mut String| {
        let w = word.to_ascii_lowercase();
        if !w.is_empty()
            && !w.chars().all(|c| c.is_ascii_digit())
            && !NOT_NAMES.contains(&w.as_str())
        {
            names.insert(w);
        }
        word.clear();
    };
    for c in sql.chars() {
        match quote {
            Some(q) if c == q => {
                flush(&mut word);
                quote = None;
            }
            Some(_) => word.push(c),
            None if matches!(c, '\'' | '"' | '`') => {
                flush(&mut word);
                quote = Some(c);
            }
            None if c == '[' => {
                flush(&mut word);
                quote = Some(']');
            }
            None if c.is_ascii_alphanumeric() || c == '_' => word.push(c),
            None => flush(&mut word),
        }
    }
    flush(&mut word);
    names
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn source(migrations: &[(i64, &str, &str)]) -> Source {
        let mut files = Vec::new();
        for (v, forward, probe) in migrations {
            let stem = format!("m/{v:03}_m{v}");
            files.push((
                PathBuf::from(format!("{stem}.sql")),
                forward.as_bytes().to_vec(),
            ));
            files.push((
                PathBuf::from(format!("{stem}.rollback.sql")),
                b"SELECT 1;".to_vec(),
            ));
            files.push((
                PathBuf::from(format!("{stem}.probe.sql")),
                probe.as_bytes().to_vec(),
            ));
        }
        Source::from_files(files).unwrap()
    }

    #[test]
    fn names_are_identifiers_and_literals_but_sql_words() {
        let names = names_in(
            "SELECT count(*) FROM pragma_table_info('people') WHERE name = 'email' AND \"Tag\" > 1",
        );
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        assert_eq!(names, ["email", "people", "tag"]);
    }

    #[test]
    fn the_remover_is_the_first_later_migration_that_names_what_the_probe_looks_at() {
        let s = source(&[
            (
                1,
                "CREATE TABLE tags (x);",
                "SELECT count(*) FROM sqlite_master WHERE name = 'tags';",
            ),
            (
                2,
                "CREATE TABLE notes (x);",
                "SELECT count(*) FROM sqlite_master WHERE name = 'notes';",
            ),
            (
                3,
                "CREATE INDEX n ON notes (x);",
                "SELECT count(*) FROM sqlite_master WHERE name = 'n';",
            ),
            (
                4,
                "ALTER TABLE tags RENAME TO labels;",
                "SELECT count(*) FROM sqlite_master WHERE name = 'labels';",
            ),
        ]);
        let ran: Vec<&Migration> = s.migrations().iter().skip(1).collect();
        assert_eq!(attribute(s.get(1).unwrap(), &ran), Some(4));
        // One that only adds to a table the probe names is passed over for the one that drops
        // the other (before: the first that named anything the probe looks at).
        let dropped = source(&[
            (
                1,
                "CREATE TABLE items (x);\nCREATE TABLE notes (x);",
                "SELECT count(*) = 2 FROM sqlite_master WHERE name IN ('items', 'notes');",
            ),
            (
                2,
                "ALTER TABLE items ADD COLUMN price INTEGER;",
                "SELECT count(*) FROM pragma_table_info('items') WHERE name = 'price';",
            ),
            (
                3,
                "DROP TABLE IF EXISTS main.\"notes\";",
                "SELECT count(*) = 0 FROM sqlite_master WHERE name = 'notes';",
            ),
        ]);
        let later: Vec<&Migration> = dropped.migrations().iter().skip(1).collect();
        assert_eq!(attribute(dropped.get(1).unwrap(), &later), Some(3));
        // Nothing names it: the first migration that ran after it.
        let ran: Vec<&Migration> = vec![s.get(3).unwrap()];
        assert_eq!(attribute(s.get(1).unwrap(), &ran), Some(3));
        assert_eq!(attribute(s.get(4).unwrap(), &ran), None);
    }
}
