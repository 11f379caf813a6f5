//! `--databases GLOB` and `--databases-from FILE`: the commands that run on a fleet
//! (`status`, `migrate`, `backup`), the databases the arguments name, the fleet's options and
//! its progress bar.

use std::collections::HashSet;
use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};

use super::Cli;
use super::args::{Args, Command, FleetArgs};
use super::output::{CliError, CliKind, Failure, Format, exit_code};
use crate::{FleetOptions, FleetReport, Migrator};

impl Cli {
    /// Runs a command on the fleet the arguments name and prints its report; the exit code is 0
    /// only when every database ended well (`status --check`: and is clean).
    pub(super) async fn execute_on_fleet(
        &self,
        args: &Args,
        fleet: &FleetArgs,
        format: Format,
    ) -> Result<ExitCode, Failure> {
        let ok = match &args.command {
            Command::Status { check, .. } => {
                let report = self
                    .on_fleet(args, fleet, format, async |m, dbs, options| {
                        m.status_each(dbs, options).await
                    })
                    .await?;
                format.print(&report);
                let unclean = report.not_clean();
                if *check && unclean > 0 {
                    let why = format!(
                        "not clean: {unclean} of {} database(s) pending, drifted, modified, \
                         unknown or unreadable",
                        report.databases.len()
                    );
                    format.error(&CliError::new(CliKind::NotClean, why).into());
                }
                report.is_ok() && !(*check && unclean > 0)
            }
            Command::Migrate {
                dry_run, target, ..
            } => {
                let report = self
                    .on_fleet(args, fleet, format, async |m, dbs, options| {
                        match (dry_run, target) {
                            (true, target) => m.dry_run_each(dbs, *target, options).await,
                            (false, None) => m.migrate_each(dbs, options).await,
                            (false, Some(target)) => m.migrate_each_to(dbs, *target, options).await,
                        }
                    })
                    .await?;
                format.print(&report);
                report.is_ok()
            }
            Command::Backup { .. } => {
                let report = self
                    .on_fleet(args, fleet, format, async |m, dbs, options| {
                        m.backup_each(dbs, options).await
                    })
                    .await?;
                format.print(&report);
                report.is_ok()
            }
            _ => unreachable!("only status, migrate and backup take a fleet (Args::fleet)"),
        };
        Ok(exit_code(ok))
    }

    /// Runs `work` on the fleet the arguments name, with the migrator and the fleet options
    /// they configure, and a progress bar on a terminal.
    async fn on_fleet<T>(
        &self,
        args: &Args,
        fleet: &FleetArgs,
        format: Format,
        work: impl AsyncFnOnce(&Migrator, Vec<PathBuf>, &FleetOptions) -> FleetReport<T>,
    ) -> Result<FleetReport<T>, Failure> {
        let databases = databases(fleet)?;
        let migrator = self.migrator(args)?;
        let (options, bar) = options(fleet, format, databases.len());
        let report = work(&migrator, databases, &options).await;
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        Ok(report)
    }
}

/// The databases the arguments name: each pattern's matches sorted, in the order the patterns
/// are given, then the lines of `--databases-from`; each database once. None is an error.
fn databases(args: &FleetArgs) -> Result<Vec<PathBuf>, CliError> {
    let mut found = Vec::new();
    for pattern in &args.databases {
        found.extend(matches(pattern)?);
    }
    if let Some(file) = &args.databases_from {
        found.extend(listed(file)?);
    }
    let mut seen = HashSet::new();
    found.retain(|path| seen.insert(path.clone()));
    if found.is_empty() {
        let named: Vec<String> = args
            .databases
            .iter()
            .map(|p| format!("--databases {p}"))
            .chain(
                args.databases_from
                    .iter()
                    .map(|f| format!("--databases-from {}", f.display())),
            )
            .collect();
        return Err(CliError::new(
            CliKind::NoDatabases,
            format!("no database: {} matched no file", named.join(", ")),
        ));
    }
    Ok(found)
}

/// The files `pattern` matches, sorted: not directories, nor the `-wal`, `-shm` and `-journal`
/// files beside a database the pattern also matches.
fn matches(pattern: &str) -> Result<Vec<PathBuf>, CliError> {
    let invalid = |why: String| {
        CliError::new(
            CliKind::InvalidArgument,
            format!("--databases {pattern}: {why}"),
        )
    };
    let paths = glob::glob(pattern).map_err(|e| invalid(e.to_string()))?;
    let mut files = Vec::new();
    for path in paths {
        let path = path.map_err(|e| invalid(e.to_string()))?;
        if path.is_file() {
            files.push(path);
        }
    }
    let matched: HashSet<PathBuf> = files.iter().cloned().collect();
    files.retain(|path| !companion_of(path).is_some_and(|db| matched.contains(&db)));
    files.sort();
    Ok(files)
}

/// The database a `-wal`, `-shm` or `-journal` file belongs to.
fn companion_of(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    ["-wal", "-shm", "-journal"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .map(|db| path.with_file_name(db))
}

/// The paths listed in `file` (`-`: standard input), one a line.
fn listed(file: &Path) -> Result<Vec<PathBuf>, CliError> {
    let unreadable = |e: std::io::Error| {
        CliError::new(
            CliKind::InvalidArgument,
            format!("--databases-from {}: {e}", file.display()),
        )
    };
    let lines: Vec<String> = if file == Path::new("-") {
        std::io::stdin()
            .lock()
            .lines()
            .collect::<Result<_, _>>()
            .map_err(unreadable)?
    } else {
        std::io::BufReader::new(std::fs::File::open(file).map_err(unreadable)?)
            .lines()
            .collect::<Result<_, _>>()
            .map_err(unreadable)?
    };
    Ok(lines
        .iter()
        .map(|line| line.trim_end_matches('\r'))
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .map(PathBuf::from)
        .collect())
}

/// The fleet's options, with a progress bar on a terminal (databases done of all, failures)
/// to clear when the fleet ends.
fn options(args: &FleetArgs, format: Format, total: usize) -> (FleetOptions, Option<ProgressBar>) {
    let mut options = FleetOptions::default().canary(args.canary);
    if let Some(jobs) = args.jobs {
        options = options.jobs(usize::from(jobs));
    }
    if args.keep_going {
        options = options.keep_going();
    }
    if format == Format::Json || !std::io::stderr().is_terminal() {
        return (options, None);
    }
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} databases{msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let shown = bar.clone();
    let options = options.on_progress(move |p| {
        shown.set_position(p.done as u64);
        if p.failed > 0 {
            shown.set_message(format!(", {} failed", p.failed));
        }
    });
    (options, Some(bar))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_files_beside_a_database_are_its_own() {
        assert_eq!(
            companion_of(Path::new("d/a.db-wal")),
            Some(PathBuf::from("d/a.db"))
        );
        assert_eq!(
            companion_of(Path::new("a.db-journal")),
            Some(PathBuf::from("a.db"))
        );
        assert_eq!(companion_of(Path::new("a.db")), None);
    }
}
