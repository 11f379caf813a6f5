//! How close backstop is to the physical limits, and how it compares with sqlx's migrator.
//!
//! ```text
//! cargo run --release --example bench -- [--size-mb S] [--runs R] [--dir DIR] [--json PATH]
//! ```
//!
//! Generates (or reuses) a legacy session database of S MB (default 1024) and one of S/4 MB
//! with the code of `mcp_the_force_legacy_db`, then measures, R times each (default 5), side by side in
//! this one process:
//!
//! 1. backup throughput: `Migrator::backup` vs `std::fs::copy` (with and without an fsync),
//!    `VACUUM INTO`, the `sqlite3` shell's `.backup` (when `sqlite3` is on the PATH) and SQLite's
//!    backup API driven directly with several step sizes;
//! 2. a full migrate (0 → latest, the shipped migrations) with a backup, without, and the same
//!    SQL run bare in one transaction by plain sqlx;
//! 3. `migrate` with nothing pending and `status`, with 1,000 migrations in the source;
//! 4. 1,000 small migrations applied in one run: backstop vs `sqlx::migrate::Migrator`;
//! 5. the peak resident memory of the `migrate` CLI migrating the S and the S/4 MB database;
//! 6. the longest commit a concurrent writer sees while a migrate with backup runs;
//! 7. a code migration updating 100,000 rows, next to the same function run bare with sqlx.
//!
//! Sections 3 and 4 are measured again with every thread on one CPU (Linux), which shows how
//! much of them is the handoff of each statement to sqlx's worker thread and back.
//!
//! It prints a table (median, min, max, ratio, target) and writes every raw sample to the
//! JSON file (default `target/bench.json`). Targets are shown, never enforced: the exit code is
//! 0 whatever the figures (these are shared, noisy machines; compare ratios from one run).
//! Every run works on a fresh copy of the generated file; copying is never timed.

#[allow(dead_code)]
#[path = "legacy/legacy_db.rs"]
mod legacy_db;

#[path = "bench/code_rows.rs"]
mod code_rows;
#[path = "bench/fleet.rs"]
mod fleet;
#[path = "bench/verify_data.rs"]
mod verify_data;

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use backstop::{BackupCopy, Migrator, Source};
use clap::Parser;
use legacy_db::{GENERATOR_VERSION, MB, Params, remove_database, with_suffix};
use serde::Serialize;
use serde_json::json;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, SqliteConnection, SqlitePool};

#[derive(Parser)]
#[command(about = "Benchmark backstop against the physical limits and sqlx's migrator")]
struct Args {
    /// Size of the generated legacy database, in MB (2^20 bytes)
    #[arg(long, default_value_t = 1024)]
    size_mb: u64,
    /// Runs of each measurement (medians are reported)
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Where the generated databases and the working copies go
    #[arg(long, default_value = "target/bench-data")]
    dir: PathBuf,
    /// Where to write every figure and raw sample
    #[arg(long, default_value = "target/bench.json")]
    json: PathBuf,
    /// Seed of the generated databases
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Databases in section 9's fleet (its memory is also measured at four times as many)
    #[arg(long, default_value_t = 1000)]
    fleet: usize,
    /// Only these sections (by number, comma-separated; all by default)
    #[arg(long, value_delimiter = ',')]
    sections: Vec<usize>,
    /// Internal: migrate this database in this process and exit (the peak-memory child when
    /// the `migrate` CLI is not available)
    #[arg(long, hide = true, requires = "child_backups")]
    child_migrate: Option<PathBuf>,
    #[arg(long, hide = true)]
    child_backups: Option<PathBuf>,
    /// Internal: run the command after `--`, print its peak resident memory in bytes
    #[arg(long, hide = true, requires = "command")]
    peak_rss_of: bool,
    #[arg(last = true, hide = true)]
    command: Vec<OsString>,
}

/// Migrations in the synthetic sources of sections 3 and 4.
const MANY: usize = 1000;
/// No-op migrates timed in section 3.
const NOOP_RUNS: usize = 200;
/// `status` calls timed in section 3.
const STATUS_RUNS: usize = 20;
/// History stores in the generated databases.
const HISTORY_STORES: u64 = 40;
/// Legacy session rows per MB of the generated databases.
const SESSIONS_PER_MB: u64 = 100;
/// The concurrent writer's pause between two commits.
const WRITER_PAUSE: Duration = Duration::from_millis(2);
/// How long the writer runs before and after the migrate.
const WRITER_QUIET: Duration = Duration::from_millis(500);

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.peak_rss_of {
        return peak_rss_of(&args.command);
    }
    tokio::runtime::Runtime::new()?.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    if let (Some(db), Some(backups)) = (&args.child_migrate, &args.child_backups) {
        return child_migrate(db, backups).await;
    }
    ensure!(args.runs >= 1, "--runs must be at least 1");
    ensure!(args.size_mb >= 1, "--size-mb must be at least 1");
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let work = args.dir.join("work");
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    std::fs::create_dir_all(&work)?;

    let started = Instant::now();
    let full = legacy_db(&args.dir, args.size_mb, args.seed).await?;
    let quarter = legacy_db(&args.dir, (args.size_mb / 4).max(1), args.seed).await?;
    let shipped = backstop::embed_migrations!("$CARGO_MANIFEST_DIR/migrations")?;
    let machine = machine(&args.dir).await;

    let bench = Bench {
        runs: args.runs,
        work: work.clone(),
        shipped,
    };
    let wanted = |n: usize| args.sections.is_empty() || args.sections.contains(&n);
    let mut sections = Vec::new();
    if wanted(1) {
        sections.push(bench.backups(&full).await?);
    }
    if wanted(2) {
        sections.push(bench.full_migrate(&full).await?);
    }
    if wanted(3) {
        sections.push(bench.many_noop_and_status().await?);
    }
    if wanted(4) {
        sections.push(bench.many_applied().await?);
    }
    if wanted(5) {
        sections.push(bench.peak_memory(&full, &quarter).await?);
    }
    if wanted(6) {
        sections.push(bench.writer_stall(&full).await?);
    }
    if wanted(7) {
        sections.push(code_rows::code_migration(&work, args.runs).await?);
    }
    if wanted(8) {
        sections.push(verify_data::verify_database(&full, &work, &bench.shipped, args.runs).await?);
    }
    if wanted(9) {
        sections.push(fleet::fleet(&work, args.fleet, args.runs).await?);
    }
    std::fs::remove_dir_all(&work)?;

    let report = Report {
        size_mb: args.size_mb,
        runs: args.runs,
        database_bytes: std::fs::metadata(&full)?.len(),
        quarter_bytes: std::fs::metadata(&quarter)?.len(),
        seconds: started.elapsed().as_secs_f64(),
        machine,
        sections,
    };
    print!("{}", report.table());
    if let Some(parent) = args.json.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.json, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("writing {}", args.json.display()))?;
    println!("raw samples: {}", args.json.display());
    Ok(())
}

// ------------------------------------------------------------------ figures and the report

/// One measured figure: its samples and what it is compared with.
#[derive(Serialize)]
struct Row {
    label: String,
    unit: &'static str,
    median: f64,
    min: f64,
    max: f64,
    samples: Vec<f64>,
    /// The figure as a ratio to another one of the same run.
    #[serde(skip_serializing_if = "Option::is_none")]
    ratio: Option<Ratio>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<Target>,
    /// More raw data (per-commit latencies, sizes...).
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    raw: serde_json::Value,
}

#[derive(Serialize)]
struct Ratio {
    value: f64,
    /// What the ratio is taken of ("copy", "backup + bare SQL", ...).
    of: String,
}

#[derive(Serialize)]
struct Target {
    text: String,
    met: bool,
}

impl Row {
    fn new(label: impl Into<String>, unit: &'static str, samples: Vec<f64>) -> Self {
        let (median, min, max) = stats(&samples);
        Row {
            label: label.into(),
            unit,
            median,
            min,
            max,
            samples,
            ratio: None,
            target: None,
            raw: serde_json::Value::Null,
        }
    }

    fn ratio(mut self, value: f64, of: impl Into<String>) -> Self {
        self.ratio = Some(Ratio {
            value,
            of: of.into(),
        });
        self
    }

    fn target(mut self, text: &str, met: bool) -> Self {
        self.set_target(text, met);
        self
    }

    fn set_target(&mut self, text: &str, met: bool) {
        self.target = Some(Target {
            text: text.to_owned(),
            met,
        });
    }

    fn raw(mut self, raw: serde_json::Value) -> Self {
        self.raw = raw;
        self
    }
}

#[derive(Serialize)]
struct Section {
    title: String,
    rows: Vec<Row>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    notes: Vec<String>,
}

#[derive(Serialize)]
struct Report {
    size_mb: u64,
    runs: usize,
    database_bytes: u64,
    quarter_bytes: u64,
    seconds: f64,
    machine: serde_json::Value,
    sections: Vec<Section>,
}

impl Report {
    fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\nbackstop bench: {:.0} MB legacy database ({} bytes), {} run(s) each, {:.0} s in all",
            self.database_bytes as f64 / MB,
            self.database_bytes,
            self.runs,
            self.seconds
        );
        for section in &self.sections {
            let _ = writeln!(out, "\n== {}", section.title);
            let _ = writeln!(
                out,
                "{:<52} {:>9} {:>9} {:>9}  {:<26} target",
                "figure", "median", "min", "max", "ratio"
            );
            for row in &section.rows {
                let label = format!("{} ({})", row.label, row.unit);
                let ratio = row
                    .ratio
                    .as_ref()
                    .map(|r| format!("{:.2}x {}", r.value, r.of))
                    .unwrap_or_default();
                let target = row
                    .target
                    .as_ref()
                    .map(|t| format!("{} {}", t.text, if t.met { "met" } else { "MISSED" }))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "{label:<52} {:>9} {:>9} {:>9}  {ratio:<26} {target}",
                    num(row.median),
                    num(row.min),
                    num(row.max),
                );
            }
            for note in &section.notes {
                let _ = writeln!(out, "  note: {note}");
            }
        }
        out
    }
}

/// A number with about four significant digits.
fn num(x: f64) -> String {
    match x.abs() {
        v if v >= 1000.0 => format!("{x:.0}"),
        v if v >= 100.0 => format!("{x:.1}"),
        v if v >= 10.0 => format!("{x:.2}"),
        _ => format!("{x:.3}"),
    }
}

/// (median, min, max); NaN for no samples.
fn stats(samples: &[f64]) -> (f64, f64, f64) {
    if samples.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    (median, sorted[0], sorted[n - 1])
}

fn median(samples: &[f64]) -> f64 {
    stats(samples).0
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

// ------------------------------------------------------------------ the measurements

struct Bench {
    runs: usize,
    /// Scratch directory for working copies (removed at the end).
    work: PathBuf,
    /// The shipped migrations, embedded.
    shipped: Source,
}

impl Bench {
    /// Section 1: backup throughput, every method on the same working copy, interleaved run by
    /// run.
    async fn backups(&self, legacy: &Path) -> anyhow::Result<Section> {
        let live = self.work.join("live.sqlite3");
        fresh_copy(legacy, &live)?;
        let bytes = std::fs::metadata(&live)?.len();
        let out = self.work.join("out.sqlite3");
        let pool = open_pool(&live, false).await?;
        let migrator = Migrator::new(self.shipped.clone())
            .backup_dir(self.work.join("backups"))
            .keep_backups(1);
        let shell = sqlite3_shell();
        read_through(&live)?; // the source in the page cache, for every method alike

        let mut methods = vec![
            BackupMethod::Copy,
            BackupMethod::CopyFsync,
            BackupMethod::Backstop(BackupCopy::Fastest),
            BackupMethod::Backstop(BackupCopy::KernelCopy),
            BackupMethod::Backstop(BackupCopy::ReadWrite),
            BackupMethod::Blocks,
            BackupMethod::VacuumInto,
        ];
        if let Some(version) = &shell {
            methods.push(BackupMethod::Shell(version.clone()));
        }
        // One change at a time from the plain API, then all of them (as backstop copies).
        for (step, mmap, gather) in [
            (100, false, false),
            (BACKSTOP_STEP_PAGES, false, false),
            (-1, false, false),
            (BACKSTOP_STEP_PAGES, true, false),
            (BACKSTOP_STEP_PAGES, false, true),
            (BACKSTOP_STEP_PAGES, true, true),
        ] {
            methods.push(BackupMethod::Api { step, mmap, gather });
        }
        let mut secs: Vec<Vec<f64>> = vec![Vec::new(); methods.len()];
        for _ in 0..self.runs {
            for (method, samples) in methods.iter().zip(&mut secs) {
                remove_database(&out)?;
                settle();
                let started = Instant::now();
                let made = match method {
                    BackupMethod::Copy | BackupMethod::CopyFsync => {
                        std::fs::copy(&live, &out)?;
                        out.clone()
                    }
                    BackupMethod::Backstop(way) => {
                        migrator.clone().backup_copy(*way).backup(&pool).await?.path
                    }
                    BackupMethod::Blocks => {
                        copy_in_blocks(&live, &out)?;
                        out.clone()
                    }
                    BackupMethod::VacuumInto => {
                        sqlx::query("VACUUM INTO ?")
                            .bind(out.to_str().context("non-UTF-8 path")?)
                            .execute(&pool)
                            .await?;
                        out.clone()
                    }
                    BackupMethod::Shell(_) => {
                        let status = Command::new("sqlite3")
                            .arg(&live)
                            .arg(format!(".backup '{}'", out.display()))
                            .stdin(Stdio::null())
                            .status()?;
                        ensure!(status.success(), "sqlite3 .backup failed: {status}");
                        out.clone()
                    }
                    BackupMethod::Api { step, mmap, gather } => {
                        raw_backup(&live, &out, *step, *mmap, *gather)?;
                        out.clone()
                    }
                };
                if method.syncs_itself() {
                    File::open(&made)?.sync_all()?;
                }
                samples.push(started.elapsed().as_secs_f64());
                std::fs::remove_file(&made)?;
            }
        }
        pool.close().await;
        remove_database(&live)?;

        let throughput =
            |s: &[f64]| -> Vec<f64> { s.iter().map(|t| bytes as f64 / MB / t).collect() };
        let copy = median(&throughput(&secs[0]));
        let copy_fsync = median(&throughput(&secs[1]));
        let backstop = median(&throughput(&secs[2]));
        let mut rows = Vec::new();
        for (method, secs) in methods.iter().zip(&secs) {
            let samples = throughput(secs);
            let value = median(&samples);
            let mut row = Row::new(method.label(), "MB/s", samples)
                .ratio(value / copy, "copy")
                .raw(json!({ "seconds": secs }));
            if *method == BackupMethod::Backstop(BackupCopy::Fastest) {
                row = row.target(">= 0.90x copy + fsync", value / copy_fsync >= 0.9);
            }
            rows.push(row);
        }
        rows.insert(
            3,
            Row::new(
                "backstop / (copy + fsync)",
                "ratio",
                vec![backstop / copy_fsync],
            )
            .ratio(backstop / copy_fsync, "copy + fsync")
            .target(">= 0.90x, vs copy + fsync", backstop / copy_fsync >= 0.9),
        );
        let mut notes = Vec::new();
        match self.backup_on_xfs(legacy).await? {
            Ok(ms) => {
                let value = median(&ms);
                rows.push(
                    Row::new("backstop Migrator::backup on XFS with reflink", "ms", ms)
                        .target("< 100 ms", value < 100.0),
                );
            }
            Err(why) => notes.push(format!("XFS with reflink not measured: {why}")),
        }
        Ok(Section {
            title: format!(
                "1. Backup of the {:.0} MB legacy database (MB/s, higher is better)",
                bytes as f64 / MB
            ),
            rows,
            notes: [
                "the source is in the page cache; every method but the plain copy includes \
                     an fsync of the copy; on ext4 the fastest way is copy_file_range (ext4 \
                     cannot clone)"
                    .to_owned(),
                format!(
                    "backup API rows: sqlite3_backup_step(N) driven directly, destination \
                         as backstop opens it (journal off, synchronous off); backstop's \
                         STEP_PAGES is {BACKSTOP_STEP_PAGES}; mmap: the source read through a \
                         memory map; gathered writes: the destination written through \
                         backstop's VFS that gathers page writes into writes of 64 KiB"
                ),
            ]
            .into_iter()
            .chain(notes)
            .collect(),
        })
    }

    /// `Migrator::backup` of the legacy database on a loop-mounted XFS image made with
    /// reflink (`mkfs.xfs -m reflink=1`), in ms per run; why not, when this machine cannot
    /// (not root, no `mkfs.xfs`, no loop device).
    async fn backup_on_xfs(&self, legacy: &Path) -> anyhow::Result<Result<Vec<f64>, String>> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Ok(Err("not running as root".into()));
        }
        let (image, dir) = (self.work.join("xfs.img"), self.work.join("xfs"));
        // XFS wants at least 300 MB.
        let size = (std::fs::metadata(legacy)?.len() * 3 + (256 << 20)).max(512 << 20);
        let run = |cmd: &mut Command| -> Result<(), String> {
            let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
            match out.status.success() {
                true => Ok(()),
                false => Err(format!(
                    "{cmd:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                        .lines()
                        .next()
                        .unwrap_or_default()
                )),
            }
        };
        std::fs::create_dir_all(&dir)?;
        let mounted = run(Command::new("truncate")
            .arg("-s")
            .arg(size.to_string())
            .arg(&image))
        .and_then(|()| {
            run(Command::new("mkfs.xfs")
                .args(["-q", "-f", "-m", "reflink=1"])
                .arg(&image))
        })
        .and_then(|()| {
            run(Command::new("mount")
                .args(["-o", "loop"])
                .arg(&image)
                .arg(&dir))
        });
        if let Err(why) = mounted {
            let _ = std::fs::remove_file(&image);
            return Ok(Err(why));
        }
        let measured = async {
            let db = dir.join("live.sqlite3");
            fresh_copy(legacy, &db)?;
            let pool = open_pool(&db, false).await?;
            let migrator = Migrator::new(self.shipped.clone())
                .backup_dir(dir.join("backups"))
                .keep_backups(1);
            let mut ms = Vec::new();
            for _ in 0..self.runs {
                settle();
                let started = Instant::now();
                let info = migrator.backup(&pool).await?;
                ms.push(started.elapsed().as_secs_f64() * 1000.0);
                std::fs::remove_file(info.path)?;
            }
            pool.close().await;
            anyhow::Ok(ms)
        }
        .await;
        let _ = run(Command::new("umount").arg(&dir));
        std::fs::remove_file(&image)?;
        Ok(Ok(measured?))
    }

    /// Section 2: a full migrate of the legacy database: with a backup, without, the bare SQL,
    /// and the backup alone.
    async fn full_migrate(&self, legacy: &Path) -> anyhow::Result<Section> {
        let db = self.work.join("migrate.sqlite3");
        let backup_dir = self.work.join("backups");
        let latest = self.shipped.latest_version();
        let with_backup = Migrator::new(self.shipped.clone())
            .backup_dir(&backup_dir)
            .keep_backups(1);
        let without = Migrator::new(self.shipped.clone()).without_backups();
        // Variants, interleaved run by run, each on a fresh copy made the same way: migrate with
        // a backup, migrate without, the bare SQL, and the backup alone (`Migrator::backup`), so
        // that the limit `backup alone + bare SQL` is measured under the same conditions as
        // what it bounds.
        let mut secs = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
        for _ in 0..self.runs {
            for (variant, samples) in secs.iter_mut().enumerate() {
                fresh_copy(legacy, &db)?;
                let elapsed = match variant {
                    2 => {
                        let mut conn = SqliteConnectOptions::new()
                            .filename(&db)
                            .foreign_keys(false)
                            .connect()
                            .await?;
                        let started = Instant::now();
                        bare_sql(&mut conn, &self.shipped).await?;
                        let elapsed = started.elapsed();
                        let unified: i64 = sqlx::query_scalar(
                            "SELECT count(*) FROM pragma_table_info('vector_stores')
                             WHERE name = 'name'",
                        )
                        .fetch_one(&mut conn)
                        .await?;
                        ensure!(unified == 1, "the bare SQL did not unify vector_stores");
                        conn.close().await?;
                        elapsed
                    }
                    3 => {
                        let pool = open_pool(&db, false).await?;
                        let started = Instant::now();
                        let path = with_backup.backup(&pool).await?.path;
                        let elapsed = started.elapsed();
                        pool.close().await;
                        std::fs::remove_file(path)?;
                        elapsed
                    }
                    _ => {
                        let migrator = if variant == 0 { &with_backup } else { &without };
                        let pool = open_pool(&db, false).await?;
                        let started = Instant::now();
                        let report = migrator.migrate(&pool).await?;
                        let elapsed = started.elapsed();
                        pool.close().await;
                        ensure!(
                            report.to_version == latest
                                && report.backup.is_some() == (variant == 0),
                            "unexpected migrate report: {report:?}"
                        );
                        if let Some(path) = report.backup {
                            std::fs::remove_file(path)?;
                        }
                        elapsed
                    }
                };
                samples.push(elapsed.as_secs_f64());
                remove_database(&db)?;
            }
        }
        let [with, without, bare, backup] = secs;
        let bare_median = median(&bare);
        let limit = median(&backup) + bare_median;
        let with_ratio = median(&with) / limit;
        Ok(Section {
            title: format!("2. Full migrate 0 -> {latest} of the legacy database (s)"),
            rows: vec![
                Row::new("backstop migrate, with backup", "s", with)
                    .ratio(with_ratio, "backup + bare SQL")
                    .target("<= 1.10x", with_ratio <= 1.10),
                Row::new("backstop migrate, without_backups()", "s", without.clone())
                    .ratio(median(&without) / bare_median, "bare SQL"),
                Row::new("bare SQL, one transaction (plain sqlx)", "s", bare),
                Row::new("backup alone (Migrator::backup)", "s", backup),
            ],
            notes: vec![
                "each run on a fresh copy of the legacy database, flushed and read through \
                 first; the four variants interleaved run by run"
                    .to_owned(),
            ],
        })
    }

    /// Section 3: `migrate` with nothing pending and `status`, 1,000 migrations in the source;
    /// then the same with every thread on one CPU.
    async fn many_noop_and_status(&self) -> anyhow::Result<Section> {
        let dir = self.work.join("many");
        write_many(&dir, true)?;
        let source = Source::from_dir(&dir)?;
        let migrator = Migrator::new(source).without_backups();
        let db = self.work.join("many.sqlite3");
        remove_database(&db)?;
        let pool = open_pool(&db, true).await?;
        let applied = migrator.migrate(&pool).await?;
        ensure!(
            applied.migrations.len() == MANY,
            "expected {MANY} migrations applied"
        );
        let mut rows = start_costs(&migrator, &pool, "").await?;
        let (noop, status) = (rows[0].median, rows[1].median);
        rows[0].set_target("< 2 ms", noop < 2.0);
        rows[1].set_target("< 50 ms", status < 50.0);
        if let Some(pinned) = OneCpu::pin() {
            let costs = start_costs(&migrator, &pool, ONE_CPU).await;
            pinned.restore()?;
            rows.extend(costs?);
        }
        pool.close().await;
        remove_database(&db)?;
        rows.push(self.load_big_script()?);
        Ok(Section {
            title: format!("3. Every start: {MANY} migrations applied, pool open (ms)"),
            rows,
            notes: vec![
                format!(
                    "{NOOP_RUNS} no-op migrates, {STATUS_RUNS} status calls; plain sqlx rows \
                     (the floor): the same queries, nothing else, on a connection got the same \
                     way (from the pool for migrate, a new one for status)"
                ),
                one_cpu_note(),
            ],
        })
    }

    /// Section 3, last row: loading (splitting, locating, checksumming) one script of
    /// 40,000 statements, which every start pays.
    fn load_big_script(&self) -> anyhow::Result<Row> {
        const STATEMENTS: usize = 40_000;
        let dir = self.work.join("big-script");
        std::fs::create_dir_all(&dir)?;
        let mut forward = String::from("CREATE TABLE big (id INTEGER PRIMARY KEY, note TEXT);\n");
        for i in 1..STATEMENTS {
            let _ = writeln!(forward, "INSERT INTO big VALUES ({i}, 'note {i}');");
        }
        std::fs::write(dir.join("001_big.sql"), &forward)?;
        std::fs::write(dir.join("001_big.rollback.sql"), "DROP TABLE big;\n")?;
        std::fs::write(
            dir.join("001_big.probe.sql"),
            "SELECT count(*) FROM sqlite_master WHERE name = 'big';\n",
        )?;
        let mb = forward.len() as f64 / MB;
        let mut samples = Vec::with_capacity(self.runs);
        for _ in 0..self.runs.max(3) {
            let started = Instant::now();
            let source = Source::from_dir(&dir)?;
            samples.push(ms(started.elapsed()));
            ensure!(source.migrations().len() == 1, "the big script loads");
        }
        let whole = median(&samples);
        std::fs::remove_dir_all(&dir)?;
        let per_mb: Vec<f64> = samples.iter().map(|s| s / mb).collect();
        Ok(Row::new(
            format!("load one {STATEMENTS}-statement script, per MB of SQL"),
            "ms",
            per_mb,
        )
        .target(
            &format!("whole script ({mb:.2} MB) < 100 ms: {whole:.1} ms"),
            whole < 100.0,
        ))
    }

    /// Section 4: 1,000 small migrations applied in one run: backstop vs sqlx's migrator; then
    /// the same with every thread on one CPU.
    async fn many_applied(&self) -> anyhow::Result<Section> {
        let dir = self.work.join("many");
        let sqlx_dir = self.work.join("many-sqlx");
        write_many(&dir, true)?;
        write_many(&sqlx_dir, false)?;
        let migrator = Migrator::new(Source::from_dir(&dir)?).without_backups();
        let sqlx_migrator = sqlx::migrate::Migrator::new(sqlx_dir.as_path()).await?;
        let db = self.work.join("small.sqlite3");
        let mut rows = apply_many(&migrator, &sqlx_migrator, &db, self.runs, "").await?;
        let ratio = rows[0].ratio.as_ref().map_or(f64::NAN, |r| r.value);
        rows[0].set_target("<= 0.50x", ratio <= 0.5);
        if let Some(pinned) = OneCpu::pin() {
            let more = apply_many(&migrator, &sqlx_migrator, &db, self.runs, ONE_CPU).await;
            pinned.restore()?;
            rows.extend(more?);
        }
        remove_database(&db)?;
        Ok(Section {
            title: format!("4. {MANY} small migrations applied to a new database (ms)"),
            rows,
            notes: vec![
                "same forward SQL; backstop runs them in one transaction (with probes), sqlx \
                 one transaction per migration"
                    .to_owned(),
                one_cpu_note(),
            ],
        })
    }

    /// Section 5: peak resident memory of a migrate (with backup) in a child process, at a
    /// quarter of the size and at the full size.
    async fn peak_memory(&self, full: &Path, quarter: &Path) -> anyhow::Result<Section> {
        let title = "5. Peak resident memory of a migrate with backup (MB)".to_owned();
        if !cfg!(unix) {
            let notes = vec!["not measured: the child's peak memory is read on Unix only".into()];
            return Ok(Section {
                title,
                rows: Vec::new(),
                notes,
            });
        }
        let db = self.work.join("rss.sqlite3");
        let backup_dir = self.work.join("backups");
        let child = ChildMigrate::find();
        let mut rows = Vec::new();
        let mut medians = Vec::new();
        for legacy in [quarter, full] {
            let mut peaks = Vec::new();
            for _ in 0..self.runs {
                fresh_copy(legacy, &db)?;
                peaks.push(child.peak_rss(&db, &backup_dir, &self.work)? as f64 / MB);
                remove_database(&db)?;
                std::fs::remove_dir_all(&backup_dir)?;
            }
            let peak = median(&peaks);
            medians.push(peak);
            let size = std::fs::metadata(legacy)?.len() as f64 / MB;
            rows.push(
                Row::new(format!("peak RSS, migrating {size:.0} MB"), "MB", peaks)
                    .target("< 64 MB", peak < 64.0),
            );
        }
        let growth = medians[1] / medians[0];
        rows[1].ratio = Some(Ratio {
            value: growth,
            of: "the quarter size".to_owned(),
        });
        Ok(Section {
            title,
            rows,
            notes: vec![format!("measured on: {}", child.describe())],
        })
    }

    /// Section 6: the longest commit of a concurrent writer while a migrate runs, with a backup
    /// and without one, run by run.
    async fn writer_stall(&self, legacy: &Path) -> anyhow::Result<Section> {
        let backup_dir = self.work.join("backups");
        let with_backup = Migrator::new(self.shipped.clone())
            .backup_dir(&backup_dir)
            .keep_backups(1)
            .busy_timeout(Duration::from_secs(600));
        let without = Migrator::new(self.shipped.clone())
            .without_backups()
            .busy_timeout(Duration::from_secs(600));
        let trivial = Migrator::new(trivial_source(&self.work)?)
            .backup_dir(&backup_dir)
            .keep_backups(1)
            .busy_timeout(Duration::from_secs(600));
        let (mut with, mut bare) = (StallRuns::default(), StallRuns::default());
        let (mut one, mut copy) = (StallRuns::default(), StallRuns::default());
        for _ in 0..self.runs {
            with.push(
                self.stall_run(During::Migrate(&with_backup), legacy)
                    .await?,
            );
            bare.push(self.stall_run(During::Migrate(&without), legacy).await?);
            one.push(self.stall_run(During::Migrate(&trivial), legacy).await?);
            copy.push(self.stall_run(During::CopyFsync, legacy).await?);
        }
        let (stall, bare_stall) = (median(&with.longest), median(&bare.longest));
        let (one_stall, copy_stall) = (median(&one.longest), median(&copy.longest));
        let bare_migrate = median(&bare.migrate);
        let limit = 1.15 * bare_migrate + 100.0;
        Ok(Section {
            title: "6. A concurrent writer during a migrate (ms)".to_owned(),
            rows: vec![
                Row::new(
                    "writer: longest commit during a migrate with backup",
                    "ms",
                    with.longest,
                )
                .ratio(stall / bare_migrate, "the migrate without backup")
                .target(
                    "<= 1.15x the migrate without backup + 100 ms",
                    stall <= limit,
                )
                .raw(json!(with.raw)),
                Row::new(
                    "writer: longest commit during a migrate without backup",
                    "ms",
                    bare.longest,
                )
                .ratio(bare_stall / bare_migrate, "the migrate without backup")
                .raw(json!(bare.raw)),
                Row::new(
                    "writer: longest commit during a migrate of one trivial migration",
                    "ms",
                    one.longest,
                )
                .ratio(one_stall / copy_stall, "a plain copy + fsync")
                .target(
                    "<= a plain copy + fsync's + 100 ms",
                    one_stall <= copy_stall + 100.0,
                )
                .raw(json!(one.raw)),
                Row::new(
                    "writer: longest commit during a plain copy + fsync of the file",
                    "ms",
                    copy.longest,
                )
                .raw(json!(copy.raw)),
                Row::new(
                    "writer: median commit outside the migrates",
                    "ms",
                    with.typical,
                ),
                Row::new("the migrate with backup", "ms", with.migrate),
                Row::new("the migrate without backup", "ms", bare.migrate),
                Row::new("the migrate of one trivial migration", "ms", one.migrate),
                Row::new("the plain copy + fsync", "ms", copy.migrate),
            ],
            notes: vec![format!(
                "the writer inserts and commits one row at a time with a {} ms pause, \
                 busy_timeout 600 s, from {} ms before to {} ms after the migrate; the three \
                 migrates and the plain copy (std::fs::copy of the file, then fsync: the \
                 physical floor) alternate run by run, each on a fresh copy of the legacy \
                 database; the trivial migration creates one empty table",
                WRITER_PAUSE.as_millis(),
                WRITER_QUIET.as_millis(),
                WRITER_QUIET.as_millis()
            )],
        })
    }

    /// One migrate (or plain copy) of a fresh copy of `legacy`, with the writer committing
    /// from before it starts to after it ends.
    async fn stall_run(&self, during: During<'_>, legacy: &Path) -> anyhow::Result<StallRun> {
        let db = self.work.join("stall.sqlite3");
        fresh_copy(legacy, &db)?;
        let mut conn = SqliteConnectOptions::new().filename(&db).connect().await?;
        sqlx::raw_sql(
            "CREATE TABLE bench_writer (id INTEGER PRIMARY KEY, at REAL NOT NULL, note TEXT)",
        )
        .execute(&mut conn)
        .await?;
        conn.close().await?;
        let pool = open_pool(&db, false).await?;

        let origin = Instant::now();
        let writer = Writer::start(&db, origin);
        tokio::time::sleep(WRITER_QUIET).await;
        let start = origin.elapsed();
        let made = match during {
            During::Migrate(migrator) => migrator.migrate(&pool).await?.backup,
            During::CopyFsync => {
                let (from, to) = (db.clone(), self.work.join("stall-copy.sqlite3"));
                tokio::task::spawn_blocking(move || -> std::io::Result<PathBuf> {
                    std::fs::copy(&from, &to)?;
                    File::open(&to)?.sync_all()?;
                    Ok(to)
                })
                .await??
                .into()
            }
        };
        let end = origin.elapsed();
        tokio::time::sleep(WRITER_QUIET).await;
        let commits = writer.stop()?;
        pool.close().await;
        if let Some(path) = made {
            std::fs::remove_file(path)?;
        }
        remove_database(&db)?;

        let (during, outside): (Vec<_>, Vec<_>) =
            commits.iter().partition(|(s, e)| *s < end && *e > start);
        let latency = |c: &(Duration, Duration)| ms(c.1 - c.0);
        let during: Vec<f64> = during.into_iter().map(latency).collect();
        let outside: Vec<f64> = outside.into_iter().map(latency).collect();
        ensure!(
            !outside.is_empty(),
            "the writer committed nothing outside the migrate"
        );
        Ok(StallRun {
            longest: during.iter().copied().fold(0.0, f64::max),
            typical: median(&outside),
            migrate: ms(end - start),
            raw: json!({
                "migrate_ms": ms(end - start),
                "during_ms": during,
                "outside_ms": outside,
            }),
        })
    }
}

/// What runs beside section 6's writer.
#[derive(Clone, Copy)]
enum During<'m> {
    Migrate(&'m Migrator),
    /// The file copied with `std::fs::copy`, then the copy flushed.
    CopyFsync,
}

/// One migration that creates an empty table: what a migrate costs beyond its backup.
fn trivial_source(work: &Path) -> anyhow::Result<Source> {
    let dir = work.join("trivial-migrations");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("001_trivial.sql"),
        "CREATE TABLE bench_trivial (x);\n",
    )?;
    std::fs::write(
        dir.join("001_trivial.rollback.sql"),
        "DROP TABLE bench_trivial;\n",
    )?;
    std::fs::write(
        dir.join("001_trivial.probe.sql"),
        "SELECT count(*) FROM sqlite_master WHERE name = 'bench_trivial';\n",
    )?;
    Ok(Source::from_dir(&dir)?)
}

/// One run of section 6.
struct StallRun {
    longest: f64,
    typical: f64,
    migrate: f64,
    raw: serde_json::Value,
}

/// Section 6's runs of one migrator.
#[derive(Default)]
struct StallRuns {
    longest: Vec<f64>,
    typical: Vec<f64>,
    migrate: Vec<f64>,
    raw: Vec<serde_json::Value>,
}

impl StallRuns {
    fn push(&mut self, run: StallRun) {
        self.longest.push(run.longest);
        self.typical.push(run.typical);
        self.migrate.push(run.migrate);
        self.raw.push(run.raw);
    }
}

/// Pages per `sqlite3_backup_step` in backstop.
const BACKSTOP_STEP_PAGES: i32 = backstop::__private::STEP_PAGES;

/// The ways of copying the database compared in section 1.
#[derive(Clone, PartialEq)]
enum BackupMethod {
    Copy,
    CopyFsync,
    /// `Migrator::backup`, its file copied at most as fast as this allows.
    Backstop(BackupCopy),
    /// Read and written in 64 KiB blocks through user space, as any copy through SQLite's
    /// pages must (`std::fs::copy` copies inside the kernel).
    Blocks,
    VacuumInto,
    /// The `sqlite3` shell's `.backup` (its version).
    Shell(String),
    /// `sqlite3_backup_step(step)` driven directly; `mmap`: the source read through mmap;
    /// `gather`: the destination's page writes gathered into large writes.
    Api {
        step: i32,
        mmap: bool,
        gather: bool,
    },
}

impl BackupMethod {
    fn label(&self) -> String {
        match self {
            BackupMethod::Copy => "std::fs::copy".to_owned(),
            BackupMethod::CopyFsync => "std::fs::copy + File::sync_all".to_owned(),
            BackupMethod::Backstop(way) => format!(
                "backstop Migrator::backup, {}",
                match way {
                    BackupCopy::KernelCopy => "copy_file_range at most",
                    BackupCopy::ReadWrite => "read + write",
                    _ => "fastest (the default)",
                }
            ),
            BackupMethod::Blocks => "read + write, 64 KiB blocks, + fsync".to_owned(),
            BackupMethod::VacuumInto => "VACUUM INTO + fsync".to_owned(),
            BackupMethod::Shell(version) => format!("sqlite3 {version} .backup + fsync"),
            BackupMethod::Api { step, mmap, gather } => format!(
                "backup API, step {}{}{} + fsync",
                if *step < 0 {
                    "all".to_owned()
                } else {
                    step.to_string()
                },
                if *mmap { ", mmap" } else { "" },
                if *gather { ", gathered writes" } else { "" }
            ),
        }
    }

    /// Whether the caller must fsync the copy (backstop's backup does it itself).
    fn syncs_itself(&self) -> bool {
        !matches!(self, BackupMethod::Copy | BackupMethod::Backstop(_))
    }
}

/// Copies `src` into a new file `dest` with SQLite's backup API, `step` pages at a time
/// (-1: all at once), with backstop's own copy routine (without the rest of a backup). With
/// `mmap`, the source is read through a memory map; with `gather`, the destination's page
/// writes are gathered into large writes.
fn raw_backup(src: &Path, dest: &Path, step: i32, mmap: bool, gather: bool) -> anyhow::Result<()> {
    let how = backstop::__private::BenchCopy {
        step_pages: step,
        mmap_size: mmap.then_some(1 << 34),
        gather_writes: gather,
    };
    Ok(backstop::__private::bench_copy(src, dest, how)?)
}

/// Copies `src` into a new file `dest` through a 64 KiB buffer (no sync).
fn copy_in_blocks(src: &Path, dest: &Path) -> anyhow::Result<()> {
    let (mut from, mut to) = (File::open(src)?, File::create(dest)?);
    let mut block = vec![0u8; 64 << 10];
    loop {
        let read = from.read(&mut block)?;
        if read == 0 {
            return Ok(());
        }
        to.write_all(&block[..read])?;
    }
}

/// The label suffix of the rows measured with every thread on one CPU.
const ONE_CPU: &str = " [1 CPU]";

fn one_cpu_note() -> String {
    "[1 CPU]: the same, with every thread of this process on one CPU, so that handing a \
     statement to sqlx's worker thread and back never wakes another CPU"
        .to_owned()
}

/// The costs a service pays on every start (section 3): a no-op `migrate` and `status`, and
/// the same queries in plain sqlx. The first two rows are backstop's.
async fn start_costs(
    migrator: &Migrator,
    pool: &SqlitePool,
    suffix: &str,
) -> anyhow::Result<Vec<Row>> {
    let mut noop = Vec::with_capacity(NOOP_RUNS);
    for _ in 0..NOOP_RUNS {
        let started = Instant::now();
        let report = migrator.migrate(pool).await?;
        noop.push(ms(started.elapsed()));
        ensure!(report.is_up_to_date(), "the no-op migrate did something");
    }
    let mut status = Vec::with_capacity(STATUS_RUNS);
    for _ in 0..STATUS_RUNS {
        let started = Instant::now();
        let report = migrator.status(pool).await?;
        status.push(ms(started.elapsed()));
        ensure!(report.is_clean(), "status is not clean");
    }

    // The floor: the same queries in plain sqlx, on a connection got the same way (what the
    // no-op reads of the history: versions and checksums).
    let mut history = Vec::with_capacity(NOOP_RUNS);
    for _ in 0..NOOP_RUNS {
        let started = Instant::now();
        let mut conn = pool.acquire().await?;
        let rows =
            sqlx::query("SELECT version, checksum FROM _backstop_migrations ORDER BY version")
                .fetch_all(&mut *conn)
                .await?;
        drop(conn);
        history.push(ms(started.elapsed()));
        ensure!(rows.len() == MANY, "expected {MANY} history rows");
    }
    let mut probes = Vec::with_capacity(STATUS_RUNS);
    for _ in 0..STATUS_RUNS {
        let started = Instant::now();
        let mut conn = pool.connect_options().connect().await?;
        sqlx::raw_sql("BEGIN").execute(&mut conn).await?;
        for migration in migrator.source().migrations() {
            sqlx::raw_sql(AssertSqlSafe(migration.probe_sql()))
                .fetch_all(&mut conn)
                .await?;
        }
        sqlx::raw_sql("ROLLBACK").execute(&mut conn).await?;
        conn.close().await?;
        probes.push(ms(started.elapsed()));
    }
    let (noop_median, history_median) = (median(&noop), median(&history));
    let (status_median, probes_median) = (median(&status), median(&probes));
    Ok(vec![
        Row::new(format!("migrate, nothing pending{suffix}"), "ms", noop)
            .ratio(noop_median / history_median, "reading the rows"),
        Row::new(format!("status{suffix}"), "ms", status)
            .ratio(status_median / probes_median, "the bare probes"),
        Row::new(
            format!("plain sqlx: acquire, read the history{suffix}"),
            "ms",
            history,
        ),
        Row::new(
            format!("plain sqlx: connect, run the probes{suffix}"),
            "ms",
            probes,
        ),
    ])
}

/// Section 4's runs: backstop, sqlx's migrator and the bare SQL, each on a new database.
/// The first row is backstop's, with its ratio to sqlx.
async fn apply_many(
    migrator: &Migrator,
    sqlx_migrator: &sqlx::migrate::Migrator,
    db: &Path,
    runs: usize,
    suffix: &str,
) -> anyhow::Result<Vec<Row>> {
    let mut samples = [Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..runs {
        for (variant, samples) in samples.iter_mut().enumerate() {
            remove_database(db)?;
            let pool = open_pool(db, true).await?;
            let elapsed = match variant {
                0 => {
                    let started = Instant::now();
                    let report = migrator.migrate(&pool).await?;
                    ensure!(report.migrations.len() == MANY, "expected {MANY} applied");
                    started.elapsed()
                }
                1 => {
                    let started = Instant::now();
                    sqlx_migrator.run(&pool).await?;
                    started.elapsed()
                }
                _ => {
                    let mut conn = pool.acquire().await?;
                    let started = Instant::now();
                    bare_sql(&mut conn, migrator.source()).await?;
                    started.elapsed()
                }
            };
            samples.push(ms(elapsed));
            pool.close().await;
        }
    }
    let [ours, theirs, bare] = samples;
    let (ours_median, theirs_median) = (median(&ours), median(&theirs));
    let bare_median = median(&bare);
    Ok(vec![
        Row::new(
            format!("backstop migrate, without_backups(){suffix}"),
            "ms",
            ours,
        )
        .ratio(ours_median / theirs_median, "sqlx"),
        Row::new(
            format!("sqlx::migrate::Migrator::run{suffix}"),
            "ms",
            theirs,
        )
        .ratio(theirs_median / bare_median, "bare SQL"),
        Row::new(format!("bare SQL, one transaction{suffix}"), "ms", bare),
    ])
}

/// Every thread of this process pinned to one CPU (Linux), until [`OneCpu::restore`]. Threads
/// started meanwhile (sqlx's workers of new connections) inherit the pinning.
struct OneCpu {
    #[cfg(target_os = "linux")]
    saved: libc::cpu_set_t,
}

impl OneCpu {
    #[cfg(target_os = "linux")]
    fn pin() -> Option<Self> {
        // SAFETY: `cpu_set_t` is plain old data; the calls get its exact size.
        unsafe {
            let mut saved: libc::cpu_set_t = std::mem::zeroed();
            let size = std::mem::size_of::<libc::cpu_set_t>();
            if libc::sched_getaffinity(0, size, &mut saved) != 0 {
                return None;
            }
            let cpu = (0..libc::CPU_SETSIZE as usize).find(|&c| libc::CPU_ISSET(c, &saved))?;
            let mut one: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut one);
            set_affinity_of_all_threads(&one).ok()?;
            Some(OneCpu { saved })
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn pin() -> Option<Self> {
        None
    }

    /// Gives every thread the affinity this process had before.
    fn restore(self) -> anyhow::Result<()> {
        #[cfg(target_os = "linux")]
        set_affinity_of_all_threads(&self.saved)?;
        Ok(())
    }
}

/// Sets the CPU affinity of every thread of this process (threads that exit meanwhile are
/// skipped).
#[cfg(target_os = "linux")]
fn set_affinity_of_all_threads(set: &libc::cpu_set_t) -> std::io::Result<()> {
    for task in std::fs::read_dir("/proc/self/task")? {
        let Some(tid) = task?.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        // SAFETY: a valid `cpu_set_t` of the size given.
        let rc = unsafe { libc::sched_setaffinity(tid, std::mem::size_of_val(set), set) };
        let err = std::io::Error::last_os_error();
        if rc != 0 && err.raw_os_error() != Some(libc::ESRCH) {
            return Err(err);
        }
    }
    Ok(())
}

/// The shipped forward scripts, run bare: one connection (foreign keys off), `BEGIN
/// IMMEDIATE`, each script with `sqlx::raw_sql`, `COMMIT`.
async fn bare_sql(conn: &mut SqliteConnection, source: &Source) -> anyhow::Result<()> {
    sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut *conn).await?;
    for migration in source.migrations() {
        sqlx::raw_sql(AssertSqlSafe(migration.sql()))
            .execute(&mut *conn)
            .await
            .with_context(|| format!("running migration {}", migration.version()))?;
    }
    sqlx::raw_sql("COMMIT").execute(&mut *conn).await?;
    Ok(())
}

/// Writes `MANY` small migrations into `dir`: `0001_t0001.sql` (`CREATE TABLE t0001 (x);`),
/// with backstop's rollback and probe files when `backstop`.
fn write_many(dir: &Path, backstop: bool) -> anyhow::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    for i in 1..=MANY {
        let name = format!("{i:04}_t{i:04}");
        std::fs::write(
            dir.join(format!("{name}.sql")),
            format!("CREATE TABLE t{i:04} (x);\n"),
        )?;
        if backstop {
            std::fs::write(
                dir.join(format!("{name}.rollback.sql")),
                format!("DROP TABLE t{i:04};\n"),
            )?;
            std::fs::write(
                dir.join(format!("{name}.probe.sql")),
                format!("SELECT count(*) > 0 FROM pragma_table_info('t{i:04}');\n"),
            )?;
        }
    }
    Ok(())
}

/// A writer in its own thread and runtime, committing one row at a time until stopped.
struct Writer {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<anyhow::Result<Vec<(Duration, Duration)>>>,
}

impl Writer {
    fn start(db: &Path, origin: Instant) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let options = SqliteConnectOptions::new()
            .filename(db)
            .busy_timeout(Duration::from_secs(600));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let mut conn = options.connect().await?;
                let mut commits = Vec::new();
                while !flag.load(Ordering::Relaxed) {
                    let start = origin.elapsed();
                    sqlx::query("INSERT INTO bench_writer (at, note) VALUES (?, ?)")
                        .bind(start.as_secs_f64())
                        .bind("a session update")
                        .execute(&mut conn)
                        .await?;
                    commits.push((start, origin.elapsed()));
                    std::thread::sleep(WRITER_PAUSE);
                }
                conn.close().await?;
                Ok(commits)
            })
        });
        Writer { stop, thread }
    }

    /// Stops the writer; returns (start, end) of each commit, since the origin.
    fn stop(self) -> anyhow::Result<Vec<(Duration, Duration)>> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.join() {
            Ok(result) => result,
            Err(_) => bail!("the writer thread panicked"),
        }
    }
}

// ------------------------------------------------------------------ peak memory of a child

/// What runs the migrate whose peak memory is measured: the `migrate` CLI built with this
/// binary's profile, or else this binary in its child mode.
enum ChildMigrate {
    Cli(PathBuf),
    SelfChild(PathBuf),
}

impl ChildMigrate {
    /// The CLI beside this binary (`<target>/<profile>/examples/migrate`), built first with
    /// cargo (same profile, same target directory) when this binary was started by cargo.
    fn find() -> Self {
        let me = std::env::current_exe().expect("the path of this binary");
        let examples = me.parent().expect("a directory").to_owned();
        let cli = examples.join(format!("migrate{}", std::env::consts::EXE_SUFFIX));
        match build_cli(&examples) {
            Some(false) => {
                eprintln!("bench: could not build the migrate CLI; measuring this binary");
                ChildMigrate::SelfChild(me)
            }
            _ if cli.is_file() => ChildMigrate::Cli(cli),
            _ => ChildMigrate::SelfChild(me),
        }
    }

    fn describe(&self) -> String {
        match self {
            ChildMigrate::Cli(path) => format!("the migrate CLI, {}", path.display()),
            ChildMigrate::SelfChild(path) => {
                format!("{} --child-migrate (the CLI was not found)", path.display())
            }
        }
    }

    /// Migrates `db` in a child process; returns its peak resident memory in bytes.
    ///
    /// The child is started by a fresh, small helper process (this binary with
    /// `--peak-rss-of`), never by this one: at `exec`, Linux counts the peak memory of the
    /// spawning process into the new program's `ru_maxrss`, and this process is large.
    fn peak_rss(&self, db: &Path, backups: &Path, logs: &Path) -> anyhow::Result<u64> {
        let me = std::env::current_exe()?;
        let mut command = Command::new(me);
        command.args(["--peak-rss-of", "--"]);
        match self {
            ChildMigrate::Cli(cli) => {
                command
                    .arg(cli)
                    .arg("--database")
                    .arg(db)
                    .arg("--backup-dir")
                    .arg(backups)
                    .args(["--json", "migrate"]);
            }
            ChildMigrate::SelfChild(me) => {
                command
                    .arg(me)
                    .arg("--child-migrate")
                    .arg(db)
                    .arg("--child-backups")
                    .arg(backups);
            }
        }
        let stderr = logs.join("child.stderr");
        let out = command
            .stdin(Stdio::null())
            .stderr(File::create(&stderr)?)
            .output()?;
        if !out.status.success() {
            bail!(
                "the child migrate failed: {}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
        }
        let peak = String::from_utf8_lossy(&out.stdout);
        peak.trim()
            .parse()
            .with_context(|| format!("the helper printed {peak:?}"))
    }
}

/// Builds the `migrate` example into `examples` (`<target>/<profile>/examples`) with cargo;
/// `None` when cargo is unknown (this binary was not started by `cargo run`).
fn build_cli(examples: &Path) -> Option<bool> {
    let cargo = std::env::var_os("CARGO")?;
    let profile_dir = examples.parent()?;
    let target_dir = profile_dir.parent()?;
    let profile = match profile_dir.file_name()?.to_str()? {
        "debug" => "dev",
        other => other,
    };
    let status = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "--example",
            "migrate",
            "--profile",
            profile,
        ])
        .arg("--manifest-path")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir)
        .status();
    Some(status.is_ok_and(|s| s.success()))
}

#[cfg(not(unix))]
fn peak_rss_of(_command: &[OsString]) -> anyhow::Result<()> {
    bail!("the peak memory of a child is measured on Unix only")
}

/// The helper mode: runs `command` (its output to stderr), waits for it with `wait4` and
/// prints its peak resident memory in bytes; fails when it fails.
#[cfg(unix)]
fn peak_rss_of(command: &[OsString]) -> anyhow::Result<()> {
    use std::os::fd::AsFd;

    let (program, args) = command.split_first().context("no command to run")?;
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::io::stderr().as_fd().try_clone_to_owned()?))
        .spawn()
        .with_context(|| format!("starting {}", program.to_string_lossy()))?;
    let (ok, peak) = wait_peak_rss(child)?;
    ensure!(ok, "{} failed", program.to_string_lossy());
    println!("{peak}");
    Ok(())
}

/// Waits for `child` with `wait4`; returns whether it exited with 0, and its peak resident
/// memory in bytes.
#[cfg(unix)]
fn wait_peak_rss(child: std::process::Child) -> anyhow::Result<(bool, u64)> {
    let pid = libc::pid_t::try_from(child.id())?;
    let mut status = 0;
    // SAFETY: `rusage` is plain old data, valid when zeroed.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `pid` is our child, not yet waited for (std's `Child` is dropped without
        // waiting); both out-pointers are valid for the call.
        let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if rc == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err).context("wait4");
        }
    }
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    // ru_maxrss is in KiB on Linux, in bytes on macOS.
    let unit = if cfg!(target_os = "macos") { 1 } else { 1024 };
    Ok((ok, u64::try_from(usage.ru_maxrss)? * unit))
}

/// The child mode: what the CLI's `migrate` does, in this binary.
async fn child_migrate(db: &Path, backups: &Path) -> anyhow::Result<()> {
    let pool = open_pool(db, false).await?;
    let migrator = Migrator::new(backstop::embed_migrations!(
        "$CARGO_MANIFEST_DIR/migrations"
    )?)
    .backup_dir(backups);
    migrator.migrate(&pool).await?;
    pool.close().await;
    Ok(())
}

// ------------------------------------------------------------------ files and databases

/// The generated legacy database of `size_mb` MB, reused when its parameters match.
async fn legacy_db(dir: &Path, size_mb: u64, seed: u64) -> anyhow::Result<PathBuf> {
    let params = Params {
        sessions: size_mb * SESSIONS_PER_MB,
        history_stores: HISTORY_STORES,
        app_data_mb: size_mb,
        seed,
    };
    let path = dir.join(format!("legacy-{size_mb}mb-seed{seed}.sqlite3"));
    let meta_path = with_suffix(&path, ".json");
    let wanted = json!({ "generator_version": GENERATOR_VERSION, "params": params });
    if let (Ok(meta), Ok(file)) = (std::fs::read(&meta_path), std::fs::metadata(&path)) {
        let meta: serde_json::Value = serde_json::from_slice(&meta).unwrap_or_default();
        let same = meta.get("generator_version") == wanted.get("generator_version")
            && meta.get("params") == wanted.get("params")
            && meta.get("bytes").and_then(|b| b.as_u64()) == Some(file.len());
        if same && !with_suffix(&path, "-wal").exists() {
            eprintln!("bench: reusing {}", path.display());
            return Ok(path);
        }
    }
    let _ = std::fs::remove_file(&meta_path);
    remove_database(&path)?;
    eprintln!("bench: generating {}", path.display());
    let made = legacy_db::generate(&path, &params).await?;
    eprint!("{}", legacy_db::describe(&made));
    let mut meta = wanted;
    meta["bytes"] = json!(made.bytes);
    meta["made"] = json!(made);
    std::fs::write(&meta_path, serde_json::to_string_pretty(&meta)?)?;
    Ok(path)
}

/// Copies `from` to a new `to`, flushes everything (so that no writeback lands in the next
/// measurement) and reads the copy through (so that it is in the page cache, as the source of
/// section 1's backups is: on this VM, pages written but not read since are soon reclaimed,
/// and a backup of them reads the disk).
fn fresh_copy(from: &Path, to: &Path) -> anyhow::Result<()> {
    remove_database(to)?;
    std::fs::copy(from, to).with_context(|| format!("copying {}", from.display()))?;
    File::open(to)?.sync_all()?;
    settle();
    read_through(to)
}

/// Flushes every dirty page of the system (`sync(2)`), so that a measurement does not pay for
/// the writeback of what came before it (a generated database, the previous sample's copy).
fn settle() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
}

/// Reads a file through once, so that it is in the page cache.
fn read_through(path: &Path) -> anyhow::Result<()> {
    std::io::copy(&mut File::open(path)?, &mut std::io::sink())?;
    Ok(())
}

/// A pool on `db` as the CLI opens it (two connections, WAL when `create`s a new file).
async fn open_pool(db: &Path, create: bool) -> anyhow::Result<SqlitePool> {
    let mut options = SqliteConnectOptions::new()
        .filename(db)
        .create_if_missing(create);
    if create {
        options = options.journal_mode(SqliteJournalMode::Wal);
    }
    Ok(SqlitePoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await?)
}

/// The version of the `sqlite3` shell on the PATH, if there is one.
fn sqlite3_shell() -> Option<String> {
    let out = Command::new("sqlite3").arg("--version").output().ok()?;
    out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap_or("?")
            .to_owned()
    })
}

/// What the figures depend on: CPUs, memory, kernel, SQLite, the disk.
async fn machine(dir: &Path) -> serde_json::Value {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let memory = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .map(|l| l.trim_start_matches("MemTotal:").trim().to_owned());
    let sqlite = async {
        let mut conn = SqliteConnectOptions::new()
            .filename(":memory:")
            .connect()
            .await
            .ok()?;
        sqlx::query_scalar::<_, String>("SELECT sqlite_version()")
            .fetch_one(&mut conn)
            .await
            .ok()
    }
    .await;
    let df = Command::new("df")
        .args(["-hT"])
        .arg(dir)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).ok(),
        "memory": memory,
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
        "sqlite_bundled": sqlite,
        "sqlite3_shell": sqlite3_shell(),
        "df": df,
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
    })
}
