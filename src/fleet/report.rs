//! What a fleet did: one entry per database, in the order given, with counts; as text for
//! people and as JSON for tools (`--json`).

use std::collections::BTreeMap;
use std::fmt::{self, Display, Formatter};
use std::path::{Path, PathBuf};

use serde::{Serialize, Serializer};

use super::FleetDatabase;
use crate::error::Error;
use crate::report::{BackupInfo, MigrateReport, MigrationState, StatusReport};

/// What an operation did to each database of a fleet ([`Migrator::migrate_each`],
/// [`status_each`](crate::Migrator::status_each), [`backup_each`](crate::Migrator::backup_each)).
///
/// [`Migrator::migrate_each`]: crate::Migrator::migrate_each
#[derive(Debug)]
#[non_exhaustive]
pub struct FleetReport<T> {
    /// Each database, in the order given.
    pub databases: Vec<FleetEntry<T>>,
}

/// One database of a fleet and what happened to it.
#[derive(Debug)]
#[non_exhaustive]
pub struct FleetEntry<T> {
    /// The database file, as given.
    pub database: PathBuf,
    /// Its outcome.
    pub outcome: FleetOutcome<T>,
}

/// What happened to one database of a fleet.
#[derive(Debug)]
pub enum FleetOutcome<T> {
    /// The operation ended well, with its report.
    Done(T),
    /// The operation failed (on this database only: nothing of it was changed, as when the
    /// operation fails alone).
    Failed(Error),
    /// Never started: an earlier database failed (without
    /// [`keep_going`](super::FleetOptions::keep_going)), or a canary did.
    NotStarted,
}

impl<T> FleetOutcome<T> {
    /// The report, when the operation ended well.
    pub fn done(&self) -> Option<&T> {
        match self {
            FleetOutcome::Done(report) => Some(report),
            _ => None,
        }
    }

    /// The error, when the operation failed.
    pub fn error(&self) -> Option<&Error> {
        match self {
            FleetOutcome::Failed(e) => Some(e),
            _ => None,
        }
    }
}

impl<T> FleetReport<T> {
    pub(super) fn new(
        databases: Vec<FleetDatabase>,
        outcomes: Vec<Option<Result<T, Error>>>,
    ) -> Self {
        let databases = databases
            .into_iter()
            .zip(outcomes)
            .map(|(db, outcome)| FleetEntry {
                database: db.path().to_owned(),
                outcome: match outcome {
                    Some(Ok(report)) => FleetOutcome::Done(report),
                    Some(Err(e)) => FleetOutcome::Failed(e),
                    None => FleetOutcome::NotStarted,
                },
            })
            .collect();
        FleetReport { databases }
    }

    /// Databases the operation ended well on.
    pub fn ok(&self) -> usize {
        self.count(|o| matches!(o, FleetOutcome::Done(_)))
    }

    /// Databases the operation failed on.
    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, FleetOutcome::Failed(_)))
    }

    /// Databases never started.
    pub fn not_started(&self) -> usize {
        self.count(|o| matches!(o, FleetOutcome::NotStarted))
    }

    /// Whether the operation ended well on every database (true for an empty fleet).
    pub fn is_ok(&self) -> bool {
        self.ok() == self.databases.len()
    }

    fn count(&self, which: impl Fn(&FleetOutcome<T>) -> bool) -> usize {
        self.databases.iter().filter(|e| which(&e.outcome)).count()
    }

    /// The closing line of the text: the counts.
    fn totals(&self, f: &mut Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} database(s): {} ok, {} failed, {} not started",
            self.databases.len(),
            self.ok(),
            self.failed(),
            self.not_started()
        )
    }

    /// The lines of the databases that failed or never started.
    fn problems(&self, f: &mut Formatter<'_>) -> fmt::Result {
        for entry in &self.databases {
            match &entry.outcome {
                FleetOutcome::Failed(e) => writeln!(
                    f,
                    "FAILED       {}: {e} [{}]",
                    entry.database.display(),
                    e.kind()
                )?,
                FleetOutcome::NotStarted => {
                    writeln!(f, "not started  {}", entry.database.display())?
                }
                FleetOutcome::Done(_) => {}
            }
        }
        Ok(())
    }
}

impl FleetReport<StatusReport> {
    /// How many databases are at each version (those that could be read).
    pub fn versions(&self) -> BTreeMap<i64, usize> {
        let mut versions = BTreeMap::new();
        for report in self.databases.iter().filter_map(|e| e.outcome.done()) {
            *versions.entry(report.current_version).or_insert(0) += 1;
        }
        versions
    }

    /// Databases that could not be read or are not clean ([`StatusReport::is_clean`]).
    pub fn not_clean(&self) -> usize {
        self.count(|o| !o.done().is_some_and(StatusReport::is_clean))
    }

    /// Whether every database could be read and is clean: what `status --check` tests.
    pub fn is_clean(&self) -> bool {
        self.not_clean() == 0
    }
}

/// An error as JSON: `{"kind": "...", "error": "..."}`.
#[derive(Serialize)]
struct ErrorJson {
    kind: &'static str,
    error: String,
}

fn error_json<T>(outcome: &FleetOutcome<T>) -> Option<ErrorJson> {
    outcome.error().map(|e| ErrorJson {
        kind: e.kind(),
        error: e.to_string(),
    })
}

#[derive(Serialize)]
struct Counted<E> {
    databases: Vec<E>,
    ok: usize,
    failed: usize,
    not_started: usize,
}

impl<T> FleetReport<T> {
    fn counted<'a, E>(&'a self, entry: impl Fn(&'a FleetEntry<T>) -> E) -> Counted<E> {
        Counted {
            databases: self.databases.iter().map(entry).collect(),
            ok: self.ok(),
            failed: self.failed(),
            not_started: self.not_started(),
        }
    }
}

#[derive(Serialize)]
struct MigrateJson<'a> {
    database: &'a Path,
    ok: bool,
    from_version: Option<i64>,
    to_version: Option<i64>,
    backup: Option<&'a Path>,
    error: Option<ErrorJson>,
}

impl Serialize for FleetReport<MigrateReport> {
    /// `{"databases": [{"database", "ok", "from_version", "to_version", "backup", "error"}],
    /// "ok", "failed", "not_started"}`.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.counted(|e| {
            let report = e.outcome.done();
            MigrateJson {
                database: &e.database,
                ok: report.is_some(),
                from_version: report.map(|r| r.from_version),
                to_version: report.map(|r| r.to_version),
                backup: report.and_then(|r| r.backup.as_deref()),
                error: error_json(&e.outcome),
            }
        })
        .serialize(serializer)
    }
}

impl Display for FleetReport<MigrateReport> {
    /// A line per database migrated, failed or not started; the up-to-date ones counted.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let mut up_to_date = 0;
        for entry in &self.databases {
            let Some(report) = entry.outcome.done() else {
                continue;
            };
            if report.is_up_to_date() {
                up_to_date += 1;
                continue;
            }
            let verb = match report.dry_run {
                true => "would migrate",
                false => "migrated",
            };
            write!(
                f,
                "{verb:<12} {} {} → {}",
                entry.database.display(),
                report.from_version,
                report.to_version
            )?;
            match &report.backup {
                Some(backup) => writeln!(f, " (backup {})", backup.display())?,
                None => writeln!(f)?,
            }
        }
        if up_to_date > 0 {
            writeln!(f, "up to date   {up_to_date} database(s)")?;
        }
        self.problems(f)?;
        self.totals(f)
    }
}

#[derive(Serialize)]
struct StatusJson<'a> {
    database: &'a Path,
    current_version: Option<i64>,
    pending: Vec<i64>,
    drift: bool,
    error: Option<ErrorJson>,
}

#[derive(Serialize)]
struct StatusFleetJson<'a> {
    databases: Vec<StatusJson<'a>>,
    versions: BTreeMap<String, usize>,
}

fn pending(report: &StatusReport) -> Vec<i64> {
    report
        .migrations
        .iter()
        .filter(|m| m.state == MigrationState::Pending)
        .map(|m| m.version)
        .collect()
}

impl Serialize for FleetReport<StatusReport> {
    /// `{"databases": [{"database", "current_version", "pending", "drift", "error"}],
    /// "versions": {"2": 997, "3": 3}}`.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        StatusFleetJson {
            databases: self
                .databases
                .iter()
                .map(|e| {
                    let report = e.outcome.done();
                    StatusJson {
                        database: &e.database,
                        current_version: report.map(|r| r.current_version),
                        pending: report.map(pending).unwrap_or_default(),
                        drift: report.is_some_and(|r| r.summary.drifted > 0),
                        error: error_json(&e.outcome),
                    }
                })
                .collect(),
            versions: self
                .versions()
                .into_iter()
                .map(|(v, n)| (v.to_string(), n))
                .collect(),
        }
        .serialize(serializer)
    }
}

impl Display for FleetReport<StatusReport> {
    /// The version histogram first, then each database that is not clean (not at the latest
    /// version, drifted, modified) or could not be read.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let latest = self
            .databases
            .iter()
            .find_map(|e| e.outcome.done())
            .map(|r| r.latest_version);
        writeln!(f, "version  databases")?;
        for (version, n) in self.versions().iter().rev() {
            let mark = match Some(*version) == latest {
                true => "  (latest)",
                false => "",
            };
            writeln!(f, "{version:>7}  {n:>9}{mark}")?;
        }
        for entry in &self.databases {
            if let Some(report) = entry.outcome.done()
                && !report.is_clean()
            {
                writeln!(
                    f,
                    "{}  version {}: {}",
                    entry.database.display(),
                    report.current_version,
                    report.summary
                )?;
            }
        }
        self.problems(f)?;
        self.totals(f)
    }
}

#[derive(Serialize)]
struct BackupJson<'a> {
    database: &'a Path,
    ok: bool,
    backup: Option<&'a Path>,
    error: Option<ErrorJson>,
}

impl Serialize for FleetReport<BackupInfo> {
    /// `{"databases": [{"database", "ok", "backup", "error"}], "ok", "failed",
    /// "not_started"}`.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.counted(|e| BackupJson {
            database: &e.database,
            ok: e.outcome.done().is_some(),
            backup: e.outcome.done().map(|b| b.path.as_path()),
            error: error_json(&e.outcome),
        })
        .serialize(serializer)
    }
}

impl Display for FleetReport<BackupInfo> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        for entry in &self.databases {
            if let Some(backup) = entry.outcome.done() {
                writeln!(
                    f,
                    "backup       {} → {}",
                    entry.database.display(),
                    backup.path.display()
                )?;
            }
        }
        self.problems(f)?;
        self.totals(f)
    }
}
