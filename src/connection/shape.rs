//! What kind of database a pool's options open: a file (or a shared in-memory database) that
//! another connection with the same options reaches, or a private one that only the pool's own
//! connection sees; read-only or not. sqlx keeps these settings private, so they are read from
//! its `Debug` text here, and only here; the runner then asks SQLite on the connection it opened
//! (`sqlite3_db_readonly`, `PRAGMA database_list`), so a misreading errs on the safe side.

use sqlx::SqlitePool;
use sqlx::sqlite::SqliteConnectOptions;

use crate::error::Error;

/// How the runner reaches the pool's database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    /// Any connection with the pool's options opens the same database: the runner opens its
    /// own.
    SameOptions,
    /// A private database (in memory, or a temporary file with no name) that only the pool's
    /// connection sees: the runner works on that connection.
    PoolConnection,
}

/// How the runner reaches the pool's database; a private database in a pool of several
/// connections is refused (each connection is a different, empty database).
pub(crate) fn reach(pool: &SqlitePool) -> Result<Reach, Error> {
    let options = pool.connect_options();
    if !is_private(&options) {
        return Ok(Reach::SameOptions);
    }
    private(pool)
}

/// How the runner reaches a private database: through the pool's connection when it has at
/// most one; refused otherwise.
pub(crate) fn private(pool: &SqlitePool) -> Result<Reach, Error> {
    let max = pool.options().get_max_connections();
    if max > 1 {
        return Err(Error::PrivateDatabase {
            database: pool.connect_options().get_filename().to_owned(),
            max_connections: max,
        });
    }
    Ok(Reach::PoolConnection)
}

/// Whether connections with `options` that open a database in memory share it: only with a
/// shared cache and a URI name (`file:...`). Asked once SQLite says the database is in memory
/// (a setting sqlx's `Debug` does not show reads as not shared: the safe side).
pub(crate) fn shares_memory(options: &SqliteConnectOptions) -> bool {
    flag(options, "shared_cache")
        && options
            .get_filename()
            .to_string_lossy()
            .starts_with("file:")
}

/// Whether every new connection with `options` opens a new, private database.
fn is_private(options: &SqliteConnectOptions) -> bool {
    let name = options.get_filename().to_string_lossy();
    // ":memory:" is private whatever the flags, and "" is a private temporary database (an
    // in-memory one too). An in-memory database is shared only with a shared cache and a URI
    // name (`file:...`, as `sqlite::memory:` gets); the tests below check it against SQLite.
    name.is_empty() || name == ":memory:" || (flag(options, "in_memory") && !shares_memory(options))
}

/// Whether the pool opens its database read-only (`mode=ro`, or `immutable`), as its options
/// say; the runner's connection asks SQLite again once open ([`crate::ffi::is_read_only`]).
pub(crate) fn is_read_only(pool: &SqlitePool) -> bool {
    let options = pool.connect_options();
    flag(&options, "read_only") || flag(&options, "immutable")
}

/// Whether `options` name no database file: an in-memory or temporary database, whatever its
/// sharing (the command line refuses these: nothing it migrates would outlive it).
#[cfg(feature = "cli")]
pub(crate) fn names_no_file(options: &SqliteConnectOptions) -> bool {
    let name = options.get_filename().to_string_lossy();
    name.is_empty() || name == ":memory:" || flag(options, "in_memory")
}

/// A boolean setting of `options`. sqlx keeps these private; its `Debug` shows them (and
/// `to_url_lossy` panics on some file names). The tests below check the reading against what
/// SQLite does.
fn flag(options: &SqliteConnectOptions, name: &str) -> bool {
    format!("{options:?}").contains(&format!("{name}: true"))
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    #[test]
    fn private_and_shared_databases() {
        let private = [
            SqliteConnectOptions::new(),
            SqliteConnectOptions::new().in_memory(true),
            SqliteConnectOptions::from_str("sqlite://?mode=memory&cache=private").unwrap(),
            SqliteConnectOptions::from_str("sqlite:").unwrap(),
            SqliteConnectOptions::new().filename(""),
            // Shared cache needs a name: an anonymous in-memory database is private.
            SqliteConnectOptions::from_str("sqlite://?mode=memory").unwrap(),
        ];
        for options in private {
            assert!(is_private(&options), "{options:?}");
        }
        for named in ["private", "shared"] {
            let url = format!("sqlite:named?mode=memory&cache={named}");
            assert!(
                is_private(&SqliteConnectOptions::from_str(&url).unwrap()),
                "{url}"
            );
        }
        let uri = SqliteConnectOptions::from_str("sqlite:file:named?mode=memory&cache=shared");
        assert!(!is_private(&uri.unwrap()));
        let reachable = [
            SqliteConnectOptions::from_str("sqlite::memory:").unwrap(),
            SqliteConnectOptions::new().filename("app.db"),
            SqliteConnectOptions::from_str("sqlite:app.db?mode=ro").unwrap(),
        ];
        for options in reachable {
            assert!(!is_private(&options), "{options:?}");
        }
    }
}

#[cfg(test)]
mod private_means_private {
    use std::str::FromStr;

    use sqlx::{ConnectOptions, Connection};

    use super::*;

    /// What `is_private` says is what SQLite does: a second connection with the same options
    /// sees the first one's table exactly when the database is not private.
    #[tokio::test]
    async fn a_second_connection_sees_the_first_ones_tables_unless_private() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("app.db");
        let cases = [
            SqliteConnectOptions::new(),
            SqliteConnectOptions::new().in_memory(true),
            SqliteConnectOptions::from_str("sqlite://?mode=memory&cache=private").unwrap(),
            SqliteConnectOptions::from_str("sqlite://?mode=memory").unwrap(),
            SqliteConnectOptions::from_str("sqlite::memory:").unwrap(),
            SqliteConnectOptions::from_str("sqlite:named?mode=memory&cache=private").unwrap(),
            SqliteConnectOptions::from_str("sqlite:named?mode=memory&cache=shared").unwrap(),
            SqliteConnectOptions::from_str("sqlite:file:named?mode=memory&cache=shared").unwrap(),
            SqliteConnectOptions::new()
                .filename(&file)
                .create_if_missing(true),
        ];
        for options in cases {
            let mut first = options.connect().await.unwrap();
            sqlx::raw_sql("CREATE TABLE seen (x)")
                .execute(&mut first)
                .await
                .unwrap();
            let mut second = options.connect().await.unwrap();
            let seen: i64 =
                sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE name = 'seen'")
                    .fetch_one(&mut second)
                    .await
                    .unwrap();
            assert_eq!(seen == 0, is_private(&options), "{options:?}");
            second.close().await.unwrap();
            first.close().await.unwrap();
        }
    }
}

#[cfg(test)]
mod read_only {
    use std::str::FromStr;

    use sqlx::sqlite::SqlitePoolOptions;

    use super::*;

    #[tokio::test]
    async fn read_only_and_immutable_urls_are_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("app.db");
        std::fs::write(&file, b"").unwrap();
        let path = file.display();
        for (url, read_only) in [
            (format!("sqlite:{path}?mode=ro"), true),
            (format!("sqlite:{path}?immutable=1"), true),
            (format!("sqlite:{path}?immutable=true"), true),
            (format!("sqlite:{path}?mode=rw"), false),
            (format!("sqlite:{path}"), false),
        ] {
            let options = SqliteConnectOptions::from_str(&url).unwrap();
            let pool = SqlitePoolOptions::new().connect_lazy_with(options.clone());
            assert_eq!(is_read_only(&pool), read_only, "{url}");
            // And SQLite, asked on the opened connection, says the same.
            let mut conn = sqlx::ConnectOptions::connect(&options).await.unwrap();
            let asked = crate::ffi::is_read_only(&mut conn).await.unwrap();
            assert_eq!(asked, read_only, "{url}");
            sqlx::Connection::close(conn).await.unwrap();
        }
    }
}
