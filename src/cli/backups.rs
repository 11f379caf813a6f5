//! Backups as the command line shows them: the list of a database's (a table, newest first,
//! with what is wrong with each; as JSON, the list itself), and the one `backup` took.

use std::fmt::{self, Display, Formatter};

use crate::BackupInfo;
use crate::report::{table, time_text};

/// A list of backups as a table, newest first, with what is wrong with each.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BackupTable<'a>(pub &'a [BackupInfo]);

/// As JSON, the list itself.
impl serde::Serialize for BackupTable<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl Display for BackupTable<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return writeln!(f, "no backups");
        }
        let rows: Vec<[String; 5]> = self
            .0
            .iter()
            .map(|b| {
                [
                    b.version
                        .map_or_else(|| "unreadable".into(), |v| v.to_string()),
                    time_text(b.taken_at),
                    b.reason.as_str().to_owned(),
                    b.size.to_string(),
                    b.path.display().to_string(),
                ]
            })
            .collect();
        f.write_str(&table(
            ["VERSION", "TAKEN AT", "REASON", "BYTES", "PATH"],
            &rows,
        ))?;
        for b in self.0 {
            if let Some(error) = &b.error {
                writeln!(f, "{}: {error}", b.path.display())?;
            }
            if b.untagged {
                writeln!(
                    f,
                    "{}: nothing says it is this database's (no identity in it, no history to \
                     compare, or an older build's name): never chosen by a rollback nor pruned; \
                     `restore --force` it if it is",
                    b.path.display()
                )?;
            }
        }
        Ok(())
    }
}

/// A backup taken by `backup`: `backup  PATH`, or `{"backup": "PATH"}`.
pub(super) struct Taken<'a>(pub(super) &'a crate::BackupInfo);

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
