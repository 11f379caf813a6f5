//! Migration file names: `NNN_description.sql`, `.rollback.sql` and `.probe.sql`.

use std::path::Path;

use crate::error::Error;

/// Files the loader looks at: visible `.sql` files.
pub(super) fn is_candidate(name: &str) -> bool {
    name.ends_with(".sql") && !name.starts_with('.')
}

/// Which of a migration's three files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Forward,
    Rollback,
    Probe,
}

pub(super) struct FileName {
    pub(super) version: i64,
    pub(super) description: String,
    /// `NNN_description` as written (with its zero-padding).
    pub(super) stem: String,
    pub(super) kind: Kind,
}

impl FileName {
    pub(super) fn parse(path: &Path) -> Result<Self, Error> {
        let invalid = |reason: &str| Error::InvalidFileName {
            path: path.to_owned(),
            reason: format!(
                "{reason} (expected NNN_description.sql, NNN_description.rollback.sql and \
                 NNN_description.probe.sql, or sqlx's NNN_description.up.sql and \
                 NNN_description.down.sql with a .probe.sql; NNN a positive version, the \
                 description made of letters, digits, '_' and '-')"
            ),
        };
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| invalid("the name is not valid UTF-8"))?;
        let stem = name.strip_suffix(".sql").unwrap_or(name);
        // backstop's spelling, and sqlx's reversible one (`.up.sql` / `.down.sql`).
        let (stem, kind) = if let Some(s) = stem.strip_suffix(".rollback") {
            (s, Kind::Rollback)
        } else if let Some(s) = stem.strip_suffix(".down") {
            (s, Kind::Rollback)
        } else if let Some(s) = stem.strip_suffix(".probe") {
            (s, Kind::Probe)
        } else if let Some(s) = stem.strip_suffix(".up") {
            (s, Kind::Forward)
        } else {
            (stem, Kind::Forward)
        };
        let (digits, description) = stem
            .split_once('_')
            .ok_or_else(|| invalid("no '_' between the version and the description"))?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("the version is not a number"));
        }
        let version: i64 = digits
            .parse()
            .map_err(|_| invalid("the version is too large"))?;
        if version == 0 {
            return Err(invalid("the version must be positive"));
        }
        if description.is_empty() {
            return Err(invalid("the description is empty"));
        }
        if let Some(bad) = description
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
        {
            let hint = match description.rsplit_once('.') {
                Some((_, "undo" | "revert")) => {
                    "; a rollback script is named NNN_description.rollback.sql"
                }
                _ => "",
            };
            return Err(invalid(&format!(
                "the description contains {bad:?}, which is not allowed{hint}"
            )));
        }
        Ok(FileName {
            version,
            description: description.to_owned(),
            stem: stem.to_owned(),
            kind,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        let ok = FileName::parse(Path::new("m/007_add-index_2.rollback.sql")).unwrap();
        assert_eq!((ok.version, ok.kind), (7, Kind::Rollback));
        assert_eq!(ok.description, "add-index_2");
        for (name, kind) in [
            ("7_x.up.sql", Kind::Forward),
            ("7_x.down.sql", Kind::Rollback),
        ] {
            let sqlx = FileName::parse(Path::new(name)).unwrap();
            assert_eq!(
                (sqlx.version, sqlx.kind, sqlx.stem.as_str()),
                (7, kind, "7_x")
            );
        }
        for bad in [
            "abc_x.sql",
            "001.sql",
            "001_.sql",
            "000_zero.sql",
            "1a_x.sql",
            "001_has.dot.sql",
            "001_x.undo.sql",
            "001_sp ace.sql",
            "99999999999999999999_big.sql",
        ] {
            assert!(
                matches!(
                    FileName::parse(Path::new(bad)),
                    Err(Error::InvalidFileName { .. })
                ),
                "{bad} should be refused"
            );
        }
    }
}
