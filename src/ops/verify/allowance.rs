//! What a migration allows `verify` to find, and why: `-- verify: allow ...` lines in its
//! scripts.

use super::{VerifyProblem, VerifyProblemKind};
use crate::source::Migration;

/// A kind of problem a migration accepts, and why: a line of one of its scripts,
/// `-- verify: allow <kind>[ in <name>, <name>...]: <why>`. With names, only differences
/// confined to those schema objects and tables are accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Allowance {
    kind: VerifyProblemKind,
    within: Option<Vec<String>>,
    pub(super) why: String,
}

impl Allowance {
    fn parse(line: &str) -> Option<Self> {
        let rest = line.trim_start().strip_prefix("--")?.trim_start();
        let rest = rest
            .strip_prefix("verify:")?
            .trim_start()
            .strip_prefix("allow")?;
        let (what, why) = rest.trim_start().split_once(':')?;
        let (kind, within) = match what.split_once(" in ") {
            Some((kind, names)) => (
                kind.trim(),
                Some(names.split(',').map(|n| n.trim().to_owned()).collect()),
            ),
            None => (what.trim(), None),
        };
        let kind = VerifyProblemKind::ALLOWABLE
            .into_iter()
            .find(|allowable| allowable.as_str() == kind)?;
        Some(Allowance {
            kind,
            within,
            why: why.trim().to_owned(),
        })
    }

    pub(super) fn covers(&self, problem: &VerifyProblem) -> bool {
        self.kind == problem.kind
            && self.within.as_ref().is_none_or(|names| {
                !problem.differing.is_empty() && problem.differing.iter().all(|d| names.contains(d))
            })
    }
}

/// What a migration's scripts allow. A failing script or probe cannot be allowed.
pub(super) fn allowances(migration: &Migration) -> Vec<Allowance> {
    [
        migration.forward().sql(),
        migration.rollback().sql(),
        Some(migration.probe_sql()),
    ]
    .into_iter()
    .flatten()
    .flat_map(str::lines)
    .filter_map(Allowance::parse)
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kinds' names (derived) are the words of their JSON, which allowances use.
    #[test]
    fn kinds_are_named_as_in_json() {
        use strum::VariantArray;
        for kind in VerifyProblemKind::VARIANTS {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
    }

    #[test]
    fn allowances_name_a_kind_maybe_some_objects_and_a_reason() {
        let a =
            Allowance::parse("-- verify: allow reapply_differs in carry, notes: why not").unwrap();
        assert_eq!(a.kind.as_str(), "reapply_differs");
        assert_eq!(a.within, Some(vec!["carry".to_owned(), "notes".to_owned()]));
        assert_eq!(a.why, "why not");
        let problem = |differing: &[&str]| VerifyProblem {
            kind: VerifyProblemKind::ReapplyDiffers,
            detail: String::new(),
            allowed: None,
            differing: differing.iter().map(|d| d.to_string()).collect(),
        };
        assert!(a.covers(&problem(&["carry"])));
        assert!(!a.covers(&problem(&["carry", "users"])));
        let any = Allowance::parse("--verify: allow rollback_inexact: legacy layout").unwrap();
        assert_eq!(any.within, None);
        for refused in [
            "-- verify: allow script_failed: no",
            "-- verify allow rollback_inexact: no colon after verify",
            "SELECT 1; -- verify: allow rollback_inexact: not a comment line",
        ] {
            assert_eq!(Allowance::parse(refused), None, "{refused}");
        }
    }
}
