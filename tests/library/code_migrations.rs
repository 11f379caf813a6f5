//! Code migrations: Rust functions in the run's one transaction, between SQL files, with a
//! probe, a rollback (SQL or Rust), a revision for a checksum; and data probes, which decide
//! adoption and confirm a run but are never drift.

use backstop::{CodeMigration, Error, Migrator, RollbackStrategy, Source};
use sha2::{Digest, Sha256};
use sqlx::{Connection, SqliteConnection};

use crate::common::*;

const ROWS: i64 = 100_000;

/// 001 creates `users` (mixed-case emails, tags as a JSON array); 002 adds `email_hash`;
/// 004 indexes it. 003 is code (below).
fn files(ws: &Workspace) {
    ws.migration(
        "001_users",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL, tags TEXT NOT NULL);\n",
        "DROP TABLE users;\n",
        "SELECT count(*) FROM sqlite_master WHERE name = 'users';\n",
    );
    ws.migration(
        "002_email_hash",
        "ALTER TABLE users ADD COLUMN email_hash TEXT;\n\
         CREATE TABLE user_tags (user_id INTEGER NOT NULL REFERENCES users(id), tag TEXT NOT NULL);\n",
        "DROP TABLE user_tags;\nALTER TABLE users DROP COLUMN email_hash;\n",
        "SELECT count(*) FROM pragma_table_info('users') WHERE name = 'email_hash';\n",
    );
    ws.migration(
        "004_hash_index",
        "CREATE INDEX users_by_hash ON users (email_hash);\n",
        "DROP INDEX users_by_hash;\n",
        "SELECT count(*) FROM sqlite_master WHERE name = 'users_by_hash';\n",
    );
}

fn hash(email: &str) -> String {
    hex::encode(Sha256::digest(email.trim().to_lowercase().as_bytes()))
}

/// What SQL cannot express: lower-cased, trimmed emails hashed with SHA-256, and each user's
/// JSON tags split into rows with serde_json.
async fn backfill(conn: &mut SqliteConnection) -> anyhow::Result<()> {
    let users: Vec<(i64, String, String)> = sqlx::query_as("SELECT id, email, tags FROM users")
        .fetch_all(&mut *conn)
        .await?;
    for (id, email, tags) in users {
        sqlx::query("UPDATE users SET email = ?1, email_hash = ?2 WHERE id = ?3")
            .bind(email.trim().to_lowercase())
            .bind(hash(&email))
            .bind(id)
            .execute(&mut *conn)
            .await?;
        for tag in serde_json::from_str::<Vec<String>>(&tags)? {
            sqlx::query("INSERT INTO user_tags (user_id, tag) VALUES (?1, ?2)")
                .bind(id)
                .bind(tag)
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

async fn unfill(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    sqlx::raw_sql("DELETE FROM user_tags; UPDATE users SET email_hash = NULL;")
        .execute(conn)
        .await
        .map(drop)
}

const BACKFILLED: &str = "SELECT NOT EXISTS (SELECT 1 FROM users WHERE email_hash IS NULL)";
const UNDO: &str = "DELETE FROM user_tags;\nUPDATE users SET email_hash = NULL;\n";

fn backfill_migration() -> CodeMigration {
    CodeMigration::new(3, "backfill_hashes", "r1", backstop::code!(backfill))
        .probe(BACKFILLED)
        .rollback_sql(UNDO)
}

fn with(ws: &Workspace, code: CodeMigration) -> Migrator {
    files(ws);
    let source = Source::from_dir(ws.migrations_dir()).unwrap();
    Migrator::new(source.with_code(code).unwrap())
}

/// A database at version 2 holding `n` users (so that 003 has rows to backfill).
async fn users_at_version_2(ws: &Workspace, n: i64) {
    files(ws);
    let pool = ws.pool().await;
    let source = Source::from_dir(ws.migrations_dir()).unwrap();
    Migrator::new(source).migrate_to(&pool, 2).await.unwrap();
    let mut conn = connect(&ws.db()).await;
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
         INSERT INTO users (id, email, tags)
         SELECT i, ' User' || i || '@Example.COM', json_array('t' || (i % 7), 'all') FROM n",
    )
    .bind(n)
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    pool.close().await;
}

#[tokio::test]
async fn a_rust_backfill_runs_between_sql_files_in_one_transaction() {
    let ws = Workspace::new();
    users_at_version_2(&ws, ROWS).await;
    // 004 is pending with 003: both run in one run, after one backup.
    let migrator = with(&ws, backfill_migration());
    let pool = ws.pool().await;
    let report = migrator.migrate(&pool).await.unwrap();
    assert_eq!((report.from_version, report.to_version), (2, 4));
    assert!(report.backup.is_some());
    let db = ws.db();
    let mismatched = "SELECT count(*) FROM users WHERE email_hash IS NULL OR email <> lower(email)";
    assert_eq!(query_i64(&db, mismatched).await, 0);
    let one = format!(
        "SELECT count(*) FROM users WHERE id = 42 AND email_hash = '{}'",
        hash(" User42@Example.COM")
    );
    assert_eq!(query_i64(&db, &one).await, 1);
    assert_eq!(
        query_i64(&db, "SELECT count(*) FROM user_tags").await,
        2 * ROWS
    );
    // The history records it with its revision's checksum; status says it is code.
    let status = migrator.status(&pool).await.unwrap();
    assert!(status.is_clean(), "{status}");
    let code = status.migrations.iter().find(|m| m.version == 3).unwrap();
    assert_eq!(code.kind, Some(backstop::MigrationKind::Code));
    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(json["migrations"][2]["kind"], "code");
    assert_eq!(json["migrations"][0]["kind"], "sql");

    // A new revision is a modification.
    let changed = CodeMigration::new(3, "backfill_hashes", "r2", backstop::code!(backfill))
        .probe(BACKFILLED)
        .rollback_sql(UNDO);
    let source = Source::from_dir(ws.migrations_dir()).unwrap();
    let err = Migrator::new(source.with_code(changed).unwrap())
        .migrate(&pool)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "checksum_mismatch", "{err}");
}

async fn fails_half_way(conn: &mut SqliteConnection) -> anyhow::Result<()> {
    sqlx::query("UPDATE users SET email_hash = 'x' WHERE id <= 500")
        .execute(&mut *conn)
        .await?;
    anyhow::bail!("the 501st user has no valid email")
}

async fn panics_half_way(conn: &mut SqliteConnection) -> anyhow::Result<()> {
    sqlx::query("UPDATE users SET email_hash = 'x' WHERE id <= 500")
        .execute(&mut *conn)
        .await?;
    panic!("unexpected email format");
}

async fn does_nothing(_conn: &mut SqliteConnection) -> anyhow::Result<()> {
    Ok(())
}

async fn leaves_an_orphan(conn: &mut SqliteConnection) -> anyhow::Result<()> {
    sqlx::query("UPDATE users SET email_hash = 'x'")
        .execute(&mut *conn)
        .await?;
    sqlx::query("INSERT INTO user_tags (user_id, tag) VALUES (999999, 'orphan')")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn begins_its_own_transaction(conn: &mut SqliteConnection) -> anyhow::Result<()> {
    // Swallowing the refusal does not hide it.
    let _ = sqlx::raw_sql("COMMIT").execute(&mut *conn).await;
    Ok(())
}

/// An error, a panic, a probe that does not confirm, a refused statement or a foreign-key
/// violation it leaves: the run fails
/// naming the version, with SQL before (002 is pending too) and after (004) it, and the
/// database is exactly as before, its backup removed.
#[tokio::test]
async fn an_error_or_a_panic_inside_leaves_the_database_as_it_was() {
    let cases = [
        (backstop::code!(fails_half_way), "code_failed", "501st user"),
        (
            backstop::code!(panics_half_way),
            "code_failed",
            "panicked: unexpected email format",
        ),
        (
            backstop::code!(does_nothing),
            "probe_not_confirmed",
            "probe> still says 0",
        ),
        (
            backstop::code!(begins_its_own_transaction),
            "code_failed",
            "rules refuse",
        ),
        // Foreign keys are checked before the commit, as for scripts.
        (
            backstop::code!(leaves_an_orphan),
            "foreign_key_violation",
            "user_tags",
        ),
    ];
    for (run, kind, says) in cases {
        let ws = Workspace::new();
        users_at_version_2(&ws, 2_000).await;
        // Back to version 1 (by script), so that 002 runs in the same run too.
        let source = Source::from_dir(ws.migrations_dir()).unwrap();
        let pool = ws.pool().await;
        Migrator::new(source)
            .rollback(&pool, 1, RollbackStrategy::Scripts)
            .await
            .unwrap();
        let before = dump(&ws.db()).await;
        let backups = ws.backup_files();
        let code = CodeMigration::new(3, "backfill_hashes", "r1", run)
            .probe(BACKFILLED)
            .rollback_sql(UNDO);
        let err = with(&ws, code).migrate(&pool).await.unwrap_err();
        assert_eq!(err.kind(), kind, "{err}");
        assert!(err.to_string().contains(says), "{err}");
        if kind == "code_failed" {
            assert!(
                err.to_string()
                    .contains("<code migration 3 (backfill_hashes)>"),
                "{err}"
            );
        }
        assert_eq!(dump(&ws.db()).await, before, "{kind}: the database changed");
        assert_eq!(ws.backup_files(), backups, "{kind}: the backup was kept");
    }
}

#[tokio::test]
async fn a_dry_run_executes_it_and_changes_nothing() {
    let ws = Workspace::new();
    users_at_version_2(&ws, 1_000).await;
    let before = dump(&ws.db()).await;
    let pool = ws.pool().await;
    let report = with(&ws, backfill_migration())
        .dry_run()
        .migrate(&pool)
        .await
        .unwrap();
    assert_eq!(report.migrations.len(), 2);
    assert_eq!(dump(&ws.db()).await, before);
}

/// verify proves a code migration like a file: forward, probe, rollback (SQL or Rust), exact.
#[tokio::test]
async fn verify_proves_a_code_migration_with_either_rollback() {
    for rollback in ["sql", "code"] {
        let ws = Workspace::new();
        files(&ws);
        let code = CodeMigration::new(3, "backfill_hashes", "r1", backstop::code!(backfill))
            .probe(BACKFILLED)
            .data_probe();
        let code = match rollback {
            "sql" => code.rollback_sql(UNDO),
            _ => code.rollback_code(backstop::code!(unfill)),
        };
        let source = Source::from_dir(ws.migrations_dir())
            .unwrap()
            .with_code(code)
            .unwrap();
        let report = backstop::verify(&source, None).await.unwrap();
        assert!(report.ok, "{rollback}: {report}");
    }
    // Without data_probe the probe is loose on an empty database, and the message says what
    // to do.
    let ws = Workspace::new();
    files(&ws);
    let source = Source::from_dir(ws.migrations_dir())
        .unwrap()
        .with_code(backfill_migration())
        .unwrap();
    let report = backstop::verify(&source, None).await.unwrap();
    assert!(!report.ok);
    let text = report.to_string();
    assert!(
        text.contains("-- probe: when-run") && text.contains("allow loose_probe"),
        "{text}"
    );
}

/// An older build (without 003) rolls it back with the SQL rollback the history stored; a
/// rollback in Rust cannot be run by it, and it is told to restore a backup.
#[tokio::test]
async fn an_older_build_rolls_back_by_the_stored_sql_or_is_told_to_restore() {
    for rollback in ["sql", "code"] {
        let ws = Workspace::new();
        users_at_version_2(&ws, 100).await;
        let code = CodeMigration::new(3, "backfill_hashes", "r1", backstop::code!(backfill))
            .probe(BACKFILLED);
        let code = match rollback {
            "sql" => code.rollback_sql(UNDO),
            _ => code.rollback_code(backstop::code!(unfill)),
        };
        let newer = with(&ws, code);
        let pool = ws.pool().await;
        newer.migrate(&pool).await.unwrap();
        // The older build knows 001, 002 and 004 only... 004 is its latest; 003 unknown
        // below it would be refused, so the older build here knows 001 and 002.
        let older_dir = ws.path().join("older");
        std::fs::create_dir_all(&older_dir).unwrap();
        for entry in std::fs::read_dir(ws.migrations_dir()).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if !name.starts_with("004") {
                std::fs::copy(&path, older_dir.join(&name)).unwrap();
            }
        }
        let older = Migrator::new(Source::from_dir(&older_dir).unwrap());
        let result = older.rollback(&pool, 2, RollbackStrategy::Scripts).await;
        match rollback {
            "sql" => {
                let report = result.unwrap();
                assert_eq!(report.to_version, 2);
                let filled = "SELECT count(*) FROM users WHERE email_hash IS NOT NULL";
                assert_eq!(query_i64(&ws.db(), filled).await, 0);
            }
            _ => {
                let err = result.unwrap_err();
                assert!(matches!(err, Error::NoRollbackScript { .. }), "{err}");
                assert!(err.to_string().contains("restore a backup"), "{err}");
                // The build that has the code rolls it back.
                newer
                    .rollback(&pool, 2, RollbackStrategy::Scripts)
                    .await
                    .unwrap();
                let filled = "SELECT count(*) FROM user_tags";
                assert_eq!(query_i64(&ws.db(), filled).await, 0);
            }
        }
    }
}

#[test]
fn a_version_defined_twice_is_refused_naming_both() {
    let ws = Workspace::new();
    files(&ws);
    let twice = CodeMigration::new(2, "also_two", "r1", backstop::code!(backfill))
        .probe(BACKFILLED)
        .rollback_sql(UNDO);
    let err = Source::from_dir(ws.migrations_dir())
        .unwrap()
        .with_code(twice)
        .unwrap_err();
    let text = err.to_string();
    assert_eq!(err.kind(), "duplicate_version");
    assert!(
        text.contains("002_email_hash.sql") && text.contains("<code migration 2 (also_two)>"),
        "{text}"
    );
    // Without a probe: named.
    let no_probe = CodeMigration::new(5, "x", "r1", backstop::code!(backfill)).rollback_sql(UNDO);
    let err = Source::from_dir(ws.migrations_dir())
        .unwrap()
        .with_code(no_probe)
        .unwrap_err();
    assert!(
        err.to_string().contains("<code migration 5 (x) probe>"),
        "{err}"
    );
}

/// A data probe decides adoption and confirms the run, but the application's later writes
/// are not drift; a pending migration whose probe says 1 is not drift either.
#[tokio::test]
async fn data_probes_are_never_drift() {
    let ws = Workspace::new();
    users_at_version_2(&ws, 10).await;
    ws.migration(
        "003_lower_emails",
        "UPDATE users SET email = lower(trim(email));\n",
        "SELECT 'lower-cased emails stay lower-cased';\n",
        "-- probe: when-run\nSELECT NOT EXISTS (SELECT 1 FROM users WHERE email <> lower(trim(email)));\n",
    );
    let migrator = Migrator::new(Source::from_dir(ws.migrations_dir()).unwrap());
    let pool = ws.pool().await;
    migrator.migrate_to(&pool, 3).await.unwrap();
    exec(
        &ws.db(),
        "INSERT INTO users (email, tags) VALUES ('Ada@X', '[]')",
    )
    .await;
    let status = migrator.status(&pool).await.unwrap();
    let three = status.migrations.iter().find(|m| m.version == 3).unwrap();
    assert_eq!((three.probe, three.drift), (Some(0), false), "{status}");
    // 004 is pending; its probe would say 1 if its index existed: pending is never drift.
    exec(&ws.db(), "CREATE INDEX users_by_hash ON users (email_hash)").await;
    let status = migrator.status(&pool).await.unwrap();
    let four = status.migrations.iter().find(|m| m.version == 4).unwrap();
    assert_eq!((four.probe, four.drift), (Some(1), false), "{status}");
    assert_eq!((status.summary.pending, status.summary.drifted), (1, 0));
}

#[tokio::test]
async fn export_to_sqlx_refuses_a_code_migration() {
    let ws = Workspace::new();
    users_at_version_2(&ws, 10).await;
    let migrator = with(&ws, backfill_migration());
    let pool = ws.pool().await;
    migrator.migrate(&pool).await.unwrap();
    let err = migrator.export_sqlx(&pool).await.unwrap_err();
    match &err {
        Error::SqlxExportRefused { versions, .. } => assert_eq!(versions[0].0, 3, "{err}"),
        other => panic!("{other}"),
    }
}
