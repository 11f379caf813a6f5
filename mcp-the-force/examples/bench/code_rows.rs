//! Section 7: a code migration updating 100,000 rows, next to the same updates run bare with
//! sqlx in one transaction (target: at most 1.1 times as long).

use std::path::Path;
use std::time::Instant;

use anyhow::ensure;
use backstop::{CodeMigration, Migrator, Source};
use sqlx::SqliteConnection;

use super::{Row, Section, median, ms, open_pool, remove_database};

/// Rows the code migration updates.
const ROWS: i64 = 100_000;

/// The work both sides do: every row read, its value changed in Rust, written back one
/// `UPDATE` at a time.
async fn shout(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    let rows: Vec<(i64, String)> = sqlx::query_as("SELECT id, v FROM t")
        .fetch_all(&mut *conn)
        .await?;
    for (id, v) in rows {
        sqlx::query("UPDATE t SET v = ?1 WHERE id = ?2")
            .bind(v.to_uppercase())
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// A new database holding `ROWS` rows in lower case.
async fn fill(db: &Path) -> anyhow::Result<sqlx::SqlitePool> {
    remove_database(db)?;
    let pool = open_pool(db, true).await?;
    sqlx::query(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
         INSERT INTO t SELECT i, 'row ' || i FROM n",
    )
    .bind(ROWS)
    .execute(&pool)
    .await?;
    Ok(pool)
}

pub(super) async fn code_migration(work: &Path, runs: usize) -> anyhow::Result<Section> {
    let db = work.join("code.sqlite3");
    let source = Source::from_files(Vec::<(std::path::PathBuf, Vec<u8>)>::new())?.with_code(
        CodeMigration::new(1, "shout", "r1", backstop::code!(shout))
            .probe("SELECT NOT EXISTS (SELECT 1 FROM t WHERE v <> upper(v))")
            .data_probe()
            .rollback_sql("UPDATE t SET v = lower(v)"),
    )?;
    let migrator = Migrator::new(source).without_backups();
    let (mut ours, mut bare) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let pool = fill(&db).await?;
        let started = Instant::now();
        let report = migrator.migrate(&pool).await?;
        ours.push(ms(started.elapsed()));
        ensure!(report.migrations.len() == 1, "the code migration ran");
        pool.close().await;

        let pool = fill(&db).await?;
        let mut conn = pool.acquire().await?;
        let started = Instant::now();
        sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut *conn).await?;
        shout(&mut conn).await?;
        sqlx::raw_sql("COMMIT").execute(&mut *conn).await?;
        bare.push(ms(started.elapsed()));
        drop(conn);
        pool.close().await;
    }
    remove_database(&db)?;
    let ratio = median(&ours) / median(&bare);
    Ok(Section {
        title: format!("7. A code migration updating {ROWS} rows (ms)"),
        rows: vec![
            Row::new(
                "backstop migrate, code migration, without_backups()",
                "ms",
                ours,
            )
            .ratio(ratio, "bare sqlx")
            .target("<= 1.10x", ratio <= 1.1),
            Row::new(
                "bare sqlx, the same function in one transaction",
                "ms",
                bare,
            ),
        ],
        notes: vec![
            "the same async fn both times; backstop adds its lock, its probe before and after \
             (a scan of the table each), the authorizer judging each statement, the history row"
                .to_owned(),
        ],
    })
}
