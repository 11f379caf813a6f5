//! A snapshot of a whole database, to compare: every schema object's SQL, a hash of every
//! table's rows (with their row ids, the types and bytes of every value), and the two numbers
//! a database keeps for its application (`user_version`, `application_id`), which scripts may
//! set. A table nothing has written since `verify` began is not read (see [`Ledger`]).

use std::collections::{BTreeMap, BTreeSet};

use futures_util::TryStreamExt;
use sha2::{Digest, Sha256};
use sqlx::{AssertSqlSafe, Row, SqliteConnection};

use super::ledger::Ledger;

/// The schema and content of a database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Snapshot {
    /// `(type, name)` → SQL (empty for automatic indexes).
    objects: BTreeMap<(String, String), String>,
    /// Table → its rows.
    tables: BTreeMap<String, Content>,
    /// `user_version` and `application_id`.
    numbers: [(&'static str, i64); 2],
    /// Each table's shape, as SQLite describes it (for what a migration does to the data).
    pub shapes: BTreeMap<String, Shape>,
}

/// A table's rows in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Content {
    /// Read and hashed.
    Hashed(Hashed),
    /// Not written since `verify` began, so not read: as the ledger has them.
    Untouched,
}

/// How many rows a table has, and the hash of them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hashed {
    pub rows: u64,
    hash: [u8; 32],
}

/// What SQLite says of a table: its columns and its unique keys.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Shape {
    /// Its rows.
    pub rows: u64,
    /// Its columns, in order.
    pub columns: Vec<Column>,
    /// The column lists of its unique indexes and constraints.
    pub unique: BTreeSet<Vec<String>>,
    /// How many `CHECK` constraints its SQL holds.
    pub checks: usize,
}

/// A column, as `pragma_table_xinfo` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Column {
    pub name: String,
    pub not_null: bool,
    pub has_default: bool,
}

/// How much a snapshot reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Detail {
    /// The schema and the rows: enough to compare two databases.
    Content,
    /// Also each table's shape, for what a migration does to the data (before and after it).
    WithShapes,
}

/// The numbers in a database's header that scripts may set.
const NUMBERS: [&str; 2] = ["user_version", "application_id"];

impl Snapshot {
    pub async fn take(
        conn: &mut SqliteConnection,
        detail: Detail,
        ledger: &Ledger,
    ) -> Result<Self, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT m.type, m.name, coalesce(m.sql, ''), coalesce(l.type, ''), coalesce(l.wr, 0)
             FROM sqlite_master AS m LEFT JOIN pragma_table_list AS l
               ON l.schema = 'main' AND l.name = m.name
             ORDER BY m.type, m.name",
        )
        .persistent(false)
        .fetch_all(&mut *conn)
        .await?;
        let mut objects = BTreeMap::new();
        let mut tables = Vec::new();
        for row in &rows {
            let (kind, name, sql): (String, String, String) = (row.get(0), row.get(1), row.get(2));
            let (listed, without_rowid): (String, i64) = (row.get(3), row.get(4));
            // Rows of ordinary and shadow tables (a virtual table's content is in its shadows).
            if kind == "table" && listed != "virtual" {
                tables.push((name.clone(), without_rowid != 0, listed == "shadow"));
            }
            objects.insert((kind, name), sql);
        }
        let mut hashed = BTreeMap::new();
        let mut shapes = BTreeMap::new();
        for (table, without_rowid, shadow) in tables {
            let (rows, content) = match ledger.untouched(&table) {
                Some(rows) => (rows, Content::Untouched),
                None => {
                    let read = hash_rows(conn, &table, without_rowid).await?;
                    (read.rows, Content::Hashed(read))
                }
            };
            hashed.insert(table.clone(), content);
            let sql = objects
                .get(&("table".to_owned(), table.clone()))
                .map_or("", String::as_str);
            // Ordinary tables only: a virtual table's shadows are its index, not data.
            if !shadow && detail == Detail::WithShapes {
                let mut shape = shape(conn, &table, sql).await?;
                shape.rows = rows;
                shapes.insert(table, shape);
            }
        }
        let mut numbers = [("", 0); 2];
        for (slot, name) in numbers.iter_mut().zip(NUMBERS) {
            let value: i64 = sqlx::query_scalar(AssertSqlSafe(format!("PRAGMA {name}")))
                .persistent(false)
                .fetch_one(&mut *conn)
                .await?;
            *slot = (name, value);
        }
        Ok(Snapshot {
            objects,
            tables: hashed,
            numbers,
            shapes,
        })
    }

    /// What differs from `other` (taken later in the same verification, with `ledger`); `None`
    /// when nothing does.
    pub fn differences(&self, other: &Snapshot, ledger: &Ledger) -> Option<Differences> {
        let mut found = Differences::default();
        for (key, sql) in &self.objects {
            match other.objects.get(key) {
                None => found.object(key, "is gone".to_owned()),
                Some(theirs) if theirs != sql => {
                    found.object(key, format!("has other SQL: `{theirs}`"));
                }
                Some(_) => {}
            }
        }
        for key in other.objects.keys() {
            if !self.objects.contains_key(key) {
                found.object(key, "is new".to_owned());
            }
        }
        // An untouched table is as it was before its first write, if it has been written since
        // (it was untouched in both snapshots otherwise: equal).
        let rows = |table: &str, content: &Content| match content {
            Content::Hashed(hashed) => Some(*hashed),
            Content::Untouched => ledger.before_first_write(table).copied(),
        };
        for (table, ours) in &self.tables {
            let Some(theirs) = other.tables.get(table) else {
                continue;
            };
            match (rows(table, ours), rows(table, theirs)) {
                (Some(ours), Some(theirs)) if ours != theirs => {
                    found.names.push(table.clone());
                    found
                        .tables
                        .push(format!("{table} ({} rows, now {})", ours.rows, theirs.rows));
                }
                _ => {}
            }
        }
        for ((name, ours), (_, theirs)) in self.numbers.iter().zip(&other.numbers) {
            if ours != theirs {
                found.names.push((*name).to_owned());
                found
                    .objects
                    .push(format!("PRAGMA {name} was {ours}, now {theirs}"));
            }
        }
        (!found.names.is_empty()).then_some(found)
    }
}

/// What differs between two snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Differences {
    /// The names of the objects and tables that differ.
    pub names: Vec<String>,
    objects: Vec<String>,
    tables: Vec<String>,
}

impl Differences {
    fn object(&mut self, (kind, name): &(String, String), what: String) {
        self.names.push(name.clone());
        self.objects.push(format!("{kind} {name} {what}"));
    }
}

impl std::fmt::Display for Differences {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if !self.objects.is_empty() {
            parts.push(format!("schema: {}", self.objects.join("; ")));
        }
        if !self.tables.is_empty() {
            parts.push(format!("rows differ in {}", self.tables.join(", ")));
        }
        f.write_str(&parts.join("; "))
    }
}

/// A table's columns and unique keys, asked of SQLite; its `CHECK` constraints counted in its
/// SQL (SQLite lists them nowhere else).
async fn shape(conn: &mut SqliteConnection, table: &str, sql: &str) -> Result<Shape, sqlx::Error> {
    let columns: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT name, \"notnull\", dflt_value IS NOT NULL FROM pragma_table_xinfo(?)
         WHERE hidden = 0 ORDER BY cid",
    )
    .bind(table)
    .persistent(false)
    .fetch_all(&mut *conn)
    .await?;
    let keys: Vec<(String, String)> = sqlx::query_as(
        "SELECT il.name, ii.name FROM pragma_index_list(?1) AS il
         JOIN pragma_index_info(il.name) AS ii
         WHERE il.\"unique\" ORDER BY il.name, ii.seqno",
    )
    .bind(table)
    .persistent(false)
    .fetch_all(&mut *conn)
    .await?;
    let mut unique: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (index, column) in keys {
        unique.entry(index).or_default().push(column);
    }
    let words: Vec<String> = sql
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .map(str::to_ascii_uppercase)
        .collect();
    Ok(Shape {
        rows: 0,
        columns: columns
            .into_iter()
            .map(|(name, not_null, has_default)| Column {
                name,
                not_null: not_null != 0,
                has_default: has_default != 0,
            })
            .collect(),
        unique: unique.into_values().collect(),
        checks: words.iter().filter(|w| *w == "CHECK").count(),
    })
}

/// `name` as an SQL identifier.
pub(super) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Reads every row of `table` (streamed: memory stays flat, whatever its size) and hashes them.
pub(super) async fn hash_rows(
    conn: &mut SqliteConnection,
    table: &str,
    without_rowid: bool,
) -> Result<Hashed, sqlx::Error> {
    let columns: Vec<String> =
        sqlx::query_scalar("SELECT name FROM pragma_table_info(?) ORDER BY cid")
            .bind(table)
            .persistent(false)
            .fetch_all(&mut *conn)
            .await?;
    // Each row as one text of SQL literals (`quote()` keeps the type: 1, '1', 1.0, X'01', NULL).
    // One column whatever the table: a statement whose columns change under sqlx (a rollback
    // rebuilt the table) would otherwise upset its row decoding.
    let mut values: Vec<String> = columns
        .iter()
        .map(|c| format!("quote({})", quote(c)))
        .collect();
    // The row id by a name no column takes (a column named `rowid` hides it under that name).
    let rowid = ["rowid", "_rowid_", "oid"]
        .into_iter()
        .find(|alias| !columns.iter().any(|c| c.eq_ignore_ascii_case(alias)));
    let order = match (without_rowid, rowid) {
        (false, Some(rowid)) => {
            values.insert(0, format!("quote({rowid})"));
            rowid.to_owned()
        }
        // No row id, or every name of it taken by a column: the rows in the order of their
        // values.
        _ => columns
            .iter()
            .map(|c| quote(c))
            .collect::<Vec<_>>()
            .join(", "),
    };
    let sql = format!(
        "SELECT {} FROM {} ORDER BY {order}",
        values.join(" || ',' || "),
        quote(table)
    );
    let mut hasher = Sha256::new();
    let mut count = 0;
    let mut rows = sqlx::query_scalar::<_, String>(AssertSqlSafe(sql))
        .persistent(false)
        .fetch(&mut *conn);
    while let Some(row) = rows.try_next().await? {
        hasher.update(row.as_bytes());
        hasher.update(b"\n");
        count += 1;
    }
    Ok(Hashed {
        rows: count,
        hash: hasher.finalize().into(),
    })
}
