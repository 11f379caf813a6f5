-- 001_unified_vector_stores: the session-keyed legacy `vector_stores` table
-- becomes the unified `vector_stores` table (one row per provider store,
-- keyed by vector_store_id, session stores have session_id, named stores
-- have name).
--
-- Starting points: a legacy `vector_stores` table, or none at all (fresh
-- install: the legacy shape is created empty first and flows through the
-- same conversion). A database whose `vector_stores` is already unified
-- (created by the newer application, or converted by the old Python tool)
-- is adopted by the probe and never reaches this script.
--
-- Rows the unified table cannot hold are never dropped: legacy rows whose
-- vector_store_id is shared with another session (the unified table keys on
-- vector_store_id) and rows with a NULL session_id are moved, with all their
-- original values, to `vector_stores_set_aside` and reported as notices. The
-- session that was updated most recently keeps the shared store (ties: the
-- later created_at, then the smaller session_id).
--
-- `backstop_carry` keeps what the unified row cannot express but the legacy
-- row had (a NULL `protected`), so that the rollback gives back the exact
-- original values. A previous rollback may have left rows there for the
-- opposite direction; they are used here when the legacy row is still
-- exactly what that rollback wrote.
--
-- Runs inside the runner's transaction; temp tables are dropped at the end.

CREATE TABLE IF NOT EXISTS vector_stores (
    session_id TEXT PRIMARY KEY,
    vector_store_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    protected INTEGER DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS vector_stores_set_aside (
    session_id TEXT,
    vector_store_id TEXT,
    provider TEXT,
    expires_at INTEGER,
    protected INTEGER,
    created_at INTEGER,
    updated_at INTEGER,
    reason TEXT NOT NULL,
    kept_by_session_id TEXT
);

CREATE TABLE IF NOT EXISTS backstop_carry (
    origin TEXT NOT NULL,
    kind TEXT NOT NULL,
    vector_store_id,
    l_rowid,
    u_rowid,
    l_session_id,
    l_provider,
    l_expires_at,
    l_protected,
    l_created_at,
    l_updated_at,
    l_store_type,
    l_doc_count,
    l_is_active,
    u_name,
    u_session_id,
    u_provider,
    u_provider_metadata,
    u_is_protected,
    u_is_active,
    u_created_at,
    u_expires_at,
    u_updated_at,
    u_document_count,
    u_rollover_from,
    reason,
    kept_by_session_id
);

-- Every legacy row, with the session that keeps its vector_store_id.
CREATE TEMP TABLE backstop_m001_legacy AS
SELECT
    v.rowid AS src_rowid,
    v.session_id,
    v.vector_store_id,
    v.provider,
    v.expires_at,
    v.protected,
    v.created_at,
    v.updated_at,
    CASE WHEN v.session_id IS NULL THEN NULL ELSE first_value(v.session_id) OVER (
        PARTITION BY v.session_id IS NULL, v.vector_store_id
        ORDER BY v.updated_at DESC, v.created_at DESC, v.session_id
    ) END AS keeper
FROM main.vector_stores AS v;

INSERT INTO vector_stores_set_aside (
    rowid, session_id, vector_store_id, provider, expires_at, protected,
    created_at, updated_at, reason, kept_by_session_id
)
SELECT
    src_rowid, session_id, vector_store_id, provider, expires_at, protected,
    created_at, updated_at,
    CASE WHEN session_id IS NULL THEN 'null_session_id' ELSE 'shared_vector_store_id' END,
    keeper
FROM temp.backstop_m001_legacy
WHERE session_id IS NULL OR session_id IS NOT keeper
ORDER BY src_rowid;

-- Rows a previous rollback could not put back (their session had a newer
-- store by then) return to the side table.
INSERT INTO vector_stores_set_aside (
    rowid, session_id, vector_store_id, provider, expires_at, protected,
    created_at, updated_at, reason, kept_by_session_id
)
SELECT rid, l_session_id, vector_store_id, l_provider, l_expires_at, l_protected,
    l_created_at, l_updated_at, reason, kept_by_session_id
FROM (
    SELECT
        CASE WHEN c.l_rowid IN (SELECT s.rowid FROM main.vector_stores_set_aside AS s)
            THEN NULL ELSE c.l_rowid END AS rid,
        c.*
    FROM main.backstop_carry AS c
    WHERE c.origin = 'vector_stores' AND c.kind = 'displaced'
)
ORDER BY rid IS NULL, rid, l_rowid;

-- The unified rows: legacy row converted, or taken from a carry pair when the
-- legacy row is exactly the one a rollback derived from that unified row;
-- plus unified-only rows a rollback had parked in the carry.
CREATE TEMP TABLE backstop_m001_unified AS
SELECT
    'legacy' AS src,
    l.src_rowid AS rid,
    l.vector_store_id,
    l.session_id AS l_session_id,
    l.provider AS l_provider,
    l.expires_at AS l_expires_at,
    l.protected AS l_protected,
    l.created_at AS l_created_at,
    l.updated_at AS l_updated_at,
    CASE WHEN c.origin IS NULL THEN NULL ELSE c.u_name END AS u_name,
    CASE WHEN c.origin IS NULL THEN l.session_id ELSE c.u_session_id END AS u_session_id,
    CASE WHEN c.origin IS NULL THEN l.provider ELSE c.u_provider END AS u_provider,
    CASE WHEN c.origin IS NULL THEN NULL ELSE c.u_provider_metadata END AS u_provider_metadata,
    CASE WHEN c.origin IS NULL THEN coalesce(l.protected, 0) ELSE c.u_is_protected END AS u_is_protected,
    CASE WHEN c.origin IS NULL THEN 1 ELSE c.u_is_active END AS u_is_active,
    CASE WHEN c.origin IS NULL THEN l.created_at ELSE c.u_created_at END AS u_created_at,
    CASE WHEN c.origin IS NULL THEN l.expires_at ELSE c.u_expires_at END AS u_expires_at,
    CASE WHEN c.origin IS NULL THEN l.updated_at ELSE c.u_updated_at END AS u_updated_at,
    CASE WHEN c.origin IS NULL THEN 0 ELSE c.u_document_count END AS u_document_count,
    CASE WHEN c.origin IS NULL THEN NULL ELSE c.u_rollover_from END AS u_rollover_from
FROM temp.backstop_m001_legacy AS l
LEFT JOIN main.backstop_carry AS c
    ON c.origin = 'vector_stores' AND c.kind = 'pair'
    AND c.vector_store_id = l.vector_store_id
    AND c.l_session_id IS l.session_id
    AND c.l_provider IS l.provider
    AND c.l_expires_at IS l.expires_at
    AND c.l_protected IS l.protected
    AND c.l_created_at IS l.created_at
    AND c.l_updated_at IS l.updated_at
WHERE l.session_id IS NOT NULL AND l.session_id = l.keeper
UNION ALL
SELECT
    'carry', c.u_rowid, c.vector_store_id,
    NULL, NULL, NULL, NULL, NULL, NULL,
    c.u_name, c.u_session_id, c.u_provider, c.u_provider_metadata, c.u_is_protected,
    c.u_is_active, c.u_created_at, c.u_expires_at, c.u_updated_at, c.u_document_count,
    c.u_rollover_from
FROM main.backstop_carry AS c
WHERE c.origin = 'vector_stores' AND c.kind = 'unified_only';

UPDATE temp.backstop_m001_unified SET rid = NULL
WHERE src = 'carry' AND rid IN (SELECT src_rowid FROM temp.backstop_m001_legacy);

DROP TABLE main.vector_stores;

CREATE TABLE vector_stores (
    vector_store_id TEXT PRIMARY KEY,
    name TEXT UNIQUE,
    session_id TEXT UNIQUE,
    provider TEXT NOT NULL,
    provider_metadata TEXT,
    is_protected INTEGER DEFAULT 0,
    is_active INTEGER DEFAULT 1,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    updated_at INTEGER NOT NULL,
    document_count INTEGER DEFAULT 0,
    rollover_from TEXT,
    CONSTRAINT vector_stores_name_xor_session CHECK ((name IS NULL) <> (session_id IS NULL))
);

CREATE INDEX idx_vs_active_named ON vector_stores(is_active, name) WHERE name IS NOT NULL;

CREATE INDEX idx_vs_expires_at ON vector_stores(expires_at) WHERE expires_at IS NOT NULL;

CREATE INDEX idx_vs_rollover ON vector_stores(rollover_from) WHERE rollover_from IS NOT NULL;

CREATE INDEX idx_vs_updated_at ON vector_stores(updated_at);

INSERT INTO vector_stores (
    rowid, vector_store_id, name, session_id, provider, provider_metadata, is_protected,
    is_active, created_at, expires_at, updated_at, document_count, rollover_from
)
SELECT
    rid, vector_store_id, u_name, u_session_id, u_provider, u_provider_metadata, u_is_protected,
    u_is_active, u_created_at, u_expires_at, u_updated_at, u_document_count, u_rollover_from
FROM temp.backstop_m001_unified
ORDER BY rid IS NULL, rid, vector_store_id;

-- Carry rows of this origin are consumed; keep a pair for every unified row
-- from which the rollback could not derive its legacy row exactly.
DELETE FROM main.backstop_carry WHERE origin = 'vector_stores';

INSERT INTO main.backstop_carry (
    origin, kind, vector_store_id, l_rowid, u_rowid,
    l_session_id, l_provider, l_expires_at, l_protected, l_created_at, l_updated_at,
    u_name, u_session_id, u_provider, u_provider_metadata, u_is_protected, u_is_active,
    u_created_at, u_expires_at, u_updated_at, u_document_count, u_rollover_from
)
SELECT
    'vector_stores', 'pair', u.vector_store_id, u.rid, u.rid,
    u.l_session_id, u.l_provider, u.l_expires_at, u.l_protected, u.l_created_at, u.l_updated_at,
    u.u_name, u.u_session_id, u.u_provider, u.u_provider_metadata, u.u_is_protected, u.u_is_active,
    u.u_created_at, u.u_expires_at, u.u_updated_at, u.u_document_count, u.u_rollover_from
FROM temp.backstop_m001_unified AS u
WHERE u.src = 'legacy' AND NOT (
    u.u_session_id IS u.l_session_id
    AND u.u_provider IS u.l_provider
    AND coalesce(u.u_expires_at, 253402300799) IS u.l_expires_at
    AND u.u_is_protected IS u.l_protected
    AND u.u_created_at IS u.l_created_at
    AND u.u_updated_at IS u.l_updated_at
);

SELECT -- notice: rows kept aside, one line per reason
    'vector_stores: ' || count(*) || ' legacy session row(s) kept in table vector_stores_set_aside, reason '
    || reason || CASE reason
        WHEN 'shared_vector_store_id' THEN ' (their vector_store_id stays with the session in kept_by_session_id)'
        ELSE ' (a session row without session_id)'
    END
FROM main.vector_stores_set_aside
GROUP BY reason
ORDER BY reason;

DROP TABLE temp.backstop_m001_legacy;

DROP TABLE temp.backstop_m001_unified;
