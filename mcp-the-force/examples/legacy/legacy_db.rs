//! Generates a realistic legacy (version 0) MCP The Force session database, for benchmarks.
//!
//! ```text
//! cargo run --release --example mcp_the_force_legacy_db -- \
//!     --sessions N --history-stores M --app-data-mb S [--seed X] [--force] PATH
//! ```
//!
//! The file has the legacy layout exactly as `tests/sessions/shapes` builds it (shape 2): the
//! session-keyed `vector_stores` with its two indexes, `stores` with both `created_at` text
//! formats and the partial unique index, the `active_stores` view, `history_meta` and
//! `memory_meta`; plus the application's bulky tables (`unified_sessions` with JSON
//! conversations, `session_summaries`, `stable_inline_lists`, `sent_files`,
//! `search_dedup_cache`), filled until the file is about S MB (1 MB = 2^20 bytes).
//!
//! - `vector_stores` gets N session rows (rowid gaps, 15% sharing a store id with a recent
//!   session, 30% NULL `protected`) and one row with a NULL `session_id`; they are written
//!   interleaved with the application rows, as a real file grows, so their pages are spread
//!   over the whole file.
//! - `stores` gets M history stores, split between the two types, in the three `created_at`
//!   spellings the application wrote; the newest conversation store and the second newest
//!   commit store are active, the others inactive.
//!
//! The content depends only on the arguments (the same seed gives the same rows). The file is
//! written without a journal and with `synchronous = OFF`, then switched to WAL mode (as the
//! real database is) and checkpointed: no `-wal` file is left. It is written under
//! `PATH.partial` and renamed when complete.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Parser;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, RngCore, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, SqliteConnection};

/// Bumped whenever the generated content changes, so that cached files are regenerated.
pub const GENERATOR_VERSION: u32 = 1;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Params {
    /// Legacy `vector_stores` session rows.
    pub sessions: u64,
    /// Legacy `stores` history stores (both types together).
    pub history_stores: u64,
    /// The size to fill the file to, in MB.
    pub app_data_mb: u64,
    /// The seed of every random choice.
    pub seed: u64,
}

/// What was generated.
#[derive(Debug, Clone, Serialize)]
pub struct Made {
    pub path: PathBuf,
    pub bytes: u64,
    pub seconds: f64,
    /// Rows per table, in creation order.
    pub rows: Vec<(String, u64)>,
    /// Legacy session rows whose store id another session also has.
    pub shared_store_rows: u64,
    /// Legacy session rows with a NULL `protected`.
    pub null_protected_rows: u64,
}

#[derive(Parser)]
#[command(about = "Generate a realistic legacy session database (for benchmarks)")]
struct Cli {
    /// Rows of the legacy session-keyed `vector_stores`
    #[arg(long)]
    sessions: u64,
    /// History stores in the legacy `stores` table (split between conversations and commits)
    #[arg(long)]
    history_stores: u64,
    /// Fill the application tables until the file is about this many MB
    #[arg(long)]
    app_data_mb: u64,
    /// Seed of the generator: the same arguments give the same content
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Replace PATH if it exists
    #[arg(long)]
    force: bool,
    /// The database file to create
    path: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cli.path.exists() {
        if !cli.force {
            bail!("{} exists; pass --force to replace it", cli.path.display());
        }
        remove_database(&cli.path)?;
    }
    let params = Params {
        sessions: cli.sessions,
        history_stores: cli.history_stores,
        app_data_mb: cli.app_data_mb,
        seed: cli.seed,
    };
    let made = generate(&cli.path, &params).await?;
    print!("{}", describe(&made));
    Ok(())
}

/// A human summary of a generated file.
pub fn describe(made: &Made) -> String {
    let mut out = format!(
        "{}: {:.1} MB in {:.1} s\n",
        made.path.display(),
        made.bytes as f64 / MB,
        made.seconds
    );
    for (table, rows) in &made.rows {
        out.push_str(&format!("  {table:<22} {rows:>10} rows\n"));
    }
    out.push_str(&format!(
        "  legacy vector_stores: {} rows share a store id, {} have a NULL protected\n",
        made.shared_store_rows, made.null_protected_rows
    ));
    out
}

/// Bytes in a MB.
pub const MB: f64 = (1u64 << 20) as f64;

/// Removes a database file and its `-wal`, `-shm` and `-journal` companions (missing ones
/// are fine).
pub fn remove_database(path: &Path) -> anyhow::Result<()> {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let file = with_suffix(path, suffix);
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", file.display())),
        }
    }
    Ok(())
}

/// `path` with `suffix` appended to its file name.
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Generates the database at `path` (which must not exist).
pub async fn generate(path: &Path, params: &Params) -> anyhow::Result<Made> {
    let started = Instant::now();
    if path.exists() {
        bail!("{} already exists", path.display());
    }
    let partial = with_suffix(path, ".partial");
    remove_database(&partial)?;
    let result = fill(&partial, params).await;
    let made = match result {
        Ok(made) => made,
        Err(e) => {
            let _ = remove_database(&partial);
            return Err(e);
        }
    };
    if with_suffix(&partial, "-wal").exists() {
        bail!("the -wal file of {} was left over", partial.display());
    }
    std::fs::rename(&partial, path)
        .with_context(|| format!("renaming {} to {}", partial.display(), path.display()))?;
    Ok(Made {
        path: path.to_owned(),
        bytes: std::fs::metadata(path)?.len(),
        seconds: started.elapsed().as_secs_f64(),
        ..made
    })
}

async fn fill(path: &Path, params: &Params) -> anyhow::Result<Made> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Off)
        .synchronous(SqliteSynchronous::Off)
        .pragma("cache_size", "-131072");
    let mut conn = options
        .connect()
        .await
        .with_context(|| format!("creating {}", path.display()))?;
    let mut generator = Generator::new(params);
    let target_bytes = params.app_data_mb << 20;

    exec(&mut conn, "BEGIN").await?;
    for ddl in schema() {
        exec(&mut conn, ddl).await?;
    }
    generator.insert_history_stores(&mut conn).await?;
    generator.insert_meta(&mut conn).await?;
    // Application rows until the file is big enough, with the legacy session rows written
    // in proportion to the progress, as a real file grows.
    let mut unit = 0u64;
    loop {
        let bytes = file_bytes(&mut conn).await?;
        let due = if target_bytes == 0 {
            params.sessions
        } else {
            (u128::from(params.sessions) * u128::from(bytes.min(target_bytes))
                / u128::from(target_bytes)) as u64
        };
        generator.insert_sessions_up_to(&mut conn, due).await?;
        if bytes >= target_bytes {
            break;
        }
        generator.insert_unit(&mut conn, unit).await?;
        unit += 1;
        if unit.is_multiple_of(2000) {
            exec(&mut conn, "COMMIT; BEGIN").await?;
        }
    }
    generator
        .insert_sessions_up_to(&mut conn, params.sessions)
        .await?;
    generator.insert_null_session(&mut conn).await?;
    exec(&mut conn, "COMMIT").await?;

    // The real file is in WAL mode: switch (a persistent setting) and checkpoint.
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode = WAL")
        .fetch_one(&mut conn)
        .await?;
    if !mode.eq_ignore_ascii_case("wal") {
        bail!("could not switch {} to WAL mode: {mode}", path.display());
    }
    exec(&mut conn, "PRAGMA wal_checkpoint(TRUNCATE)").await?;
    conn.close().await?;
    Ok(Made {
        path: path.to_owned(),
        bytes: 0,
        seconds: 0.0,
        rows: generator.rows(),
        shared_store_rows: generator.shared_store_rows,
        null_protected_rows: generator.null_protected_rows,
    })
}

async fn exec(conn: &mut SqliteConnection, sql: &'static str) -> anyhow::Result<()> {
    sqlx::raw_sql(sql)
        .execute(&mut *conn)
        .await
        .with_context(|| format!("running {sql}"))?;
    Ok(())
}

/// The size the file has (or will have at commit) with this connection's changes.
async fn file_bytes(conn: &mut SqliteConnection) -> anyhow::Result<u64> {
    let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
        .fetch_one(&mut *conn)
        .await?;
    let page_size: i64 = sqlx::query_scalar("PRAGMA page_size")
        .fetch_one(&mut *conn)
        .await?;
    Ok(u64::try_from(pages * page_size)?)
}

// ------------------------------------------------------------------ schema (as tests/sessions/shapes)

#[path = "legacy_schema.rs"]
mod legacy;
use legacy::*;

/// The legacy layout of version 0, exactly as `tests/sessions/shapes` (shape 2) creates it, and the
/// application's other tables.
fn schema() -> Vec<&'static str> {
    let mut ddl = vec![LEGACY_VECTOR_STORES];
    ddl.extend(LEGACY_VECTOR_STORES_INDEXES);
    ddl.extend([
        LEGACY_STORES,
        LEGACY_STORES_INDEX,
        LEGACY_ACTIVE_STORES_VIEW,
        HISTORY_META,
        MEMORY_META,
        "INSERT INTO memory_meta VALUES ('created_at', '2025-03-01T08:00:00+00:00'),
    ('rollover_limit', '9500'), ('last_gc', NULL)",
    ]);
    ddl.extend(APP_TABLES_DDL);
    ddl
}

// ------------------------------------------------------------------ generator

/// Unix time of the first session.
const EPOCH: i64 = 1_735_000_000;
/// The sessions span about 230 days.
const SPAN: i64 = 20_000_000;

const TOOLS: [&str; 6] = [
    "chat_with_gpt52",
    "chat_with_gemini3_pro",
    "chat_with_grok4",
    "chat_with_claude45_opus",
    "research_with_o3_deep_research",
    "chat_with_gpt41",
];
const PROVIDERS: [&str; 6] = ["openai", "openai", "openai", "openai", "inmemory", "hnsw"];
const WORDS: [&str; 64] = [
    "the",
    "session",
    "function",
    "returns",
    "a",
    "value",
    "when",
    "migration",
    "database",
    "store",
    "vector",
    "we",
    "should",
    "check",
    "error",
    "handling",
    "in",
    "this",
    "module",
    "because",
    "tests",
    "fail",
    "after",
    "refactor",
    "of",
    "config",
    "loader",
    "and",
    "cache",
    "is",
    "not",
    "invalidated",
    "on",
    "reload",
    "consider",
    "using",
    "an",
    "index",
    "for",
    "lookup",
    "by",
    "project",
    "path",
    "with",
    "timeout",
    "retry",
    "logic",
    "async",
    "runtime",
    "deadlock",
    "über",
    "naïve",
    "café",
    "latency",
    "p99",
    "rollback",
    "schema",
    "version",
    "commit",
    "history",
    "token",
    "budget",
    "context",
    "window",
];
const CODE: [&str; 4] = [
    "```rust\nfn main() {\n    println!(\"hello, {}\", name);\n}\n```",
    concat!(
        "```python\nasync def handler(request):\n",
        "    return {\"status\": \"ok\", 'id': request.id}\n```"
    ),
    "```sql\nSELECT session_id, updated_at FROM unified_sessions WHERE project = ?1;\n```",
    "```diff\n- let timeout = 30;\n+ let timeout = Duration::from_secs(30);\n```",
];
const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// One legacy session row's store, remembered so that later sessions can share it.
struct Recent {
    store_id: String,
    updated_at: i64,
}

struct Generator {
    params: Params,
    /// Legacy session rows: one stream, so that their content does not depend on how they
    /// interleave with the application rows.
    legacy_rng: StdRng,
    app_rng: StdRng,
    /// Legacy session rows written so far, and the last rowid used.
    sessions_done: u64,
    last_rowid: i64,
    recent: Vec<Recent>,
    shared_store_rows: u64,
    null_protected_rows: u64,
    counts: Counts,
}

#[derive(Default)]
struct Counts {
    stores: u64,
    unified_sessions: u64,
    session_summaries: u64,
    stable_inline_lists: u64,
    sent_files: u64,
    search_dedup_cache: u64,
}

impl Generator {
    fn new(params: &Params) -> Self {
        Generator {
            params: params.clone(),
            legacy_rng: StdRng::seed_from_u64(params.seed ^ 0x001e_6ac7_0000),
            app_rng: StdRng::seed_from_u64(params.seed ^ 0x0a99_0000),
            sessions_done: 0,
            last_rowid: 0,
            recent: Vec::new(),
            shared_store_rows: 0,
            null_protected_rows: 0,
            counts: Counts::default(),
        }
    }

    fn rows(&self) -> Vec<(String, u64)> {
        let c = &self.counts;
        [
            ("vector_stores (legacy)", self.sessions_done + 1),
            ("stores", c.stores),
            ("history_meta", 2),
            ("memory_meta", 3),
            ("unified_sessions", c.unified_sessions),
            ("session_summaries", c.session_summaries),
            ("stable_inline_lists", c.stable_inline_lists),
            ("sent_files", c.sent_files),
            ("search_dedup_cache", c.search_dedup_cache),
        ]
        .into_iter()
        .map(|(t, n)| (t.to_owned(), n))
        .collect()
    }

    /// Legacy session rows until `due` of them are written.
    async fn insert_sessions_up_to(
        &mut self,
        conn: &mut SqliteConnection,
        due: u64,
    ) -> anyhow::Result<()> {
        while self.sessions_done < due {
            self.insert_session(conn).await?;
        }
        Ok(())
    }

    async fn insert_session(&mut self, conn: &mut SqliteConnection) -> anyhow::Result<()> {
        let i = self.sessions_done;
        let total = self.params.sessions.max(1);
        let rng = &mut self.legacy_rng;
        // Rowid gaps: rows the application deleted.
        self.last_rowid += 1 + if rng.random_bool(0.05) {
            rng.random_range(1..6)
        } else {
            0
        };
        let created_at = EPOCH
            + (i128::from(SPAN) * i128::from(i) / i128::from(total)) as i64
            + rng.random_range(0..3600);
        let mut updated_at = created_at + rng.random_range(0..400_000);
        let store_id = if !self.recent.is_empty() && rng.random_bool(0.15) {
            // A store shared with a recent session (the unified table keeps one of them).
            let other = &self.recent[rng.random_range(0..self.recent.len())];
            if rng.random_bool(0.3) {
                updated_at = other.updated_at; // a tie: the tie-breaks decide
            }
            self.shared_store_rows += 1;
            other.store_id.clone()
        } else {
            format!("vs_{}", token(rng, 24))
        };
        let protected = match rng.random_range(0..10) {
            0..=2 => None,
            3..=7 => Some(0),
            _ => Some(1),
        };
        self.null_protected_rows += u64::from(protected.is_none());
        let provider = PROVIDERS[rng.random_range(0..PROVIDERS.len())];
        let expires_at = updated_at + [7200, 86_400, 600][rng.random_range(0..3)];
        sqlx::query(
            "INSERT INTO vector_stores (rowid, session_id, vector_store_id, provider, expires_at,
                protected, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(self.last_rowid)
        .bind(session_id(self.params.seed, i))
        .bind(&store_id)
        .bind(provider)
        .bind(expires_at)
        .bind(protected)
        .bind(created_at)
        .bind(updated_at)
        .execute(&mut *conn)
        .await?;
        if self.recent.len() == 256 {
            self.recent.swap_remove(rng.random_range(0..256));
        }
        self.recent.push(Recent {
            store_id,
            updated_at,
        });
        self.sessions_done += 1;
        Ok(())
    }

    /// The legacy table's TEXT PRIMARY KEY accepts NULL (an SQLite quirk): one such row.
    async fn insert_null_session(&mut self, conn: &mut SqliteConnection) -> anyhow::Result<()> {
        let store_id = format!("vs_{}", token(&mut self.legacy_rng, 24));
        sqlx::query(
            "INSERT INTO vector_stores (rowid, session_id, vector_store_id, provider, expires_at,
                protected, created_at, updated_at)
             VALUES (?, NULL, ?, 'openai', 1740000000, NULL, 1739990000, 1739990000)",
        )
        .bind(self.last_rowid + 1)
        .bind(store_id)
        .execute(&mut *conn)
        .await?;
        self.null_protected_rows += 1;
        Ok(())
    }

    /// The history stores, as `tests/sessions/shapes` generates them: same-second neighbours, a
    /// .999999 fraction, the three spellings, rowid order unlike creation order.
    async fn insert_history_stores(&mut self, conn: &mut SqliteConnection) -> anyhow::Result<()> {
        let rng = &mut self.legacy_rng;
        let n = self.params.history_stores;
        let mut stores = Vec::new();
        for (ty, count) in [("conversation", n.div_ceil(2)), ("commit", n / 2)] {
            let mut secs = 1_740_000_000 + rng.random_range(0..1_000_000);
            for k in 0..count {
                let same_second = k > 0 && k % 3 == 2;
                if !same_second {
                    secs += rng.random_range(3600..2_000_000);
                }
                let created_at = match (k % 4, same_second) {
                    (_, true) => fmt_ts(secs, None),
                    (0, _) if k == 0 => fmt_ts(secs, Some(999_999)),
                    (1, _) => fmt_iso_no_fraction(secs),
                    (2, _) => fmt_ts(secs, None),
                    _ => fmt_ts(secs, Some(rng.random_range(1..1_000_000))),
                };
                let is_active = match ty {
                    "conversation" => k + 1 == count,
                    _ => k + 2 == count || (count == 1 && k == 0),
                };
                stores.push((
                    format!("vs_{}", token(rng, 24)),
                    ty,
                    rng.random_range(0..12_000_i64),
                    created_at,
                    i64::from(is_active),
                ));
            }
        }
        stores.shuffle(rng);
        for (i, (store_id, ty, doc_count, created_at, is_active)) in stores.iter().enumerate() {
            sqlx::query(
                "INSERT INTO stores (rowid, store_id, store_type, doc_count, created_at, is_active)
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(i as i64 + 1)
            .bind(store_id)
            .bind(ty)
            .bind(doc_count)
            .bind(created_at)
            .bind(is_active)
            .execute(&mut *conn)
            .await?;
        }
        self.counts.stores = stores.len() as u64;
        Ok(())
    }

    async fn insert_meta(&mut self, conn: &mut SqliteConnection) -> anyhow::Result<()> {
        let t = 1_741_000_000 + self.legacy_rng.random_range(0..1000);
        for (key, value) in [
            ("created_at", fmt_ts(t, Some(123_456))),
            ("last_gc", fmt_ts(t + 86_400, Some(7))),
        ] {
            sqlx::query("INSERT INTO history_meta(key, value) VALUES (?, ?)")
                .bind(key)
                .bind(value)
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    /// One session's application rows: its conversation, maybe a summary and an inline list,
    /// the files sent, search cache entries.
    async fn insert_unit(&mut self, conn: &mut SqliteConnection, k: u64) -> anyhow::Result<()> {
        let rng = &mut self.app_rng;
        let sid = session_id(self.params.seed, k);
        let project = format!("/home/dev/project-{}", k % 17);
        let tool = TOOLS[rng.random_range(0..TOOLS.len())];
        let updated_at = EPOCH + rng.random_range(0..SPAN);
        let history = (!rng.random_ratio(1, 11)).then(|| conversation(rng));
        let metadata = rng.random_bool(0.5).then(|| {
            json!({
                "response_id": format!("resp_{}", token(rng, 24)),
                "model": tool.trim_start_matches("chat_with_"),
                "usage": {
                    "input_tokens": rng.random_range(100..200_000),
                    "output_tokens": rng.random_range(10..8000),
                },
            })
            .to_string()
        });
        sqlx::query("INSERT INTO unified_sessions VALUES (?, ?, ?, ?, ?, ?)")
            .bind(&project)
            .bind(tool)
            .bind(&sid)
            .bind(history)
            .bind(metadata)
            .bind(updated_at)
            .execute(&mut *conn)
            .await?;
        self.counts.unified_sessions += 1;

        if rng.random_bool(0.4) {
            let len = rng.random_range(400..3000);
            let summary = format!("Summary: {}", prose(rng, len));
            sqlx::query("INSERT INTO session_summaries VALUES (?, ?, ?, ?, ?)")
                .bind(&project)
                .bind(tool)
                .bind(&sid)
                .bind(summary)
                .bind(updated_at + 60)
                .execute(&mut *conn)
                .await?;
            self.counts.session_summaries += 1;
        }
        if rng.random_bool(0.15) {
            let paths: Vec<String> = (0..rng.random_range(1..12))
                .map(|j| format!("src/module_{}/file_{j}.rs", rng.random_range(0..40)))
                .collect();
            sqlx::query("INSERT INTO stable_inline_lists VALUES (?, ?, ?)")
                .bind(&sid)
                .bind(serde_json::to_string(&paths)?)
                .bind(updated_at)
                .execute(&mut *conn)
                .await?;
            self.counts.stable_inline_lists += 1;
        }
        for j in 0..rng.random_range(0..6) {
            let size = (!rng.random_ratio(1, 13)).then(|| rng.random_range(0..1_000_000_i64));
            sqlx::query("INSERT INTO sent_files VALUES (?, ?, ?, ?)")
                .bind(&sid)
                .bind(format!(
                    "{project}/src/part_{j}/file_{}.py",
                    rng.random_range(0..500)
                ))
                .bind(size)
                .bind(updated_at as f64 + rng.random_range(0.0..1000.0))
                .execute(&mut *conn)
                .await?;
            self.counts.sent_files += 1;
        }
        for _ in 0..rng.random_range(0..3) {
            let mut payload = vec![0u8; rng.random_range(0..2048)];
            rng.fill_bytes(&mut payload);
            let hash = format!(
                "{:016x}{:016x}",
                rng.random::<u64>(),
                self.counts.search_dedup_cache
            );
            let store = (!rng.random_ratio(1, 5)).then(|| format!("vs_{}", token(rng, 24)));
            sqlx::query("INSERT INTO search_dedup_cache VALUES (?, ?, ?, ?, ?)")
                .bind(hash)
                .bind(format!("file-{}", token(rng, 24)))
                .bind(store)
                .bind(payload)
                .bind(updated_at)
                .execute(&mut *conn)
                .await?;
            self.counts.search_dedup_cache += 1;
        }
        Ok(())
    }
}

/// A session id, unique per index: mostly UUID-like, some with the odd characters real ids
/// have (quotes, non-ASCII, spaces, separators, a very long one).
fn session_id(seed: u64, i: u64) -> String {
    let h = splitmix64(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ i);
    match h % 100 {
        0 => format!("o'brien-{i}"),
        1 => format!("séance-{i}-\u{1F680}"),
        2 => format!("with space {i}"),
        3 => format!("{i}-{}", "x".repeat(300)),
        4..=9 => format!("proj||chat_with_gpt||{i}"),
        _ => format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            h >> 32,
            (h >> 16) & 0xffff,
            h & 0xfff,
            (h >> 20) & 0xffff,
            i
        ),
    }
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn token(rng: &mut StdRng, n: usize) -> String {
    (0..n)
        .map(|_| ALNUM[rng.random_range(0..ALNUM.len())] as char)
        .collect()
}

/// About `len` bytes of text: words, sentences, now and then a quote, a newline, a code block.
fn prose(rng: &mut StdRng, len: usize) -> String {
    let mut out = String::with_capacity(len + 128);
    while out.len() < len {
        match rng.random_range(0..200) {
            0 => out.push_str(CODE[rng.random_range(0..CODE.len())]),
            1..=3 => out.push_str(".\n\n"),
            4..=6 => out.push_str("\"quoted\""),
            7..=20 => out.push_str(". "),
            _ => out.push_str(WORDS[rng.random_range(0..WORDS.len())]),
        }
        out.push(' ');
    }
    out
}

/// A conversation as the application stores it: a JSON array of messages, 1 to 96 KB
/// (log-uniform: many short sessions, a few long ones).
fn conversation(rng: &mut StdRng) -> String {
    let target = (1024.0 * 96f64.powf(rng.random::<f64>())) as usize;
    let mut messages = Vec::new();
    let mut size = 0;
    while size < target {
        let question = rng.random_range(40..800);
        let answer = rng
            .random_range(200..6000)
            .min(target.saturating_sub(size).max(200));
        let user = prose(rng, question);
        let assistant = prose(rng, answer);
        size += user.len() + assistant.len() + 60;
        messages.push(json!({"role": "user", "content": user}));
        if rng.random_ratio(1, 8) {
            let result = prose(rng, 300);
            size += result.len() + 80;
            messages
                .push(json!({"role": "tool", "name": "search_project_history", "content": result}));
        }
        messages.push(json!({"role": "assistant", "content": assistant}));
    }
    serde_json::Value::Array(messages).to_string()
}

fn civil(secs: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(secs).expect("timestamp in range")
}

/// `YYYY-MM-DDTHH:MM:SS.ffffff+00:00` (micros given) or `YYYY-MM-DD HH:MM:SS` (SQLite's
/// CURRENT_TIMESTAMP).
fn fmt_ts(secs: i64, micros: Option<u32>) -> String {
    let t = civil(secs);
    let (y, mo, d) = (t.year(), u8::from(t.month()), t.day());
    let (h, mi, s) = (t.hour(), t.minute(), t.second());
    match micros {
        Some(m) => format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{m:06}+00:00"),
        None => format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}"),
    }
}

/// `YYYY-MM-DDTHH:MM:SS+00:00` (Python's isoformat() when microsecond == 0).
fn fmt_iso_no_fraction(secs: i64) -> String {
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
