//! The legacy (version 0) layout of an MCP The Force session database, exactly as migration
//! 002's and 001's rollbacks recreate it, and the application tables that share its file.
//!
//! One definition for the tests' fixture builders (`tests/sessions/shapes`) and the benchmark's
//! generator (`examples/legacy/legacy_db.rs`), which include this file with `#[path]`. It is not
//! an example of its own (Cargo only takes `examples/*.rs` and `examples/*/main.rs`).
#![allow(dead_code)]

/// The legacy session table, exactly as the rollback of 001 recreates it.
pub const LEGACY_VECTOR_STORES: &str = "CREATE TABLE vector_stores (
    session_id TEXT PRIMARY KEY,
    vector_store_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    protected INTEGER DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
)";
pub const LEGACY_VECTOR_STORES_INDEXES: [&str; 2] = [
    "CREATE INDEX idx_vector_stores_updated ON vector_stores(updated_at)",
    "CREATE INDEX idx_vector_stores_expires ON vector_stores(expires_at)",
];
/// The legacy history table, exactly as the rollback of 002 recreates it.
pub const LEGACY_STORES: &str = "CREATE TABLE stores (
    store_id TEXT PRIMARY KEY,
    store_type TEXT NOT NULL CHECK (store_type IN ('conversation', 'commit')),
    doc_count INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    is_active INTEGER NOT NULL CHECK (is_active IN (0, 1))
)";
pub const LEGACY_STORES_INDEX: &str =
    "CREATE UNIQUE INDEX idx_active_store ON stores(store_type) WHERE is_active = 1";
pub const LEGACY_ACTIVE_STORES_VIEW: &str = "CREATE VIEW active_stores AS SELECT store_type, store_id, doc_count FROM stores WHERE is_active = 1";
pub const HISTORY_META: &str =
    "CREATE TABLE history_meta(\n    key TEXT PRIMARY KEY,\n    value TEXT NOT NULL\n)";
pub const MEMORY_META: &str = "CREATE TABLE memory_meta (key TEXT PRIMARY KEY, value TEXT)";

/// Other tables of the same file, which no migration may touch.
pub const APP_TABLES_DDL: [&str; 6] = [
    "CREATE TABLE unified_sessions (
    project TEXT NOT NULL,
    tool TEXT NOT NULL,
    session_id TEXT NOT NULL,
    history TEXT,
    provider_metadata TEXT,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (project, tool, session_id)
)",
    "CREATE INDEX idx_unified_sessions_updated ON unified_sessions(updated_at)",
    "CREATE TABLE session_summaries (
    project TEXT NOT NULL,
    tool TEXT NOT NULL,
    session_id TEXT NOT NULL,
    summary TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (project, tool, session_id)
)",
    "CREATE TABLE stable_inline_lists (
    session_id TEXT PRIMARY KEY,
    inline_paths TEXT NOT NULL,
    created_at INTEGER NOT NULL
)",
    "CREATE TABLE sent_files (
    session_id TEXT NOT NULL,
    file_path TEXT NOT NULL,
    last_size INTEGER,
    last_mtime REAL,
    PRIMARY KEY (session_id, file_path)
)",
    "CREATE TABLE search_dedup_cache (
    content_hash TEXT PRIMARY KEY,
    file_id TEXT NOT NULL,
    store_id TEXT,
    payload BLOB,
    created_at INTEGER
) WITHOUT ROWID",
];
