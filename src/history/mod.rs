//! The history table, `_backstop_migrations`: one row per applied migration.
//!
//! Its only definition is `src/history/history.sql`. Its queries are checked at compile time by
//! sqlx's macros against a development database built from that file (offline metadata in
//! `.sqlx/`) in the build CI makes ([`checked`]). Reading is here; writing, and bringing a table of an older build up
//! to the current definition, in [`write`].

#[macro_use]
mod checked;
pub(crate) mod identity;
pub(crate) mod sqlx_table;
mod write;

use sqlx::SqliteConnection;
use time::OffsetDateTime;

use crate::error::SqliteFailure;
use crate::ffi::RawConnection;
use crate::report::MigrationState;

pub(crate) use identity::{Identified, Identity};
pub(crate) use write::{
    NewRecord, clear_superseded, delete, drop_table, ensure_current, insert, set_superseded,
};

/// A row as read, before its method is parsed.
#[cfg_attr(feature = "checked-queries", allow(dead_code))]
struct Row {
    version: i64,
    description: String,
    checksum: String,
    applied_at: OffsetDateTime,
    method: String,
    superseded_by: Option<i64>,
    rollback_sql: Option<String>,
    probe_sql: Option<String>,
}

/// The row's columns by position (their names carry the macros' type overrides).
impl sqlx::FromRow<'_, sqlx::sqlite::SqliteRow> for Row {
    fn from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row as _;
        Ok(Row {
            version: row.try_get(0)?,
            description: row.try_get(1)?,
            checksum: row.try_get(2)?,
            applied_at: row.try_get(3)?,
            method: row.try_get(4)?,
            superseded_by: row.try_get(5)?,
            rollback_sql: row.try_get(6)?,
            probe_sql: row.try_get(7)?,
        })
    }
}

impl TryFrom<Row> for Record {
    type Error = sqlx::Error;

    /// A row whose method is not a recorded state (applied, adopted, imported) is refused: the
    /// table's `CHECK` forbids it, so it was written by hand.
    fn try_from(row: Row) -> Result<Self, sqlx::Error> {
        let method = match row.method.parse() {
            Ok(
                method @ (MigrationState::Applied
                | MigrationState::Adopted
                | MigrationState::Imported),
            ) => method,
            _ => {
                return Err(sqlx::Error::Decode(
                    format!(
                        "migration {} is recorded with the method {:?}, which is none of \
                         applied, adopted, imported",
                        row.version, row.method
                    )
                    .into(),
                ));
            }
        };
        Ok(Record {
            version: row.version,
            description: row.description,
            checksum: row.checksum,
            applied_at: row.applied_at,
            method,
            superseded_by: row.superseded_by,
            rollback_sql: row.rollback_sql,
            probe_sql: row.probe_sql,
        })
    }
}

/// One row of the history table.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub version: i64,
    pub description: String,
    pub checksum: String,
    pub applied_at: OffsetDateTime,
    /// How it came to be recorded: applied, adopted or imported.
    pub method: MigrationState,
    /// A later migration that removed this one's effect.
    pub superseded_by: Option<i64>,
    /// The rollback script as it was when the migration was applied (`None`: recorded by an
    /// older build).
    pub rollback_sql: Option<String>,
    /// The probe, likewise.
    pub probe_sql: Option<String>,
}

/// What planning needs of an applied migration.
#[derive(Debug, Clone)]
pub(crate) struct Applied {
    pub version: i64,
    pub checksum: String,
}

/// The applied versions and their checksums, in version order: what `migrate` reads on every
/// start. A database without the table is at version 0; every other error is returned.
///
/// It is read as one row (`version checksum` pairs joined by commas) rather than a row per
/// migration: each row that sqlx streams from its worker thread can cost the caller a
/// wake-up, and with a thousand migrations those dominated a `migrate` with nothing to do.
pub(crate) async fn applied(conn: &mut SqliteConnection) -> Result<Vec<Applied>, sqlx::Error> {
    let pairs = checked::fetch_scalar!(
        Option<String>,
        r#"SELECT group_concat(version || ' ' || checksum, ',') AS "pairs?: String"
           FROM _backstop_migrations"#
    )
    .fetch_all(conn)
    .await;
    let pairs = without_table_is_empty(pairs)?.into_iter().flatten().next();
    let mut applied: Vec<Applied> = pairs
        .iter()
        .flat_map(|p| p.split(','))
        .filter_map(|pair| {
            let (version, checksum) = pair.split_once(' ')?;
            Some(Applied {
                version: version.parse().ok()?,
                checksum: checksum.to_owned(),
            })
        })
        .collect();
    applied.sort_by_key(|a| a.version);
    Ok(applied)
}

/// The highest applied version, 0 when nothing is applied.
pub(crate) fn current_version(applied: &[Applied]) -> i64 {
    applied.last().map_or(0, |a| a.version)
}

/// The version a database holds (0 without a history table), read on a raw connection: a
/// backup's copy checked as it is finished, without a connection of sqlx's (a thread) for it.
/// The same version as [`History::current_version`]: the highest applied.
pub(crate) fn held_version(conn: &RawConnection) -> Result<i64, SqliteFailure> {
    let tables = conn.query_int(
        "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = '_backstop_migrations'",
    )?;
    match tables {
        0 => Ok(0),
        _ => conn.query_int("SELECT coalesce(max(version), 0) FROM _backstop_migrations"),
    }
}

/// SQLite's "no such table" for the history table means nothing was applied yet.
fn without_table_is_empty<T>(rows: Result<Vec<T>, sqlx::Error>) -> Result<Vec<T>, sqlx::Error> {
    match rows {
        Err(e)
            if e.as_database_error().is_some_and(|d| {
                d.message().starts_with("no such table")
                    && d.message().contains("_backstop_migrations")
            }) =>
        {
            Ok(Vec::new())
        }
        other => other,
    }
}

/// What the live database holds that says which backups are its own: its identity and its
/// history.
#[derive(Debug, Clone, Default)]
pub(crate) struct Live {
    pub identity: Option<Identified>,
    pub history: History,
}

impl Live {
    /// A database known only by its identity (enough to prune its backups).
    pub fn identified(identity: Identified) -> Self {
        Live {
            identity: Some(identity),
            history: History::default(),
        }
    }

    /// Reads both (no table: nothing).
    pub async fn read(conn: &mut SqliteConnection) -> Result<Self, sqlx::Error> {
        Ok(Live {
            history: History::read(&mut *conn).await?,
            identity: identity::read(conn).await?,
        })
    }
}

/// The applied migrations of a database, in version order.
#[derive(Debug, Clone, Default)]
pub(crate) struct History {
    records: Vec<Record>,
}

impl History {
    /// A history of these records, in version order.
    #[cfg(test)]
    pub fn new(records: Vec<Record>) -> Self {
        History { records }
    }

    /// Every applied migration, in version order.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// The highest applied version, 0 when nothing is applied.
    pub fn current_version(&self) -> i64 {
        self.records.last().map_or(0, |r| r.version)
    }

    /// The first version at which two histories of one database disagree, up to the lower of
    /// their versions: a migration one has and the other lacks, or the same version with
    /// another checksum or time. `None`: one is the past of the other (or both are the same).
    pub fn first_disagreement(&self, other: &History) -> Option<i64> {
        let upto = self.current_version().min(other.current_version());
        let ours = self.records.iter().filter(|r| r.version <= upto);
        let theirs = other.records.iter().filter(|r| r.version <= upto);
        let mut pairs = ours.zip(theirs);
        let differ = pairs.find(|(a, b)| {
            a.version != b.version || a.checksum != b.checksum || a.applied_at != b.applied_at
        });
        if let Some((a, b)) = differ {
            return Some(a.version.min(b.version));
        }
        let count = |h: &History| h.records.iter().filter(|r| r.version <= upto).count();
        (count(self) != count(other)).then_some(upto)
    }

    pub fn get(&self, version: i64) -> Option<&Record> {
        self.records
            .binary_search_by_key(&version, |r| r.version)
            .ok()
            .map(|i| &self.records[i])
    }

    /// Reads the history. A database without the table is at version 0; a table of an older
    /// build (without the newer columns) is read too; every other error is returned.
    pub async fn read(conn: &mut SqliteConnection) -> Result<Self, sqlx::Error> {
        // An older build's table lacks the newer columns: they read as NULL.
        let rows = if write::is_current(conn).await? {
            checked::fetch_rows!(
                Row,
                r#"SELECT version AS "version!", description, checksum,
                          applied_at AS "applied_at: OffsetDateTime", method, superseded_by,
                          rollback_sql, probe_sql
                   FROM _backstop_migrations ORDER BY version"#
            )
            .fetch_all(conn)
            .await
        } else {
            checked::fetch_rows!(
                Row,
                r#"SELECT version AS "version!", description, checksum,
                          applied_at AS "applied_at: OffsetDateTime", method,
                          NULL AS "superseded_by?: i64", NULL AS "rollback_sql?: String",
                          NULL AS "probe_sql?: String"
                   FROM _backstop_migrations ORDER BY version"#
            )
            .fetch_all(conn)
            .await
        };
        let records = without_table_is_empty(rows)?
            .into_iter()
            .map(Record::try_from)
            .collect::<Result<_, _>>()?;
        Ok(History { records })
    }
}
