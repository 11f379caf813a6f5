//! Scripts that would escape the runner's transaction, or do nothing inside it: refused when
//! the source loads, naming the file, the line and why.

use backstop::Error;

use crate::setup::*;

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

pub fn cases() -> Vec<Case> {
    let mut cases = vec![
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
    cases
}
