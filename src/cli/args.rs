//! The command line's arguments.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};

use crate::config::{Config, Newer};
use crate::{BackupCopy, MAX_BUSY_TIMEOUT, RollbackStrategy};

/// Safe SQLite migrations: online backup first, all or nothing, verified rollback.
///
/// The settings the program shares with its own migrator (backup directory, backups kept, busy
/// timeout, newer databases, how backups copy) are taken from the flag, else from the BACKSTOP_* variable, else
/// from the program's configuration, else from backstop's defaults: the defaults shown are the
/// program's.
#[derive(Debug, Parser)]
pub(crate) struct Args {
    /// The database file (a path, never a URL) [default: $DATABASE_URL (a sqlite: URL), else
    /// the program's default]
    #[arg(long, global = true, value_name = "PATH")]
    pub database: Option<PathBuf>,
    /// Directory of migration files [default: the program's migrations]
    #[arg(long, global = true, value_name = "DIR")]
    pub migrations: Option<PathBuf>,
    /// Directory for backups [default: the program's, else backups/ beside the database file]
    #[arg(long, global = true, value_name = "DIR", env = "BACKSTOP_BACKUP_DIR")]
    pub backup_dir: Option<PathBuf>,
    /// Backups of this database to keep
    #[arg(
        long,
        global = true,
        value_name = "N",
        env = "BACKSTOP_KEEP_BACKUPS",
        required = false
    )]
    pub keep_backups: usize,
    /// Seconds to wait for other writers before giving up
    #[arg(
        long,
        global = true,
        value_name = "SECONDS",
        env = "BACKSTOP_BUSY_TIMEOUT",
        required = false,
        value_parser = parse_seconds
    )]
    pub busy_timeout: Duration,
    /// Accept a database migrated by a newer build (unknown versions above every known one):
    /// migrate applies nothing and says so, status --check passes; --allow-newer=false refuses
    /// it even when the program accepts it
    #[arg(
        long,
        global = true,
        value_name = "BOOL",
        env = "BACKSTOP_ALLOW_NEWER",
        required = false,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub allow_newer: bool,
    /// How a WAL database's backup copies its file: fastest (a clone where the file system
    /// can, else a copy inside the kernel), kernel-copy (never a clone asked for), read-write
    /// (read and written by this process: blocks of its own on every file system)
    #[arg(
        long,
        global = true,
        value_name = "WAY",
        env = "BACKSTOP_BACKUP_COPY",
        required = false,
        value_enum,
        hide_possible_values = true
    )]
    pub backup_copy: BackupCopy,
    /// Machine-readable output on stdout
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Show the version and the state of every migration
    Status {
        /// Exit with 1 when anything is pending, drifted, modified or unknown (for CI); with
        /// --databases, also when a database cannot be read
        #[arg(long)]
        check: bool,
        #[command(flatten)]
        fleet: FleetArgs,
    },
    /// Apply pending migrations (creates a missing database)
    Migrate {
        /// Rehearse in a transaction that is rolled back; change nothing
        #[arg(long)]
        dry_run: bool,
        /// Stop at this version
        #[arg(long, value_name = "N")]
        target: Option<i64>,
        #[command(flatten)]
        fleet: FleetArgs,
    },
    /// Go back to an earlier version (a backup of the current state is taken first)
    Rollback {
        /// The version to go back to (0: before any migration)
        #[arg(long, value_name = "N")]
        to_version: i64,
        /// Restore a verified backup that holds the version, or run the rollback scripts
        #[arg(long, default_value = "backup", value_parser = RollbackStrategy::from_str)]
        strategy: RollbackStrategy,
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
        /// Restore it even when it is not proven to be a backup of this database (another
        /// database's identity, or nothing to compare); a safety backup is still taken
        #[arg(long)]
        force: bool,
        /// Report what would happen; change nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Record the migrations sqlx applied (_sqlx_migrations) as applied in backstop's history,
    /// running nothing (a backup is taken first); _sqlx_migrations is left in place
    #[command(name = "import-sqlx")]
    ImportSqlx {
        /// Report what would be recorded; change nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Make sqlx's history (_sqlx_migrations) say what backstop's says, so that a sqlx build
    /// runs on the database again (a backup is taken first); refuses versions sqlx could not
    /// read
    #[command(name = "export-sqlx")]
    ExportSqlx {
        /// Report what would be written; change nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// List the backups of the database
    Backups,
    /// Take a backup of the database now
    Backup {
        #[command(flatten)]
        fleet: FleetArgs,
    },
    /// Write the three files of a new migration (NNN_DESCRIPTION.sql, .rollback.sql,
    /// .probe.sql) into the migrations directory; opens no database
    Add {
        /// Letters, digits, '_' and '-'
        #[arg(value_name = "DESCRIPTION")]
        description: String,
    },
    /// Prove every migration and its rollback on a scratch database (never yours; with
    /// --database, a copy of it); exit 1 on any problem
    Verify,
}

/// A fleet: many databases instead of `--database`, each migrated (read, backed up) as alone,
/// a bounded number at once.
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
#[command(group = clap::ArgGroup::new("fleet").multiple(true).args(["databases", "databases_from"]))]
pub(crate) struct FleetArgs {
    /// Every database file matching this pattern (repeatable; `*`, `?`, `[ab]`, `**`; the
    /// matches sorted; a plain path is a one-file pattern; directories and the -wal, -shm and
    /// -journal files of a matched database are left out)
    #[arg(long, value_name = "GLOB")]
    pub databases: Vec<String>,
    /// Database paths read from FILE, one a line ('-': standard input; blank lines and lines
    /// starting with '#' skipped), after the --databases matches
    #[arg(long, value_name = "FILE")]
    pub databases_from: Option<PathBuf>,
    /// At most N databases at once [default: the number of CPUs]
    #[arg(long, value_name = "N", requires = "fleet", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
    /// Go on after a database fails (without it, the first failure stops starting others)
    #[arg(long, requires = "fleet")]
    pub keep_going: bool,
    /// Run the first N databases one at a time before any other; if one fails, stop
    #[arg(long, value_name = "N", default_value_t = 0, requires = "fleet")]
    pub canary: usize,
}

impl Args {
    /// The fleet the command names (`--databases`, `--databases-from`), if any.
    pub fn fleet(&self) -> Option<&FleetArgs> {
        match &self.command {
            Command::Status { fleet, .. }
            | Command::Migrate { fleet, .. }
            | Command::Backup { fleet } => Some(fleet).filter(|f| f.named()),
            _ => None,
        }
    }

    /// Refuses what clap cannot see: `--database` (a global flag, given before or after the
    /// command) with a fleet.
    pub fn check_conflicts(&self, command: &clap::Command) -> Result<(), clap::Error> {
        match (&self.database, self.fleet()) {
            (Some(database), Some(_)) => Err(command.clone().error(
                clap::error::ErrorKind::ArgumentConflict,
                format!(
                    "--database {} cannot be used with --databases or --databases-from",
                    database.display()
                ),
            )),
            _ => Ok(()),
        }
    }
}

impl FleetArgs {
    /// Whether a fleet was named (else the command works on one database).
    pub fn named(&self) -> bool {
        !self.databases.is_empty() || self.databases_from.is_some()
    }
}

/// A `--busy-timeout` that is not a number of seconds SQLite can wait.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
enum BadSeconds {
    #[error("{0:?} is not a number of seconds")]
    NotANumber(String),
    #[error(
        "{text} is not between 0 and {max} seconds (about 24.8 days, the longest SQLite waits)"
    )]
    OutOfRange { text: String, max: f64 },
}

/// The command line's arguments, with the program's settings as the defaults of the shared
/// ones (a variable still wins over them, and a flag over both).
pub(crate) fn command(name: &str, version: String, program: &Config) -> clap::Command {
    let command = Args::command().name(name.to_owned()).version(version);
    let command = match program.backup_dir() {
        Some(dir) => command.mut_arg("backup_dir", |a| {
            a.default_value(dir.as_os_str().to_owned())
        }),
        None => command,
    };
    let allow_newer = program.newer() == Newer::Accept;
    command
        .mut_arg("keep_backups", |a| {
            a.default_value(program.keep_backups().to_string())
        })
        .mut_arg("busy_timeout", |a| {
            a.default_value(program.busy_timeout().as_secs_f64().to_string())
        })
        .mut_arg("allow_newer", |a| a.default_value(allow_newer.to_string()))
        .mut_arg("backup_copy", |a| {
            let name = clap::ValueEnum::to_possible_value(&program.backup_copy())
                .map(|v| v.get_name().to_owned());
            a.default_value(name.unwrap_or_default())
        })
}

/// Checks the `BACKSTOP_*` variables that are set, each with its flag's parser, so that a bad
/// value is reported with the variable's name (clap names only the flag).
pub(crate) fn check_variables(command: &clap::Command) -> Result<(), clap::Error> {
    for arg in command.get_arguments() {
        let (Some(long), Some(var)) = (arg.get_long(), arg.get_env()) else {
            continue;
        };
        let Some(value) = std::env::var_os(var).filter(|v| !v.is_empty()) else {
            continue;
        };
        let alone = clap::Command::new("check")
            .no_binary_name(true)
            .arg(arg.clone().global(false).env(None::<&str>));
        let mut flag = std::ffi::OsString::from(format!("--{long}="));
        flag.push(&value);
        if let Err(e) = alone.try_get_matches_from([flag]) {
            let why = e.to_string();
            let why = why
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ");
            return Err(command.clone().error(
                clap::error::ErrorKind::InvalidValue,
                format!("{}={value:?}: {why}", var.to_string_lossy()),
            ));
        }
    }
    Ok(())
}

/// Seconds, at most what SQLite can wait.
fn parse_seconds(text: &str) -> Result<Duration, BadSeconds> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| BadSeconds::NotANumber(text.to_owned()))?;
    let max = MAX_BUSY_TIMEOUT.as_secs_f64();
    if !seconds.is_finite() || !(0.0..=max).contains(&seconds) {
        return Err(BadSeconds::OutOfRange {
            text: text.to_owned(),
            max,
        });
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_timeouts_are_seconds_sqlite_can_wait() {
        assert_eq!(parse_seconds("0.3"), Ok(Duration::from_millis(300)));
        assert!(parse_seconds(&MAX_BUSY_TIMEOUT.as_secs_f64().to_string()).is_ok());
        for bad in ["1e20", "3000000", "-1", "NaN", "inf", "five"] {
            assert!(parse_seconds(bad).is_err(), "{bad}");
        }
    }
}
