//! The command line's settings and manners: one configuration shared with the program (flag,
//! else `BACKSTOP_*` variable, else the program's settings, else backstop's defaults), and what
//! it says when something is wrong (`status --check`, `--version`, a URL given as a path,
//! `add` outside the program's migrations, paths in JSON).

use std::path::Path;
use std::process::{Command, ExitCode, Output};

use crate::common::*;
use crate::output::stderr;
use backstop::Migrator;
use backstop::cli::Cli;

const VARIABLES: [&str; 5] = [
    "BACKSTOP_BACKUP_DIR",
    "BACKSTOP_KEEP_BACKUPS",
    "BACKSTOP_BUSY_TIMEOUT",
    "BACKSTOP_ALLOW_NEWER",
    "BACKSTOP_BACKUP_COPY",
];

/// Runs the CLI (`examples/cli.rs`, whose program keeps 3 backups) in the workspace on its
/// database, with these variables and no others of ours.
fn run(ws: &Workspace, vars: &[(&str, &Path)], args: &[&str]) -> Output {
    let mut command = Command::new(cli());
    command.current_dir(ws.path()).env_remove("DATABASE_URL");
    for var in VARIABLES {
        command.env_remove(var);
    }
    command
        .envs(vars.iter().copied())
        .arg("--migrations")
        .arg(ws.migrations_dir())
        .arg("--database")
        .arg(ws.db());
    command.args(args).output().expect("run the CLI")
}

/// A database at version 1 that holds a row, so that every backup is written.
fn migrated(ws: &Workspace) {
    ws.people_migration();
    let out = run(ws, &[], &["migrate"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// Takes `n` backups with the `backup` command (each applies retention) and counts them.
fn backups_kept(ws: &Workspace, vars: &[(&str, &Path)], flags: &[&str], n: usize) -> usize {
    for _ in 0..n {
        let args: Vec<&str> = flags.iter().copied().chain(["backup"]).collect();
        let out = run(ws, vars, &args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    let kept = ws.backup_files().len();
    for file in ws.backup_files() {
        std::fs::remove_file(ws.backups_dir().join(file)).unwrap();
    }
    kept
}

#[test]
fn flags_win_over_variables_which_win_over_the_program() {
    let ws = Workspace::new();
    migrated(&ws);
    let four = Path::new("4");
    // The program keeps 3 (backstop's default is 10).
    assert_eq!(backups_kept(&ws, &[], &[], 4), 3);
    // The variable wins over the program.
    let vars = [("BACKSTOP_KEEP_BACKUPS", four)];
    assert_eq!(backups_kept(&ws, &vars, &[], 5), 4);
    // The flag wins over the variable.
    assert_eq!(backups_kept(&ws, &vars, &["--keep-backups", "2"], 3), 2);

    // The backup directory: the variable, and the flag over it.
    let by_var = ws.path().join("by-var");
    let by_flag = ws.path().join("by-flag");
    let out = run(&ws, &[("BACKSTOP_BACKUP_DIR", &by_var)], &["backup"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(backups_in(&by_var).len(), 1);
    let flag = by_flag.to_string_lossy().into_owned();
    let out = run(
        &ws,
        &[("BACKSTOP_BACKUP_DIR", &by_var)],
        &["--backup-dir", &flag, "backup"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(backups_in(&by_flag).len(), 1);
    assert_eq!(backups_in(&by_var).len(), 1);
}

#[test]
fn newer_databases_are_accepted_by_variable_and_refused_by_flag() {
    let ws = Workspace::new();
    migrated(&ws);
    ws.email_migration();
    let out = run(&ws, &[], &["migrate"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // This build knows only 001 now: the database is a newer build's.
    for file in std::fs::read_dir(ws.migrations_dir()).unwrap() {
        let path = file.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("002")
        {
            std::fs::remove_file(path).unwrap();
        }
    }
    let yes = Path::new("true");
    let out = run(&ws, &[], &["status", "--check"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let out = run(
        &ws,
        &[("BACKSTOP_ALLOW_NEWER", yes)],
        &["status", "--check"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = run(
        &ws,
        &[("BACKSTOP_ALLOW_NEWER", yes)],
        &["--allow-newer=false", "status", "--check"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let out = run(&ws, &[], &["--allow-newer", "status", "--check"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn a_bad_variable_is_named_and_nothing_is_touched() {
    let ws = Workspace::new();
    migrated(&ws);
    let before = list_dir(ws.path());
    for (var, value) in [
        ("BACKSTOP_KEEP_BACKUPS", "many"),
        ("BACKSTOP_BUSY_TIMEOUT", "1e20"),
        ("BACKSTOP_ALLOW_NEWER", "maybe"),
        ("BACKSTOP_BACKUP_COPY", "fast"),
    ] {
        let out = run(&ws, &[(var, Path::new(value))], &["backup"]);
        assert_eq!(out.status.code(), Some(2), "{var}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("{var}=\"{value}\"")),
            "{var}: {}",
            stderr(&out)
        );
    }
    assert_eq!(list_dir(ws.path()), before);
}

/// How a WAL database's backups copy its file: read and written when the flag or the variable
/// says so, else the program's way (here the default, the fastest: a copy inside the kernel
/// on this file system, or a clone); the debug log of the copy says which way was taken.
#[test]
fn how_backups_copy_comes_from_the_flag_the_variable_or_the_program() {
    let ws = Workspace::new();
    migrated(&ws);
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(exec(&ws.db(), "PRAGMA journal_mode = WAL;"));
    let way = |vars: &[(&str, &Path)], flags: &[&str]| {
        let mut args = flags.to_vec();
        args.push("backup");
        let mut command = Command::new(cli());
        command.current_dir(ws.path()).env_remove("DATABASE_URL");
        for var in VARIABLES {
            command.env_remove(var);
        }
        let out = command
            .envs(vars.iter().copied())
            .env("RUST_LOG", "backstop::backup::raw=debug")
            .arg("--database")
            .arg(ws.db())
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let log = stderr(&out);
        let how = log
            .split_whitespace()
            .find_map(|field| field.strip_prefix("how="))
            .unwrap_or_else(|| panic!("no copy in the log: {log}"));
        how.to_owned()
    };
    let read_write = Path::new("read-write");
    assert_eq!(way(&[], &["--backup-copy", "read-write"]), "ReadWrite");
    assert_eq!(
        way(&[("BACKSTOP_BACKUP_COPY", read_write)], &[]),
        "ReadWrite"
    );
    let kernel = Path::new("kernel-copy");
    assert_eq!(
        way(
            &[("BACKSTOP_BACKUP_COPY", kernel)],
            &["--backup-copy", "read-write"]
        ),
        "ReadWrite",
        "the flag wins"
    );
    assert_ne!(
        way(&[], &[]),
        "ReadWrite",
        "the program's default is the fastest"
    );
}

/// A service's configured migrator, handed to the command line: its backup directory is where
/// the command line's backups go and where `rollback` finds them (before: `backups/` beside
/// the database, where a service configured elsewhere has none).
#[test]
fn a_command_line_made_from_the_service_migrator_shares_its_backups() {
    let ws = Workspace::new();
    migrated(&ws);
    ws.email_migration();
    let service_backups = ws.path().join("service-backups");
    let service = || {
        Migrator::new(backstop::Source::from_dir(ws.migrations_dir()).unwrap())
            .backup_dir(&service_backups)
    };
    let db = ws.db().to_string_lossy().into_owned();
    let run = |cli: Cli, args: &[&str]| {
        let argv: Vec<&str> = ["migrate", "--database", &db]
            .into_iter()
            .chain(args.iter().copied())
            .collect();
        cli.run_from(argv)
    };
    assert_eq!(
        run(Cli::new("migrate", service()), &["migrate"]),
        ExitCode::SUCCESS
    );
    assert_eq!(backups_in(&service_backups).len(), 1);
    assert!(!ws.backups_dir().exists());
    // Configured with the service's settings function: the same.
    let settings = |m: Migrator| m.backup_dir(&service_backups);
    let cli = Cli::from_dir("migrate", ws.migrations_dir()).configure(settings);
    assert_eq!(
        run(cli, &["rollback", "--to-version", "1"]),
        ExitCode::SUCCESS
    );
    assert_eq!(query_versions(&ws.db()), [1]);
    assert!(!ws.backups_dir().exists());
}

#[test]
fn status_check_says_what_is_not_clean() {
    let ws = Workspace::new();
    migrated(&ws);
    ws.email_migration();
    let out = run(&ws, &[], &["status", "--check"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not clean: 1 pending"),
        "{}",
        stderr(&out)
    );
    // Modified, too; and under --json, an error line with its kind.
    ws.write(
        "001_people.sql",
        "CREATE TABLE people (id INTEGER PRIMARY KEY);\n",
    );
    let out = run(&ws, &[], &["--json", "status", "--check"]);
    assert_eq!(out.status.code(), Some(1));
    let line: serde_json::Value = serde_json::from_str(stderr(&out).trim()).unwrap();
    assert_eq!(line["kind"], "not_clean");
    assert!(
        line["error"]
            .as_str()
            .unwrap()
            .contains("1 pending, 1 modified"),
        "{line}"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let summary = &report["summary"];
    assert_eq!(
        (&summary["clean"], &summary["pending"], &summary["modified"]),
        (&false.into(), &1.into(), &1.into())
    );
    // Clean: nothing said, exit 0.
    ws.people_migration();
    let out = run(&ws, &[], &["migrate"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = run(&ws, &[], &["--json", "status", "--check"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
    assert_eq!(success_json(&out)["summary"]["clean"], true);
}

#[test]
fn version_names_the_program_and_the_backstop_it_embeds() {
    let out = Command::new(cli()).arg("--version").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    let backstop = format!("(backstop {})", env!("CARGO_PKG_VERSION"));
    assert!(
        text.starts_with("migrate ") && text.contains(&backstop),
        "{text}"
    );
}

#[test]
fn a_url_given_as_a_path_gets_a_hint() {
    let ws = Workspace::new();
    ws.people_migration();
    for command in ["status", "migrate"] {
        let out = Command::new(cli())
            .current_dir(ws.path())
            .env_remove("DATABASE_URL")
            .args(["--migrations", &ws.migrations_dir().to_string_lossy()])
            .args(["--database", "sqlite:app.db", command])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("DATABASE_URL=sqlite:app.db"),
            "{}",
            stderr(&out)
        );
        assert_eq!(list_dir(ws.path()), ["migrations"], "nothing created");
    }
}

/// `add` writes into the program's migrations, or where `--migrations` says; never into a
/// `migrations/` that happens to be in the working directory (before: it started one there).
#[test]
fn add_writes_only_where_the_program_migrations_are() {
    let ws = Workspace::new();
    ws.people_migration();
    let run = |cli: Cli, args: &[&str]| {
        let argv: Vec<&str> = ["migrate"]
            .into_iter()
            .chain(args.iter().copied())
            .collect();
        cli.run_from(argv)
    };
    // Embedded from a directory this machine does not have, or from files with no
    // directory: refused, nothing written anywhere.
    let files = [
        ("001_a.sql", "SELECT 1;"),
        ("001_a.rollback.sql", "SELECT 1;"),
        ("001_a.probe.sql", "SELECT 1;"),
    ];
    let files = files.map(|(p, b)| (Path::new(p), b.as_bytes()));
    let elsewhere = backstop::__private::embedded(
        "/nowhere/on/this/machine/migrations",
        "/nowhere",
        files.iter().map(|(p, b)| (*p, *b)),
    );
    let anonymous = backstop::Source::from_files(files.iter().map(|(p, b)| (*p, *b)));
    for source in [elsewhere, anonymous] {
        let cli = Cli::embedded("migrate", source);
        assert_eq!(run(cli, &["add", "tags"]), ExitCode::from(1));
    }
    assert_eq!(std::fs::read_dir(ws.migrations_dir()).unwrap().count(), 3);
    // The program's own directory.
    let program = ws.migrator();
    let cli = Cli::new("migrate", program.clone());
    assert_eq!(run(cli, &["add", "tags"]), ExitCode::SUCCESS);
    assert!(ws.migrations_dir().join("002_tags.sql").exists());
    // Told where.
    let other = ws.path().join("other");
    let cli = Cli::new("migrate", program);
    let dir = other.to_string_lossy().into_owned();
    assert_eq!(
        run(cli, &["--migrations", &dir, "add", "tags"]),
        ExitCode::SUCCESS
    );
    assert!(other.join("001_tags.sql").exists());
}

/// Every file a report points to is given by its absolute path, also one the user gave
/// relative (before: `restored_from` as typed, `safety_backup` absolute).
#[test]
fn report_paths_are_absolute() {
    let ws = Workspace::new();
    migrated(&ws);
    let out = run(&ws, &[], &["--json", "backup"]);
    let backup = success_json(&out)["backup"].as_str().unwrap().to_owned();
    let relative = Path::new(&backup).strip_prefix(ws.path()).unwrap();
    let out = run(
        &ws,
        &[],
        &["--json", "restore", &relative.to_string_lossy()],
    );
    let report = success_json(&out);
    for field in ["restored_from", "safety_backup"] {
        let path = report[field].as_str().unwrap();
        assert!(Path::new(path).is_absolute(), "{field}: {path}");
    }
    assert_eq!(report["restored_from"], backup.as_str());
}

async fn mark_everyone(conn: &mut sqlx::SqliteConnection) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE people SET name = upper(name)")
        .execute(conn)
        .await
        .map(drop)
}

/// A project's own command line runs its code migrations: the same source, through
/// `Cli::new` with the migrator. (Run here, not beside the library's span test: the command
/// line installs a global log subscriber.)
#[test]
fn the_command_line_runs_code_migrations() {
    let ws = Workspace::new();
    ws.people_migration();
    let code = backstop::CodeMigration::new(2, "shout", "r1", backstop::code!(mark_everyone))
        .probe("SELECT NOT EXISTS (SELECT 1 FROM people WHERE name <> upper(name))")
        .data_probe()
        .rollback_sql("UPDATE people SET name = lower(name)");
    let source = backstop::Source::from_dir(ws.migrations_dir())
        .unwrap()
        .with_code(code)
        .unwrap();
    let db = ws.db().to_string_lossy().into_owned();
    let cli = Cli::new("migrate", Migrator::new(source));
    assert_eq!(
        cli.run_from(["migrate", "--database", &db, "migrate"]),
        ExitCode::SUCCESS
    );
    let versions: Vec<i64> = query_versions(&ws.db());
    assert_eq!(versions, [1, 2]);
}
