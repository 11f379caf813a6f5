//! Foreign-key checks around a run. Foreign keys are off on the runner's connection (so that
//! table rebuilds are safe); instead, the violations after the run are compared with those
//! before it, and any new one fails the run.

use std::collections::BTreeMap;
use std::path::Path;

use sqlx::{Row, SqliteConnection};

use crate::connection::OnDatabase;
use crate::error::{Error, ForeignKeyViolation};

/// The foreign-key violations present before a run (none are looked for when no table has a
/// foreign key, which spares a scan of every table).
pub(crate) async fn violations_before(
    conn: &mut SqliteConnection,
    database: &Path,
) -> Result<Vec<ForeignKeyViolation>, Error> {
    let has = has_foreign_keys(conn)
        .await
        .on(database, "listing foreign keys")?;
    if !has {
        return Ok(Vec::new());
    }
    violations(conn)
        .await
        .on(database, "checking foreign keys before the run")
}

/// Fails when the run of `versions` left foreign-key violations that were not there `before`.
pub(crate) async fn check_no_new_violations(
    conn: &mut SqliteConnection,
    database: &Path,
    before: &[ForeignKeyViolation],
    versions: Vec<i64>,
) -> Result<(), Error> {
    let after = violations(conn)
        .await
        .on(database, "checking foreign keys after the run")?;
    let introduced = new_violations(before, after);
    if introduced.is_empty() {
        Ok(())
    } else {
        Err(Error::ForeignKeyViolation {
            versions,
            violations: introduced,
        })
    }
}

async fn has_foreign_keys(conn: &mut SqliteConnection) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar::<_, i64>(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master AS m, pragma_foreign_key_list(m.name)
                        WHERE m.type = 'table')",
    )
    .fetch_one(conn)
    .await
    .map(|n| n != 0)
}

async fn violations(conn: &mut SqliteConnection) -> Result<Vec<ForeignKeyViolation>, sqlx::Error> {
    let rows = sqlx::raw_sql("PRAGMA foreign_key_check")
        .fetch_all(conn)
        .await?;
    rows.iter()
        .map(|row| {
            Ok(ForeignKeyViolation {
                table: row.try_get(0)?,
                rowid: row.try_get(1)?,
                parent: row.try_get(2)?,
            })
        })
        .collect()
}

/// Violations of `after` that were not there `before`, compared as counts per (table,
/// parent): a table rebuild may renumber rows, so row ids do not identify a violation. At most
/// 20 are returned.
fn new_violations(
    before: &[ForeignKeyViolation],
    after: Vec<ForeignKeyViolation>,
) -> Vec<ForeignKeyViolation> {
    let mut allowed: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for v in before {
        *allowed.entry((&v.table, &v.parent)).or_default() += 1;
    }
    let mut counts: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for v in &after {
        *counts.entry((&v.table, &v.parent)).or_default() += 1;
    }
    let grown: Vec<(String, String)> = counts
        .into_iter()
        .filter(|(key, count)| *count > allowed.get(key).copied().unwrap_or(0))
        .map(|((table, parent), _)| (table.to_owned(), parent.to_owned()))
        .collect();
    after
        .into_iter()
        .filter(|v| {
            grown
                .iter()
                .any(|(table, parent)| *table == v.table && *parent == v.parent)
        })
        .take(20)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(table: &str, rowid: i64, parent: &str) -> ForeignKeyViolation {
        ForeignKeyViolation {
            table: table.to_owned(),
            rowid: Some(rowid),
            parent: parent.to_owned(),
        }
    }

    #[test]
    fn renumbered_old_violations_are_not_new() {
        let before = [v("child", 1, "parent"), v("child", 2, "parent")];
        let after = vec![v("child", 7, "parent"), v("child", 8, "parent")];
        assert!(new_violations(&before, after).is_empty());
    }

    #[test]
    fn a_grown_count_reports_that_table_and_parent_only() {
        let before = [v("child", 1, "parent"), v("other", 1, "parent")];
        let after = vec![
            v("child", 1, "parent"),
            v("child", 2, "parent"),
            v("other", 1, "parent"),
            v("orphan", 5, "gone"),
        ];
        let new = new_violations(&before, after);
        assert_eq!(
            new,
            vec![
                v("child", 1, "parent"),
                v("child", 2, "parent"),
                v("orphan", 5, "gone")
            ]
        );
    }

    #[test]
    fn at_most_twenty_are_reported() {
        let after = (0..50).map(|i| v("child", i, "parent")).collect();
        assert_eq!(new_violations(&[], after).len(), 20);
    }
}
