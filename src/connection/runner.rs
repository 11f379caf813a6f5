//! The connection the runner works on. Usually its own, opened with the pool's options and the
//! settings the work needs, so the pool's connections are never changed. For a private database
//! (which only the pool's connection sees), it is the pool's one connection, with those settings
//! applied for the run and put back when it ends.

use std::path::Path;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::{Connection, Sqlite, SqliteConnection, SqlitePool};

use super::shape::{Reach, reach};
use super::{acquire, connect, database_error};
use crate::error::Error;

/// What the runner does on the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Use {
    /// Writes, under the write lock: foreign keys off, the runner's busy timeout.
    Write { busy_timeout: Duration },
    /// A dry run: as `Write`, and changes are never spilled to the file mid-transaction.
    DryRun { busy_timeout: Duration },
    /// Reads only (`query_only`).
    Read,
}

/// The connection the runner works on.
pub(crate) enum RunnerConnection {
    Own(SqliteConnection),
    /// The pool's connection, and the SQL that puts its settings back.
    Pool {
        conn: PoolConnection<Sqlite>,
        restore: String,
    },
}

impl RunnerConnection {
    /// Opens the runner's connection to the pool's database for `work`.
    pub async fn open(pool: &SqlitePool, database: &Path, work: Use) -> Result<Self, Error> {
        match reach(pool)? {
            Reach::SameOptions => {
                let mut options = (*pool.connect_options()).clone().create_if_missing(false);
                options = match work {
                    Use::Write { busy_timeout } | Use::DryRun { busy_timeout } => {
                        options.foreign_keys(false).busy_timeout(busy_timeout)
                    }
                    Use::Read => options.pragma("query_only", "ON"),
                };
                if let Use::DryRun { .. } = work {
                    options = options.pragma("cache_spill", "OFF");
                }
                Ok(RunnerConnection::Own(connect(&options, database).await?))
            }
            Reach::PoolConnection => {
                let mut conn = acquire(pool, database).await?;
                let restore = apply(&mut conn, work)
                    .await
                    .map_err(|e| database_error(database, "preparing the pool's connection", e))?;
                Ok(RunnerConnection::Pool { conn, restore })
            }
        }
    }

    pub fn get(&mut self) -> &mut SqliteConnection {
        match self {
            RunnerConnection::Own(conn) => conn,
            RunnerConnection::Pool { conn, .. } => conn,
        }
    }

    /// Closes the runner's own connection, or puts the pool connection's settings back (the
    /// caller has ended its transaction).
    pub async fn close(self) {
        match self {
            RunnerConnection::Own(conn) => {
                let _ = conn.close().await;
            }
            RunnerConnection::Pool { mut conn, restore } => {
                let restored = sqlx::raw_sql(sqlx::AssertSqlSafe(restore))
                    .execute(&mut *conn)
                    .await;
                if let Err(err) = restored {
                    tracing::warn!(%err, "could not put the pool connection's settings back; closing it");
                    let _ = conn.detach().close().await;
                }
            }
        }
    }
}

/// Applies the settings `work` needs to a pool connection; returns the SQL that puts the old
/// ones back.
async fn apply(conn: &mut SqliteConnection, work: Use) -> Result<String, sqlx::Error> {
    let settings: Vec<(&str, String)> = match work {
        Use::Write { busy_timeout } | Use::DryRun { busy_timeout } => {
            let ms = busy_timeout.as_millis().min(i32::MAX as u128).to_string();
            let mut settings = vec![("foreign_keys", "OFF".to_owned()), ("busy_timeout", ms)];
            if let Use::DryRun { .. } = work {
                settings.push(("cache_spill", "OFF".to_owned()));
            }
            settings
        }
        Use::Read => vec![("query_only", "ON".to_owned())],
    };
    let (mut apply, mut restore) = (String::new(), String::new());
    for (name, value) in settings {
        let now: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("PRAGMA {name}")))
            .fetch_one(&mut *conn)
            .await?;
        apply.push_str(&format!("PRAGMA {name} = {value};\n"));
        restore.push_str(&format!("PRAGMA {name} = {now};\n"));
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(apply))
        .execute(&mut *conn)
        .await?;
    Ok(restore)
}
