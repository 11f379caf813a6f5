-- 002_history_stores_into_vector_stores: the history stores of the legacy
-- `stores` table become named rows of the unified `vector_stores`, the
-- `active_stores` view is re-pointed at `vector_stores` (same columns), the
-- old Python tool's `schema_version` table is removed, and `vector_stores`
-- is rebuilt with the canonical unified definition and indexes (the newer
-- application and the old tool created it with other constraints and
-- indexes). Every starting shape ends here in the same schema.
--
-- For each `stores` row:
--   name            project-<store_type>s-NNN, NNN = position by creation
--                   time (sub-second precision, then store_id) within the type
--   rollover_from   the store_id of the previous store of the same type
--   created_at      the text (ISO-8601 with optional fraction and offset, or
--                   'YYYY-MM-DD HH:MM:SS' UTC) as unix seconds, fraction cut
--   updated_at      = created_at; expires_at NULL; provider 'openai';
--   is_protected    1; is_active kept; document_count = doc_count.
-- A store already registered in `vector_stores` under the same
-- vector_store_id (the newer application does that) gives ONE row: doc count,
-- active flag and creation time come from `stores` (the history system's own
-- table), name, provider, provider_metadata, expires_at, updated_at and
-- rollover_from (when set) from `vector_stores`, is_protected is 1. The
-- replaced values are kept in `backstop_carry` (kind 'superseded').
-- When project-<type>s-NNN is already the name of another row, the new row is
-- named project-<type>s-NNN-<store_id> (reported).
--
-- Refused (the transaction is rolled back, nothing changes): a created_at
-- text that is not a timestamp, and a store_id that is also the
-- vector_store_id of a session row.
--
-- `backstop_carry` keeps every `stores` row as it was (kind 'pair'), so the
-- rollback gives back the exact original text of created_at etc.
-- The history meta table (`history_meta`, or `memory_meta` in older files) is
-- not touched: it holds no store data and the application keeps using it.

CREATE TABLE IF NOT EXISTS stores (
    store_id TEXT PRIMARY KEY,
    store_type TEXT NOT NULL CHECK (store_type IN ('conversation', 'commit')),
    doc_count INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    is_active INTEGER NOT NULL CHECK (is_active IN (0, 1))
);

CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    applied_at INTEGER NOT NULL
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

SELECT -- notice: the old tool's version table goes away (HAVING without GROUP BY needs 3.39)
    'schema_version: removed the old migration tool''s version table (' || rows
    || '); backstop keeps its own history in _backstop_migrations'
FROM (
    SELECT count(*) AS n,
        group_concat('version ' || quote(version) || ' applied at ' || quote(applied_at), ', ') AS rows
    FROM main.schema_version
)
WHERE n > 0;

DROP TABLE main.schema_version;

-- The stores rows, their creation time parsed, ranked per type.
CREATE TEMP TABLE backstop_m002_stores AS
WITH a AS (
    SELECT
        s.rowid AS l_rowid, s.store_id, s.store_type, s.doc_count, s.created_at, s.is_active,
        CASE
            WHEN s.created_at GLOB '*[+-][0-9][0-9]:[0-9][0-9]' THEN substr(s.created_at, -6)
            WHEN s.created_at GLOB '*Z' THEN 'Z'
            ELSE ''
        END AS tz
    FROM main.stores AS s
), b AS (
    SELECT a.*, substr(a.created_at, 20, length(a.created_at) - 19 - length(a.tz)) AS rest
    FROM a
), c AS (
    SELECT
        b.*,
        CASE
            WHEN b.created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9][T ][0-9][0-9]:[0-9][0-9]:[0-9][0-9]*'
                AND (b.rest = '' OR (b.rest GLOB '.[0-9]*' AND substr(b.rest, 2) NOT GLOB '*[^0-9]*'))
            THEN CAST(strftime('%s', substr(b.created_at, 1, 19) || b.tz) AS INTEGER)
        END AS secs,
        CASE WHEN b.rest = '' THEN '000000000' ELSE substr(substr(b.rest, 2) || '000000000', 1, 9) END AS frac
    FROM b
)
SELECT
    c.l_rowid, c.store_id, c.store_type, c.doc_count, c.created_at, c.is_active, c.secs,
    row_number() OVER w AS seq,
    lag(c.store_id) OVER w AS prev_store_id
FROM c
WINDOW w AS (PARTITION BY c.store_type ORDER BY c.secs, c.frac, c.store_id);

-- One unified row per history store: restored from a carry pair (the stores
-- row is exactly what a rollback wrote), merged with a registration already
-- in vector_stores, or converted.
CREATE TEMP TABLE backstop_m002_history AS
SELECT
    x.*,
    0 AS renamed,
    CASE x.how WHEN 'restored' THEN x.c_rowid WHEN 'merged' THEN x.e_rowid END AS rid,
    CASE x.how WHEN 'restored' THEN x.c_name WHEN 'merged' THEN x.e_name
        ELSE 'project-' || x.l_store_type || 's-' || printf('%03d', x.seq) END AS u_name,
    CASE x.how WHEN 'restored' THEN x.c_provider WHEN 'merged' THEN x.e_provider
        ELSE 'openai' END AS u_provider,
    CASE x.how WHEN 'restored' THEN x.c_provider_metadata WHEN 'merged' THEN x.e_provider_metadata
        ELSE NULL END AS u_provider_metadata,
    CASE x.how WHEN 'restored' THEN x.c_is_protected ELSE 1 END AS u_is_protected,
    CASE x.how WHEN 'restored' THEN x.c_is_active ELSE x.l_is_active END AS u_is_active,
    CASE x.how WHEN 'restored' THEN x.c_created_at ELSE x.secs END AS u_created_at,
    CASE x.how WHEN 'restored' THEN x.c_expires_at WHEN 'merged' THEN x.e_expires_at
        ELSE NULL END AS u_expires_at,
    CASE x.how WHEN 'restored' THEN x.c_updated_at WHEN 'merged' THEN x.e_updated_at
        ELSE x.secs END AS u_updated_at,
    CASE x.how WHEN 'restored' THEN x.c_document_count ELSE x.l_doc_count END AS u_document_count,
    CASE x.how WHEN 'restored' THEN x.c_rollover_from WHEN 'merged' THEN coalesce(x.e_rollover_from, x.prev_store_id)
        ELSE x.prev_store_id END AS u_rollover_from
FROM (
    SELECT
        CASE
            WHEN e.vector_store_id IS NOT NULL THEN 'merged'
            WHEN c.origin IS NOT NULL THEN 'restored'
            ELSE 'converted'
        END AS how,
        s.l_rowid, s.store_id AS vector_store_id, s.store_type AS l_store_type,
        s.doc_count AS l_doc_count, s.created_at AS l_created_at, s.is_active AS l_is_active,
        s.secs, s.seq, s.prev_store_id,
        e.rowid AS e_rowid, e.name AS e_name, e.session_id AS e_session_id,
        e.provider AS e_provider, e.provider_metadata AS e_provider_metadata,
        e.is_protected AS e_is_protected, e.is_active AS e_is_active,
        e.created_at AS e_created_at, e.expires_at AS e_expires_at, e.updated_at AS e_updated_at,
        e.document_count AS e_document_count, e.rollover_from AS e_rollover_from,
        CASE WHEN c.u_rowid IN (SELECT v.rowid FROM main.vector_stores AS v) THEN NULL
            ELSE c.u_rowid END AS c_rowid,
        c.u_name AS c_name, c.u_provider AS c_provider,
        c.u_provider_metadata AS c_provider_metadata, c.u_is_protected AS c_is_protected,
        c.u_is_active AS c_is_active, c.u_created_at AS c_created_at,
        c.u_expires_at AS c_expires_at, c.u_updated_at AS c_updated_at,
        c.u_document_count AS c_document_count, c.u_rollover_from AS c_rollover_from
    FROM temp.backstop_m002_stores AS s
    LEFT JOIN main.vector_stores AS e ON e.vector_store_id = s.store_id
    LEFT JOIN main.backstop_carry AS c
        ON c.origin = 'stores' AND c.kind = 'pair'
        AND c.vector_store_id = s.store_id
        AND c.l_store_type IS s.store_type
        AND c.l_doc_count IS s.doc_count
        AND c.l_created_at IS s.created_at
        AND c.l_is_active IS s.is_active
) AS x;

CREATE TEMP TABLE backstop_m002_refusals (
    kind TEXT,
    store_id TEXT,
    CONSTRAINT "backstop 002 refused: a stores.created_at value is not a timestamp (expected YYYY-MM-DD HH:MM:SS or ISO-8601); fix that row and run again"
        CHECK (kind <> 'created_at'),
    CONSTRAINT "backstop 002 refused: a stores.store_id is also the vector_store_id of a session row in vector_stores"
        CHECK (kind <> 'session_store')
);

INSERT INTO temp.backstop_m002_refusals (kind, store_id)
SELECT 'created_at', vector_store_id
FROM temp.backstop_m002_history
WHERE how <> 'restored' AND secs IS NULL;

INSERT INTO temp.backstop_m002_refusals (kind, store_id)
SELECT 'session_store', vector_store_id
FROM temp.backstop_m002_history
WHERE how = 'merged' AND e_session_id IS NOT NULL;

UPDATE temp.backstop_m002_history
SET renamed = 1, u_name = u_name || '-' || vector_store_id
WHERE how = 'converted' AND (
    u_name IN (SELECT v.name FROM main.vector_stores AS v WHERE v.name IS NOT NULL)
    OR u_name IN (SELECT h.u_name FROM temp.backstop_m002_history AS h WHERE h.how <> 'converted')
);

-- All rows of the new table: every current row (except registrations merged
-- above) and the history rows.
CREATE TEMP TABLE backstop_m002_all AS
SELECT
    v.rowid AS rid, v.vector_store_id, v.name, v.session_id, v.provider, v.provider_metadata,
    v.is_protected, v.is_active, v.created_at, v.expires_at, v.updated_at, v.document_count,
    v.rollover_from, '' AS ord_type, 0 AS ord_seq
FROM main.vector_stores AS v
WHERE NOT EXISTS (
    SELECT 1 FROM temp.backstop_m002_history AS h
    WHERE h.how = 'merged' AND h.vector_store_id = v.vector_store_id
)
UNION ALL
SELECT
    h.rid, h.vector_store_id, h.u_name, NULL, h.u_provider, h.u_provider_metadata,
    h.u_is_protected, h.u_is_active, h.u_created_at, h.u_expires_at, h.u_updated_at,
    h.u_document_count, h.u_rollover_from, h.l_store_type, h.seq
FROM temp.backstop_m002_history AS h;

DROP VIEW IF EXISTS main.active_stores;

DROP TABLE main.vector_stores;

DROP TABLE main.stores;

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
    rid, vector_store_id, name, session_id, provider, provider_metadata, is_protected,
    is_active, created_at, expires_at, updated_at, document_count, rollover_from
FROM temp.backstop_m002_all
ORDER BY rid IS NULL, rid, ord_type, ord_seq;

CREATE VIEW active_stores AS
SELECT
    CASE WHEN name GLOB 'project-conversations-*' THEN 'conversation' ELSE 'commit' END AS store_type,
    vector_store_id AS store_id,
    document_count AS doc_count
FROM vector_stores
WHERE is_active = 1 AND (name GLOB 'project-conversations-*' OR name GLOB 'project-commits-*');

-- Remember every stores row as it was, paired with the row it became.
DELETE FROM main.backstop_carry WHERE origin = 'stores' AND kind = 'pair';

INSERT INTO main.backstop_carry (
    origin, kind, vector_store_id, l_rowid, u_rowid,
    l_store_type, l_doc_count, l_created_at, l_is_active,
    u_name, u_session_id, u_provider, u_provider_metadata, u_is_protected, u_is_active,
    u_created_at, u_expires_at, u_updated_at, u_document_count, u_rollover_from
)
SELECT
    'stores', 'pair', h.vector_store_id, h.l_rowid, v.rowid,
    h.l_store_type, h.l_doc_count, h.l_created_at, h.l_is_active,
    v.name, v.session_id, v.provider, v.provider_metadata, v.is_protected, v.is_active,
    v.created_at, v.expires_at, v.updated_at, v.document_count, v.rollover_from
FROM temp.backstop_m002_history AS h
JOIN main.vector_stores AS v ON v.vector_store_id = h.vector_store_id
ORDER BY h.l_rowid;

INSERT INTO main.backstop_carry (
    origin, kind, vector_store_id, u_rowid,
    u_name, u_session_id, u_provider, u_provider_metadata, u_is_protected, u_is_active,
    u_created_at, u_expires_at, u_updated_at, u_document_count, u_rollover_from
)
SELECT
    'stores', 'superseded', vector_store_id, e_rowid,
    e_name, e_session_id, e_provider, e_provider_metadata, e_is_protected, e_is_active,
    e_created_at, e_expires_at, e_updated_at, e_document_count, e_rollover_from
FROM temp.backstop_m002_history
WHERE how = 'merged'
ORDER BY l_rowid;

SELECT -- notice: registrations merged with their stores row
    'stores: ' || n || ' history store(s) were registered in both stores and vector_stores and'
    || ' now have one row each (doc count, active flag and creation time from stores; the replaced'
    || ' vector_stores values are kept in backstop_carry, kind superseded)'
FROM (SELECT count(*) AS n FROM temp.backstop_m002_history WHERE how = 'merged')
WHERE n > 0;

SELECT -- notice: names that were taken
    'stores: ' || n || ' history store(s) got their store_id appended to their name because'
    || ' project-<type>s-NNN was already taken: ' || names
FROM (
    SELECT count(*) AS n, group_concat(u_name, ', ') AS names
    FROM temp.backstop_m002_history
    WHERE renamed
)
WHERE n > 0;

DROP TABLE temp.backstop_m002_stores;

DROP TABLE temp.backstop_m002_history;

DROP TABLE temp.backstop_m002_refusals;

DROP TABLE temp.backstop_m002_all;
