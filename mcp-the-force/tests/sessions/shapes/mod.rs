//! Fixture builders for the four starting shapes of the "MCP The Force"
//! session database that migration 001/002 must bring to the unified end
//! state, plus a deterministic `dump` helper for equality comparisons.
//!
//! Every builder is deterministic from its seed (`StdRng::seed_from_u64`)
//! and returns a [`Fixture`] describing the rows it wrote, so that tests can
//! compute the expected end state in Rust (see `expect.rs`) instead of
//! trusting the SQL under test.
#![allow(dead_code)]

pub mod expect;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use sqlx::{AssertSqlSafe, Row, SqliteConnection};

#[path = "../../../examples/legacy/legacy_schema.rs"]
mod legacy;
pub use legacy::*;

/// The unified table as the newer application (and the old Python tool)
/// created it: stricter than the canonical one, with its own indexes, two of
/// which duplicate the automatic UNIQUE indexes.
pub const NEWER_APP_VECTOR_STORES: &str = "CREATE TABLE vector_stores (
            vector_store_id TEXT PRIMARY KEY,
            name TEXT UNIQUE,
            session_id TEXT UNIQUE,
            provider TEXT NOT NULL CHECK(provider IN ('openai', 'inmemory', 'pinecone', 'hnsw')),
            provider_metadata TEXT,
            is_protected INTEGER NOT NULL DEFAULT 0,
            is_active INTEGER NOT NULL DEFAULT 1,
            created_at INTEGER NOT NULL,
            expires_at INTEGER,
            updated_at INTEGER NOT NULL,
            document_count INTEGER DEFAULT 0,
            rollover_from TEXT REFERENCES vector_stores(vector_store_id),
            CHECK (
                (name IS NOT NULL AND session_id IS NULL) OR
                (name IS NULL AND session_id IS NOT NULL)
            )
        )";
pub const NEWER_APP_INDEXES: [&str; 5] = [
    "CREATE INDEX idx_vs_session_id ON vector_stores(session_id)",
    "CREATE INDEX idx_vs_name ON vector_stores(name)",
    "CREATE INDEX idx_vs_expires_at ON vector_stores(expires_at) WHERE expires_at IS NOT NULL",
    "CREATE INDEX idx_vs_active_named ON vector_stores(name, is_active) WHERE name IS NOT NULL",
    "CREATE INDEX idx_vs_rollover ON vector_stores(rollover_from) WHERE rollover_from IS NOT NULL",
];

/// Application tables (including both names of the history meta table) that
/// must be byte-for-byte the same after migrate and after rollback.
pub const APP_TABLES: [&str; 7] = [
    "unified_sessions",
    "session_summaries",
    "stable_inline_lists",
    "sent_files",
    "search_dedup_cache",
    "history_meta",
    "memory_meta",
];
/// The objects of the legacy layout (indexes come with their table).
pub const LEGACY_OBJECTS: [&str; 3] = ["vector_stores", "stores", "active_stores"];
/// The objects of the unified end state (indexes come with their table).
pub const UNIFIED_OBJECTS: [&str; 4] = [
    "vector_stores",
    "active_stores",
    "vector_stores_set_aside",
    "backstop_carry",
];

/// Expiry written by the rollback for a session row without one.
pub const NO_EXPIRY: i64 = 253_402_300_799;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// 1: fresh install, nothing in the file.
    Empty,
    /// 2: the legacy application's file.
    Legacy,
    /// 3: created by the newer application: unified `vector_stores` (some
    /// history stores registered by name) next to the legacy `stores`.
    NewerApp,
    /// 4: a legacy file converted by the old Python tool.
    OldTool,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LegacySession {
    pub rowid: i64,
    pub session_id: Option<String>,
    pub vector_store_id: String,
    pub provider: String,
    pub expires_at: i64,
    pub protected: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryStore {
    pub rowid: i64,
    pub store_id: String,
    pub store_type: String,
    pub doc_count: i64,
    /// The text as stored, in one of the formats the application wrote.
    pub created_at: String,
    pub is_active: i64,
    /// Ground truth behind `created_at`, from the generator.
    pub secs: i64,
    pub micros: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct UnifiedRow {
    pub vector_store_id: String,
    pub name: Option<String>,
    pub session_id: Option<String>,
    pub provider: String,
    pub provider_metadata: Option<String>,
    pub is_protected: Option<i64>,
    pub is_active: Option<i64>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub updated_at: i64,
    pub document_count: Option<i64>,
    pub rollover_from: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Fixture {
    pub shape: Shape,
    /// Legacy session rows (shape 2; shape 4: before the old tool ran).
    pub legacy_sessions: Vec<LegacySession>,
    /// Rows of the legacy `stores` table (shapes 2, 3, 4).
    pub stores: Vec<HistoryStore>,
    /// Rows of the unified `vector_stores` the newer application wrote (shape 3).
    pub unified: Vec<UnifiedRow>,
    /// Rows of the old tool's `schema_version` (shape 4).
    pub schema_version: Vec<(i64, i64)>,
}

impl Fixture {
    fn new(shape: Shape) -> Self {
        Fixture {
            shape,
            legacy_sessions: Vec::new(),
            stores: Vec::new(),
            unified: Vec::new(),
            schema_version: Vec::new(),
        }
    }
}

pub async fn exec(conn: &mut SqliteConnection, sql: &str) -> anyhow::Result<()> {
    sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Shape 1: an empty file.
pub async fn build_empty(_conn: &mut SqliteConnection, _seed: u64) -> anyhow::Result<Fixture> {
    Ok(Fixture::new(Shape::Empty))
}

/// Only the legacy DDL (what a rolled-back fresh install looks like).
pub async fn build_legacy_schema_only(conn: &mut SqliteConnection) -> anyhow::Result<()> {
    create_legacy_schema(conn).await
}

async fn create_legacy_schema(conn: &mut SqliteConnection) -> anyhow::Result<()> {
    exec(conn, LEGACY_VECTOR_STORES).await?;
    for ddl in LEGACY_VECTOR_STORES_INDEXES {
        exec(conn, ddl).await?;
    }
    exec(conn, LEGACY_STORES).await?;
    exec(conn, LEGACY_STORES_INDEX).await?;
    exec(conn, LEGACY_ACTIVE_STORES_VIEW).await?;
    Ok(())
}

/// Shape 2: the legacy application's file: thousands of session rows (shared
/// vector_store_ids, NULL `protected`, one NULL session_id, rowid gaps), a
/// dozen history stores in both created_at formats, both meta tables, the
/// view, and the other application tables.
pub async fn build_legacy(conn: &mut SqliteConnection, seed: u64) -> anyhow::Result<Fixture> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut fx = Fixture::new(Shape::Legacy);
    exec(conn, "BEGIN").await?;
    create_legacy_schema(conn).await?;
    fx.legacy_sessions = gen_legacy_sessions(&mut rng, 3000);
    insert_legacy_sessions(conn, &fx.legacy_sessions).await?;
    fx.stores = gen_history_stores(&mut rng, 7, 5);
    insert_stores(conn, &fx.stores).await?;
    create_meta(conn, &mut rng, true).await?;
    create_app_tables(conn, &mut rng).await?;
    exec(conn, "COMMIT").await?;
    Ok(fx)
}

/// Shape 3: the newer application's file: its own unified `vector_stores`
/// (stricter DDL, its indexes, session rows with provider metadata, inactive
/// rows, rows without expiry, some history stores registered by name with
/// stale counts and one under a name that does not match its creation order,
/// one named store that is no history store), the legacy `stores`, the legacy
/// view, `history_meta`, and the application tables. No `schema_version`.
pub async fn build_newer_app(conn: &mut SqliteConnection, seed: u64) -> anyhow::Result<Fixture> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut fx = Fixture::new(Shape::NewerApp);
    exec(conn, "BEGIN").await?;
    exec(conn, NEWER_APP_VECTOR_STORES).await?;
    for ddl in NEWER_APP_INDEXES {
        exec(conn, ddl).await?;
    }
    exec(conn, LEGACY_STORES).await?;
    exec(conn, LEGACY_STORES_INDEX).await?;
    exec(conn, LEGACY_ACTIVE_STORES_VIEW).await?;

    fx.stores = gen_history_stores(&mut rng, 6, 4);
    insert_stores(conn, &fx.stores).await?;

    let providers = ["openai", "openai", "openai", "inmemory", "hnsw", "pinecone"];
    let mut rows = Vec::new();
    for i in 0..1500 {
        let created_at = 1_745_000_000 + rng.random_range(0..9_000_000);
        let updated_at = created_at + rng.random_range(0..200_000);
        let is_protected = i64::from(rng.random_bool(0.2));
        let expires_at = if is_protected == 1 && rng.random_bool(0.5) {
            None
        } else {
            Some(updated_at + [7200, 86_400, 3600][rng.random_range(0..3)])
        };
        let provider_metadata = match rng.random_range(0..4) {
            0 => None,
            1 => Some(format!(
                "{{\"assistant_id\": \"asst_{}\", \"note\": \"café \\\"{i}\\\"\"}}",
                token(&mut rng, 12)
            )),
            2 => Some("{}".to_owned()),
            _ => Some(format!(
                "{{\"index_path\": \"/tmp/hnsw/{i}.bin\", \"dim\": 1536}}"
            )),
        };
        rows.push(UnifiedRow {
            vector_store_id: format!("vs_{}", token(&mut rng, 24)),
            name: None,
            session_id: Some(odd_session_id(&mut rng, i)),
            provider: providers[rng.random_range(0..providers.len())].to_owned(),
            provider_metadata,
            is_protected: Some(is_protected),
            is_active: Some(i64::from(!rng.random_bool(0.1))),
            created_at,
            expires_at,
            updated_at,
            document_count: Some(if rng.random_bool(0.5) {
                0
            } else {
                rng.random_range(1..40)
            }),
            rollover_from: None,
        });
    }
    // Registrations of history stores: every other store, with the stale
    // values register_store() writes (count 0, active 1, registration time).
    let order = expect::creation_order(&fx.stores);
    let mut registered: Vec<(usize, String)> = Vec::new();
    for (ty, list) in &order {
        for (pos, &idx) in list.iter().enumerate() {
            if pos % 2 == 1 || (pos == 0 && ty == "commit") {
                registered.push((idx, format!("project-{ty}s-{:03}", pos + 1)));
            }
        }
    }
    // One registration under a name that belongs, by creation order, to
    // another (unregistered) store: that one must get a suffixed name.
    let conv = &order.iter().find(|(t, _)| t == "conversation").unwrap().1;
    let odd = conv[2];
    registered.push((odd, "project-conversations-001".to_owned()));
    for (idx, name) in registered {
        let s = &fx.stores[idx];
        let created_at = s.secs + rng.random_range(5..5000);
        rows.push(UnifiedRow {
            vector_store_id: s.store_id.clone(),
            name: Some(name),
            session_id: None,
            provider: "openai".to_owned(),
            provider_metadata: if rng.random_bool(0.5) {
                Some(format!("{{\"store_name\": \"{}\"}}", s.store_id))
            } else {
                None
            },
            is_protected: Some(i64::from(rng.random_bool(0.5))),
            is_active: Some(1),
            created_at,
            expires_at: None,
            updated_at: created_at + rng.random_range(0..1000),
            document_count: Some(0),
            rollover_from: None,
        });
    }
    // A named store that is not a history store.
    rows.push(UnifiedRow {
        vector_store_id: format!("vs_{}", token(&mut rng, 24)),
        name: Some("scratch-index".to_owned()),
        session_id: None,
        provider: "inmemory".to_owned(),
        provider_metadata: Some("{\"ephemeral\": true}".to_owned()),
        is_protected: Some(0),
        is_active: Some(1),
        created_at: 1_750_000_000,
        expires_at: Some(1_760_000_000),
        updated_at: 1_750_000_100,
        document_count: Some(3),
        rollover_from: None,
    });
    rows.shuffle(&mut rng);
    for r in &rows {
        insert_unified(conn, r).await?;
    }
    fx.unified = rows;
    create_meta(conn, &mut rng, false).await?;
    create_app_tables(conn, &mut rng).await?;
    exec(conn, "COMMIT").await?;
    Ok(fx)
}

/// Shape 4: a legacy file that the old Python tool converted: it built the
/// unified table (the newer application's DDL), copied the session rows with
/// `INSERT OR IGNORE` (so rows sharing a vector_store_id after the first and
/// the row without session_id were dropped), replaced the table, left
/// `stores` alone and recorded `schema_version` 1.
pub async fn build_old_tool(conn: &mut SqliteConnection, seed: u64) -> anyhow::Result<Fixture> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut fx = Fixture::new(Shape::OldTool);
    exec(conn, "BEGIN").await?;
    create_legacy_schema(conn).await?;
    fx.legacy_sessions = gen_legacy_sessions(&mut rng, 2000);
    insert_legacy_sessions(conn, &fx.legacy_sessions).await?;
    fx.stores = gen_history_stores(&mut rng, 5, 6);
    insert_stores(conn, &fx.stores).await?;
    create_meta(conn, &mut rng, true).await?;
    create_app_tables(conn, &mut rng).await?;
    // The old tool, step by step.
    exec(
        conn,
        &NEWER_APP_VECTOR_STORES
            .replacen("vector_stores", "vector_stores_unified", 1)
            .replace(
                "REFERENCES vector_stores(",
                "REFERENCES vector_stores_unified(",
            ),
    )
    .await?;
    for ddl in NEWER_APP_INDEXES {
        exec(
            conn,
            &ddl.replace("ON vector_stores(", "ON vector_stores_unified("),
        )
        .await?;
    }
    exec(
        conn,
        "INSERT OR IGNORE INTO vector_stores_unified (
            vector_store_id, session_id, provider, is_protected, created_at, expires_at, updated_at
        )
        SELECT vector_store_id, session_id, provider, COALESCE(protected, 0), created_at,
            expires_at, updated_at
        FROM vector_stores ORDER BY rowid",
    )
    .await?;
    exec(conn, "DROP TABLE IF EXISTS vector_stores").await?;
    exec(
        conn,
        "ALTER TABLE vector_stores_unified RENAME TO vector_stores",
    )
    .await?;
    exec(
        conn,
        "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
    )
    .await?;
    fx.schema_version = vec![(1, 1_751_300_000)];
    exec(conn, "INSERT INTO schema_version VALUES (1, 1751300000)").await?;
    exec(conn, "COMMIT").await?;
    Ok(fx)
}

pub async fn build(
    conn: &mut SqliteConnection,
    shape: Shape,
    seed: u64,
) -> anyhow::Result<Fixture> {
    match shape {
        Shape::Empty => build_empty(conn, seed).await,
        Shape::Legacy => build_legacy(conn, seed).await,
        Shape::NewerApp => build_newer_app(conn, seed).await,
        Shape::OldTool => build_old_tool(conn, seed).await,
    }
}

// ---------------------------------------------------------------- generators

const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

fn token(rng: &mut StdRng, n: usize) -> String {
    (0..n)
        .map(|_| ALNUM[rng.random_range(0..ALNUM.len())] as char)
        .collect()
}

fn odd_session_id(rng: &mut StdRng, i: usize) -> String {
    match rng.random_range(0..10) {
        0 => format!("o'brien-{i}"),
        1 => format!("séance-{i}-\u{1F680}"),
        2 => format!("with space {i}"),
        3 => format!("{i}-{}", "x".repeat(300)),
        4 => format!("proj||chat_with_gpt||{i}"),
        _ => format!(
            "{:08x}-{:04x}-4{:03x}-{i:04}",
            rng.random::<u32>(),
            rng.random::<u16>(),
            rng.random_range(0..0xfff)
        ),
    }
}

fn gen_legacy_sessions(rng: &mut StdRng, n: usize) -> Vec<LegacySession> {
    let providers = ["openai", "openai", "openai", "openai", "inmemory", "hnsw"];
    let mut out: Vec<LegacySession> = Vec::with_capacity(n + 1);
    let mut rowid = 0;
    for i in 0..n {
        rowid += 1 + if rng.random_bool(0.05) {
            rng.random_range(1..6)
        } else {
            0
        };
        let created_at = 1_735_000_000 + rng.random_range(0..20_000_000);
        let mut updated_at = created_at + rng.random_range(0..400_000);
        let vector_store_id = if !out.is_empty() && rng.random_bool(0.15) {
            let other = &out[rng.random_range(0..out.len())];
            if rng.random_bool(0.3) {
                // same updated_at as the other sharer: the tie-breaks decide
                updated_at = other.updated_at;
            }
            other.vector_store_id.clone()
        } else {
            format!("vs_{}", token(rng, 24))
        };
        let protected = match rng.random_range(0..10) {
            0..=2 => None,
            3..=7 => Some(0),
            _ => Some(1),
        };
        out.push(LegacySession {
            rowid,
            session_id: Some(odd_session_id(rng, i)),
            vector_store_id,
            provider: providers[rng.random_range(0..providers.len())].to_owned(),
            expires_at: updated_at + [7200, 86_400, 600][rng.random_range(0..3)],
            protected,
            created_at,
            updated_at,
        });
    }
    // The legacy table's TEXT PRIMARY KEY accepts NULL (an SQLite quirk).
    out.push(LegacySession {
        rowid: rowid + 1,
        session_id: None,
        vector_store_id: format!("vs_{}", token(rng, 24)),
        provider: "openai".to_owned(),
        expires_at: 1_740_000_000,
        protected: None,
        created_at: 1_739_990_000,
        updated_at: 1_739_990_000,
    });
    out
}

/// `per_type` stores of each type, in the three created_at spellings the
/// application wrote (isoformat with and without microseconds, SQLite's
/// CURRENT_TIMESTAMP), with same-second neighbours, a .999999 fraction, rowid
/// order different from creation order, the newest conversation store active
/// and, oddly, the second newest commit store active.
fn gen_history_stores(rng: &mut StdRng, n_conv: usize, n_commit: usize) -> Vec<HistoryStore> {
    let mut out = Vec::new();
    for (ty, n) in [("conversation", n_conv), ("commit", n_commit)] {
        let mut secs = 1_740_000_000 + rng.random_range(0..1_000_000);
        for k in 0..n {
            let same_second = k > 0 && k % 3 == 2;
            if !same_second {
                secs += rng.random_range(3600..2_000_000);
            }
            let (created_at, micros) = match (k % 4, same_second) {
                (_, true) => (fmt_ts(secs, None), 0),
                (0, _) => {
                    let m = if k == 0 {
                        999_999
                    } else {
                        rng.random_range(0..1_000_000)
                    };
                    (fmt_ts(secs, Some(m)), m)
                }
                (1, _) => (fmt_iso_no_fraction(secs), 0),
                (2, _) => (fmt_ts(secs, None), 0),
                _ => {
                    let m = rng.random_range(1..1_000_000);
                    (fmt_ts(secs, Some(m)), m)
                }
            };
            let is_active = match ty {
                "conversation" => i64::from(k + 1 == n),
                _ => i64::from(k + 2 == n),
            };
            out.push(HistoryStore {
                rowid: 0,
                store_id: format!("vs_{}", token(rng, 24)),
                store_type: ty.to_owned(),
                doc_count: rng.random_range(0..12_000),
                created_at,
                is_active,
                secs,
                micros,
            });
        }
    }
    out.shuffle(rng);
    for (i, s) in out.iter_mut().enumerate() {
        s.rowid = i as i64 + 1;
    }
    out
}

fn civil(secs: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(secs).expect("timestamp in range")
}

/// `YYYY-MM-DDTHH:MM:SS.ffffff+00:00` (micros given) or
/// `YYYY-MM-DD HH:MM:SS` (micros None, SQLite's CURRENT_TIMESTAMP).
pub fn fmt_ts(secs: i64, micros: Option<u32>) -> String {
    let t = civil(secs);
    let (y, mo, d) = (t.year(), u8::from(t.month()), t.day());
    let (h, mi, s) = (t.hour(), t.minute(), t.second());
    match micros {
        Some(m) => format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{m:06}+00:00"),
        None => format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}"),
    }
}

/// `YYYY-MM-DDTHH:MM:SS+00:00` (Python's isoformat() when microsecond == 0).
pub fn fmt_iso_no_fraction(secs: i64) -> String {
    let t = civil(secs);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}+00:00",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

async fn insert_legacy_sessions(
    conn: &mut SqliteConnection,
    rows: &[LegacySession],
) -> anyhow::Result<()> {
    for r in rows {
        sqlx::query(
            "INSERT INTO vector_stores (rowid, session_id, vector_store_id, provider, expires_at,
                protected, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(r.rowid)
        .bind(&r.session_id)
        .bind(&r.vector_store_id)
        .bind(&r.provider)
        .bind(r.expires_at)
        .bind(r.protected)
        .bind(r.created_at)
        .bind(r.updated_at)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

async fn insert_stores(conn: &mut SqliteConnection, rows: &[HistoryStore]) -> anyhow::Result<()> {
    for s in rows {
        sqlx::query(
            "INSERT INTO stores (rowid, store_id, store_type, doc_count, created_at, is_active)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(s.rowid)
        .bind(&s.store_id)
        .bind(&s.store_type)
        .bind(s.doc_count)
        .bind(&s.created_at)
        .bind(s.is_active)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

pub async fn insert_unified(conn: &mut SqliteConnection, r: &UnifiedRow) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO vector_stores (vector_store_id, name, session_id, provider, provider_metadata,
            is_protected, is_active, created_at, expires_at, updated_at, document_count,
            rollover_from) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&r.vector_store_id)
    .bind(&r.name)
    .bind(&r.session_id)
    .bind(&r.provider)
    .bind(&r.provider_metadata)
    .bind(r.is_protected)
    .bind(r.is_active)
    .bind(r.created_at)
    .bind(r.expires_at)
    .bind(r.updated_at)
    .bind(r.document_count)
    .bind(&r.rollover_from)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn create_meta(
    conn: &mut SqliteConnection,
    rng: &mut StdRng,
    with_memory_meta: bool,
) -> anyhow::Result<()> {
    exec(conn, HISTORY_META).await?;
    let t = 1_741_000_000 + rng.random_range(0..1000);
    for (k, v) in [
        ("created_at", fmt_ts(t, Some(123_456))),
        ("last_gc", fmt_ts(t + 86_400, Some(7))),
    ] {
        sqlx::query("INSERT INTO history_meta(key, value) VALUES (?, ?)")
            .bind(k)
            .bind(v)
            .execute(&mut *conn)
            .await?;
    }
    if with_memory_meta {
        exec(conn, MEMORY_META).await?;
        exec(
            conn,
            "INSERT INTO memory_meta VALUES ('created_at', '2025-03-01T08:00:00+00:00'),
                ('rollover_limit', '9500'), ('last_gc', NULL)",
        )
        .await?;
    }
    Ok(())
}

async fn create_app_tables(conn: &mut SqliteConnection, rng: &mut StdRng) -> anyhow::Result<()> {
    for ddl in APP_TABLES_DDL {
        exec(conn, ddl).await?;
    }
    for i in 0..300 {
        let tool = [
            "chat_with_gpt52",
            "chat_with_gemini3_pro",
            "chat_with_grok4",
        ][i % 3];
        let history = format!(
            "[{{\"role\": \"user\", \"content\": \"question {i} with \\\"quotes\\\" and \\n newline, ünïcödé\"}}, {{\"role\": \"assistant\", \"content\": \"{}\"}}]",
            token(rng, 40)
        );
        sqlx::query("INSERT INTO unified_sessions VALUES (?, ?, ?, ?, ?, ?)")
            .bind(format!("/home/u/project-{}", i % 7))
            .bind(tool)
            .bind(odd_session_id(rng, i))
            .bind(if i % 11 == 0 { None } else { Some(history) })
            .bind(if i % 2 == 0 {
                Some(format!("{{\"response_id\": \"resp_{}\"}}", token(rng, 10)))
            } else {
                None
            })
            .bind(1_745_000_000_i64 + rng.random_range(0..1_000_000))
            .execute(&mut *conn)
            .await?;
    }
    for i in 0..100 {
        sqlx::query("INSERT INTO session_summaries VALUES (?, ?, ?, ?, ?)")
            .bind("/home/u/project-1")
            .bind("chat_with_gpt52")
            .bind(format!("sum-{i}"))
            .bind(format!("Summary {i}: {}", token(rng, 60)))
            .bind(1_745_000_000_i64 + i)
            .execute(&mut *conn)
            .await?;
    }
    for i in 0..50 {
        sqlx::query("INSERT INTO stable_inline_lists VALUES (?, ?, ?)")
            .bind(format!("inline-{i}"))
            .bind(format!("[\"src/a{i}.rs\", \"docs/ß{i}.md\"]"))
            .bind(1_745_000_000_i64 + i)
            .execute(&mut *conn)
            .await?;
    }
    for i in 0..300 {
        sqlx::query("INSERT INTO sent_files VALUES (?, ?, ?, ?)")
            .bind(format!("sess-{}", i % 40))
            .bind(format!("/repo/src/file_{i}.py"))
            .bind(if i % 13 == 0 {
                None
            } else {
                Some(rng.random_range(0..1_000_000_i64))
            })
            .bind(1_745_000_000.5_f64 + f64::from(i))
            .execute(&mut *conn)
            .await?;
    }
    for i in 0..200 {
        let payload: Vec<u8> = (0..rng.random_range(0..64)).map(|_| rng.random()).collect();
        sqlx::query("INSERT INTO search_dedup_cache VALUES (?, ?, ?, ?, ?)")
            .bind(format!("{:016x}{i}", rng.random::<u64>()))
            .bind(format!("file-{}", token(rng, 12)))
            .bind(if i % 5 == 0 {
                None
            } else {
                Some(format!("vs_{}", token(rng, 24)))
            })
            .bind(payload)
            .bind(1_745_000_000_i64 + i)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

// ---------------------------------------------------------------- dump

/// Deterministic text dump of the named tables/views: their sqlite_master
/// entries (the object and the indexes/triggers on it, sorted by type and
/// name) and all their rows (rowid first for rowid tables; every value as
/// SQLite's quote() renders it, so 1, 1.0 and '1' differ), sorted.
/// Absent objects dump as "absent".
pub async fn dump(conn: &mut SqliteConnection, tables: &[&str]) -> anyhow::Result<String> {
    dump_with(conn, tables, true).await
}

/// Same as [`dump`], optionally without the rowid column.
pub async fn dump_with(
    conn: &mut SqliteConnection,
    tables: &[&str],
    with_rowid: bool,
) -> anyhow::Result<String> {
    let mut out = String::new();
    for &t in tables {
        out.push_str(&format!("== {t}\n"));
        let objects = sqlx::query(
            "SELECT type, name, tbl_name, sql FROM sqlite_master
             WHERE name = ?1 OR tbl_name = ?1 ORDER BY type, name",
        )
        .bind(t)
        .fetch_all(&mut *conn)
        .await?;
        if objects.is_empty() {
            out.push_str("absent\n");
            continue;
        }
        let mut own_type = String::new();
        let mut own_sql = String::new();
        for o in &objects {
            let ty: String = o.get(0);
            let name: String = o.get(1);
            let sql: Option<String> = o.get(3);
            if name == t {
                own_type = ty.clone();
                own_sql = sql.clone().unwrap_or_default();
            }
            out.push_str(&format!("{ty} {name}: {}\n", sql.unwrap_or_default()));
        }
        let cols: Vec<String> =
            sqlx::query_scalar("SELECT name FROM pragma_table_info(?) ORDER BY cid")
                .bind(t)
                .fetch_all(&mut *conn)
                .await?;
        let mut exprs: Vec<String> = Vec::new();
        let rowid_table =
            own_type == "table" && !own_sql.to_ascii_uppercase().contains("WITHOUT ROWID");
        if with_rowid && rowid_table {
            exprs.push("quote(rowid)".to_owned());
        }
        exprs.extend(
            cols.iter()
                .map(|c| format!("quote(\"{}\")", c.replace('"', "\"\""))),
        );
        let q = format!(
            "SELECT {} FROM \"{}\" ORDER BY 1",
            exprs.join(" || '|' || "),
            t.replace('"', "\"\"")
        );
        let rows: Vec<String> = sqlx::query_scalar(AssertSqlSafe(q))
            .fetch_all(&mut *conn)
            .await?;
        out.push_str(&format!("{} rows\n", rows.len()));
        for r in rows {
            out.push_str(&r);
            out.push('\n');
        }
    }
    Ok(out)
}

/// Names of all objects in sqlite_master (for "nothing else changed" checks).
pub async fn object_names(conn: &mut SqliteConnection) -> anyhow::Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT type || ' ' || name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY 1",
    )
    .fetch_all(&mut *conn)
    .await?)
}

/// All rows of the unified `vector_stores`, sorted by vector_store_id.
pub async fn unified_rows(conn: &mut SqliteConnection) -> anyhow::Result<Vec<UnifiedRow>> {
    let rows = sqlx::query(
        "SELECT vector_store_id, name, session_id, provider, provider_metadata, is_protected,
            is_active, created_at, expires_at, updated_at, document_count, rollover_from
         FROM vector_stores ORDER BY vector_store_id",
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(|r| UnifiedRow {
            vector_store_id: r.get(0),
            name: r.get(1),
            session_id: r.get(2),
            provider: r.get(3),
            provider_metadata: r.get(4),
            is_protected: r.get(5),
            is_active: r.get(6),
            created_at: r.get(7),
            expires_at: r.get(8),
            updated_at: r.get(9),
            document_count: r.get(10),
            rollover_from: r.get(11),
        })
        .collect())
}

/// All rows of the legacy `vector_stores` (rowid included), sorted.
pub async fn legacy_session_rows(
    conn: &mut SqliteConnection,
) -> anyhow::Result<Vec<LegacySession>> {
    let rows = sqlx::query(
        "SELECT rowid, session_id, vector_store_id, provider, expires_at, protected, created_at,
            updated_at FROM vector_stores ORDER BY rowid",
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.iter().map(LegacySession::from_row).collect())
}

impl LegacySession {
    /// From a row whose first eight columns are `rowid, session_id, vector_store_id, provider,
    /// expires_at, protected, created_at, updated_at`.
    pub fn from_row(r: &sqlx::sqlite::SqliteRow) -> Self {
        LegacySession {
            rowid: r.get(0),
            session_id: r.get(1),
            vector_store_id: r.get(2),
            provider: r.get(3),
            expires_at: r.get(4),
            protected: r.get(5),
            created_at: r.get(6),
            updated_at: r.get(7),
        }
    }
}

/// backstop's history table.
pub const HISTORY_TABLE: &str = "_backstop_migrations";

/// backstop's record of the database's identity: written by the first run that backs the
/// database up and kept through every restore and rollback, so it is no part of the states a
/// run moves between; [`full_dump`] leaves it out.
pub const IDENTITY_TABLE: &str = "_backstop_database";

/// How [`full_dump`] renders the rows of [`HISTORY_TABLE`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HistoryRows {
    /// Every column, as [`dump`] renders any table.
    Exact,
    /// Only what is the same from run to run (version, description, checksum,
    /// method): `applied_at`, `execution_ms` and `backup` are left out.
    Stable,
}

/// [`dump`] of every table and view of the database (so every index and
/// trigger too, DDL text included), in name order; but [`IDENTITY_TABLE`].
pub async fn full_dump(
    conn: &mut SqliteConnection,
    history: HistoryRows,
) -> anyhow::Result<String> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')
            AND name NOT LIKE 'sqlite_%' AND name <> ? ORDER BY name",
    )
    .bind(IDENTITY_TABLE)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = String::new();
    for name in &names {
        if name != HISTORY_TABLE || history == HistoryRows::Exact {
            out.push_str(&dump(conn, &[name]).await?);
            continue;
        }
        out.push_str(&format!("== {name}\n"));
        let objects: Vec<(String, String, Option<String>)> = sqlx::query_as(
            "SELECT type, name, sql FROM sqlite_master WHERE tbl_name = ? ORDER BY type, name",
        )
        .bind(name)
        .fetch_all(&mut *conn)
        .await?;
        for (ty, name, sql) in objects {
            out.push_str(&format!("{ty} {name}: {}\n", sql.unwrap_or_default()));
        }
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT quote(version) || '|' || quote(description) || '|' || quote(checksum)
                || '|' || quote(method) FROM _backstop_migrations ORDER BY version",
        )
        .fetch_all(&mut *conn)
        .await?;
        out.push_str(&format!("{} rows (stable columns)\n", rows.len()));
        for r in rows {
            out.push_str(&r);
            out.push('\n');
        }
    }
    Ok(out)
}
