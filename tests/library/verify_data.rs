//! `verify` measures what each migration does to the data and to the version still running:
//! rows, columns and tables lost, renames followed, and schema changes the previous build's
//! inserts fail on; each allowed only with a reason.

use crate::common::*;
use backstop::{Source, VerifyProblemKind, verify};

/// 001: people with four rows (two of them duplicates of the same email).
fn people(ws: &Workspace) {
    ws.migration(
        "001_people",
        "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT);\n\
         INSERT INTO people (name, email) VALUES ('ada', 'a@x'), ('ada', 'a@x'), ('grace', 'g@x'), ('alan', NULL);\n",
        "DROP TABLE people;\n",
        "SELECT count(*) FROM sqlite_master WHERE name = 'people';\n",
    );
}

/// The problems of migration 2, with whether each is allowed, and its table summary.
async fn second(ws: &Workspace) -> (Vec<(VerifyProblemKind, bool)>, String, serde_json::Value) {
    let report = verify(&Source::from_dir(ws.migrations_dir()).unwrap(), None)
        .await
        .unwrap();
    let check = report.migrations.iter().find(|m| m.version == 2).unwrap();
    let problems = check
        .problems
        .iter()
        .map(|p| (p.kind, p.allowed.is_some()))
        .collect();
    let json = serde_json::to_value(check).unwrap();
    (problems, report.to_string(), json["tables"].clone())
}

fn has(problems: &[(VerifyProblemKind, bool)], kind: VerifyProblemKind) -> bool {
    problems.iter().any(|(k, _)| *k == kind)
}

#[tokio::test]
async fn each_loss_is_found_and_allowed_only_with_a_reason() {
    use VerifyProblemKind::*;
    // (forward, rollback, probe, the kinds it must commit)
    let cases: [(&str, &str, &str, &[VerifyProblemKind]); 5] = [
        (
            // A rebuild that forgot a column.
            "CREATE TABLE people_new (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n\
             INSERT INTO people_new SELECT id, name FROM people;\n\
             DROP TABLE people;\nALTER TABLE people_new RENAME TO people;\n",
            "ALTER TABLE people ADD COLUMN email TEXT;\n",
            "SELECT count(*) = 0 FROM pragma_table_info('people') WHERE name = 'email';\n",
            &[ColumnRemoved, BreaksPreviousVersion],
        ),
        (
            // A DELETE with a wrong WHERE.
            "DELETE FROM people WHERE email IS NULL OR name = 'grace';\n",
            "SELECT 1;\n",
            "SELECT count(*) = 0 FROM people WHERE email IS NULL;\n",
            &[RowsRemoved],
        ),
        (
            // A merge of duplicates by a unique index build that keeps one row of each.
            "DELETE FROM people WHERE rowid NOT IN (SELECT min(rowid) FROM people GROUP BY email);\n\
             CREATE UNIQUE INDEX people_by_email ON people (email);\n",
            "DROP INDEX people_by_email;\n",
            "SELECT count(*) FROM sqlite_master WHERE name = 'people_by_email';\n",
            &[RowsRemoved, BreaksPreviousVersion],
        ),
        (
            // A rename: followed, so no rows or table lost, but the old build breaks.
            "ALTER TABLE people RENAME TO persons;\n",
            "ALTER TABLE persons RENAME TO people;\n",
            "SELECT count(*) FROM sqlite_master WHERE name = 'persons';\n",
            &[BreaksPreviousVersion],
        ),
        (
            // A NOT NULL column without a default, by a rebuild.
            "CREATE TABLE people_new (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, team TEXT NOT NULL);\n\
             INSERT INTO people_new SELECT id, name, email, 'core' FROM people;\n\
             DROP TABLE people;\nALTER TABLE people_new RENAME TO people;\n",
            "ALTER TABLE people DROP COLUMN team;\n",
            "SELECT count(*) FROM pragma_table_info('people') WHERE name = 'team';\n",
            &[BreaksPreviousVersion],
        ),
    ];
    for (i, (forward, rollback, probe, expected)) in cases.into_iter().enumerate() {
        let ws = Workspace::new();
        people(&ws);
        ws.migration("002_change", forward, rollback, probe);
        let (problems, text, tables) = second(&ws).await;
        for kind in expected {
            assert!(
                has(&problems, *kind),
                "case {i}: {kind:?} not found\n{text}"
            );
        }
        for kind in [
            RowsRemoved,
            ColumnRemoved,
            TableRemoved,
            BreaksPreviousVersion,
        ] {
            if !expected.contains(&kind) {
                assert!(!has(&problems, kind), "case {i}: {kind:?} found\n{text}");
            }
        }
        assert!(text.contains("FAILED"), "case {i}: {text}");
        if i == 3 {
            assert_eq!(tables[0]["renamed_to"], "persons", "{tables}");
        }
        // Allowed, each with its reason, in the rollback script: it passes.
        let allow: String = expected
            .iter()
            .map(|k| {
                format!(
                    "-- verify: allow {} in people: case {i} on purpose\n",
                    k.as_str()
                )
            })
            .collect();
        ws.migration("002_change", forward, &format!("{allow}{rollback}"), probe);
        let (problems, text, _) = second(&ws).await;
        let data = [
            RowsRemoved,
            ColumnRemoved,
            TableRemoved,
            BreaksPreviousVersion,
        ];
        let unallowed: Vec<_> = problems
            .iter()
            .filter(|(kind, allowed)| data.contains(kind) && !allowed)
            .collect();
        assert!(unallowed.is_empty(), "case {i}: {text}");
        assert!(text.contains(&format!("case {i} on purpose")), "{text}");
    }
}

/// The text gives a line per changed table; the JSON, the counts.
#[tokio::test]
async fn the_summary_says_what_each_table_lost() {
    let ws = Workspace::new();
    people(&ws);
    ws.migration(
        "002_drop_nameless",
        "DELETE FROM people WHERE email IS NULL;\n",
        "-- verify: allow rows_removed in people: people without an email were test data\nSELECT 1;\n",
        "SELECT count(*) = 0 FROM people WHERE email IS NULL;\n",
    );
    ws.migration(
        "003_drop_people",
        "DROP TABLE people;\n",
        "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT);\n",
        "SELECT count(*) = 0 FROM sqlite_master WHERE name = 'people';\n",
    );
    let report = verify(&Source::from_dir(ws.migrations_dir()).unwrap(), None)
        .await
        .unwrap();
    let text = report.to_string();
    assert!(
        text.contains("people 4 → 3 (−1, allowed: people without an email were test data)"),
        "{text}"
    );
    assert!(text.contains("people 3 → gone"), "{text}");
    let json = serde_json::to_value(&report).unwrap();
    let tables = &json["migrations"][1]["tables"][0];
    assert_eq!(
        (
            &tables["table"],
            &tables["rows_before"],
            &tables["rows_after"]
        ),
        (&"people".into(), &4.into(), &3.into())
    );
    assert!(!report.ok, "003 drops a table without saying why");
}

/// A starting database with tables that exist before any migration (so `verify` reads them
/// only once something writes them): `big` with ten rows, `log`, and a trigger on `log` that
/// deletes from `big`.
async fn start_with_big_table(ws: &Workspace) -> std::path::PathBuf {
    let start = ws.path().join("start.sqlite3");
    exec(
        &start,
        "CREATE TABLE big (x INTEGER PRIMARY KEY, v TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10)
         INSERT INTO big SELECT i, 'v' || i FROM n;
         CREATE TABLE log (y INTEGER);
         CREATE TABLE quiet (z INTEGER);
         INSERT INTO quiet VALUES (1);
         CREATE TRIGGER log_deletes AFTER INSERT ON log BEGIN DELETE FROM big WHERE x = NEW.y; END;",
    )
    .await;
    start
}

/// The problems `verify` finds in migration 1 from `start`.
async fn first_from(ws: &Workspace, start: &std::path::Path) -> (Vec<VerifyProblemKind>, String) {
    let report = verify(&Source::from_dir(ws.migrations_dir()).unwrap(), Some(start))
        .await
        .unwrap();
    let check = report.migrations.iter().find(|m| m.version == 1).unwrap();
    let kinds = check.problems.iter().map(|p| p.kind).collect();
    (kinds, report.to_string())
}

/// A table that only a trigger writes is read before and after: the authorizer names it while
/// the statement that fires the trigger is prepared.
#[tokio::test]
async fn a_table_written_only_by_a_trigger_is_measured() {
    let ws = Workspace::new();
    let start = start_with_big_table(&ws).await;
    ws.migration(
        "001_log_three",
        "INSERT INTO log VALUES (3);\n",
        "DELETE FROM log WHERE y = 3;\n",
        "SELECT count(*) FROM log WHERE y = 3;\n",
    );
    let (kinds, text) = first_from(&ws, &start).await;
    assert!(kinds.contains(&VerifyProblemKind::RowsRemoved), "{text}");
    assert!(
        kinds.contains(&VerifyProblemKind::RollbackInexact),
        "{text}"
    );
    assert!(text.contains("big 10 → 9"), "{text}");
    assert!(!text.contains("quiet"), "{text}");
}

/// A statement that does not prepare before the script runs (it names a table the script
/// creates) writes, through a trigger the script creates, a table nothing else named: found
/// while it runs, the step run again once the table is read.
#[tokio::test]
async fn a_write_no_statement_announced_is_measured() {
    let ws = Workspace::new();
    let start = start_with_big_table(&ws).await;
    ws.migration(
        "001_trim_big",
        "CREATE TABLE trims (y INTEGER);\n\
         CREATE TRIGGER trim AFTER INSERT ON trims BEGIN DELETE FROM big WHERE x >= NEW.y; END;\n\
         INSERT INTO trims VALUES (8);\n",
        "DROP TABLE trims;\n",
        "SELECT count(*) FROM sqlite_master WHERE name = 'trims';\n",
    );
    let (kinds, text) = first_from(&ws, &start).await;
    assert!(text.contains("big 10 → 7"), "{text}");
    assert!(kinds.contains(&VerifyProblemKind::RowsRemoved), "{text}");
    assert!(
        kinds.contains(&VerifyProblemKind::RollbackInexact) && text.contains("rows differ in big"),
        "{text}"
    );
}

async fn delete_four(conn: &mut sqlx::SqliteConnection) -> Result<(), sqlx::Error> {
    // A persistent statement: sqlx keeps it prepared, and runs it again from its cache.
    sqlx::query("DELETE FROM big WHERE x = 4")
        .execute(&mut *conn)
        .await
        .map(drop)
}

/// A code migration's statements cannot be read before it runs: what it writes is found while
/// it runs.
#[tokio::test]
async fn a_code_migration_write_is_measured() {
    let ws = Workspace::new();
    let start = start_with_big_table(&ws).await;
    std::fs::create_dir_all(ws.migrations_dir()).unwrap();
    let source = Source::from_dir(ws.migrations_dir()).unwrap().with_code(
        backstop::CodeMigration::new(1, "delete_four", "r1", backstop::code!(delete_four))
            .probe("SELECT count(*) = 0 FROM big WHERE x = 4")
            .rollback_sql("SELECT 1"),
    );
    let report = verify(&source.unwrap(), Some(&start)).await.unwrap();
    let text = report.to_string();
    let kinds: Vec<_> = report.migrations[0]
        .problems
        .iter()
        .map(|p| p.kind)
        .collect();
    assert!(text.contains("big 10 → 9"), "{text}");
    assert!(kinds.contains(&VerifyProblemKind::RowsRemoved), "{text}");
    assert!(
        kinds.contains(&VerifyProblemKind::RollbackInexact),
        "{text}"
    );
}

/// Nothing written, nothing read: a migration that leaves the starting tables alone passes,
/// and those tables are in no line of the report.
#[tokio::test]
async fn untouched_tables_stay_out_of_the_report() {
    let ws = Workspace::new();
    let start = start_with_big_table(&ws).await;
    ws.migration(
        "001_notes",
        "CREATE TABLE notes (n TEXT);\nINSERT INTO notes VALUES ('a');\n",
        "DROP TABLE notes;\n",
        "SELECT count(*) FROM sqlite_master WHERE name = 'notes';\n",
    );
    let (kinds, text) = first_from(&ws, &start).await;
    assert!(kinds.is_empty(), "{text}");
    assert!(!text.contains("big") && !text.contains("quiet"), "{text}");
}
