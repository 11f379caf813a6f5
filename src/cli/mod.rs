//! The command line, for any project's migrations (cargo feature `cli`).
//!
//! A project gets `status`, `migrate`, `rollback`, `restore`, `backups`, `backup`, `add`,
//! `verify`, `import-sqlx` and `export-sqlx` for its own migrations with a binary of a few lines, `src/bin/migrate.rs`:
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     let migrations = backstop::embed_migrations!("$CARGO_MANIFEST_DIR/migrations");
//!     backstop::cli::Cli::embedded("migrate", migrations)
//!         .version(env!("CARGO_PKG_VERSION"))
//!         .default_database("data/app.sqlite3")
//!         .run()
//! }
//! ```
//!
//! **One configuration.** The command line takes the program's own settings, so that an
//! operator's `rollback` looks where the service's backups are: [`Cli::configure`] with the
//! function the service configures its [`Migrator`] with, or [`Cli::new`] with a configured
//! migrator. Each setting is taken from its flag, else its variable, else the program, else
//! backstop's default:
//!
//! | flag | variable | program |
//! |---|---|---|
//! | `--backup-dir DIR` | `BACKSTOP_BACKUP_DIR` | [`Migrator::backup_dir`] |
//! | `--keep-backups N` | `BACKSTOP_KEEP_BACKUPS` | [`Migrator::keep_backups`] |
//! | `--busy-timeout SECONDS` | `BACKSTOP_BUSY_TIMEOUT` | [`Migrator::busy_timeout`] |
//! | `--allow-newer[=BOOL]` | `BACKSTOP_ALLOW_NEWER` (`true`, `false`, `1`, `0`, ...) | [`Migrator::allow_newer_database`] |
//! | `--backup-copy WAY` | `BACKSTOP_BACKUP_COPY` (`fastest`, `kernel-copy`, `read-write`) | [`Migrator::backup_copy`] |
//!
//! The database is `--database PATH` (a file path, never a URL), else `DATABASE_URL` (a
//! `sqlite:` URL), else the program's [`default_database`](Cli::default_database). `add`
//! writes into `--migrations DIR`, else into the directory the program's migrations come from
//! (embedded from, or read from); never into a `migrations/` that happens to be where it runs.
//!
//! **Fleets.** `migrate`, `status` and `backup` take `--databases GLOB` (repeatable, expanded
//! by the command itself, sorted) or `--databases-from FILE` (`-`: stdin) instead of
//! `--database`, with `--jobs N`, `--keep-going` and `--canary N`
//! ([`Migrator::migrate_each`]); a fleet that names no database is an error (`no_databases`),
//! and the exit code is 0 only when every database ended well.
//!
//! Reports are printed as their `Display` text, or as JSON with `--json` (the library's report
//! values: `database` as it was named, every file a report points to by its absolute path); errors go to stderr with
//! exit code 1 (`{"error": ..., "kind": ...}` under `--json`); usage errors exit with 2.
//! `status --check` exits with 1 when the database is not clean, saying why on stderr (kind
//! `not_clean`).

mod args;
mod backups;
mod fleet;
mod migrations;
mod output;
mod progress;
mod target;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::FromArgMatches;

use crate::config::{Config, Newer};
use crate::{Error, Migrator, Source};
use args::{Args, Command};
use backups::{BackupTable, Taken};
use migrations::Migrations;
use output::{CliError, CliKind, Failure, Format, exit_code};
use progress::Progress;
use target::{Create, Fresh, Target};

/// A project's migration command line. See the [module documentation](self).
pub struct Cli {
    name: String,
    version: Option<String>,
    migrations: Migrations,
    default_database: Option<PathBuf>,
    /// The program's settings, under the flags and variables.
    program: Config,
}

impl Cli {
    /// A command line named `name` for the migrations and settings of a configured
    /// [`Migrator`]: the same backup directory, retention, busy timeout and acceptance of
    /// newer databases as the program's own runs (flags and `BACKSTOP_*` variables still
    /// override them). `--migrations DIR` reads a directory instead of its migrations.
    pub fn new(name: impl Into<String>, migrator: Migrator) -> Self {
        let (source, program) = migrator.into_parts();
        Cli {
            program,
            ..Cli::embedded(name, Ok(source))
        }
    }

    /// A command line named `name` for migrations embedded in the binary (the result of
    /// [`embed_migrations!`](crate::embed_migrations); an invalid set is reported when a
    /// command needs it). `--migrations DIR` reads a directory instead; `add` writes into the
    /// directory they were embedded from (or `--migrations`).
    pub fn embedded(name: impl Into<String>, source: Result<Source, Error>) -> Self {
        Cli {
            name: name.into(),
            version: None,
            migrations: Migrations::Embedded(Box::new(source)),
            default_database: None,
            program: Config::default(),
        }
    }

    /// A command line named `name` for the migrations in `dir`, read at run time (and where
    /// `add` writes).
    pub fn from_dir(name: impl Into<String>, dir: impl Into<PathBuf>) -> Self {
        Cli {
            migrations: Migrations::Dir(dir.into()),
            ..Cli::embedded(name, Ok(Source::empty()))
        }
    }

    /// The program's settings, made by `settings` (the function the program's own startup
    /// code configures its [`Migrator`] with), so that the command line backs up to the same
    /// directory, keeps as many backups, waits as long and accepts the same databases:
    ///
    /// ```no_run
    /// use backstop::Migrator;
    ///
    /// /// In the service's library: its settings, for its startup and for its command line.
    /// fn settings(migrator: Migrator) -> Migrator {
    ///     migrator.backup_dir("/var/backups/app").keep_backups(20)
    /// }
    ///
    /// fn main() -> std::process::ExitCode {
    ///     let migrations = backstop::embed_migrations!("$CARGO_MANIFEST_DIR/migrations");
    ///     backstop::cli::Cli::embedded("migrate", migrations)
    ///         .configure(settings)
    ///         .run()
    /// }
    /// ```
    ///
    /// Only the settings are taken (not the migrations, nor a progress callback: the command
    /// line draws its own bar). Flags win over `BACKSTOP_*` variables, which win over these.
    pub fn configure(mut self, settings: impl FnOnce(Migrator) -> Migrator) -> Self {
        let (_, program) =
            settings(Migrator::configured(Source::empty(), self.program)).into_parts();
        self.program = program;
        self
    }

    /// The program's version, printed by `--version` beside backstop's:
    /// `.version(env!("CARGO_PKG_VERSION"))` in the program's crate.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
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
        let version = match &self.version {
            Some(version) => format!("{version} (backstop {})", env!("CARGO_PKG_VERSION")),
            None => format!("(backstop {})", env!("CARGO_PKG_VERSION")),
        };
        let command = args::command(&self.name, version, &self.program);
        if let Err(e) = args::check_variables(&command) {
            e.exit();
        }
        let args = match Args::from_arg_matches(&command.clone().get_matches_from(args)) {
            Ok(args) => args,
            Err(e) => e.exit(),
        };
        if let Err(e) = args.check_conflicts(&command) {
            e.exit();
        }
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

    /// Runs the command and prints its report; one `match` for every command.
    async fn execute(&self, args: &Args, format: Format) -> Result<ExitCode, Failure> {
        if let Some(fleet) = args.fleet() {
            // Boxed: the fleet's futures nested inside this one overflow rustc's query depth
            // when the layout is computed in a fresh (non-incremental) build.
            return Box::pin(self.execute_on_fleet(args, fleet, format)).await;
        }
        Ok(match &args.command {
            Command::Add { description } => {
                format.print(&crate::add_migration(self.add_dir(args)?, description)?);
                ExitCode::SUCCESS
            }
            Command::Verify => {
                let report = crate::verify(&self.source(args)?, args.database.as_deref()).await?;
                format.print(&report);
                exit_code(report.ok)
            }
            Command::Status { check, .. } => {
                let report = self
                    .on_database(args, format, async |m, pool| m.status(pool).await)
                    .await?;
                format.print(&report);
                if *check && !report.is_clean() {
                    let why = format!(
                        "{}: not clean: {}",
                        report.database.display(),
                        report.summary
                    );
                    format.error(&CliError::new(CliKind::NotClean, why).into());
                    return Ok(ExitCode::from(1));
                }
                ExitCode::SUCCESS
            }
            Command::Migrate {
                dry_run, target, ..
            } => {
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
            Command::ExportSqlx { dry_run } => {
                let report = self
                    .on_database(args, format, async |m, pool| match dry_run {
                        true => m.dry_run().export_sqlx(pool).await,
                        false => m.export_sqlx(pool).await,
                    })
                    .await?;
                format.print(&report);
                ExitCode::SUCCESS
            }
            Command::Backup { .. } => {
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

    /// The migrator the arguments configure: the migrations, and the program's settings under
    /// the flags and variables.
    fn migrator(&self, args: &Args) -> Result<Migrator, Failure> {
        let mut config = self.program.clone();
        if let Some(dir) = &args.backup_dir {
            config.set_backup_dir(dir.clone());
        }
        config.set_keep_backups(args.keep_backups);
        config.set_busy_timeout(args.busy_timeout);
        config.set_backup_copy(args.backup_copy);
        config.set_newer(match args.allow_newer {
            true => Newer::Accept,
            false => Newer::Refuse,
        });
        Ok(Migrator::configured(self.source(args)?, config))
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
        let mut migrator = self.migrator(args)?;
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
