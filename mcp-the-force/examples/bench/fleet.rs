//! Section 9: a fleet of small WAL databases receiving one migration with backups, through the
//! command line (`migrate --databases`), at 1, 2 and the CPU count's jobs, next to the same
//! work done bare at the same parallelism (per file: the file copied and flushed, then the
//! migration's SQL in one transaction); the CLI's peak memory and open descriptors at 1,000
//! and 4,000 files (`--fleet`: 1,000 by default). Targets: at most 1.5 times the bare floor at the CPU count's jobs; peak
//! memory under 64 MB and at 4,000 files at most 1.1 times that at 1,000.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use futures_util::StreamExt;
use sqlx::sqlite::{SqliteConnectOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection};

use super::{ChildMigrate, MB, Ratio, Row, Section, median, settle};

/// How many times larger the fleet whose memory is compared is.
const LARGER: usize = 4;
/// Rows of each database (about 300 KB).
const ROWS: usize = 2500;
/// The one migration, its rollback and its probe.
const FORWARD: &str = "ALTER TABLE notes ADD COLUMN tag TEXT;\n\
                       UPDATE notes SET tag = substr(body, 1, 4) WHERE id % 10 = 0;\n\
                       CREATE INDEX notes_tag ON notes (tag);\n";
const ROLLBACK: &str = "DROP INDEX notes_tag;\nALTER TABLE notes DROP COLUMN tag;\n";
const PROBE: &str = "SELECT count(*) FROM pragma_table_info('notes') WHERE name = 'tag';\n";

pub(super) async fn fleet(work: &Path, fleet: usize, runs: usize) -> anyhow::Result<Section> {
    let title =
        format!("9. A fleet of {fleet} small WAL databases, one migration each, with backups");
    let cli = match ChildMigrate::find() {
        ChildMigrate::Cli(cli) => cli,
        ChildMigrate::SelfChild(_) => {
            return Ok(Section {
                title,
                rows: Vec::new(),
                notes: vec!["not measured: the migrate CLI could not be built".into()],
            });
        }
    };
    let root = work.join("fleet");
    let migrations = root.join("migrations");
    std::fs::create_dir_all(&migrations)?;
    std::fs::write(migrations.join("001_notes_tag.sql"), FORWARD)?;
    std::fs::write(migrations.join("001_notes_tag.rollback.sql"), ROLLBACK)?;
    std::fs::write(migrations.join("001_notes_tag.probe.sql"), PROBE)?;
    let template = root.join("template.sqlite3");
    make_template(&template).await?;
    let size_kb = std::fs::metadata(&template)?.len() / 1024;
    let dbs = root.join("dbs");

    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let mut jobs = vec![1, 2, cpus];
    jobs.dedup();
    let runs = runs.min(3);
    let mut rows = Vec::new();
    let mut last_pair = (0.0, 0.0);
    for &j in &jobs {
        let (mut fleet_secs, mut bare_secs, mut fds) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            // Interleaved, each from the same state: the fleet's files fresh, flushed.
            let files = reset(&template, &dbs, fleet)?;
            let started = Instant::now();
            let most_fds = run_cli(&cli, &migrations, &dbs, j, &root)?;
            fleet_secs.push(started.elapsed().as_secs_f64());
            fds.push(most_fds as f64);

            reset(&template, &dbs, fleet)?;
            let started = Instant::now();
            bare(&files, &dbs.join("bare-backups"), j).await?;
            bare_secs.push(started.elapsed().as_secs_f64());
        }
        let (f, b) = (median(&fleet_secs), median(&bare_secs));
        let per_second = fleet as f64 / f;
        rows.push(
            Row::new(format!("migrate --databases, --jobs {j}"), "s", fleet_secs)
                .ratio(f / b, format!("bare at {j} jobs"))
                .raw(serde_json::json!({ "databases_per_second": per_second })),
        );
        rows.push(Row::new(format!("bare floor, {j} at once"), "s", bare_secs));
        rows.push(Row::new(
            format!("most open descriptors, --jobs {j}"),
            "fds",
            fds,
        ));
        last_pair = (f, b);
    }
    let ratio = last_pair.0 / last_pair.1;
    let target_row = rows.len() - 3;
    rows[target_row].set_target(&format!("≤ 1.5× bare at {cpus} jobs"), ratio <= 1.5);

    // Memory and descriptors of the fleet and of one four times larger, at the CPU count's
    // jobs, once each (the larger one takes minutes).
    let mut peaks = Vec::new();
    for n in [fleet, LARGER * fleet] {
        reset(&template, &dbs, n)?;
        let samples = vec![peak_rss(&cli, &migrations, &dbs, cpus, &root)? as f64 / MB];
        reset(&template, &dbs, n)?;
        let fds = vec![run_cli(&cli, &migrations, &dbs, cpus, &root)? as f64];
        let peak = median(&samples);
        peaks.push(peak);
        rows.push(
            Row::new(format!("peak RSS of the CLI, {n} databases"), "MB", samples)
                .target("< 64 MB", peak < 64.0),
        );
        rows.push(Row::new(
            format!("most open descriptors, {n} databases"),
            "fds",
            fds,
        ));
    }
    let growth = peaks[1] / peaks[0];
    let last = rows.len() - 2;
    rows[last].ratio = Some(Ratio {
        value: growth,
        of: format!("{fleet} databases"),
    });
    rows[last].set_target(&format!("≤ 1.1× at {fleet}"), growth <= 1.1);
    std::fs::remove_dir_all(&root)?;
    Ok(Section {
        title,
        rows,
        notes: vec![
            format!(
                "each database {size_kb} KB (WAL, {ROWS} rows); the migration adds a column, \
                 fills a tenth of it and indexes it; every database is backed up first"
            ),
            "bare: per file, a copy of it flushed (std::fs::copy + fsync) beside it, then the \
             migration's SQL in one BEGIN IMMEDIATE transaction on a connection of its own \
             (synchronous = FULL, as backstop's runner), the same number at once"
                .into(),
            format!(
                "descriptors: the CLI's /proc/PID/fd counted every 2 ms; the CLI's wall time \
                 includes its start; timings {runs} run(s) each, interleaved; memory once"
            ),
        ],
    })
}

/// A WAL database of `ROWS` rows, checkpointed, to copy into the fleet.
async fn make_template(path: &Path) -> anyhow::Result<()> {
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .connect()
        .await?;
    sqlx::raw_sql(
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL, at INTEGER NOT NULL)",
    )
    .execute(&mut conn)
    .await?;
    let fill = format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ROWS}) \
         INSERT INTO notes (body, at) SELECT hex(randomblob(40)), i FROM n"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(fill))
        .execute(&mut conn)
        .await?;
    sqlx::raw_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(())
}

/// `n` fresh copies of the template in `dbs` (nothing else there), flushed; their paths.
fn reset(template: &Path, dbs: &Path, n: usize) -> anyhow::Result<Vec<PathBuf>> {
    if dbs.exists() {
        std::fs::remove_dir_all(dbs)?;
    }
    std::fs::create_dir_all(dbs)?;
    let files: Vec<PathBuf> = (0..n)
        .map(|i| dbs.join(format!("tenant-{i:05}.sqlite3")))
        .collect();
    for file in &files {
        std::fs::copy(template, file)?;
    }
    settle();
    Ok(files)
}

fn cli_command(cli: &Path, migrations: &Path, dbs: &Path, jobs: usize) -> Command {
    let mut command = Command::new(cli);
    command
        .arg("--migrations")
        .arg(migrations)
        .args(["--json", "migrate", "--databases"])
        .arg(dbs.join("*.sqlite3"))
        .arg("--jobs")
        .arg(jobs.to_string());
    command
}

/// Runs the fleet through the CLI; checks that every database ended well; returns the most
/// descriptors it had open at once.
fn run_cli(
    cli: &Path,
    migrations: &Path,
    dbs: &Path,
    jobs: usize,
    logs: &Path,
) -> anyhow::Result<usize> {
    let out = logs.join("fleet.json");
    let mut child = cli_command(cli, migrations, dbs, jobs)
        .stdin(Stdio::null())
        .stdout(File::create(&out)?)
        .stderr(File::create(logs.join("fleet.stderr"))?)
        .spawn()?;
    let fd_dir = PathBuf::from(format!("/proc/{}/fd", child.id()));
    let mut most = 0;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if let Ok(entries) = std::fs::read_dir(&fd_dir) {
            most = most.max(entries.count());
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&out)?)
        .with_context(|| std::fs::read_to_string(logs.join("fleet.stderr")).unwrap_or_default())?;
    if !status.success() || report["failed"] != 0 || report["not_started"] != 0 {
        bail!("the fleet failed: {}", report["databases"][0]);
    }
    Ok(most)
}

/// Runs the fleet through the CLI, started by this binary's small `--peak-rss-of` helper (so
/// that this process's size is not counted); its peak resident memory in bytes.
fn peak_rss(
    cli: &Path,
    migrations: &Path,
    dbs: &Path,
    jobs: usize,
    logs: &Path,
) -> anyhow::Result<u64> {
    let fleet = cli_command(cli, migrations, dbs, jobs);
    let out = Command::new(std::env::current_exe()?)
        .args(["--peak-rss-of", "--"])
        .arg(fleet.get_program())
        .args(fleet.get_args())
        .stdin(Stdio::null())
        .stderr(File::create(logs.join("fleet.stderr"))?)
        .output()?;
    ensure!(
        out.status.success(),
        "the fleet failed: {}",
        std::fs::read_to_string(logs.join("fleet.stderr")).unwrap_or_default()
    );
    let peak = String::from_utf8_lossy(&out.stdout);
    peak.trim()
        .parse()
        .with_context(|| format!("the helper printed {peak:?}"))
}

/// The floor: per file, a flushed copy beside it, then the migration's SQL in one transaction;
/// `jobs` files at once.
async fn bare(files: &[PathBuf], backups: &Path, jobs: usize) -> anyhow::Result<()> {
    std::fs::create_dir_all(backups)?;
    let results: Vec<anyhow::Result<()>> = futures_util::stream::iter(files)
        .map(|file| async move {
            let backup = backups.join(file.file_name().context("a file name")?);
            let from = file.clone();
            tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
                std::fs::copy(&from, &backup)?;
                File::open(&backup)?.sync_all()?;
                Ok(())
            })
            .await??;
            let mut conn = SqliteConnectOptions::new()
                .filename(file)
                .synchronous(SqliteSynchronous::Full)
                .disable_statement_logging()
                .connect()
                .await?;
            sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut conn).await?;
            sqlx::raw_sql(FORWARD).execute(&mut conn).await?;
            sqlx::raw_sql("COMMIT").execute(&mut conn).await?;
            conn.close().await?;
            Ok(())
        })
        .buffer_unordered(jobs)
        .collect()
        .await;
    results.into_iter().collect()
}
