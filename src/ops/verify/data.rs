//! What a migration does to the data and to the version still running, measured on the
//! scratch database by comparing the tables before and after it ran: rows and columns lost,
//! tables gone, and schema changes that make the previous build's queries or inserts fail.

use std::collections::BTreeSet;

use serde::Serialize;

use super::snapshot::{Shape, Snapshot};
use super::{MigrationCheck, VerifyProblemKind};

/// What one migration did to one table whose rows or columns changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TableChange {
    /// The table, as it was named before the migration.
    pub table: String,
    /// Its name after the migration, when it was renamed (or rebuilt under another name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renamed_to: Option<String>,
    /// Its rows before the migration.
    pub rows_before: u64,
    /// Its rows after (`None` when the table is gone).
    pub rows_after: Option<u64>,
    /// Its columns that are gone.
    pub columns_removed: Vec<String>,
}

/// A problem found in the data, with the table it is about.
pub(super) struct Found {
    pub kind: VerifyProblemKind,
    pub table: String,
    pub detail: String,
}

/// The tables a migration changed, and the problems that makes, from the snapshots before and
/// after it. backstop's own tables are left out.
pub(super) fn compare(before: &Snapshot, after: &Snapshot) -> (Vec<TableChange>, Vec<Found>) {
    let ours = |name: &str| name.starts_with("_backstop_") || name.starts_with("sqlite_");
    let (mut changes, mut found) = (Vec::new(), Vec::new());
    let mut followed = BTreeSet::new();
    for (table, old) in before.shapes.iter().filter(|(t, _)| !ours(t)) {
        let (name, new) = match after.shapes.get(table) {
            Some(new) => (table.clone(), Some(new)),
            None => match renamed(old, before, after, &followed) {
                Some((name, new)) => (name, Some(new)),
                None => (table.clone(), None),
            },
        };
        followed.insert(name.clone());
        let Some(new) = new else {
            found.push(Found {
                kind: VerifyProblemKind::TableRemoved,
                table: table.clone(),
                detail: format!("table {table} ({} rows) is gone", old.rows),
            });
            found.push(breaks(table, format!("table {table} is gone")));
            changes.push(TableChange {
                table: table.clone(),
                renamed_to: None,
                rows_before: old.rows,
                rows_after: None,
                columns_removed: names(&old.columns),
            });
            continue;
        };
        let renamed_to = (name != *table).then(|| name.clone());
        if let Some(to) = &renamed_to {
            found.push(breaks(table, format!("table {table} is renamed to {to}")));
        }
        let kept = names(&new.columns);
        let removed: Vec<String> = names(&old.columns)
            .into_iter()
            .filter(|c| !kept.contains(c))
            .collect();
        for column in &removed {
            found.push(Found {
                kind: VerifyProblemKind::ColumnRemoved,
                table: table.clone(),
                detail: format!("column {table}.{column} is gone, with its values"),
            });
            found.push(breaks(table, format!("column {table}.{column} is gone")));
        }
        if new.rows < old.rows {
            found.push(Found {
                kind: VerifyProblemKind::RowsRemoved,
                table: table.clone(),
                detail: format!(
                    "{table} had {} rows, {} after the migration ({} fewer)",
                    old.rows,
                    new.rows,
                    old.rows - new.rows
                ),
            });
        }
        found.extend(stricter(table, old, new));
        if new.rows != old.rows || !removed.is_empty() || renamed_to.is_some() {
            changes.push(TableChange {
                table: table.clone(),
                renamed_to,
                rows_before: old.rows,
                rows_after: Some(new.rows),
                columns_removed: removed,
            });
        }
    }
    (changes, found)
}

/// A new table of `after` (not in `before`, not already followed) with the columns of `old`:
/// where a rename or a rebuild under another name took it.
fn renamed<'a>(
    old: &Shape,
    before: &Snapshot,
    after: &'a Snapshot,
    followed: &BTreeSet<String>,
) -> Option<(String, &'a Shape)> {
    let columns = names(&old.columns);
    after
        .shapes
        .iter()
        .filter(|(name, _)| !before.shapes.contains_key(*name) && !followed.contains(*name))
        .find(|(_, new)| columns.iter().all(|c| names(&new.columns).contains(c)))
        .map(|(name, new)| (name.clone(), new))
}

/// What the previous build's inserts into `table` could now fail on: a new column, or an old
/// one, that is `NOT NULL` without a default; a new unique key; a new `CHECK`.
fn stricter(table: &str, old: &Shape, new: &Shape) -> Vec<Found> {
    let mut found = Vec::new();
    for column in new.columns.iter().filter(|c| c.not_null && !c.has_default) {
        let was = old.columns.iter().find(|o| o.name == column.name);
        if was.is_none_or(|o| !o.not_null || o.has_default) {
            found.push(breaks(
                table,
                format!(
                    "column {table}.{} is NOT NULL without a default: the previous build's \
                     inserts, which do not set it, fail",
                    column.name
                ),
            ));
        }
    }
    for key in new.unique.difference(&old.unique) {
        found.push(breaks(
            table,
            format!(
                "a new unique key on {table} ({}): the previous build's inserts may break it",
                key.join(", ")
            ),
        ));
    }
    if new.checks > old.checks {
        found.push(breaks(
            table,
            format!("a new CHECK on {table}: the previous build's inserts may break it"),
        ));
    }
    found
}

fn breaks(table: &str, detail: String) -> Found {
    Found {
        kind: VerifyProblemKind::BreaksPreviousVersion,
        table: table.to_owned(),
        detail,
    }
}

fn names(columns: &[super::snapshot::Column]) -> Vec<String> {
    columns.iter().map(|c| c.name.clone()).collect()
}

/// `102401` as `102,401`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A table's line in the text report: `vector_stores 102,401 → 102,390 (−11, allowed: why)`.
pub(super) fn table_line(check: &MigrationCheck, change: &TableChange) -> String {
    let allowed = |kind| {
        check
            .problems
            .iter()
            .find(|p| p.kind == kind && p.differing.contains(&change.table))
            .and_then(|p| p.allowed.as_deref())
            .map(|why| format!(", allowed: {why}"))
            .unwrap_or_default()
    };
    let name = match &change.renamed_to {
        Some(to) => format!("{} (now {to})", change.table),
        None => change.table.clone(),
    };
    let before = thousands(change.rows_before);
    let mut line = match change.rows_after {
        None => format!(
            "{name} {before} → gone{}",
            allowed(VerifyProblemKind::TableRemoved)
        ),
        Some(after) if after < change.rows_before => format!(
            "{name} {before} → {} (−{}{})",
            thousands(after),
            thousands(change.rows_before - after),
            allowed(VerifyProblemKind::RowsRemoved)
        ),
        Some(after) => format!("{name} {before} → {}", thousands(after)),
    };
    if change.rows_after.is_some() && !change.columns_removed.is_empty() {
        line.push_str(&format!(
            "; columns gone: {}{}",
            change.columns_removed.join(", "),
            allowed(VerifyProblemKind::ColumnRemoved)
        ));
    }
    line
}

#[cfg(test)]
mod tests {
    #[test]
    fn thousands_are_separated() {
        assert_eq!(super::thousands(0), "0");
        assert_eq!(super::thousands(999), "999");
        assert_eq!(super::thousands(102_401), "102,401");
        assert_eq!(super::thousands(1_000_000), "1,000,000");
    }
}
