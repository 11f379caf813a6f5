//! Which tables `verify` has to read. Hashing every row of every table at each of the four
//! snapshots a migration takes costs minutes on a large database, while a migration touches a
//! few tables. The ledger keeps the tables that nothing has written since the verification
//! began (they are equal in every snapshot, so none reads them), and the hash of each such
//! table taken just before its first write, which stands for it in the snapshots taken before.
//!
//! What a statement writes is asked of SQLite: the authorizer names every table a statement
//! inserts into, updates, deletes from, drops or alters as SQLite prepares it, triggers'
//! statements included (see [`crate::ffi::Authorizer::recording`]). SQLite's own tables
//! (`sqlite_sequence`, `sqlite_stat1`, written without being named), virtual tables and their
//! shadow tables are never in the ledger: they are read at every snapshot.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::{AssertSqlSafe, SqliteConnection};

use super::snapshot::{Hashed, hash_rows, quote};

/// The tables nothing has written since `verify` began, and the first hash of the others.
#[derive(Debug, Default)]
pub(super) struct Ledger {
    /// Not written since the start (by lower-case name): their rows, and whether they are
    /// `WITHOUT ROWID`.
    untouched: BTreeMap<String, (u64, bool)>,
    /// Tables that were untouched, hashed just before their first write (by lower-case name).
    before_first_write: BTreeMap<String, Hashed>,
}

impl Ledger {
    /// The ordinary tables of the database on `conn`, all untouched, counted.
    pub async fn start(conn: &mut SqliteConnection) -> Result<Self, sqlx::Error> {
        let tables: Vec<(String, i64)> = sqlx::query_as(
            "SELECT name, wr FROM pragma_table_list
             WHERE schema = 'main' AND type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
        )
        .persistent(false)
        .fetch_all(&mut *conn)
        .await?;
        let mut untouched = BTreeMap::new();
        for (table, without_rowid) in tables {
            let rows: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT count(*) FROM {}",
                quote(&table)
            )))
            .persistent(false)
            .fetch_one(&mut *conn)
            .await?;
            untouched.insert(
                table.to_ascii_lowercase(),
                (rows.unsigned_abs(), without_rowid != 0),
            );
        }
        Ok(Ledger {
            untouched,
            before_first_write: BTreeMap::new(),
        })
    }

    /// The rows of `table`, if nothing has written it since the start.
    pub fn untouched(&self, table: &str) -> Option<u64> {
        self.untouched
            .get(&table.to_ascii_lowercase())
            .map(|(rows, _)| *rows)
    }

    /// The rows of `table` as they were before its first write, if it was untouched until then.
    pub fn before_first_write(&self, table: &str) -> Option<&Hashed> {
        self.before_first_write.get(&table.to_ascii_lowercase())
    }

    /// Whether some of `tables` (lower-case names, as the authorizer records them) are still
    /// untouched.
    pub fn any_untouched(&self, tables: &BTreeSet<String>) -> bool {
        tables.iter().any(|t| self.untouched.contains_key(t))
    }

    /// `tables` are about to be written (or were, in a transaction since rolled back): those
    /// still untouched are hashed now, as they have been since the start.
    pub async fn touch(
        &mut self,
        conn: &mut SqliteConnection,
        tables: &BTreeSet<String>,
    ) -> Result<(), sqlx::Error> {
        for table in tables {
            if let Some(&(_, without_rowid)) = self.untouched.get(table) {
                let hashed = hash_rows(conn, table, without_rowid).await?;
                self.untouched.remove(table);
                self.before_first_write.insert(table.clone(), hashed);
            }
        }
        Ok(())
    }
}
