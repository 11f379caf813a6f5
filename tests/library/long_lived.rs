//! A long-lived project's history (`tests/fixtures/long_lived`): later migrations remove what
//! earlier ones created. Their probes then say 0 on a healthy database: `status` shows them as
//! superseded, and `status --check` passes; a table dropped by hand is still drift.

use std::path::PathBuf;
use std::process::Command;

use crate::common::*;
use backstop::{MigrationState, Migrator, RollbackStrategy, Source, StatusReport};
use serde_json::Value;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/long_lived")
}

fn migrator() -> Migrator {
    Migrator::new(Source::from_dir(fixture()).unwrap())
}

/// `(version, superseded_by)` of every migration that has one.
fn superseded(status: &StatusReport) -> Vec<(i64, i64)> {
    status
        .migrations
        .iter()
        .filter_map(|m| m.superseded_by.map(|by| (m.version, by)))
        .collect()
}

const EXPECTED: [(i64, i64); 6] = [(3, 11), (6, 9), (7, 12), (8, 20), (14, 15), (18, 19)];

fn status_check(db: &std::path::Path) -> (Option<i32>, Value) {
    let out = Command::new(cli())
        .env_remove("DATABASE_URL")
        .arg("--migrations")
        .arg(fixture())
        .arg("--database")
        .arg(db)
        .args(["--json", "status", "--check"])
        .output()
        .unwrap();
    (
        out.status.code(),
        serde_json::from_slice(&out.stdout).unwrap(),
    )
}

#[tokio::test]
async fn a_healthy_long_lived_database_passes_the_check() {
    let ws = Workspace::new();
    let pool = ws.pool().await;
    let report = migrator().migrate(&pool).await.unwrap();
    assert_eq!(report.to_version, 21);
    let status = migrator().status(&pool).await.unwrap();
    assert_eq!(superseded(&status), EXPECTED, "{status}");
    assert!(status.is_clean(), "{status}");
    assert!(
        status.to_string().contains("0 superseded by 11"),
        "{status}"
    );
    pool.close().await;

    let (code, json) = status_check(&ws.db());
    assert_eq!(code, Some(0), "{json}");
    let third = &json["migrations"][2];
    assert_eq!(
        (third["version"].as_i64(), third["superseded_by"].as_i64()),
        (Some(3), Some(11))
    );
    assert_eq!(third["drift"], false);
}

#[tokio::test]
async fn migrated_in_several_runs_the_history_is_the_same() {
    let ws = Workspace::new();
    let pool = ws.pool().await;
    for target in [4, 10, 13, 19, 21] {
        migrator().migrate_to(&pool, target).await.unwrap();
    }
    let status = migrator().status(&pool).await.unwrap();
    assert_eq!(superseded(&status), EXPECTED, "{status}");
    assert!(status.is_clean(), "{status}");
}

#[tokio::test]
async fn what_a_rollback_brings_back_is_no_longer_superseded() {
    let ws = Workspace::new();
    let pool = ws.pool().await;
    migrator().migrate(&pool).await.unwrap();
    migrator()
        .rollback(&pool, 10, RollbackStrategy::Scripts)
        .await
        .unwrap();
    let status = migrator().status(&pool).await.unwrap();
    // 003's index and 007's trigger are back (their removers 011 and 012 are undone); 006 was
    // superseded by 009, which stays.
    assert_eq!(superseded(&status), [(6, 9)], "{status}");
    let applied = status
        .migrations
        .iter()
        .filter(|m| m.state != MigrationState::Pending);
    assert!(applied.clone().all(|m| !m.drift), "{status}");
    migrator().migrate(&pool).await.unwrap();
    let status = migrator().status(&pool).await.unwrap();
    assert_eq!(superseded(&status), EXPECTED, "{status}");
}

#[tokio::test]
async fn something_dropped_by_hand_is_still_drift() {
    let ws = Workspace::new();
    let pool = ws.pool().await;
    migrator().migrate(&pool).await.unwrap();
    pool.close().await;
    exec(&ws.db(), "DROP INDEX labels_by_name; DROP VIEW live_notes;").await;
    let (code, json) = status_check(&ws.db());
    assert_eq!(code, Some(1), "{json}");
    let drifted: Vec<i64> = json["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["drift"] == true)
        .map(|m| m["version"].as_i64().unwrap())
        .collect();
    assert_eq!(drifted, [19, 21]);
}

#[tokio::test]
async fn the_set_passes_verify_with_its_stated_exceptions() {
    let report = backstop::verify(&Source::from_dir(fixture()).unwrap(), None)
        .await
        .unwrap();
    assert!(report.ok, "{report}");
    let allowed: Vec<i64> = report
        .migrations
        .iter()
        .filter(|m| !m.problems.is_empty())
        .map(|m| m.version)
        .collect();
    assert_eq!(allowed, [5, 9, 10, 14, 15], "{report}");
}
