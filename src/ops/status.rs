//! `status`: the version, and each migration's state, checksum and probe answer, read on a
//! `query_only` connection in one read transaction.

use crate::connection::{OnDatabase, RunnerConnection, Use, execute, read_error};
use crate::error::Error;
use crate::history::History;
use crate::report::{StatusReport, StatusSummary};
use crate::run::database::Database;
use crate::run::plan::{self, Newer};
use crate::run::probe::probe_all;
use crate::source::Source;

/// Reports the state of `source` in the pool's database; reads only.
pub(crate) async fn status(
    db: &Database<'_>,
    source: &Source,
    newer: Newer,
) -> Result<StatusReport, Error> {
    let database = db.name().to_owned();
    let mut conn =
        RunnerConnection::open(db.pool(), &database, Use::Read, crate::source::judge).await?;
    let read = async {
        let mut on = conn.guarded();
        let conn = &mut *on.conn;
        execute(conn, "BEGIN")
            .await
            .on(&database, "starting a read transaction")?;
        let history = match History::read(conn).await {
            Ok(history) => history,
            Err(e) => return Err(read_error(conn, &database, "reading the history", e).await),
        };
        let probes = probe_all(&mut on, source).await;
        Ok::<_, Error>((history, probes))
    }
    .await;
    let _ = execute(conn.get(), "ROLLBACK").await;
    conn.close().await;
    let (history, probes) = read?;
    let migrations = plan::status(source, &history, probes);
    let newer_accepted = newer == Newer::Accept;
    Ok(StatusReport {
        current_version: history.current_version(),
        latest_version: source.latest_version(),
        summary: StatusSummary::of(&migrations, newer_accepted),
        migrations,
        newer_accepted,
        database,
    })
}
