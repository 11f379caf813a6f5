//! A catalogue of bad input: malformed migrations, broken databases, impossible requests.
//!
//! Every case is tried through the library (where it is reachable there) and through the
//! command line (`--json`). Each must fail with the exact error variant / `kind`, with a
//! message that names what is at fault, exit code 1, and must leave the database's content,
//! the files beside it and the backups directory exactly as they were.

mod common;

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use backstop::{Error, Migrator, RollbackStrategy, Source};
use common::*;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{Connection, SqlitePool};
use tokio::runtime::Runtime;

/// How long any single library call or CLI run may take before the case counts as a hang.
const HANG: Duration = Duration::from_secs(30);

/// What the library is asked to do in a case.
enum Lib {
    /// Not reachable through the library (a CLI-level input: paths, environment, rlimits).
    CliOnly,
    /// `Source::from_dir(dir)`.
    Load(PathBuf),
    Migrate,
    MigrateTo(i64),
    DryRun(Option<i64>),
    Rollback(i64, RollbackStrategy),
    Status,
}

/// One prepared case: what to run, and what it must name.
struct Setup {
    lib: Lib,
    /// The CLI command and its own arguments (the global options are added from the fields).
    command: Vec<OsString>,
    /// `--database` (`None`: not passed).
    database: Option<PathBuf>,
    /// `--migrations`.
    migrations: PathBuf,
    /// `--backup-dir` (and the library's `backup_dir`).
    backup_dir: Option<PathBuf>,
    /// `--busy-timeout` (and the library's), in seconds.
    busy_timeout: f64,
    env: Vec<(&'static str, String)>,
    /// Strings the error message must contain (the file, version or path at fault).
    culprits: Vec<String>,
    /// The database file whose content must not change.
    watch_db: PathBuf,
    /// The backups directory whose listing must not change.
    watch_backups: PathBuf,
    /// Hold `BEGIN IMMEDIATE` on the database while the case runs.
    hold_lock: bool,
    /// Run the CLI under `ulimit -f` (512-byte blocks) with SIGXFSZ ignored.
    fsize_blocks: Option<u64>,
}

impl Setup {
    fn new(ws: &Workspace, lib: Lib, command: &[&str]) -> Self {
        Setup {
            lib,
            command: command.iter().map(OsString::from).collect(),
            database: Some(ws.db()),
            migrations: ws.migrations_dir(),
            backup_dir: None,
            busy_timeout: 10.0,
            env: Vec::new(),
            culprits: Vec::new(),
            watch_db: ws.db(),
            watch_backups: ws.backups_dir(),
            hold_lock: false,
            fsize_blocks: None,
        }
    }

    fn names(mut self, culprit: impl AsRef<Path>) -> Self {
        self.culprits
            .push(culprit.as_ref().to_string_lossy().into_owned());
        self
    }
}

type Build = Box<dyn Fn(&Runtime, &Workspace) -> Setup>;

struct Case {
    name: &'static str,
    /// The CLI's `kind`.
    kind: &'static str,
    /// The library's variant (`None` for CLI-only cases).
    variant: Option<fn(&Error) -> bool>,
    build: Build,
}

fn case(
    name: &'static str,
    kind: &'static str,
    variant: Option<fn(&Error) -> bool>,
    build: impl Fn(&Runtime, &Workspace) -> Setup + 'static,
) -> Case {
    Case {
        name,
        kind,
        variant,
        build: Box::new(build),
    }
}

// ----- the standard workspace -----------------------------------------------------------------

const PEOPLE_PROBE: &str = "SELECT count(*) FROM sqlite_master WHERE name = 'people';\n";

fn people(ws: &Workspace) {
    ws.migration(
        "001_people",
        "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n\
         INSERT INTO people (name) VALUES ('ada'), ('grace');\n",
        "DROP TABLE people;\n",
        PEOPLE_PROBE,
    );
}

fn email(ws: &Workspace) {
    ws.migration(
        "005_email",
        "ALTER TABLE people ADD COLUMN email TEXT;\n",
        "ALTER TABLE people DROP COLUMN email;\n",
        "SELECT count(*) FROM pragma_table_info('people') WHERE name = 'email';\n",
    );
}

/// Migrations 001 and 005, and a database with content of its own, migrated to 5 in one run
/// (so the backups directory holds one backup, of version 0).
fn base(rt: &Runtime) -> Workspace {
    let ws = Workspace::new();
    people(&ws);
    email(&ws);
    rt.block_on(async {
        exec(
            &ws.db(),
            "CREATE TABLE t (x);\n\
             INSERT INTO t VALUES (1), (2), (3);\n\
             CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);\n\
             INSERT INTO notes (body) VALUES ('keep me'), ('and me');\n",
        )
        .await;
        let pool = ws.pool().await;
        ws.migrator().migrate(&pool).await.expect("base migration");
        pool.close().await;
    });
    assert_eq!(ws.backup_files().len(), 1, "{:?}", ws.backup_files());
    ws
}

const NOTES2_PROBE: &str = "SELECT count(*) FROM sqlite_master WHERE name = 'notes2';\n";

/// A pending migration 010_notes2 with the given scripts.
fn pending(ws: &Workspace, forward: &str, rollback: &str, probe: &str) {
    ws.migration("010_notes2", forward, rollback, probe);
}

/// A valid pending migration 010_notes2.
fn valid_pending(ws: &Workspace) {
    pending(
        ws,
        "CREATE TABLE notes2 (x);\nINSERT INTO notes2 VALUES (1);\n",
        "DROP TABLE notes2;\n",
        NOTES2_PROBE,
    );
}

/// A pending migration 010_notes2 whose probe is `probe`.
/// A pending migration whose probe answers wrongly at run time: `says` is in the message.
fn probe_case(name: &'static str, probe: &'static str, says: &'static str) -> Case {
    case(
        name,
        "probe",
        Some(|e| matches!(e, Error::Probe { version: 10, .. })),
        move |_, ws| {
            let probe = with_probe(ws, probe);
            Setup::new(ws, Lib::Migrate, &["migrate"])
                .names(probe)
                .names(says)
        },
    )
}

fn with_probe(ws: &Workspace, probe: &str) -> PathBuf {
    pending(
        ws,
        "CREATE TABLE notes2 (x);\n",
        "DROP TABLE notes2;\n",
        probe,
    );
    ws.migrations_dir().join("010_notes2.probe.sql")
}

fn mig(ws: &Workspace, name: &str) -> PathBuf {
    ws.migrations_dir().join(name)
}

// ----- the catalogue ------------------------------------------------------------------------

fn cases() -> Vec<Case> {
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

// ----- running a case -----------------------------------------------------------------------

/// What must not change.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    /// `content_hash` of the database (when it is one), else a description of the path.
    content: String,
    /// SHA-256 of the database file's bytes.
    bytes: Option<String>,
    /// The files beside the database (a stray journal, a new directory...).
    beside: Vec<String>,
    /// The backups directory.
    backups: Vec<String>,
    backups_exists: bool,
}

async fn snapshot(db: &Path, backups: &Path, readable: bool) -> Snapshot {
    let content = if db.is_dir() {
        format!("directory {:?}", list_dir(db))
    } else if !db.exists() {
        "absent".to_owned()
    } else if readable {
        content_hash(db).await
    } else {
        "not readable as a database".to_owned()
    };
    Snapshot {
        content,
        bytes: std::fs::read(db)
            .ok()
            .map(|b| hex::encode(Sha256::digest(&b))),
        beside: db.parent().map(list_dir).unwrap_or_default(),
        backups: list_dir(backups),
        backups_exists: backups.exists(),
    }
}

async fn open_pool(path: &Path) -> Result<SqlitePool, sqlx::Error> {
    SqlitePoolOptions::new()
        .max_connections(2)
        .connect_with(
            SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(false)
                .busy_timeout(Duration::from_secs(10)),
        )
        .await
}

/// Calls the library; returns the error (or why there was none).
async fn call_library(setup: &Setup) -> Result<Error, String> {
    if let Lib::Load(dir) = &setup.lib {
        return match Source::from_dir(dir) {
            Ok(source) => Err(format!(
                "the source loaded ({} migrations)",
                source.migrations().len()
            )),
            Err(e) => Ok(e),
        };
    }
    let source = Source::from_dir(&setup.migrations).map_err(|e| format!("source: {e}"))?;
    let mut migrator =
        Migrator::new(source).busy_timeout(Duration::from_secs_f64(setup.busy_timeout));
    if let Some(dir) = &setup.backup_dir {
        migrator = migrator.backup_dir(dir);
    }
    let db = setup
        .database
        .as_ref()
        .expect("a library case has a database");
    let pool = open_pool(db)
        .await
        .map_err(|e| format!("cannot open a pool: {e}"))?;
    let outcome = match &setup.lib {
        Lib::Migrate => migrator.migrate(&pool).await.map(|r| format!("{r:?}")),
        Lib::MigrateTo(v) => migrator
            .migrate_to(&pool, *v)
            .await
            .map(|r| format!("{r:?}")),
        Lib::DryRun(v) => migrator.dry_run(&pool, *v).await.map(|r| format!("{r:?}")),
        Lib::Rollback(v, s) => migrator
            .rollback(&pool, *v, *s)
            .await
            .map(|r| format!("{r:?}")),
        Lib::Status => migrator.status(&pool).await.map(|r| format!("{r:?}")),
        Lib::CliOnly | Lib::Load(_) => unreachable!(),
    };
    pool.close().await;
    match outcome {
        Ok(report) => Err(format!("it succeeded: {report}")),
        Err(e) => Ok(e),
    }
}

struct CliRun {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

/// Runs the CLI with the case's options and `--json`, killing it if it hangs.
fn call_cli(ws: &Workspace, setup: &Setup, database: Option<&Path>) -> Result<CliRun, String> {
    let mut args: Vec<OsString> = vec!["--json".into(), "--migrations".into()];
    args.push(setup.migrations.clone().into());
    if let Some(db) = database {
        args.push("--database".into());
        args.push(db.into());
    }
    if let Some(dir) = &setup.backup_dir {
        args.push("--backup-dir".into());
        args.push(dir.into());
    }
    args.push("--busy-timeout".into());
    args.push(setup.busy_timeout.to_string().into());
    args.extend(setup.command.iter().cloned());

    let mut command = match setup.fsize_blocks {
        None => {
            let mut c = Command::new(cli());
            c.args(&args);
            c
        }
        Some(blocks) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!(
                    "trap '' XFSZ; ulimit -f {blocks}; exec \"$0\" \"$@\""
                ))
                .arg(cli())
                .args(&args);
            c
        }
    };
    command
        .current_dir(ws.path())
        .env_remove("DATABASE_URL")
        .env_remove("RUST_LOG")
        .envs(setup.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = command.spawn().map_err(|e| format!("cannot run: {e}"))?;
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > HANG {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("the CLI hung for more than {HANG:?}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Ok(CliRun {
        code: status.code(),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
        elapsed: started.elapsed(),
    })
}

/// Checks a CLI run: exit 1, nothing on stdout, one JSON object on stderr with the kind and a
/// message naming the culprits.
fn check_cli(case: &Case, setup: &Setup, run: &CliRun, problems: &mut Vec<String>) {
    println!(
        "    CLI exit {:?} in {} ms: {}",
        run.code,
        run.elapsed.as_millis(),
        run.stderr.trim()
    );
    let mut fail = |what: String| problems.push(format!("CLI: {what}"));
    if run.code != Some(1) {
        fail(format!(
            "exit code {:?}, expected 1; stderr: {}",
            run.code, run.stderr
        ));
    }
    if !run.stdout.trim().is_empty() {
        fail(format!("stdout is not empty: {}", run.stdout));
    }
    let json: Value = match serde_json::from_str(run.stderr.trim()) {
        Ok(v) => v,
        Err(e) => {
            fail(format!(
                "stderr is not one JSON value ({e}): {}",
                run.stderr
            ));
            return;
        }
    };
    if json["kind"] != case.kind {
        fail(format!("kind {}, expected {:?}", json["kind"], case.kind));
    }
    let message = json["error"].as_str().unwrap_or_default();
    for culprit in &setup.culprits {
        if !message.contains(culprit.as_str()) {
            fail(format!("the error does not name {culprit:?}: {message}"));
        }
    }
}

fn run_case(rt: &Runtime, case: &Case) -> Vec<String> {
    let mut problems = Vec::new();
    let ws = base(rt);
    let setup = (case.build)(rt, &ws);
    let readable = case.kind != "not_a_database";
    let before = rt.block_on(snapshot(&setup.watch_db, &setup.watch_backups, readable));
    let partials_dir = setup
        .backup_dir
        .clone()
        .unwrap_or_else(|| setup.watch_backups.clone());

    // Another writer, if the case wants one.
    let holder = setup.hold_lock.then(|| {
        rt.block_on(async {
            let mut conn = connect(&ws.db()).await;
            sqlx::raw_sql("BEGIN IMMEDIATE")
                .execute(&mut conn)
                .await
                .unwrap();
            conn
        })
    });

    // The library.
    if let Some(variant) = case.variant {
        let started = Instant::now();
        let result = rt.block_on(async {
            tokio::time::timeout(HANG, call_library(&setup))
                .await
                .unwrap_or_else(|_| Err(format!("the library hung for more than {HANG:?}")))
        });
        let elapsed = started.elapsed();
        match result {
            Err(what) => problems.push(format!("library: expected an error, but {what}")),
            Ok(error) => {
                println!("    library in {} ms: {error:?}", elapsed.as_millis());
                if !variant(&error) {
                    problems.push(format!("library: unexpected variant {error:?}"));
                }
                if error.kind() != case.kind {
                    problems.push(format!(
                        "library: kind {:?}, expected {:?}",
                        error.kind(),
                        case.kind
                    ));
                }
                let message = error.to_string();
                for culprit in &setup.culprits {
                    if !message.contains(culprit.as_str()) {
                        problems.push(format!(
                            "library: the error does not name {culprit:?}: {message}"
                        ));
                    }
                }
            }
        }
        if setup.hold_lock && elapsed > Duration::from_secs(3) {
            problems.push(format!(
                "library: took {elapsed:?} with a busy timeout of {} s",
                setup.busy_timeout
            ));
        }
        if !setup.hold_lock {
            let after = rt.block_on(snapshot(&setup.watch_db, &setup.watch_backups, readable));
            if after != before {
                problems.push(format!(
                    "library: changed things:\nbefore {before:?}\nafter  {after:?}"
                ));
            }
        }
    }

    // The command line.
    match call_cli(&ws, &setup, setup.database.as_deref()) {
        Err(what) => problems.push(format!("CLI: {what}")),
        Ok(run) => {
            check_cli(case, &setup, &run, &mut problems);
            if setup.hold_lock && run.elapsed > Duration::from_secs(3) {
                problems.push(format!(
                    "CLI: took {:?} with --busy-timeout {}",
                    run.elapsed, setup.busy_timeout
                ));
            }
        }
    }
    if let Some(mut conn) = holder {
        rt.block_on(async {
            sqlx::raw_sql("ROLLBACK").execute(&mut conn).await.unwrap();
            conn.close().await.unwrap();
        });
    }
    let after = rt.block_on(snapshot(&setup.watch_db, &setup.watch_backups, readable));
    if after != before {
        problems.push(format!(
            "changed things:\nbefore {before:?}\nafter  {after:?}"
        ));
    }
    let partials: Vec<String> = list_dir(&partials_dir)
        .into_iter()
        .filter(|n| n.ends_with(".partial"))
        .collect();
    if !partials.is_empty() {
        problems.push(format!("partial backups left behind: {partials:?}"));
    }

    // A source refused at load never creates a database, even one that does not exist yet.
    if matches!(setup.lib, Lib::Load(_)) {
        let fresh = ws.path().join("fresh/new.sqlite3");
        match call_cli(&ws, &setup, Some(&fresh)) {
            Err(what) => problems.push(format!("CLI on a new database: {what}")),
            Ok(run) => check_cli(case, &setup, &run, &mut problems),
        }
        if fresh.parent().unwrap().exists() {
            problems.push(format!(
                "CLI on a new database: created {:?}",
                list_dir(fresh.parent().unwrap())
            ));
        }
    }
    problems
}

#[test]
fn bad_input_catalogue() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    cli(); // build the binary before timing anything
    let cases = cases();
    let started = Instant::now();
    let mut failures = Vec::new();
    for case in &cases {
        let t = Instant::now();
        let problems = run_case(&rt, case);
        println!(
            "{:<60} {:<22} {:>5} ms  {}",
            case.name,
            case.kind,
            t.elapsed().as_millis(),
            if problems.is_empty() { "ok" } else { "FAILED" }
        );
        for problem in problems {
            failures.push(format!("[{}] {problem}", case.name));
        }
    }
    println!(
        "bad inputs tried: {} ({} through the library and the CLI, {} CLI only) in {:.1} s",
        cases.len(),
        cases.iter().filter(|c| c.variant.is_some()).count(),
        cases.iter().filter(|c| c.variant.is_none()).count(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} problem(s):\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// `migrate --dry-run`, `rollback` and `backups` refuse a database that does not exist, and
/// create neither it nor its directory.
#[test]
fn dry_run_and_rollback_never_create_a_database() {
    let ws = Workspace::new();
    people(&ws);
    for command in [
        &["migrate", "--dry-run"][..],
        &["rollback", "--to-version", "0"][..],
        &["backups"][..],
    ] {
        let missing = ws.path().join("absent/app.sqlite3");
        let out = Command::new(cli())
            .current_dir(ws.path())
            .env_remove("DATABASE_URL")
            .arg("--json")
            .arg("--migrations")
            .arg(ws.migrations_dir())
            .arg("--database")
            .arg(&missing)
            .args(command)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{command:?}");
        let json: Value = serde_json::from_slice(&out.stderr).unwrap();
        assert_eq!(json["kind"], "database_path", "{command:?}");
        assert!(
            json["error"]
                .as_str()
                .unwrap()
                .contains(&missing.display().to_string()),
            "{json}"
        );
        assert!(!missing.parent().unwrap().exists(), "{command:?}");
    }
}

/// A `migrate` that fails on a database that did not exist leaves nothing behind: not the
/// database file, not its directories, not the backup directory.
#[test]
fn a_failed_migrate_of_a_new_database_leaves_nothing_behind() {
    let ws = Workspace::new();
    ws.migration(
        "001_a",
        "CREATE TABLE a (x);\n",
        "DROP TABLE a;\n",
        "SELECT 2;\n",
    );
    let fresh = ws.path().join("new/dir/app.sqlite3");
    let out = Command::new(cli())
        .current_dir(ws.path())
        .env_remove("DATABASE_URL")
        .arg("--json")
        .arg("--migrations")
        .arg(ws.migrations_dir())
        .arg("--database")
        .arg(&fresh)
        .arg("migrate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let json: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(json["kind"], "probe", "{json}");
    assert!(
        !ws.path().join("new").exists(),
        "left behind: {:?} and {:?}",
        list_dir(&ws.path().join("new/dir")),
        list_dir(&ws.path().join("new/dir/backups"))
    );
}

/// A backup that runs out of space says what failed: the write, and the OS error.
#[test]
fn a_backup_out_of_space_says_what_failed() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ws = base(&rt);
    rt.block_on(exec(
        &ws.db(),
        "CREATE TABLE big (x);\n\
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 6000)\n\
         INSERT INTO big SELECT randomblob(1000) FROM c;\n",
    ));
    valid_pending(&ws);
    let out = Command::new("sh")
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 1024; exec \"$0\" \"$@\"")
        .arg(cli())
        .current_dir(ws.path())
        .env_remove("DATABASE_URL")
        .arg("--json")
        .arg("--migrations")
        .arg(ws.migrations_dir())
        .arg("--database")
        .arg(ws.db())
        .arg("migrate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let json: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(json["kind"], "backup", "{json}");
    let message = json["error"].as_str().unwrap();
    assert!(!message.contains("not an error"), "{message}");
    assert!(message.contains("File too large"), "{message}");
}
