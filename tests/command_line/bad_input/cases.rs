//! The catalogue: malformed migrations, broken databases, impossible requests.

use backstop::{Error, RollbackStrategy};

use super::setup::*;
use crate::common::*;

// ----- the catalogue ------------------------------------------------------------------------

pub fn cases() -> Vec<Case> {
    use Lib::*;
    let load = |ws: &Workspace| Load(ws.migrations_dir());
    vec![
        // --- file names
        case(
            "name without a version",
            "invalid_file_name",
            Some(|e| matches!(e, Error::InvalidFileName { .. })),
            move |_, ws| {
                ws.write("notes2.sql", "CREATE TABLE notes2 (x);\n");
                Setup::new(ws, load(ws), &["migrate"]).names(mig(ws, "notes2.sql"))
            },
        ),
        case(
            "name with a word for a version",
            "invalid_file_name",
            Some(|e| matches!(e, Error::InvalidFileName { .. })),
            move |_, ws| {
                ws.write("add_notes2.sql", "CREATE TABLE notes2 (x);\n");
                Setup::new(ws, load(ws), &["migrate"]).names(mig(ws, "add_notes2.sql"))
            },
        ),
        case(
            "version 0",
            "invalid_file_name",
            Some(|e| matches!(e, Error::InvalidFileName { .. })),
            move |_, ws| {
                ws.write("000_zero.sql", "CREATE TABLE zero (x);\n");
                Setup::new(ws, load(ws), &["migrate"]).names(mig(ws, "000_zero.sql"))
            },
        ),
        case(
            "a dot in the description",
            "invalid_file_name",
            Some(|e| matches!(e, Error::InvalidFileName { .. })),
            move |_, ws| {
                ws.write("010_has.dot.sql", "CREATE TABLE notes2 (x);\n");
                Setup::new(ws, load(ws), &["migrate"]).names(mig(ws, "010_has.dot.sql"))
            },
        ),
        case(
            "a .down.sql file",
            "invalid_file_name",
            Some(|e| matches!(e, Error::InvalidFileName { .. })),
            move |_, ws| {
                ws.write(
                    "005_email.down.sql",
                    "ALTER TABLE people DROP COLUMN email;\n",
                );
                Setup::new(ws, load(ws), &["migrate"]).names(mig(ws, "005_email.down.sql"))
            },
        ),
        // --- sets of files
        case(
            "duplicate version",
            "duplicate_version",
            Some(|e| matches!(e, Error::DuplicateVersion { version: 5, .. })),
            move |_, ws| {
                ws.migration(
                    "005_other",
                    "CREATE TABLE other (x);\n",
                    "DROP TABLE other;\n",
                    "SELECT count(*) FROM sqlite_master WHERE name = 'other';\n",
                );
                Setup::new(ws, load(ws), &["migrate"])
                    .names(mig(ws, "005_email."))
                    .names(mig(ws, "005_other."))
                    .names("version 5")
            },
        ),
        case(
            "missing rollback file",
            "missing_file",
            Some(|e| matches!(e, Error::MissingFile { version: 10, .. })),
            move |_, ws| {
                ws.write("010_notes2.sql", "CREATE TABLE notes2 (x);\n");
                ws.write("010_notes2.probe.sql", NOTES2_PROBE);
                Setup::new(ws, load(ws), &["migrate"]).names(mig(ws, "010_notes2.rollback.sql"))
            },
        ),
        case(
            "missing probe file",
            "missing_file",
            Some(|e| matches!(e, Error::MissingFile { version: 10, .. })),
            move |_, ws| {
                ws.write("010_notes2.sql", "CREATE TABLE notes2 (x);\n");
                ws.write("010_notes2.rollback.sql", "DROP TABLE notes2;\n");
                Setup::new(ws, load(ws), &["migrate"]).names(mig(ws, "010_notes2.probe.sql"))
            },
        ),
        // --- script contents refused at load
        case(
            "empty script",
            "empty_script",
            Some(|e| matches!(e, Error::EmptyScript { .. })),
            move |_, ws| {
                pending(
                    ws,
                    "-- nothing here yet\n;\n/* really */\n",
                    "DROP TABLE IF EXISTS notes2;\n",
                    NOTES2_PROBE,
                );
                Setup::new(ws, load(ws), &["migrate"]).names(mig(ws, "010_notes2.sql"))
            },
        ),
        case(
            "invalid UTF-8",
            "invalid_utf8",
            Some(|e| matches!(e, Error::InvalidUtf8 { offset: 30, .. })),
            move |_, ws| {
                valid_pending(ws);
                ws.write("010_notes2.sql", b"CREATE TABLE notes2 (x);-- caf\xe9\n");
                Setup::new(ws, load(ws), &["migrate"]).names(mig(ws, "010_notes2.sql"))
            },
        ),
        case(
            "script opens its own transaction (BEGIN)",
            "invalid_script",
            Some(|e| matches!(e, Error::InvalidScript { line: 1, .. })),
            move |_, ws| {
                pending(
                    ws,
                    "BEGIN;\nCREATE TABLE notes2 (x);\nCOMMIT;\n",
                    "DROP TABLE notes2;\n",
                    NOTES2_PROBE,
                );
                Setup::new(ws, load(ws), &["migrate"])
                    .names(mig(ws, "010_notes2.sql"))
                    .names("BEGIN")
            },
        ),
        case(
            "script commits (COMMIT)",
            "invalid_script",
            Some(|e| matches!(e, Error::InvalidScript { line: 2, .. })),
            move |_, ws| {
                pending(
                    ws,
                    "CREATE TABLE notes2 (x);\nCOMMIT;\n",
                    "DROP TABLE notes2;\n",
                    NOTES2_PROBE,
                );
                Setup::new(ws, load(ws), &["migrate"])
                    .names(mig(ws, "010_notes2.sql"))
                    .names("COMMIT")
            },
        ),
        case(
            "rollback script runs VACUUM",
            "invalid_script",
            Some(|e| matches!(e, Error::InvalidScript { line: 2, .. })),
            move |_, ws| {
                pending(
                    ws,
                    "CREATE TABLE notes2 (x);\n",
                    "DROP TABLE notes2;\nVACUUM;\n",
                    NOTES2_PROBE,
                );
                Setup::new(ws, load(ws), &["migrate"])
                    .names(mig(ws, "010_notes2.rollback.sql"))
                    .names("VACUUM")
            },
        ),
        case(
            "probe that writes (DELETE ... RETURNING 1)",
            "invalid_script",
            Some(|e| matches!(e, Error::InvalidScript { line: 1, .. })),
            move |_, ws| {
                let probe = with_probe(ws, "DELETE FROM t RETURNING 1;\n");
                Setup::new(ws, load(ws), &["migrate"])
                    .names(probe)
                    .names("DELETE FROM t")
            },
        ),
        case(
            "probe of two statements",
            "invalid_script",
            Some(|e| matches!(e, Error::InvalidScript { line: 2, .. })),
            move |_, ws| {
                let probe = with_probe(ws, "SELECT 1;\nSELECT 0;\n");
                Setup::new(ws, load(ws), &["migrate"]).names(probe)
            },
        ),
        case(
            "unterminated statement",
            "invalid_script",
            Some(|e| matches!(e, Error::InvalidScript { line: 2, .. })),
            move |_, ws| {
                pending(
                    ws,
                    "CREATE TABLE notes2 (x);\nINSERT INTO notes2 VALUES ('open);\n",
                    "DROP TABLE notes2;\n",
                    NOTES2_PROBE,
                );
                Setup::new(ws, load(ws), &["migrate"])
                    .names(mig(ws, "010_notes2.sql"))
                    .names("line 2")
            },
        ),
        case(
            "--migrations directory does not exist",
            "io",
            Some(|e| matches!(e, Error::Io { .. })),
            move |_, ws| {
                let missing = ws.path().join("no-such-migrations");
                let mut setup = Setup::new(ws, Load(missing.clone()), &["migrate"]).names(&missing);
                setup.migrations = missing;
                setup
            },
        ),
        // --- probes that misbehave at run time
        probe_case("probe returns two columns", "SELECT 1, 0;\n", "2 columns"),
        probe_case("probe returns no row", "SELECT 1 WHERE 0;\n", "0 rows"),
        probe_case("probe returns text", "SELECT '0';\n", "TEXT"),
        probe_case("probe returns NULL", "SELECT NULL;\n", "NULL"),
        probe_case("probe returns 2", "SELECT 2;\n", "returned 2"),
        case(
            "probe that writes through a CTE (query_only)",
            "probe",
            Some(|e| matches!(e, Error::Probe { version: 10, .. })),
            move |_, ws| {
                let probe = with_probe(
                    ws,
                    "WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x RETURNING 1;\n",
                );
                Setup::new(ws, Migrate, &["migrate"])
                    .names(probe)
                    .names("readonly")
            },
        ),
        case(
            "probe that writes, in a dry run",
            "probe",
            Some(|e| matches!(e, Error::Probe { version: 10, .. })),
            move |_, ws| {
                let probe = with_probe(
                    ws,
                    "WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x RETURNING 1;\n",
                );
                Setup::new(ws, DryRun(None), &["migrate", "--dry-run"]).names(probe)
            },
        ),
        case(
            "probe still says 0 after the script",
            "probe_not_confirmed",
            Some(|e| {
                matches!(
                    e,
                    Error::ProbeNotConfirmed {
                        version: 10,
                        value: 0,
                        ..
                    }
                )
            }),
            move |_, ws| {
                pending(
                    ws,
                    "CREATE TABLE notes3 (x);\n",
                    "DROP TABLE notes3;\n",
                    NOTES2_PROBE,
                );
                Setup::new(ws, Migrate, &["migrate"])
                    .names(mig(ws, "010_notes2.sql"))
                    .names(mig(ws, "010_notes2.probe.sql"))
            },
        ),
        // --- scripts that fail at run time
        case(
            "syntax error in the last statement",
            "statement",
            Some(|e| {
                matches!(
                    e,
                    Error::Statement {
                        version: 10,
                        line: 3,
                        ..
                    }
                )
            }),
            move |_, ws| {
                pending(
                    ws,
                    "CREATE TABLE notes2 (x);\nINSERT INTO notes2 VALUES (1);\nINSERT INTO notes2 VALUES (2;\n",
                    "DROP TABLE notes2;\n",
                    NOTES2_PROBE,
                );
                Setup::new(ws, Migrate, &["migrate"])
                    .names(mig(ws, "010_notes2.sql"))
                    .names("line 3")
                    .names("INSERT INTO notes2 VALUES (2;")
            },
        ),
        case(
            "script introduces a foreign-key violation",
            "foreign_key_violation",
            Some(|e| matches!(e, Error::ForeignKeyViolation { .. })),
            move |_, ws| {
                pending(
                    ws,
                    "CREATE TABLE notes2 (id INTEGER PRIMARY KEY, note INTEGER REFERENCES notes (id));\n\
                     INSERT INTO notes2 (note) VALUES (99);\n",
                    "DROP TABLE notes2;\n",
                    NOTES2_PROBE,
                );
                Setup::new(ws, Migrate, &["migrate"])
                    .names("[10]")
                    .names("notes2 row 1 -> notes")
            },
        ),
        // --- source against history
        case(
            "database newer than the build",
            "unknown_versions",
            Some(|e| {
                matches!(
                    e,
                    Error::UnknownVersions {
                        latest_known: 1,
                        ..
                    }
                )
            }),
            move |_, ws| {
                let old = ws.path().join("migrations-old");
                std::fs::create_dir(&old).unwrap();
                for name in [
                    "001_people.sql",
                    "001_people.rollback.sql",
                    "001_people.probe.sql",
                ] {
                    std::fs::copy(mig(ws, name), old.join(name)).unwrap();
                }
                let mut setup = Setup::new(ws, Migrate, &["migrate"])
                    .names(ws.db())
                    .names("[5]");
                setup.migrations = old;
                setup
            },
        ),
        case(
            "modified applied migration",
            "checksum_mismatch",
            Some(|e| matches!(e, Error::ChecksumMismatch { version: 1, .. })),
            move |_, ws| {
                ws.write(
                    "001_people.sql",
                    "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT);\n",
                );
                valid_pending(ws);
                Setup::new(ws, Migrate, &["migrate"])
                    .names(mig(ws, "001_people.sql"))
                    .names("migration 1")
            },
        ),
        case(
            "migration inserted below an applied one",
            "out_of_order",
            Some(|e| {
                matches!(
                    e,
                    Error::OutOfOrder {
                        version: 3,
                        current: 5,
                        ..
                    }
                )
            }),
            move |_, ws| {
                ws.migration(
                    "003_middle",
                    "CREATE TABLE middle (x);\n",
                    "DROP TABLE middle;\n",
                    "SELECT count(*) FROM sqlite_master WHERE name = 'middle';\n",
                );
                Setup::new(ws, Migrate, &["migrate"])
                    .names(mig(ws, "003_middle.sql"))
                    .names("version 5")
            },
        ),
        case(
            "target version that does not exist",
            "unknown_target",
            Some(|e| matches!(e, Error::UnknownTarget { target: 7, .. })),
            move |_, ws| {
                valid_pending(ws);
                Setup::new(ws, MigrateTo(7), &["migrate", "--target", "7"])
                    .names("target version 7")
            },
        ),
        case(
            "target version that does not exist, in a dry run",
            "unknown_target",
            Some(|e| matches!(e, Error::UnknownTarget { target: 7, .. })),
            move |_, ws| {
                valid_pending(ws);
                Setup::new(
                    ws,
                    DryRun(Some(7)),
                    &["migrate", "--dry-run", "--target", "7"],
                )
                .names("target version 7")
            },
        ),
        case(
            "target below the current version",
            "target_below_current",
            Some(|e| {
                matches!(
                    e,
                    Error::TargetBelowCurrent {
                        target: 1,
                        current: 5
                    }
                )
            }),
            move |_, ws| {
                valid_pending(ws);
                Setup::new(ws, MigrateTo(1), &["migrate", "--target", "1"])
                    .names("target version 1")
                    .names("current version 5")
            },
        ),
        // --- rollback
        case(
            "rollback to a version with no backup",
            "no_backup",
            Some(|e| matches!(e, Error::NoBackup { version: 1, .. })),
            move |_, ws| {
                Setup::new(
                    ws,
                    Rollback(1, RollbackStrategy::Backup),
                    &["rollback", "--to-version", "1"],
                )
                .names(ws.db())
                .names("version 1")
                .names(ws.backups_dir())
            },
        ),
        case(
            "rollback to a version never applied",
            "version_not_applied",
            Some(|e| matches!(e, Error::VersionNotApplied { version: 3, .. })),
            move |_, ws| {
                Setup::new(
                    ws,
                    Rollback(3, RollbackStrategy::Scripts),
                    &["rollback", "--to-version", "3", "--strategy", "scripts"],
                )
                .names(ws.db())
                .names("version 3")
            },
        ),
        // --- databases and paths
        case(
            "--database is a directory",
            "database_path",
            None,
            move |_, ws| {
                let dir = ws.path().join("dbdir");
                std::fs::create_dir(&dir).unwrap();
                let mut setup = Setup::new(ws, CliOnly, &["migrate"]).names(&dir);
                setup.database = Some(dir.clone());
                setup.watch_db = dir;
                setup
            },
        ),
        case(
            "status of a database that does not exist",
            "database_path",
            None,
            move |_, ws| {
                let missing = ws.path().join("missing/app.sqlite3");
                let mut setup = Setup::new(ws, CliOnly, &["status"]).names(&missing);
                setup.database = Some(missing.clone());
                setup.watch_db = missing;
                setup
            },
        ),
        case(
            "a file that is not a SQLite database",
            "not_a_database",
            Some(|e| matches!(e, Error::NotADatabase { .. })),
            move |_, ws| {
                let file = ws.path().join("notes.txt");
                std::fs::write(&file, "these are my notes, not a database\n".repeat(200)).unwrap();
                valid_pending(ws);
                let mut setup = Setup::new(ws, Migrate, &["migrate"]).names(&file);
                setup.database = Some(file.clone());
                setup.watch_db = file;
                setup
            },
        ),
        case(
            "status of a file that is not a SQLite database",
            "not_a_database",
            Some(|e| matches!(e, Error::NotADatabase { .. })),
            move |_, ws| {
                let file = ws.path().join("notes.txt");
                std::fs::write(&file, "these are my notes, not a database\n".repeat(200)).unwrap();
                let mut setup = Setup::new(ws, Status, &["status"]).names(&file);
                setup.database = Some(file.clone());
                setup.watch_db = file;
                setup
            },
        ),
        case(
            "a truncated database",
            "not_a_database",
            Some(|e| matches!(e, Error::NotADatabase { .. })),
            move |rt, ws| {
                let cut = ws.path().join("cut.sqlite3");
                rt.block_on(async {
                    exec(
                        &cut,
                        "CREATE TABLE filler (x);\n\
                         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 200)\n\
                         INSERT INTO filler SELECT randomblob(1000) FROM c;\n",
                    )
                    .await;
                });
                let bytes = std::fs::read(&cut).unwrap();
                assert!(bytes.len() > 100_000, "{}", bytes.len());
                std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
                valid_pending(ws);
                let mut setup = Setup::new(ws, Migrate, &["migrate"]).names(&cut);
                setup.database = Some(cut.clone());
                setup.watch_db = cut;
                setup
            },
        ),
        case(
            "database held by another writer past the busy timeout",
            "busy",
            Some(|e| matches!(e, Error::Busy { .. })),
            move |_, ws| {
                valid_pending(ws);
                let mut setup = Setup::new(ws, Migrate, &["migrate"])
                    .names(ws.db())
                    .names("locked");
                setup.busy_timeout = 0.3;
                setup.hold_lock = true;
                setup
            },
        ),
        case(
            "backup directory under a regular file",
            "backup",
            Some(|e| matches!(e, Error::Backup { .. })),
            move |_, ws| {
                let file = ws.path().join("plain-file");
                std::fs::write(&file, "not a directory\n").unwrap();
                let dir = file.join("backups");
                valid_pending(ws);
                let mut setup = Setup::new(ws, Migrate, &["migrate"]).names(&dir);
                setup.backup_dir = Some(dir);
                setup
            },
        ),
        case(
            "backup runs out of space (ulimit -f)",
            "backup",
            None,
            move |rt, ws| {
                rt.block_on(exec(
                    &ws.db(),
                    "CREATE TABLE big (x);\n\
                     WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 6000)\n\
                     INSERT INTO big SELECT randomblob(1000) FROM c;\n",
                ));
                let size = std::fs::metadata(ws.db()).unwrap().len();
                // 1024 blocks of 512 bytes: 512 KiB, an eighth of the database.
                assert!(size > 8 * 512 * 1024, "{size}");
                valid_pending(ws);
                let mut setup = Setup::new(ws, CliOnly, &["migrate"]).names(ws.backups_dir());
                setup.fsize_blocks = Some(1024);
                setup
            },
        ),
        case(
            "migration runs out of space in rollback-journal mode (ulimit -f)",
            "statement",
            None,
            move |_, ws| {
                // The database (and its backup) fit; what the migration adds does not.
                pending(
                    ws,
                    "CREATE TABLE notes2 (x);\n\
                     WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 3000)\n\
                     INSERT INTO notes2 SELECT randomblob(1000) FROM c;\n",
                    "DROP TABLE notes2;\n",
                    NOTES2_PROBE,
                );
                let mut setup = Setup::new(ws, CliOnly, &["migrate"]).names("010_notes2.sql");
                setup.fsize_blocks = Some(1024);
                setup
            },
        ),
        case(
            "DATABASE_URL that is not a sqlite: URL",
            "invalid_argument",
            None,
            move |_, ws| {
                let url = "postgres://localhost/sessions";
                let mut setup = Setup::new(ws, CliOnly, &["migrate"])
                    .names("DATABASE_URL")
                    .names(url);
                setup.database = None;
                setup.env.push(("DATABASE_URL", url.to_owned()));
                setup
            },
        ),
    ]
}
