//! The connection the runner works on. Usually its own, opened with the pool's options and the
//! settings the work needs, so the pool's connections are never changed. For a private database
//! (which only the pool's connection sees), it is the pool's one connection, with those settings
//! applied for the run and put back when it ends.

use std::path::Path;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::sqlite::SqliteRow;
use sqlx::{AssertSqlSafe, Connection, Sqlite, SqliteConnection, SqlitePool};

use super::shape::{Reach, private, reach, shares_memory};
use super::{OnDatabase, acquire, connect, database_error};
use crate::error::Error;
use crate::ffi::{Authorizer, Policy, is_denial};

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

/// The connection the runner works on, with the authorizer that judges the scripts and
/// probes run on it.
pub(crate) struct RunnerConnection {
    conn: Reached,
    guard: Authorizer,
}

/// The runner's connection with the authorizer installed on it, which judges every statement
/// of a script or probe as SQLite parses it while it is judging (the runner's own statements
/// pass).
pub(crate) struct Guarded<'c> {
    pub conn: &'c mut SqliteConnection,
    pub guard: &'c Authorizer,
}

/// Why a statement judged by the authorizer did not run to its end.
#[derive(Debug)]
pub(crate) enum Judged {
    /// The authorizer refused it before it ran, and why.
    Refused(String),
    /// It failed.
    Failed(sqlx::Error),
}

impl Guarded<'_> {
    /// Runs `sql` (scripts' or probes' SQL), judged by the authorizer; its rows.
    pub async fn fetch_judged(&mut self, sql: &str) -> Result<Vec<SqliteRow>, Judged> {
        let judging = self.guard.judging();
        let rows = sqlx::raw_sql(AssertSqlSafe(sql))
            .fetch_all(&mut *self.conn)
            .await;
        drop(judging);
        rows.map_err(|e| self.judged(e))
    }

    /// Runs `sql`, judged by the authorizer, when its rows do not matter.
    pub async fn execute_judged(&mut self, sql: &str) -> Result<(), Judged> {
        let judging = self.guard.judging();
        let done = sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&mut *self.conn)
            .await;
        drop(judging);
        done.map(drop).map_err(|e| self.judged(e))
    }

    fn judged(&self, error: sqlx::Error) -> Judged {
        match self.guard.take_refusal() {
            Some(refusal) if is_denial(&error) => Judged::Refused(refusal.reason),
            _ => Judged::Failed(error),
        }
    }
}

/// Whose connection the runner works on.
enum Reached {
    Own(SqliteConnection),
    /// The pool's connection, and the SQL that puts its settings back.
    Pool {
        conn: PoolConnection<Sqlite>,
        restore: String,
    },
}

impl RunnerConnection {
    /// Opens the runner's connection to the pool's database for `work`, with an authorizer
    /// that judges scripts by `policy` installed.
    pub async fn open(
        pool: &SqlitePool,
        database: &Path,
        work: Use,
        policy: Policy,
    ) -> Result<Self, Error> {
        let mut conn = Reached::open(pool, database, work).await?;
        if let Err(e) = conn.confirm(database, work).await {
            conn.close().await;
            return Err(e);
        }
        Self::guarded_by(conn, database, policy).await
    }

    /// Opens a connection of the runner's own with `options` (a scratch database), with an
    /// authorizer that judges scripts by `policy` installed.
    pub async fn connect(
        options: &sqlx::sqlite::SqliteConnectOptions,
        database: &Path,
        policy: Policy,
    ) -> Result<Self, Error> {
        let conn = Reached::Own(connect(options, database).await?);
        Self::guarded_by(conn, database, policy).await
    }

    /// `conn` with an authorizer that judges scripts by `policy` installed.
    async fn guarded_by(mut conn: Reached, database: &Path, policy: Policy) -> Result<Self, Error> {
        match Authorizer::install(conn.get(), policy).await {
            Ok(guard) => Ok(RunnerConnection { conn, guard }),
            Err(e) => {
                conn.close().await;
                Err(database_error(database, "installing the authorizer", e))
            }
        }
    }

    pub fn get(&mut self) -> &mut SqliteConnection {
        self.conn.get()
    }

    /// The connection with the authorizer that judges scripts on it.
    pub fn guarded(&mut self) -> Guarded<'_> {
        Guarded {
            conn: self.conn.get(),
            guard: &self.guard,
        }
    }

    /// Closes the runner's own connection, or removes the authorizer from the pool's
    /// connection and puts its settings back (the caller has ended its transaction).
    pub async fn close(self) {
        let RunnerConnection { mut conn, guard } = self;
        match &mut conn {
            Reached::Own(_) => {
                conn.close().await;
                guard.connection_closed();
            }
            Reached::Pool { conn: pooled, .. } => {
                if let Err(err) = guard.remove(pooled).await {
                    tracing::warn!(%err, "could not remove the authorizer from the pool's connection");
                }
                conn.close().await;
            }
        }
    }
}

impl Reached {
    /// Confirms on the opened connection what the pool's options said, asking SQLite: a
    /// connection that writes must not be read-only (`sqlite3_db_readonly`: `mode=ro`,
    /// `immutable`, a read-only mount or a file that cannot be written alike).
    async fn confirm(&mut self, database: &Path, work: Use) -> Result<(), Error> {
        let writes = !matches!(work, Use::Read);
        if writes
            && crate::ffi::is_read_only(self.get())
                .await
                .on(database, "opening a connection")?
        {
            return Err(Error::ReadOnly {
                database: database.to_owned(),
            });
        }
        Ok(())
    }

    /// Opens the runner's connection: its own with the pool's options when they reach the
    /// pool's database, else the pool's one connection. Whether they reach it is read from the
    /// options, then asked of SQLite on the opened connection (`PRAGMA database_list`): a
    /// database in memory is shared only with a shared cache, whatever sqlx's settings say.
    async fn open(pool: &SqlitePool, database: &Path, work: Use) -> Result<Self, Error> {
        if reach(pool)? == Reach::PoolConnection {
            return Self::pool_connection(pool, database, work).await;
        }
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
        let mut own = connect(&options, database).await?;
        let in_memory = super::main_file(&mut own)
            .await
            .on(database, "locating the database file")?
            .is_none();
        if in_memory && !shares_memory(&pool.connect_options()) {
            let _ = own.close().await;
            private(pool)?;
            return Self::pool_connection(pool, database, work).await;
        }
        Ok(Reached::Own(own))
    }

    /// The pool's connection, with the settings `work` needs.
    async fn pool_connection(pool: &SqlitePool, database: &Path, work: Use) -> Result<Self, Error> {
        let mut conn = acquire(pool, database).await?;
        let restore = apply(&mut conn, work)
            .await
            .on(database, "preparing the pool's connection")?;
        Ok(Reached::Pool { conn, restore })
    }

    fn get(&mut self) -> &mut SqliteConnection {
        match self {
            Reached::Own(conn) => conn,
            Reached::Pool { conn, .. } => conn,
        }
    }

    /// Closes the runner's own connection, or puts the pool connection's settings back.
    async fn close(self) {
        match self {
            Reached::Own(conn) => {
                let _ = conn.close().await;
            }
            Reached::Pool { mut conn, restore } => {
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
            let ms = super::busy_timeout_ms(busy_timeout).to_string();
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
