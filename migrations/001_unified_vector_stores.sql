-- First working form: creates the unified vector_stores table on a database that has none.
-- The lossless conversion of legacy databases replaces this script (issue 4).
CREATE TABLE vector_stores (
    vector_store_id   TEXT PRIMARY KEY,
    name              TEXT UNIQUE,
    session_id        TEXT UNIQUE,
    provider          TEXT NOT NULL,
    provider_metadata TEXT,
    is_protected      INTEGER DEFAULT 0,
    is_active         INTEGER DEFAULT 1,
    created_at        INTEGER NOT NULL,
    expires_at        INTEGER,
    updated_at        INTEGER NOT NULL,
    document_count    INTEGER DEFAULT 0,
    rollover_from     TEXT,
    CHECK ((name IS NULL) <> (session_id IS NULL))
);
