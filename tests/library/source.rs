//! Loading migrations: every invalid source is refused before any database is touched, with
//! an error that names the file at fault.

use crate::common::Workspace;
use backstop::{Error, Source};

const PROBE: &str = "SELECT 1;\n";

fn valid(ws: &Workspace) {
    ws.migration("001_a", "CREATE TABLE a (x);\n", "DROP TABLE a;\n", PROBE);
}

/// Loads the workspace's migrations and returns the error, checking it names `file`.
fn refused(ws: &Workspace, file: &str) -> Error {
    let err = Source::from_dir(ws.migrations_dir()).expect_err("the source should be refused");
    let message = err.to_string();
    assert!(
        message.contains(file),
        "the error should name {file}: {message}"
    );
    err
}

#[test]
fn embedded_and_directory_sources_are_the_same() {
    let embedded = backstop::embed_migrations!("$CARGO_MANIFEST_DIR/tests/fixtures/valid").unwrap();
    let dir =
        Source::from_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/valid")).unwrap();
    let summary = |s: &Source| {
        s.migrations()
            .iter()
            .map(|m| {
                (
                    m.version(),
                    m.description().to_owned(),
                    m.checksum(),
                    m.sql().to_owned(),
                    m.rollback_sql().to_owned(),
                    m.probe_sql().to_owned(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(summary(&embedded), summary(&dir));
    let versions: Vec<i64> = dir.migrations().iter().map(|m| m.version()).collect();
    assert_eq!(versions, [1, 10]);
    assert_eq!(dir.latest_version(), 10);
    // The fixture's 001 has CRLF line endings and 010 a byte-order mark: neither counts.
    assert_eq!(
        dir.get(1).unwrap().checksum(),
        backstop::Checksum::of("CREATE TABLE a (x);\nINSERT INTO a VALUES (1);\n")
    );
    assert_eq!(dir.get(10).unwrap().sql(), "CREATE TABLE b (x);\n");
}

#[test]
fn other_files_and_directories_are_ignored() {
    let ws = Workspace::new();
    valid(&ws);
    ws.write("README.md", "notes");
    ws.write(".001_a.sql.swp", "editor junk");
    std::fs::create_dir_all(ws.migrations_dir().join("old")).unwrap();
    std::fs::write(ws.migrations_dir().join("old/999_x.sql"), "garbage").unwrap();
    let source = ws.source();
    assert_eq!(source.migrations().len(), 1);
}

#[test]
fn unparsable_names_are_refused() {
    for name in [
        "abc_x.sql",
        "001.sql",
        "001_.sql",
        "000_zero.sql",
        "001_two.dots.sql",
        "001_x.undo.sql",
        "-1_negative.sql",
        "001_with space.sql",
    ] {
        let ws = Workspace::new();
        valid(&ws);
        ws.write(name, "SELECT 1;");
        let err = refused(&ws, name);
        assert!(
            matches!(err, Error::InvalidFileName { .. }),
            "{name}: {err}"
        );
    }
}

#[test]
fn duplicate_versions_are_refused() {
    let ws = Workspace::new();
    valid(&ws);
    ws.migration("1_again", "CREATE TABLE b (x);\n", "DROP TABLE b;\n", PROBE);
    let err = refused(&ws, "001_a");
    match err {
        Error::DuplicateVersion {
            version,
            first,
            second,
        } => {
            assert_eq!(version, 1);
            assert_ne!(first, second);
        }
        other => panic!("unexpected error: {other}"),
    }
}

#[test]
fn a_missing_rollback_or_probe_is_refused() {
    for (missing, kind) in [
        ("001_a.rollback.sql", "rollback"),
        ("001_a.probe.sql", "probe"),
        ("001_a.sql", "forward"),
    ] {
        let ws = Workspace::new();
        valid(&ws);
        std::fs::remove_file(ws.migrations_dir().join(missing)).unwrap();
        let err = refused(&ws, missing);
        assert!(
            matches!(err, Error::MissingFile { version: 1, .. }),
            "{kind}: {err}"
        );
    }
}

#[test]
fn empty_scripts_are_refused() {
    for (file, content) in [
        ("001_a.sql", ""),
        ("001_a.rollback.sql", "  \n-- nothing to undo\n"),
        ("001_a.probe.sql", "/* */ ;"),
    ] {
        let ws = Workspace::new();
        valid(&ws);
        ws.write(file, content);
        let err = refused(&ws, file);
        assert!(matches!(err, Error::EmptyScript { .. }), "{file}: {err}");
    }
}

#[test]
fn invalid_utf8_is_refused_with_its_offset() {
    let ws = Workspace::new();
    valid(&ws);
    ws.write("001_a.sql", b"CREATE TABLE a (x);\n-- caf\xe9\n");
    let err = refused(&ws, "001_a.sql");
    assert!(
        matches!(err, Error::InvalidUtf8 { offset: 26, .. }),
        "{err}"
    );
}

#[test]
fn scripts_may_not_control_the_transaction() {
    for (file, script, line) in [
        ("001_a.sql", "BEGIN;\nCREATE TABLE a (x);\nCOMMIT;\n", 1),
        ("001_a.sql", "CREATE TABLE a (x);\n\ncommit;\n", 3),
        ("001_a.sql", "CREATE TABLE a (x);\nEND TRANSACTION;\n", 2),
        ("001_a.rollback.sql", "DROP TABLE a;\nROLLBACK;\n", 2),
        (
            "001_a.sql",
            "SAVEPOINT s;\nCREATE TABLE a (x);\nRELEASE s;\n",
            1,
        ),
        ("001_a.sql", "/* tidy up */ VACUUM;\n", 1),
        ("001_a.sql", "BEGIN IMMEDIATE;\n", 1),
    ] {
        let ws = Workspace::new();
        valid(&ws);
        ws.write(file, script);
        let err = refused(&ws, file);
        match err {
            Error::InvalidScript { line: l, .. } => assert_eq!(l, line, "{script}"),
            other => panic!("{script}: unexpected error: {other}"),
        }
    }
}

#[test]
fn triggers_and_strings_with_keywords_are_fine() {
    let ws = Workspace::new();
    ws.migration(
        "001_a",
        "CREATE TABLE a (x TEXT DEFAULT 'BEGIN; COMMIT;');\n\
         CREATE TRIGGER a_t AFTER INSERT ON a BEGIN\n  UPDATE a SET x = 'end';\nEND;\n\
         -- ROLLBACK; in a comment\n",
        "DROP TABLE a;\n",
        "SELECT count(*) FROM sqlite_master WHERE name = 'a_t';\n",
    );
    assert_eq!(ws.source().migrations().len(), 1);
}

#[test]
fn probes_must_be_one_select() {
    for (probe, line) in [
        ("SELECT 1; SELECT 0;", 1),
        ("DELETE FROM a RETURNING 1;", 1),
        ("\n\nPRAGMA user_version;", 3),
        ("SELECT 1;\nDROP TABLE a;", 2),
    ] {
        let ws = Workspace::new();
        valid(&ws);
        ws.write("001_a.probe.sql", probe);
        let err = refused(&ws, "001_a.probe.sql");
        match err {
            Error::InvalidScript { line: l, .. } => assert_eq!(l, line, "{probe}"),
            other => panic!("{probe}: unexpected error: {other}"),
        }
    }
}

#[test]
fn unterminated_statements_are_refused() {
    let ws = Workspace::new();
    valid(&ws);
    ws.write(
        "001_a.sql",
        "CREATE TABLE a (x);\nINSERT INTO a VALUES ('open);\n",
    );
    let err = refused(&ws, "001_a.sql");
    assert!(matches!(err, Error::InvalidScript { line: 2, .. }), "{err}");
}

#[test]
fn a_missing_directory_or_a_file_is_refused() {
    let ws = Workspace::new();
    let err = Source::from_dir(ws.path().join("nowhere")).unwrap_err();
    assert!(
        matches!(err, Error::Io { .. }) && err.to_string().contains("nowhere"),
        "{err}"
    );
    std::fs::write(ws.path().join("file"), "x").unwrap();
    let err = Source::from_dir(ws.path().join("file")).unwrap_err();
    assert!(err.to_string().contains("not a directory"), "{err}");
}
