//! Scripts that would escape the runner's transaction, or do nothing inside it: refused when
//! the source loads, naming the file, the line and why.

use backstop::Error;

use super::setup::*;

/// A pending migration whose `file` ("forward" or "rollback") is `script`; the refusal must be
/// at `line` and say `says`.
fn escape(
    name: &'static str,
    file: &'static str,
    script: &'static str,
    line: usize,
    says: &'static str,
) -> Case {
    let variant: fn(&Error) -> bool = match line {
        1 => |e| matches!(e, Error::InvalidScript { line: 1, .. }),
        _ => |e| matches!(e, Error::InvalidScript { line: 2, .. }),
    };
    case(name, "invalid_script", Some(variant), move |_, ws| {
        let (forward, rollback, culprit) = match file {
            "forward" => (script, "DROP TABLE notes2;\n", "010_notes2.sql"),
            _ => (
                "CREATE TABLE notes2 (x);\n",
                script,
                "010_notes2.rollback.sql",
            ),
        };
        ws.migration(
            "010_notes2",
            forward,
            rollback,
            "SELECT count(*) FROM sqlite_master WHERE name = 'notes2';\n",
        );
        let load = Lib::Load(ws.migrations_dir());
        Setup::new(ws, load, &["migrate"])
            .names(ws.migrations_dir().join(culprit))
            .names(format!("line {line}"))
            .names(says)
    })
}

/// A PRAGMA that only runs when the statement executes (through a table-valued function): the
/// authorizer on the runner's connection refuses it then, before it runs, and the run changes
/// nothing.
fn refused_when_it_runs(name: &'static str, probe: &'static str) -> Case {
    let variant: fn(&Error) -> bool = match probe {
        "" => |e| matches!(e, Error::InvalidScript { line: 2, .. }),
        _ => |e| matches!(e, Error::Probe { .. }),
    };
    let kind = if probe.is_empty() {
        "invalid_script"
    } else {
        "probe"
    };
    case(name, kind, Some(variant), move |_, ws| {
        let (forward, probe, culprit) = match probe {
            "" => (
                "CREATE TABLE notes2 (x);\nSELECT * FROM pragma_optimize;\n",
                "SELECT count(*) FROM sqlite_master WHERE name = 'notes2';\n",
                "010_notes2.sql",
            ),
            probe => ("CREATE TABLE notes2 (x);\n", probe, "010_notes2.probe.sql"),
        };
        pending(ws, forward, "DROP TABLE notes2;\n", probe);
        Setup::new(ws, Lib::Migrate, &["migrate"])
            .names(mig(ws, culprit))
            .names("PRAGMA optimize is refused")
    })
}

pub fn cases() -> Vec<Case> {
    let mut cases = vec![
        refused_when_it_runs(
            "script runs a PRAGMA through pragma_optimize (refused as it runs)",
            "",
        ),
        refused_when_it_runs(
            "probe runs a PRAGMA through pragma_optimize (refused as it runs)",
            "SELECT count(*) FROM pragma_optimize;\n",
        ),
        escape(
            "script attaches another database (ATTACH)",
            "forward",
            "ATTACH 'other.db' AS o;\nUPDATE o.ot SET x = 1;\n",
            1,
            "may not attach other databases",
        ),
        escape(
            "script detaches a database (DETACH)",
            "forward",
            "CREATE TABLE notes2 (x);\nDETACH o;\n",
            2,
            "may not attach other databases",
        ),
        escape(
            "script marked -- no-transaction (sqlx)",
            "forward",
            "-- no-transaction\nCREATE TABLE notes2 (x);\n",
            1,
            "one transaction",
        ),
        escape(
            "rollback script turns foreign keys off",
            "rollback",
            "PRAGMA foreign_keys = OFF;\nDROP TABLE notes2;\n",
            1,
            "PRAGMA foreign_keys is refused",
        ),
    ];
    for (name, pragma) in [
        ("script sets PRAGMA journal_mode", "journal_mode = WAL"),
        (
            "script sets PRAGMA locking_mode",
            "main.locking_mode = EXCLUSIVE",
        ),
        ("script sets PRAGMA page_size", "page_size = 8192"),
        ("script sets PRAGMA auto_vacuum", "auto_vacuum = FULL"),
        ("script sets PRAGMA synchronous", "synchronous = OFF"),
    ] {
        let script: &'static str = format!("CREATE TABLE notes2 (x);\nPRAGMA {pragma};\n").leak();
        let bare = pragma.split(' ').next().unwrap();
        let bare = bare.rsplit('.').next().unwrap();
        let says: &'static str = format!("PRAGMA {bare} is refused").leak();
        cases.push(escape(name, "forward", script, 2, says));
    }
    // Spelled so that reading the statement's text by hand misses it: SQLite's parser does not.
    for (name, pragma, says) in [
        (
            "PRAGMA with a comment before its name",
            "PRAGMA/**/journal_mode = OFF",
            "PRAGMA journal_mode is refused",
        ),
        (
            "PRAGMA with a line comment before its name",
            "PRAGMA -- c\n journal_mode = OFF",
            "PRAGMA journal_mode is refused",
        ),
        (
            "PRAGMA with its name quoted",
            "PRAGMA 'journal_mode' = OFF",
            "PRAGMA journal_mode is refused",
        ),
        (
            "PRAGMA with a schema and a comment",
            "PRAGMA main./**/journal_mode = OFF",
            "PRAGMA journal_mode is refused",
        ),
        (
            "PRAGMA locking_mode quoted",
            "PRAGMA 'locking_mode' = EXCLUSIVE",
            "PRAGMA locking_mode is refused",
        ),
        (
            "PRAGMA in mixed case with a schema",
            "pragma MAIN.Journal_Mode=off",
            "PRAGMA journal_mode is refused",
        ),
        (
            "PRAGMA outside the allow-list",
            "PRAGMA writable_schema = ON",
            "PRAGMA writable_schema is refused",
        ),
        (
            "transaction control after a comment",
            "/* c */ COMMIT",
            "may not control the transaction",
        ),
    ] {
        let script: &'static str = format!("CREATE TABLE notes2 (x);\n{pragma};\n").leak();
        cases.push(escape(name, "forward", script, 2, says));
    }
    cases
}
