//! Section 8: `verify --database` on the legacy database (its copy, every migration run
//! forward, rolled back and run again, the tables each one touches hashed before and after),
//! next to what it cannot avoid: the migrations themselves on a copy, and the copy.
//! Target: at most twice the migrations plus the copy.

use std::path::Path;
use std::time::Instant;

use anyhow::ensure;
use backstop::{Migrator, Source};

use super::{
    Row, Section, fresh_copy, median, open_pool, raw_backup, read_through, remove_database, settle,
};

pub(super) async fn verify_database(
    legacy: &Path,
    work: &Path,
    shipped: &Source,
    runs: usize,
) -> anyhow::Result<Section> {
    let db = work.join("verify-migrate.sqlite3");
    let copy = work.join("verify-copy.sqlite3");
    let without = Migrator::new(shipped.clone()).without_backups();
    // Interleaved run by run, each from the same page cache state (the legacy file read
    // through, nothing dirty): verify, the migrations without a backup on a fresh copy, the
    // copy through SQLite's backup API (what verify makes of a database others may be
    // writing), and the kernel's copy of the file.
    let mut secs = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..runs {
        settle();
        read_through(legacy)?;
        let started = Instant::now();
        let report = backstop::verify(shipped, Some(legacy)).await?;
        secs[0].push(started.elapsed().as_secs_f64());
        ensure!(report.ok, "verify failed on the legacy database:\n{report}");
        ensure!(
            report.migrations.iter().any(|m| !m.tables.is_empty()),
            "verify measured no table"
        );

        fresh_copy(legacy, &db)?;
        let pool = open_pool(&db, false).await?;
        let started = Instant::now();
        let migrated = without.migrate(&pool).await?;
        secs[1].push(started.elapsed().as_secs_f64());
        pool.close().await;
        ensure!(migrated.to_version == shipped.latest_version(), "migrated");
        remove_database(&db)?;

        settle();
        read_through(legacy)?;
        let started = Instant::now();
        raw_backup(legacy, &copy, -1, false, false)?;
        secs[2].push(started.elapsed().as_secs_f64());
        remove_database(&copy)?;

        settle();
        let started = Instant::now();
        std::fs::copy(legacy, &copy)?;
        secs[3].push(started.elapsed().as_secs_f64());
        remove_database(&copy)?;
    }
    let [verify, migrate, api_copy, kernel_copy] = secs;
    let limit = median(&migrate) + median(&api_copy);
    let ratio = median(&verify) / limit;
    let kernel_ratio = median(&verify) / (median(&migrate) + median(&kernel_copy));
    Ok(Section {
        title: "8. verify --database on the legacy database (s)".to_owned(),
        rows: vec![
            Row::new("backstop::verify, starting from the database", "s", verify)
                .ratio(ratio, "migrations + copy")
                .target("<= 2.00x", ratio <= 2.0),
            Row::new("the migrations, without_backups(), on a copy", "s", migrate),
            Row::new("copy through SQLite's backup API (no fsync)", "s", api_copy),
            Row::new("std::fs::copy (no fsync)", "s", kernel_copy)
                .ratio(kernel_ratio, "verify / (migrations + this copy)"),
        ],
        notes: vec![
            "verify copies the database through SQLite's backup API (it may be live), runs \
             each migration forward, back and forward again, and hashes the tables each one \
             writes before and after it; tables nothing writes are counted once, not read"
                .to_owned(),
        ],
    })
}
