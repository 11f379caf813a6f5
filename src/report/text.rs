//! How reports read as text: `Display` for each report (what the CLI prints without `--json`),
//! and the names of the enums (`as_str`, the same words as their JSON).

use std::fmt::{self, Display, Formatter};
use std::str::FromStr;

use time::OffsetDateTime;
use time::macros::format_description;

use super::{
    MigrateReport, MigrationAction, MigrationOutcome, MigrationState, RollbackReport,
    RollbackStrategy, StatusReport, StatusSummary,
};

impl MigrationState {
    /// The state as in JSON and in the history table: `"applied"`, `"pending"`, ...
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl MigrationAction {
    /// What a run did (or, for a dry run, would do) to a migration that it recorded in
    /// `state` (applied or adopted).
    pub(crate) fn recorded(state: MigrationState, dry_run: bool) -> Self {
        match (state, dry_run) {
            (MigrationState::Adopted, false) => MigrationAction::Adopted,
            (MigrationState::Adopted, true) => MigrationAction::WouldAdopt,
            (_, false) => MigrationAction::Applied,
            (_, true) => MigrationAction::WouldApply,
        }
    }

    /// What a rollback did (or would do) to a migration.
    pub(crate) fn rolled_back(dry_run: bool) -> Self {
        match dry_run {
            false => MigrationAction::RolledBack,
            true => MigrationAction::WouldRollBack,
        }
    }

    /// The action as in JSON: `"applied"`, `"would_apply"`, `"rolled_back"`, ...
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Whether it is what a dry run would do.
    pub(crate) fn is_dry_run(self) -> bool {
        matches!(
            self,
            MigrationAction::WouldApply
                | MigrationAction::WouldAdopt
                | MigrationAction::WouldRollBack
        )
    }

    /// The action in a sentence: `"applied"`, `"would apply"`, `"undone"`, ...
    fn words(self) -> &'static str {
        match self {
            MigrationAction::Applied => "applied",
            MigrationAction::Adopted => "adopted",
            MigrationAction::WouldApply => "would apply",
            MigrationAction::WouldAdopt => "would adopt",
            MigrationAction::RolledBack => "undone",
            MigrationAction::WouldRollBack => "would undo",
        }
    }
}

impl RollbackStrategy {
    /// `"backup"` or `"scripts"`.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A strategy name that is neither `backup` nor `scripts`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown rollback strategy {0:?}: use \"backup\" or \"scripts\"")]
pub struct UnknownStrategy(String);

impl FromStr for RollbackStrategy {
    type Err = UnknownStrategy;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        use strum::VariantArray;
        RollbackStrategy::VARIANTS
            .iter()
            .find(|strategy| strategy.as_str() == text)
            .copied()
            .ok_or_else(|| UnknownStrategy(text.to_owned()))
    }
}

impl Display for StatusReport {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        writeln!(f, "database  {}", self.database.display())?;
        writeln!(
            f,
            "version   {} (latest {})",
            self.current_version, self.latest_version
        )?;
        writeln!(f, "state     {}", self.summary)?;
        if self.migrations.is_empty() {
            return writeln!(f, "no migrations");
        }
        let rows: Vec<[String; 6]> = self
            .migrations
            .iter()
            .map(|m| {
                let checksum = match (m.known, m.checksum_ok) {
                    (false, _) => "unknown",
                    (_, Some(true)) => "ok",
                    (_, Some(false)) => "MODIFIED",
                    (_, None) => "-",
                };
                let probe = match (m.probe, m.superseded_by) {
                    (Some(v), _) if m.drift => format!("{v} DRIFT"),
                    (Some(v), Some(by)) => format!("{v} superseded by {by}"),
                    (Some(v), None) => v.to_string(),
                    (None, _) if !m.known => "-".into(),
                    (None, _) => "error".into(),
                };
                [
                    m.version.to_string(),
                    m.state.as_str().to_owned(),
                    m.applied_at.map_or_else(|| "-".into(), time_text),
                    checksum.to_owned(),
                    probe,
                    m.description.clone(),
                ]
            })
            .collect();
        writeln!(f)?;
        let header = [
            "VERSION",
            "STATE",
            "APPLIED AT",
            "CHECKSUM",
            "PROBE",
            "DESCRIPTION",
        ];
        f.write_str(&table(header, &rows))?;
        for m in &self.migrations {
            if let Some(error) = &m.probe_error {
                writeln!(f, "probe of {}: {error}", m.version)?;
            }
        }
        Ok(())
    }
}

impl Display for StatusSummary {
    /// `clean`, or what keeps the database from it: `2 pending, 1 modified`; accepted versions
    /// of a newer build are said after either.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let counts = [
            (self.pending, "pending"),
            (self.drifted, "drifted"),
            (self.modified, "modified"),
            (self.unknown, "unknown"),
        ];
        let wrong: Vec<String> = counts
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!("{n} {what}"))
            .collect();
        match wrong.is_empty() {
            true => f.write_str("clean")?,
            false => f.write_str(&wrong.join(", "))?,
        }
        if self.newer > 0 {
            write!(f, " ({} of a newer build, accepted)", self.newer)?;
        }
        Ok(())
    }
}

impl Display for MigrateReport {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if self.is_up_to_date() {
            writeln!(
                f,
                "up to date at version {} ({})",
                self.to_version,
                self.database.display()
            )?;
            if !self.newer_versions.is_empty() {
                writeln!(
                    f,
                    "the database has migrations {:?} of a newer build, which this one does not \
                     know: accepted, nothing applied",
                    self.newer_versions
                )?;
            }
            return Ok(());
        }
        if let Some(backup) = &self.backup {
            writeln!(f, "{:<14} {}", "backup", backup.display())?;
        }
        for m in &self.migrations {
            write!(f, "{m}")?;
        }
        let verb = if self.dry_run {
            "would migrate"
        } else {
            "migrated"
        };
        writeln!(
            f,
            "{verb:<14} version {} -> {}",
            self.from_version, self.to_version
        )?;
        if self.dry_run {
            writeln!(f, "dry run: nothing was changed")?;
        }
        Ok(())
    }
}

/// One line (what was done, in a column of 14), its notices and, for a dry run, its SQL.
impl Display for MigrationOutcome {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<14} {:>3} {}  ({} ms)",
            self.action.words(),
            self.version,
            self.description,
            self.duration_ms
        )?;
        for notice in &self.notices {
            writeln!(f, "{:<14} note: {notice}", "")?;
        }
        if let Some(sql) = &self.sql {
            for line in sql.lines() {
                writeln!(f, "{:<14} | {line}", "")?;
            }
        }
        Ok(())
    }
}

impl Display for RollbackReport {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if self.is_noop() {
            return writeln!(
                f,
                "nothing to do: {} is at version {}, not above the version asked for",
                self.database.display(),
                self.from_version
            );
        }
        let (restore, discards) = if self.dry_run {
            ("would restore", "would discard")
        } else {
            ("restored", "discards")
        };
        if let Some(safety) = &self.safety_backup {
            writeln!(f, "{:<14} {}", "safety backup", safety.display())?;
        }
        if let Some(restored) = &self.restored_from {
            writeln!(f, "{restore:<14} {}", restored.display())?;
        }
        for m in &self.rolled_back {
            write!(f, "{m}")?;
        }
        let went = match (self.dry_run, self.to_version < self.from_version) {
            (true, _) => "would go",
            (false, true) => "rolled back",
            (false, false) => "went",
        };
        writeln!(
            f,
            "{went:<14} version {} -> {}",
            self.from_version, self.to_version
        )?;
        if let Some(since) = self.discards_changes_since {
            let kept = match &self.safety_backup {
                Some(safety) => format!("the safety backup {} keeps them", safety.display()),
                None => "a safety backup is taken first and keeps them".to_owned(),
            };
            writeln!(
                f,
                "note: the restore {discards} everything written after {}; {kept}",
                time_text(since)
            )?;
        }
        if self.dry_run {
            writeln!(f, "dry run: nothing was changed")?;
        }
        Ok(())
    }
}

/// A UTC time to the second.
pub(crate) fn time_text(at: OffsetDateTime) -> String {
    let format = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");
    at.format(&format).unwrap_or_default()
}

/// Left-aligned columns separated by two spaces.
pub(crate) fn table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The names the enums give themselves (derived) are the words of their JSON (derived
    /// separately), for every variant.
    #[test]
    fn names_match_the_json() {
        use strum::VariantArray;
        fn same<T: serde::Serialize + Copy + Into<&'static str>>(all: &[T]) {
            for value in all {
                let name: &'static str = (*value).into();
                assert_eq!(serde_json::to_value(value).unwrap(), name);
            }
        }
        same(MigrationAction::VARIANTS);
        same(MigrationState::VARIANTS);
        same(RollbackStrategy::VARIANTS);
        same(crate::report::BackupReason::VARIANTS);
        for strategy in RollbackStrategy::VARIANTS {
            assert_eq!(strategy.as_str().parse::<RollbackStrategy>(), Ok(*strategy));
        }
        assert!("restore".parse::<RollbackStrategy>().is_err());
        for state in MigrationState::VARIANTS {
            assert_eq!(state.as_str().parse::<MigrationState>(), Ok(*state));
        }
    }

    #[test]
    fn tables_align_their_columns() {
        let out = table(
            ["A", "LONGER"],
            &[["x".into(), "1".into()], ["wide cell".into(), "2".into()]],
        );
        assert_eq!(out, "A          LONGER\nx          1\nwide cell  2\n");
    }
}
