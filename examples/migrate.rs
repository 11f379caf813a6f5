//! The `backstop` command line: `cargo run --example migrate -- [OPTIONS] <COMMAND>`.
//!
//! A thin layer over the library: it resolves the database and the migrations, opens a pool,
//! calls one [`Migrator`] method and prints its report (aligned text, or JSON with `--json`).
//! Errors go to stderr with exit code 1; usage errors exit with 2.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backstop::{
    Action, BackupInfo, MigrateReport, MigrationOutcome, Migrator, RollbackReport,
    RollbackStrategy, Source, State, StatusReport,
};
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

const DEFAULT_DATABASE: &str = ".mcp-the-force/sessions.sqlite3";

/// Safe SQLite migrations: online backup first, all or nothing, verified rollback.
#[derive(Parser)]
#[command(name = "migrate", version)]
struct Cli {
    /// The database file [default: $DATABASE_URL (sqlite: URL), else .mcp-the-force/sessions.sqlite3]
    #[arg(long, global = true, value_name = "PATH")]
    database: Option<PathBuf>,
    /// Directory of migration files [default: the migrations embedded at build time]
    #[arg(long, global = true, value_name = "DIR")]
    migrations: Option<PathBuf>,
    /// Directory for backups [default: backups/ beside the database file]
    #[arg(long, global = true, value_name = "DIR")]
    backup_dir: Option<PathBuf>,
    /// Backups of this database to keep
    #[arg(long, global = true, value_name = "N", default_value_t = backstop::DEFAULT_KEEP_BACKUPS)]
    keep_backups: usize,
    /// Seconds to wait for other writers before giving up
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 5.0)]
    busy_timeout: f64,
    /// Machine-readable output on stdout
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show the version and the state of every migration
    Status {
        /// Exit with 1 when anything is pending, drifted, modified or unknown (for CI)
        #[arg(long)]
        check: bool,
    },
    /// Apply pending migrations (creates a missing database)
    Migrate {
        /// Rehearse in a transaction that is rolled back; change nothing
        #[arg(long)]
        dry_run: bool,
        /// Stop at this version
        #[arg(long, value_name = "N")]
        target: Option<i64>,
    },
    /// Go back to an earlier version (a backup of the current state is taken first)
    Rollback {
        /// The version to go back to (0: before any migration)
        #[arg(long, value_name = "N")]
        to_version: i64,
        /// Restore a verified backup that holds the version, or run the rollback scripts
        #[arg(long, value_enum, default_value_t = Strategy::Backup)]
        strategy: Strategy,
        /// Report what would happen; change nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Restore a backup file, whatever version it holds (a safety backup is taken first);
    /// restoring a rollback's safety backup undoes the rollback
    Restore {
        /// The backup file
        #[arg(value_name = "PATH")]
        path: PathBuf,
        /// Report what would happen; change nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// List the backups of the database
    Backups,
    /// Take a backup of the database now
    Backup,
}

#[derive(Clone, Copy, ValueEnum)]
enum Strategy {
    Backup,
    Scripts,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Log events go to stderr (RUST_LOG chooses which; warnings by default). Under --json they
    // are JSON lines too, so that stderr stays machine-readable: an error is its last line.
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr);
    if cli.json {
        logs.json().init();
    } else {
        logs.with_ansi(std::io::stderr().is_terminal()).init();
    }
    match run(&cli).await {
        Ok(code) => code,
        Err(error) => {
            // Errors name their kind: the library's (`backstop::Error::kind`), or the CLI's own.
            let (kind, message) = if let Some(error) = error.downcast_ref::<backstop::Error>() {
                (error.kind(), error.to_string())
            } else if let Some(error) = error.downcast_ref::<CliError>() {
                (error.kind, format!("{error:#}"))
            } else {
                ("other", format!("{error:#}"))
            };
            if cli.json {
                eprintln!("{}", serde_json::json!({ "error": message, "kind": kind }));
            } else {
                eprintln!("error: {message}");
            }
            ExitCode::from(1)
        }
    }
}

async fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    let database = database_path(cli)?;
    let source = match &cli.migrations {
        Some(dir) => Source::from_dir(dir)?,
        None => backstop::embed_migrations!("$CARGO_MANIFEST_DIR/migrations")?,
    };
    if !cli.busy_timeout.is_finite() || cli.busy_timeout < 0.0 {
        return Err(CliError::new(
            "invalid_argument",
            format!(
                "--busy-timeout must be a number of seconds, not {}",
                cli.busy_timeout
            ),
        )
        .into());
    }
    let busy_timeout = Duration::from_secs_f64(cli.busy_timeout);
    let mut migrator = Migrator::new(source)
        .keep_backups(cli.keep_backups)
        .busy_timeout(busy_timeout);
    if let Some(dir) = &cli.backup_dir {
        migrator = migrator.backup_dir(dir);
    }
    let progress = Progress::new(!cli.json && std::io::stderr().is_terminal());
    if let Some(progress) = &progress {
        let progress = progress.clone();
        migrator = migrator.on_backup_progress(move |p| progress.update(p));
    }

    // Only `migrate` may create the database; a failed one removes what it created.
    let creates = matches!(cli.command, Command::Migrate { dry_run: false, .. });
    let fresh = creates.then(|| Fresh::before_creating(&database));
    let pool = open(&database, creates, busy_timeout).await?;
    let outcome = execute(cli, &migrator, &pool).await;
    if let Some(progress) = &progress {
        progress.finish();
    }
    // Every connection closed before the process ends: a WAL database is checkpointed and
    // its -wal and -shm files go.
    pool.close().await;
    if outcome.is_err()
        && let Some(fresh) = fresh
    {
        fresh.undo();
    }
    outcome
}

/// Runs the command on the pool and prints its report.
async fn execute(cli: &Cli, migrator: &Migrator, pool: &SqlitePool) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Status { check } => {
            let report = migrator.status(pool).await?;
            print(cli.json, &report, print_status)?;
            Ok(if *check && !report.is_clean() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Migrate { dry_run, target } => {
            let report = match (dry_run, target) {
                (true, target) => migrator.dry_run(pool, *target).await?,
                (false, Some(target)) => migrator.migrate_to(pool, *target).await?,
                (false, None) => migrator.migrate(pool).await?,
            };
            print(cli.json, &report, print_migrate)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Rollback {
            to_version,
            strategy,
            dry_run,
        } => {
            let strategy = match strategy {
                Strategy::Backup => RollbackStrategy::Backup,
                Strategy::Scripts => RollbackStrategy::Scripts,
            };
            let report = if *dry_run {
                migrator
                    .rollback_dry_run(pool, *to_version, strategy)
                    .await?
            } else {
                migrator.rollback(pool, *to_version, strategy).await?
            };
            print(cli.json, &report, print_rollback)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Restore { path, dry_run } => {
            let report = if *dry_run {
                migrator.restore_file_dry_run(pool, path).await?
            } else {
                migrator.restore_file(pool, path).await?
            };
            print(cli.json, &report, print_rollback)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Backup => {
            let path = migrator.backup(pool).await?;
            if cli.json {
                println!("{}", serde_json::json!({ "backup": path }));
            } else {
                println!("backup  {}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Backups => {
            let backups = migrator.backups(pool).await?;
            print(cli.json, backups.as_slice(), print_backups)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `--database`, else `DATABASE_URL` (a `sqlite:` URL), else the default path.
fn database_path(cli: &Cli) -> anyhow::Result<PathBuf> {
    if let Some(path) = &cli.database {
        return Ok(path.clone());
    }
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => {
            if !url.starts_with("sqlite:") {
                return Err(CliError::new(
                    "invalid_argument",
                    format!(
                        "DATABASE_URL={url:?} is not a sqlite: URL; pass --database PATH instead"
                    ),
                )
                .into());
            }
            let options = SqliteConnectOptions::from_str(&url).map_err(|e| {
                CliError::new(
                    "invalid_argument",
                    format!("DATABASE_URL={url:?} is not a valid sqlite: URL: {e}"),
                )
            })?;
            Ok(options.get_filename().to_owned())
        }
        _ => Ok(PathBuf::from(DEFAULT_DATABASE)),
    }
}

/// What `migrate` is about to create for a new database: the file and missing directories,
/// removed again when the migration fails (the run changed nothing, so nothing should remain).
struct Fresh {
    file: Option<PathBuf>,
    dirs: Vec<PathBuf>,
}

impl Fresh {
    fn before_creating(path: &Path) -> Self {
        let dirs = path
            .ancestors()
            .skip(1)
            .filter(|d| !d.as_os_str().is_empty())
            .take_while(|d| !d.exists())
            .map(Path::to_owned)
            .collect();
        Fresh {
            file: (!path.exists()).then(|| path.to_owned()),
            dirs,
        }
    }

    fn undo(self) {
        if let Some(file) = &self.file
            && std::fs::metadata(file).is_ok_and(|m| m.len() == 0)
        {
            for suffix in ["", "-journal", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
            }
        }
        for dir in &self.dirs {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Opens a pool on the database. Only `migrate` may create it (and its directory).
async fn open(path: &Path, create: bool, busy_timeout: Duration) -> anyhow::Result<SqlitePool> {
    if path.is_dir() {
        return Err(CliError::new(
            "database_path",
            format!("{}: is a directory, not a database file", path.display()),
        )
        .into());
    }
    if !create && !path.exists() {
        return Err(CliError::new(
            "database_path",
            format!("database {} does not exist", path.display()),
        )
        .into());
    }
    if create && let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| {
            CliError::new(
                "database_path",
                format!("cannot create the directory {}: {e}", parent.display()),
            )
        })?;
    }
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(create)
        .busy_timeout(busy_timeout);
    SqlitePoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .map_err(|e| {
            CliError::new(
                "database_path",
                format!("cannot open the database {}: {e}", path.display()),
            )
            .into()
        })
}

fn print<T: serde::Serialize + ?Sized>(
    json: bool,
    value: &T,
    human: fn(&T) -> String,
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        print!("{}", human(value));
    }
    Ok(())
}

fn print_status(report: &StatusReport) -> String {
    let mut out = format!(
        "database  {}\nversion   {} (latest {})\n",
        report.database.display(),
        report.current_version,
        report.latest_version
    );
    if report.migrations.is_empty() {
        out.push_str("no migrations\n");
        return out;
    }
    let rows: Vec<[String; 6]> = report
        .migrations
        .iter()
        .map(|m| {
            let state = match m.state {
                State::Applied => "applied",
                State::Adopted => "adopted",
                State::Pending => "pending",
            };
            let applied_at = m.applied_at.map_or_else(|| "-".into(), format_time);
            let checksum = match (m.known, m.checksum_ok) {
                (false, _) => "unknown",
                (_, Some(true)) => "ok",
                (_, Some(false)) => "MODIFIED",
                (_, None) => "-",
            };
            let probe = match m.probe {
                Some(v) if m.drift => format!("{v} DRIFT"),
                Some(v) => v.to_string(),
                None => "error".into(),
            };
            [
                m.version.to_string(),
                state.into(),
                applied_at,
                checksum.into(),
                probe,
                m.description.clone(),
            ]
        })
        .collect();
    out.push('\n');
    out.push_str(&table(
        [
            "VERSION",
            "STATE",
            "APPLIED AT",
            "CHECKSUM",
            "PROBE",
            "DESCRIPTION",
        ],
        &rows,
    ));
    for m in &report.migrations {
        if let Some(error) = &m.probe_error {
            out.push_str(&format!("probe of {}: {error}\n", m.version));
        }
    }
    out
}

fn print_migrate(report: &MigrateReport) -> String {
    let mut out = String::new();
    if report.is_up_to_date() {
        out.push_str(&format!(
            "up to date at version {} ({})\n",
            report.to_version,
            report.database.display()
        ));
        return out;
    }
    if let Some(backup) = &report.backup {
        out.push_str(&format!("{:<14} {}\n", "backup", backup.display()));
    }
    for m in &report.migrations {
        push_outcome(&mut out, m);
    }
    let verb = if report.dry_run {
        "would migrate"
    } else {
        "migrated"
    };
    out.push_str(&format!(
        "{verb:<14} version {} -> {}\n",
        report.from_version, report.to_version
    ));
    if report.dry_run {
        out.push_str("dry run: nothing was changed\n");
    }
    out
}

/// One line per migration (what was done, in a column of 14), its notices and, for a dry run,
/// its SQL.
fn push_outcome(out: &mut String, m: &MigrationOutcome) {
    let action = match m.action {
        Action::Applied => "applied",
        Action::Adopted => "adopted",
        Action::WouldApply => "would apply",
        Action::WouldAdopt => "would adopt",
        Action::RolledBack => "undone",
        Action::WouldRollBack => "would undo",
    };
    out.push_str(&format!(
        "{action:<14} {:>3} {}  ({} ms)\n",
        m.version, m.description, m.duration_ms
    ));
    for notice in &m.notices {
        out.push_str(&format!("{:<14} note: {notice}\n", ""));
    }
    if let Some(sql) = &m.sql {
        for line in sql.lines() {
            out.push_str(&format!("{:<14} | {line}\n", ""));
        }
    }
}

fn print_rollback(report: &RollbackReport) -> String {
    if report.is_noop() {
        return format!(
            "nothing to do: {} is at version {}, not above the version asked for\n",
            report.database.display(),
            report.from_version
        );
    }
    let mut out = String::new();
    let (restore, discards) = if report.dry_run {
        ("would restore", "would discard")
    } else {
        ("restored", "discards")
    };
    if let Some(safety) = &report.safety_backup {
        out.push_str(&format!("{:<14} {}\n", "safety backup", safety.display()));
    }
    if let Some(restored) = &report.restored_from {
        out.push_str(&format!("{restore:<14} {}\n", restored.display()));
    }
    for m in &report.rolled_back {
        push_outcome(&mut out, m);
    }
    let went = match (report.dry_run, report.to_version < report.from_version) {
        (true, _) => "would go",
        (false, true) => "rolled back",
        (false, false) => "went",
    };
    out.push_str(&format!(
        "{went:<14} version {} -> {}\n",
        report.from_version, report.to_version
    ));
    if let Some(since) = report.discards_changes_since {
        let kept = match &report.safety_backup {
            Some(safety) => format!("the safety backup {} keeps them", safety.display()),
            None => "a safety backup is taken first and keeps them".to_owned(),
        };
        out.push_str(&format!(
            "note: the restore {discards} everything written after {}; {kept}\n",
            format_time(since)
        ));
    }
    if report.dry_run {
        out.push_str("dry run: nothing was changed\n");
    }
    out
}

fn print_backups(backups: &[BackupInfo]) -> String {
    if backups.is_empty() {
        return "no backups\n".to_owned();
    }
    let rows: Vec<[String; 5]> = backups
        .iter()
        .map(|b| {
            [
                b.version
                    .map_or_else(|| "unreadable".into(), |v| v.to_string()),
                format_time(b.taken_at),
                format!("{:?}", b.reason).to_lowercase(),
                b.size.to_string(),
                b.path.display().to_string(),
            ]
        })
        .collect();
    let mut out = table(["VERSION", "TAKEN AT", "REASON", "BYTES", "PATH"], &rows);
    for b in backups {
        if let Some(error) = &b.error {
            out.push_str(&format!("{}: {error}\n", b.path.display()));
        }
        if b.untagged {
            out.push_str(&format!(
                "{}: named without a database identity tag: never chosen by a rollback nor \
                 pruned; restore it by name if it is this database's\n",
                b.path.display()
            ));
        }
    }
    out
}

fn format_time(at: time::OffsetDateTime) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");
    at.format(&format).unwrap_or_default()
}

/// Left-aligned columns separated by two spaces.
fn table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ");
        s.truncate(s.trim_end().len());
        s.push('\n');
        s
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// An error of the CLI itself (not of the library), with its kind for `--json`.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
struct CliError {
    kind: &'static str,
    message: String,
}

impl CliError {
    fn new(kind: &'static str, message: String) -> Self {
        CliError { kind, message }
    }
}

/// A progress bar on stderr for backups that take more than a second.
#[derive(Clone, Default)]
struct Progress(Arc<Mutex<ProgressState>>);

#[derive(Default)]
struct ProgressState {
    started: Option<Instant>,
    bar: Option<ProgressBar>,
}

impl Progress {
    fn new(enabled: bool) -> Option<Self> {
        enabled.then(Progress::default)
    }

    fn update(&self, progress: backstop::BackupProgress) {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let started = *state.started.get_or_insert_with(Instant::now);
        if state.bar.is_none() && started.elapsed() > Duration::from_secs(1) {
            let bar = ProgressBar::new(progress.total_pages);
            bar.set_style(
                ProgressStyle::with_template("backup {bar:40} {percent:>3}% ({pos}/{len} pages)")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            state.bar = Some(bar);
        }
        if let Some(bar) = &state.bar {
            bar.set_length(progress.total_pages);
            bar.set_position(progress.copied_pages);
        }
    }

    fn finish(&self) {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bar) = state.bar.take() {
            bar.finish_and_clear();
        }
        state.started = None;
    }
}
