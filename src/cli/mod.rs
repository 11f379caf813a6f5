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
mod backups;
mod output;
mod progress;
mod target;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use crate::{Error, Migrator, Source};
use args::{Args, Command};
use backups::BackupTable;
use output::{CliError, CliKind, Failure, Format};
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
            Err(e) => {
                Err(CliError::new(CliKind::Io, format!("cannot start a runtime: {e}")).into())
            }
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
                Err(e) => Err(Failure::Reported {
                    kind: e.kind(),
                    message: e.to_string(),
                }),
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

    /// Runs the command and prints its report; one `match` for every command.
    async fn execute(&self, args: &Args, format: Format) -> Result<ExitCode, Failure> {
        let success = |ok: bool| match ok {
            true => ExitCode::SUCCESS,
            false => ExitCode::from(1),
        };
        Ok(match &args.command {
            Command::Add { description } => {
                format.print(&crate::add_migration(self.add_dir(args), description)?);
                ExitCode::SUCCESS
            }
            Command::Verify => {
                let report = crate::verify(&self.source(args)?, args.database.as_deref()).await?;
                format.print(&report);
                success(report.ok)
            }
            Command::Status { check } => {
                let report = self
                    .on_database(args, format, async |m, pool| m.status(pool).await)
                    .await?;
                format.print(&report);
                success(!*check || report.is_clean())
            }
            Command::Migrate { dry_run, target } => {
                let report = self
                    .on_database(args, format, async |m, pool| match (dry_run, target) {
                        (true, None) => m.dry_run().migrate(pool).await,
                        (true, Some(target)) => m.dry_run().migrate_to(pool, *target).await,
                        (false, None) => m.migrate(pool).await,
                        (false, Some(target)) => m.migrate_to(pool, *target).await,
                    })
                    .await?;
                format.print(&report);
                ExitCode::SUCCESS
            }
            Command::Rollback {
                to_version,
                strategy,
                dry_run,
            } => {
                let report = self
                    .on_database(args, format, async |m, pool| match dry_run {
                        true => m.dry_run().rollback(pool, *to_version, *strategy).await,
                        false => m.rollback(pool, *to_version, *strategy).await,
                    })
                    .await?;
                format.print(&report);
                ExitCode::SUCCESS
            }
            Command::Restore {
                path,
                force,
                dry_run,
            } => {
                let report = self
                    .on_database(args, format, async |m, pool| {
                        let forced;
                        let m = match force {
                            true => {
                                forced = m.clone().restore_foreign_files();
                                &forced
                            }
                            false => m,
                        };
                        match dry_run {
                            true => m.dry_run().restore_file(pool, path).await,
                            false => m.restore_file(pool, path).await,
                        }
                    })
                    .await?;
                format.print(&report);
                ExitCode::SUCCESS
            }
            Command::ImportSqlx { dry_run } => {
                let report = self
                    .on_database(args, format, async |m, pool| match dry_run {
                        true => m.dry_run().import_sqlx(pool).await,
                        false => m.import_sqlx(pool).await,
                    })
                    .await?;
                format.print(&report);
                ExitCode::SUCCESS
            }
            Command::Backup => {
                let taken = self
                    .on_database(args, format, async |m, pool| m.backup(pool).await)
                    .await?;
                format.print(&Taken(&taken));
                ExitCode::SUCCESS
            }
            Command::Backups => {
                let backups = self
                    .on_database(args, format, async |m, pool| m.backups(pool).await)
                    .await?;
                format.print(&BackupTable(&backups));
                ExitCode::SUCCESS
            }
        })
    }

    /// Runs `work` on the database the arguments name, with a migrator configured by them: the
    /// pool is opened first (created only for `migrate`; a failed one removes what it created)
    /// and every connection closed after.
    async fn on_database<T>(
        &self,
        args: &Args,
        format: Format,
        work: impl AsyncFnOnce(&Migrator, &sqlx::SqlitePool) -> Result<T, Error>,
    ) -> Result<T, Failure> {
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
        let outcome = work(&migrator, &pool).await;
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

/// A backup taken by `backup`: `backup  PATH`, or `{"backup": "PATH"}`.
struct Taken<'a>(&'a crate::BackupInfo);

impl serde::Serialize for Taken<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serde_json::json!({ "backup": self.0.path }).serialize(serializer)
    }
}

impl std::fmt::Display for Taken<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "backup  {}", self.0.path.display())
    }
}
