//! Splitting a script into statements, the way the `sqlite3` shell does it.
//!
//! A statement ends at a `;` for which SQLite's own `sqlite3_complete()` says the text so far is
//! complete; so semicolons inside strings, comments and trigger bodies never split a statement.
//! No database is needed, and nothing here executes SQL.

use crate::ffi::is_complete;

/// One statement of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Statement {
    sql: String,
    line: usize,
    keyword: String,
}

impl Statement {
    /// The statement's text, from its first token to its `;` (included when present).
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// Line (1-based) of the statement's first token.
    pub fn line(&self) -> usize {
        self.line
    }

    /// The first keyword, upper-cased (`SELECT`, `CREATE`, ...).
    pub fn keyword(&self) -> &str {
        &self.keyword
    }
}

/// Why a script could not be split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SplitError {
    pub line: usize,
    pub statement: String,
    pub reason: &'static str,
}

/// Splits `script` into statements, skipping empty ones (whitespace, comments, lone `;`), in
/// time linear in its size (but for the `;` inside one statement, each of which re-tests that
/// statement).
pub(crate) fn split(script: &str) -> Result<Vec<Statement>, SplitError> {
    let mut statements = Vec::new();
    let mut lines = Lines::new(script);
    let mut start = 0;
    for (pos, _) in script.match_indices(';') {
        let candidate = &script[start..=pos];
        if is_complete(candidate) {
            push_statement(&mut statements, &mut lines, start, pos + 1);
            start = pos + 1;
        }
    }
    let rest = &script[start..];
    if let Some(offset) = first_token(rest) {
        let statement_start = start + offset;
        let line = lines.at(statement_start);
        let text = rest[offset..].trim_end();
        if text.contains('\0') {
            return Err(SplitError {
                line,
                statement: text.to_owned(),
                reason: "the script contains a NUL byte",
            });
        }
        // A last statement without `;` is fine, but it must be complete once terminated.
        if !is_complete(&format!("{text}\n;")) {
            return Err(SplitError {
                line,
                statement: text.to_owned(),
                reason: "unterminated statement (an open string, comment or trigger body)",
            });
        }
        push_statement(&mut statements, &mut lines, start, script.len());
    }
    Ok(statements)
}

/// Line numbers of byte offsets asked for in increasing order, counted once.
struct Lines<'a> {
    script: &'a str,
    offset: usize,
    line: usize,
}

impl<'a> Lines<'a> {
    fn new(script: &'a str) -> Self {
        Lines {
            script,
            offset: 0,
            line: 1,
        }
    }

    /// The line (1-based) of `offset`, which is not below any offset asked for before.
    fn at(&mut self, offset: usize) -> usize {
        debug_assert!(offset >= self.offset);
        self.line += self.script.as_bytes()[self.offset..offset]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        self.offset = offset;
        self.line
    }
}

fn push_statement(statements: &mut Vec<Statement>, lines: &mut Lines<'_>, from: usize, to: usize) {
    let chunk = &lines.script[from..to];
    let Some(offset) = first_token(chunk) else {
        return;
    };
    let text = chunk[offset..].trim_end();
    if text == ";" {
        return;
    }
    let keyword: String = text
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_uppercase();
    statements.push(Statement {
        sql: text.to_owned(),
        line: lines.at(from + offset),
        keyword,
    });
}

/// Byte offset of the first character that is neither whitespace nor inside a comment.
fn first_token(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b if b.is_ascii_whitespace() => i += 1,
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = text[i..].find('\n').map_or(bytes.len(), |n| i + n + 1);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = text[i + 2..]
                    .find("*/")
                    .map_or(bytes.len(), |n| i + 2 + n + 2);
            }
            _ => return Some(i),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keywords(script: &str) -> Vec<(String, usize)> {
        split(script)
            .unwrap()
            .into_iter()
            .map(|s| (s.keyword, s.line))
            .collect()
    }

    #[test]
    fn splits_on_semicolons_outside_strings_comments_and_triggers() {
        let script = "-- leading comment; not a statement\n\
            CREATE TABLE t(x TEXT DEFAULT ';');\n\
            /* a; b */ INSERT INTO t VALUES ('a;b'); ;;\n\
            CREATE TRIGGER tr AFTER INSERT ON t BEGIN\n  UPDATE t SET x = 'y';\n  DELETE FROM t WHERE 0;\nEND;\n\
            SELECT 1";
        assert_eq!(
            keywords(script),
            vec![
                ("CREATE".into(), 2),
                ("INSERT".into(), 3),
                ("CREATE".into(), 4),
                ("SELECT".into(), 8)
            ]
        );
        let statements = split(script).unwrap();
        assert!(statements[2].sql.ends_with("END;"));
        assert_eq!(statements[3].sql, "SELECT 1");
    }

    #[test]
    fn empty_scripts_have_no_statements() {
        assert!(split("").unwrap().is_empty());
        assert!(split("  -- nothing\n /* at all */ ;\n").unwrap().is_empty());
    }

    #[test]
    fn unterminated_statements_are_refused_with_their_line() {
        let err = split("SELECT 1;\nSELECT 'open").unwrap_err();
        assert_eq!(err.line, 2);
        let err = split("CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1;").unwrap_err();
        assert_eq!(err.line, 1);
    }
}
