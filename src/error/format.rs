//! How the lists inside error messages are written.

use std::path::PathBuf;

use super::ForeignKeyViolation;

/// The violations, as `table row N -> parent`.
pub(super) fn format_violations(violations: &[ForeignKeyViolation]) -> String {
    violations
        .iter()
        .map(|v| match v.rowid {
            Some(rowid) => format!("{} row {} -> {}", v.table, rowid, v.parent),
            None => format!("{} -> {}", v.table, v.parent),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Versions with why, as `3 (why), 4 (why)`.
pub(super) fn format_versions(versions: &[(i64, String)]) -> String {
    versions
        .iter()
        .map(|(version, why)| format!("{version} ({why})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The backups, each with the version it holds, or `none`.
pub(super) fn format_backups(backups: &[(PathBuf, Option<i64>)]) -> String {
    if backups.is_empty() {
        return "none".to_owned();
    }
    backups
        .iter()
        .map(|(path, version)| {
            let name = path
                .file_name()
                .unwrap_or(path.as_os_str())
                .to_string_lossy();
            match version {
                Some(v) => format!("{name} (version {v})"),
                None => format!("{name} (unreadable)"),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Shorten a statement for an error message: one line, at most 160 characters.
pub(crate) fn shorten(statement: &str) -> String {
    let one_line = statement.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= 160 {
        one_line
    } else {
        let cut: String = one_line.chars().take(157).collect();
        format!("{cut}...")
    }
}
