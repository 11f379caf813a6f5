//! `status`: the version, and each migration's state, checksum and probe answer, read on a
//! `query_only` connection in one read transaction.

use sqlx::{Connection, SqlitePool};

use crate::connection::{connect, database_error, display_name, execute};
use crate::error::Error;
use crate::history::History;
use crate::plan;
use crate::probe::probe_all;
use crate::report::StatusReport;
use crate::source::Source;

/// Reports the state of `source` in the pool's database; reads only.
pub(crate) async fn status(pool: &SqlitePool, source: &Source) -> Result<StatusReport, Error> {
    let database = display_name(pool);
    let options = (*pool.connect_options())
        .clone()
        .create_if_missing(false)
        .pragma("query_only", "ON");
    let mut conn = connect(&options, &database).await?;
    let read = async {
        execute(&mut conn, "BEGIN")
            .await
            .map_err(|e| database_error(&database, "starting a read transaction", e))?;
        let history = History::read(&mut conn)
            .await
            .map_err(|e| database_error(&database, "reading the history", e))?;
        let probes = probe_all(&mut conn, source).await;
        let _ = execute(&mut conn, "ROLLBACK").await;
        Ok::<_, Error>((history, probes))
    }
    .await;
    let _ = conn.close().await;
    let (history, probes) = read?;
    Ok(StatusReport {
        current_version: history.current_version(),
        latest_version: source.latest_version(),
        migrations: plan::status(source, &history, probes),
        database,
    })
}
