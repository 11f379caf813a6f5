//! The pieces of a case: what to run, what it must name, the standard workspace.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use backstop::{Error, RollbackStrategy};
use tokio::runtime::Runtime;

use crate::common::*;

/// How long any single library call or CLI run may take before the case counts as a hang.
pub const HANG: Duration = Duration::from_secs(30);

/// What the library is asked to do in a case.
pub enum Lib {
    /// Not reachable through the library (a CLI-level input: paths, environment, rlimits).
    CliOnly,
    /// `Source::from_dir(dir)`.
    Load(PathBuf),
    Migrate,
    MigrateTo(i64),
    DryRun(Option<i64>),
    Rollback(i64, RollbackStrategy),
    Status,
    Backups,
    /// `restore_file(path)`.
    Restore(PathBuf),
}

/// One prepared case: what to run, and what it must name.
pub struct Setup {
    pub lib: Lib,
    /// The CLI command and its own arguments (the global options are added from the fields).
    pub command: Vec<OsString>,
    /// `--database` (`None`: not passed).
    pub database: Option<PathBuf>,
    /// `--migrations`.
    pub migrations: PathBuf,
    /// `--backup-dir` (and the library's `backup_dir`).
    pub backup_dir: Option<PathBuf>,
    /// `--busy-timeout` (and the library's), in seconds.
    pub busy_timeout: f64,
    pub env: Vec<(&'static str, String)>,
    /// Strings the error message must contain (the file, version or path at fault).
    pub culprits: Vec<String>,
    /// The database file whose content must not change.
    pub watch_db: PathBuf,
    /// The backups directory whose listing must not change.
    pub watch_backups: PathBuf,
    /// Hold `BEGIN IMMEDIATE` on the database while the case runs.
    pub hold_lock: bool,
    /// Run the CLI under `ulimit -f` (512-byte blocks) with SIGXFSZ ignored.
    pub fsize_blocks: Option<u64>,
}

impl Setup {
    pub fn new(ws: &Workspace, lib: Lib, command: &[&str]) -> Self {
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

    pub fn names(mut self, culprit: impl AsRef<Path>) -> Self {
        self.culprits
            .push(culprit.as_ref().to_string_lossy().into_owned());
        self
    }
}

pub type Build = Box<dyn Fn(&Runtime, &Workspace) -> Setup>;

pub struct Case {
    pub name: &'static str,
    /// The CLI's `kind`.
    pub kind: &'static str,
    /// The library's variant (`None` for CLI-only cases).
    pub variant: Option<fn(&Error) -> bool>,
    pub build: Build,
}

pub fn case(
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

pub const PEOPLE_PROBE: &str = "SELECT count(*) FROM sqlite_master WHERE name = 'people';\n";

pub fn people(ws: &Workspace) {
    ws.migration(
        "001_people",
        "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n\
         INSERT INTO people (name) VALUES ('ada'), ('grace');\n",
        "DROP TABLE people;\n",
        PEOPLE_PROBE,
    );
}

pub fn email(ws: &Workspace) {
    ws.migration(
        "005_email",
        "ALTER TABLE people ADD COLUMN email TEXT;\n",
        "ALTER TABLE people DROP COLUMN email;\n",
        "SELECT count(*) FROM pragma_table_info('people') WHERE name = 'email';\n",
    );
}

/// Migrations 001 and 005, and a database with content of its own, migrated to 5 in one run
/// (so the backups directory holds one backup, of version 0).
pub fn base(rt: &Runtime) -> Workspace {
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

pub const NOTES2_PROBE: &str = "SELECT count(*) FROM sqlite_master WHERE name = 'notes2';\n";

/// A pending migration 010_notes2 with the given scripts.
pub fn pending(ws: &Workspace, forward: &str, rollback: &str, probe: &str) {
    ws.migration("010_notes2", forward, rollback, probe);
}

/// A valid pending migration 010_notes2.
pub fn valid_pending(ws: &Workspace) {
    pending(
        ws,
        "CREATE TABLE notes2 (x);\nINSERT INTO notes2 VALUES (1);\n",
        "DROP TABLE notes2;\n",
        NOTES2_PROBE,
    );
}

/// A pending migration 010_notes2 whose probe is `probe`.
/// A pending migration whose probe answers wrongly at run time: `says` is in the message.
pub fn probe_case(name: &'static str, probe: &'static str, says: &'static str) -> Case {
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

pub fn with_probe(ws: &Workspace, probe: &str) -> PathBuf {
    pending(
        ws,
        "CREATE TABLE notes2 (x);\n",
        "DROP TABLE notes2;\n",
        probe,
    );
    ws.migrations_dir().join("010_notes2.probe.sql")
}

pub fn mig(ws: &Workspace, name: &str) -> PathBuf {
    ws.migrations_dir().join(name)
}
