//! The command line, for any project's migrations (cargo feature `cli`).
//!
//! A project gets `status`, `migrate`, `rollback`, `restore`, `backups`, `backup`, `add`,
//! `verify` and `import-sqlx` for its own migrations with a binary of a few lines, `src/bin/migrate.rs`:
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     let migrations = backstop::embed_migrations!("$CARGO_MANIFEST_DIR/migrations");
//!     backstop::cli::Cli::embedded("migrate", migrations)
//!         .default_database("data/app.sqlite3")
//!         .run()
//! }
//! ```
//!
//! Without a default database, `--database PATH` or `DATABASE_URL` is required. Reports are
//! printed as their `Display` text, or as JSON with `--json`; errors go to stderr with exit
//! code 1 (`{"error": ..., "kind": ...}` under `--json`); usage errors exit with 2.

mod args;
mod output;
mod progress;
mod target;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use crate::report::BackupTable;
use crate::{Error, Migrator, Source};
use args::{Args, Command};
use output::{CliError, Failure, Format, stderr, stdout};
use progress::Progress;
use target::{Create, Fresh, Target};

/// Where the command line finds its migrations.
enum Migrations {
    /// Embedded at build time ([`embed_migrations!`](crate::embed_migrations)).
    Embedded(Box<Result<Source, Error>>),
    /// A directory read at run time.
    Dir(PathBuf),
}

/// A project's migration command line. See the [module documentation](self).
pub struct Cli {
    name: String,
    migrations: Migrations,
    default_database: Option<PathBuf>,
}

impl Cli {
    /// A command line named `name` for migrations embedded in the binary (the result of
    /// [`embed_migrations!`](crate::embed_migrations); an invalid set is reported when a
    /// command needs it). `--migrations DIR` reads a directory instead; `add` writes into
    /// `--migrations`, default `migrations/`.
    pub fn embedded(name: impl Into<String>, source: Result<Source, Error>) -> Self {
        Cli {
            name: name.into(),
            migrations: Migrations::Embedded(Box::new(source)),
            default_database: None,
        }
    }

    /// A command line named `name` for the migrations in `dir`, read at run time (and where
    /// `add` writes).
    pub fn from_dir(name: impl Into<String>, dir: impl Into<PathBuf>) -> Self {
        Cli {
            name: name.into(),
            migrations: Migrations::Dir(dir.into()),
            default_database: None,
        }
    }

    /// The database file used when neither `--database` nor `DATABASE_URL` is given.
    pub fn default_database(mut self, path: impl Into<PathBuf>) -> Self {
        self.default_database = Some(path.into());
        self
    }

    /// Parses the process's arguments, runs the command on a Tokio runtime of its own and
    /// returns the exit code.
    pub fn run(self) -> ExitCode {
        self.run_from(std::env::args_os())
    }

    /// Like [`run`](Self::run), with these arguments (the first is the program's name).
    pub fn run_from<I, T>(self, args: I) -> ExitCode
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let command = Args::command().name(self.name.clone());
        let args = match Args::from_arg_matches(&command.get_matches_from(args)) {
            Ok(args) => args,
            Err(e) => e.exit(),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        let format = if args.json {
            Format::Json
        } else {
            Format::Text
        };
        format.init_logs();
        let result = match runtime {
            Ok(runtime) => runtime.block_on(self.execute(&args, format)),
            Err(e) => Err(CliError::new("io", format!("cannot start a runtime: {e}")).into()),
        };
        match result {
            Ok(code) => code,
            Err(failure) => {
                format.error(&failure);
                ExitCode::from(1)
            }
        }
    }

    /// The migrations: `--migrations DIR`, else the program's.
    fn source(&self, args: &Args) -> Result<Source, Failure> {
        match (&args.migrations, &self.migrations) {
            (Some(dir), _) | (None, Migrations::Dir(dir)) => Ok(Source::from_dir(dir)?),
            (None, Migrations::Embedded(source)) => match source.as_ref() {
                Ok(source) => Ok(source.clone()),
                Err(e) => Err(CliError::new(e.kind(), e.to_string()).into()),
            },
        }
    }

    /// Where `add` writes.
    fn add_dir(&self, args: &Args) -> PathBuf {
        match (&args.migrations, &self.migrations) {
            (Some(dir), _) | (None, Migrations::Dir(dir)) => dir.clone(),
            (None, Migrations::Embedded(_)) => PathBuf::from("migrations"),
        }
    }

    async fn execute(&self, args: &Args, format: Format) -> Result<ExitCode, Failure> {
        match &args.command {
            Command::Add { description } => {
                let new = crate::add_migration(self.add_dir(args), description)?;
                print_added(format, &new);
                return Ok(ExitCode::SUCCESS);
            }
            Command::Verify => {
                let report = crate::verify(&self.source(args)?, args.database.as_deref()).await?;
                format.print(&report);
                return Ok(if report.ok {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                });
            }
            _ => {}
        }

        let target = Target::resolve(args.database.as_deref(), self.default_database.as_deref())?;
        let source = self.source(args)?;
        let mut migrator = Migrator::new(source)
            .keep_backups(args.keep_backups)
            .busy_timeout(args.busy_timeout);
        if let Some(dir) = &args.backup_dir {
            migrator = migrator.backup_dir(dir);
        }
        if args.allow_newer {
            migrator = migrator.allow_newer_database();
        }
        let progress =
            (format == Format::Text && std::io::stderr().is_terminal()).then(Progress::default);
        if let Some(progress) = &progress {
            let progress = progress.clone();
            migrator = migrator.on_backup_progress(move |p| progress.update(p));
        }

        // Only `migrate` may create the database; a failed one removes what it created.
        let create = match args.command {
            Command::Migrate { dry_run: false, .. } => Create::IfMissing,
            _ => Create::Never,
        };
        let fresh = (create == Create::IfMissing).then(|| Fresh::before_creating(target.file()));
        let pool = target.open(create, args.busy_timeout).await?;
        let outcome = run_command(&args.command, &migrator, &pool, format).await;
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
        Ok(outcome?)
    }
}

/// Runs a command that works on the database, and prints its report.
async fn run_command(
    command: &Command,
    migrator: &Migrator,
    pool: &sqlx::SqlitePool,
    format: Format,
) -> Result<ExitCode, Error> {
    match command {
        Command::Status { check } => {
            let report = migrator.status(pool).await?;
            format.print(&report);
            if *check && !report.is_clean() {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Migrate { dry_run, target } => {
            let report = match (dry_run, target) {
                (true, target) => migrator.dry_run(pool, *target).await?,
                (false, Some(target)) => migrator.migrate_to(pool, *target).await?,
                (false, None) => migrator.migrate(pool).await?,
            };
            format.print(&report);
        }
        Command::Rollback {
            to_version,
            strategy,
            dry_run,
        } => {
            let report = if *dry_run {
                migrator
                    .rollback_dry_run(pool, *to_version, *strategy)
                    .await?
            } else {
                migrator.rollback(pool, *to_version, *strategy).await?
            };
            format.print(&report);
        }
        Command::Restore {
            path,
            force,
            dry_run,
        } => {
            let forced;
            let migrator = match force {
                true => {
                    forced = migrator.clone().restore_foreign_files();
                    &forced
                }
                false => migrator,
            };
            let report = if *dry_run {
                migrator.restore_file_dry_run(pool, path).await?
            } else {
                migrator.restore_file(pool, path).await?
            };
            format.print(&report);
        }
        Command::ImportSqlx { dry_run } => {
            let report = if *dry_run {
                migrator.import_sqlx_dry_run(pool).await?
            } else {
                migrator.import_sqlx(pool).await?
            };
            format.print(&report);
        }
        Command::Backup => {
            let path = migrator.backup(pool).await?;
            match format {
                Format::Json => stdout(format_args!("{}\n", serde_json::json!({ "backup": path }))),
                Format::Text => stdout(format_args!("backup  {}\n", path.display())),
            }
        }
        Command::Backups => {
            let backups = migrator.backups(pool).await?;
            format.print(&BackupTable(&backups));
        }
        Command::Add { .. } | Command::Verify => unreachable!("handled without a database"),
    }
    Ok(ExitCode::SUCCESS)
}

fn print_added(format: Format, new: &crate::NewMigration) {
    match format {
        Format::Json => match serde_json::to_string_pretty(new) {
            Ok(json) => stdout(format_args!("{json}\n")),
            Err(e) => stderr(format_args!("cannot write the report as JSON: {e}")),
        },
        Format::Text => {
            for file in &new.files {
                stdout(format_args!("created  {}\n", file.display()));
            }
            stdout(format_args!(
                "migration {}: write the forward script, its rollback and its probe (each file \
                 says what it must do)\n",
                new.version
            ));
        }
    }
}
