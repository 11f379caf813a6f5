-- Rollback of 002_history_stores_into_vector_stores: history stores leave
-- `vector_stores` and become `stores` rows again; `stores`, its partial
-- unique index and the legacy `active_stores` view come back.
--
-- History stores are the named rows paired in `backstop_carry` with a
-- `stores` row and the rows named project-conversations-* /
-- project-commits-*. A row that is still exactly what the forward script
-- made gets its original `stores` values back (created_at text with its
-- format and microseconds, rowid). Otherwise the values are derived:
-- store_type from the name, doc_count = document_count (NULL -> 0),
-- created_at = 'YYYY-MM-DDTHH:MM:SS+00:00' (a value strftime cannot render
-- is kept as its text), is_active 1 only for the most
-- recently created active store of each type (the legacy index allows one).
-- The unified row of each history store stays in `backstop_carry`, so that
-- migrating again restores it exactly (provider, metadata, name, ...).
-- Named rows that are not history stores stay in `vector_stores`.
-- `schema_version` of the old Python tool is not recreated: it would claim
-- version 1 for a database that is back in the legacy layout.
--
-- What `verify` finds inexact here, and why it is right (docs/mcp-the-force.md):
-- verify: allow rollback_inexact in backstop_carry, stores, idx_active_store, sqlite_autoindex_stores_1, active_stores, vector_stores, idx_vs_active_named, idx_vs_name, idx_vs_session_id, idx_vs_expires_at, idx_vs_rollover, idx_vs_updated_at, vector_stores_set_aside, schema_version: the rollback goes to the legacy layout (stores, its index and the active_stores view come back, empty for a new database), not to the DDL of the newer application or of the old tool, and backstop_carry keeps what the legacy layout cannot hold
-- verify: allow reapply_differs in backstop_carry: after a rollback backstop_carry holds the rollback's records; migrating again consumes them and writes its own, so only backstop_carry differs from the first run
-- verify: allow table_removed in stores, schema_version: each history store becomes a named row of vector_stores (a merge keeps what it replaced in backstop_carry), and the old tool's schema_version marker is replaced by backstop's history (said in a notice); no store is lost
-- verify: allow breaks_previous_version in stores, schema_version: active_stores stays a view with the same columns for readers; a server that writes stores is of the legacy layout and is upgraded before the database is migrated

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

CREATE TEMP TABLE backstop_m002_back AS
SELECT
    x.*,
    CASE WHEN x.pre_active = 1 AND row_number() OVER (
        PARTITION BY x.l_store_type
        ORDER BY x.pre_active DESC, x.u_created_at DESC, x.vector_store_id DESC
    ) = 1 THEN 1 ELSE 0 END AS l_is_active
FROM (
    SELECT
        v.rowid AS u_rowid,
        v.vector_store_id,
        v.name AS u_name,
        v.session_id AS u_session_id,
        v.provider AS u_provider,
        v.provider_metadata AS u_provider_metadata,
        v.is_protected AS u_is_protected,
        v.is_active AS u_is_active,
        v.created_at AS u_created_at,
        v.expires_at AS u_expires_at,
        v.updated_at AS u_updated_at,
        v.document_count AS u_document_count,
        v.rollover_from AS u_rollover_from,
        c.l_rowid AS l_rowid,
        CASE
            WHEN c.origin IS NOT NULL THEN c.l_store_type
            WHEN v.name GLOB 'project-conversations-*' THEN 'conversation'
            ELSE 'commit'
        END AS l_store_type,
        CASE WHEN c.origin IS NOT NULL THEN c.l_doc_count ELSE coalesce(v.document_count, 0) END AS l_doc_count,
        CASE WHEN c.origin IS NOT NULL THEN c.l_created_at
            ELSE coalesce(strftime('%Y-%m-%dT%H:%M:%S+00:00', v.created_at, 'unixepoch'),
                CAST(v.created_at AS TEXT)) END AS l_created_at,
        CASE
            WHEN c.origin IS NOT NULL THEN c.l_is_active
            WHEN v.is_active THEN 1
            ELSE 0
        END AS pre_active
    FROM main.vector_stores AS v
    LEFT JOIN main.backstop_carry AS c
        ON c.origin = 'stores' AND c.kind = 'pair'
        AND c.vector_store_id = v.vector_store_id
        AND c.u_name IS v.name
        AND c.u_session_id IS v.session_id
        AND c.u_provider IS v.provider
        AND c.u_provider_metadata IS v.provider_metadata
        AND c.u_is_protected IS v.is_protected
        AND c.u_is_active IS v.is_active
        AND c.u_created_at IS v.created_at
        AND c.u_expires_at IS v.expires_at
        AND c.u_updated_at IS v.updated_at
        AND c.u_document_count IS v.document_count
        AND c.u_rollover_from IS v.rollover_from
    WHERE v.name IS NOT NULL AND (
        c.origin IS NOT NULL
        OR v.name GLOB 'project-conversations-*'
        OR v.name GLOB 'project-commits-*'
    )
) AS x;

DROP VIEW IF EXISTS main.active_stores;

CREATE TABLE IF NOT EXISTS stores (
    store_id TEXT PRIMARY KEY,
    store_type TEXT NOT NULL CHECK (store_type IN ('conversation', 'commit')),
    doc_count INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    is_active INTEGER NOT NULL CHECK (is_active IN (0, 1))
);

CREATE UNIQUE INDEX IF NOT EXISTS idx_active_store ON stores(store_type) WHERE is_active = 1;

INSERT INTO stores (rowid, store_id, store_type, doc_count, created_at, is_active)
SELECT
    CASE WHEN b.l_rowid IN (SELECT s.rowid FROM main.stores AS s) THEN NULL ELSE b.l_rowid END,
    b.vector_store_id, b.l_store_type, b.l_doc_count, b.l_created_at, b.l_is_active
FROM temp.backstop_m002_back AS b
ORDER BY b.l_rowid IS NULL, b.l_rowid, b.u_created_at, b.vector_store_id;

CREATE VIEW active_stores AS SELECT store_type, store_id, doc_count FROM stores WHERE is_active = 1;

DELETE FROM main.vector_stores
WHERE vector_store_id IN (SELECT b.vector_store_id FROM temp.backstop_m002_back AS b);

DELETE FROM main.backstop_carry WHERE origin = 'stores' AND kind = 'pair';

INSERT INTO main.backstop_carry (
    origin, kind, vector_store_id, l_rowid, u_rowid,
    l_store_type, l_doc_count, l_created_at, l_is_active,
    u_name, u_session_id, u_provider, u_provider_metadata, u_is_protected, u_is_active,
    u_created_at, u_expires_at, u_updated_at, u_document_count, u_rollover_from
)
SELECT
    'stores', 'pair', b.vector_store_id, s.rowid, b.u_rowid,
    s.store_type, s.doc_count, s.created_at, s.is_active,
    b.u_name, b.u_session_id, b.u_provider, b.u_provider_metadata, b.u_is_protected,
    b.u_is_active, b.u_created_at, b.u_expires_at, b.u_updated_at, b.u_document_count,
    b.u_rollover_from
FROM temp.backstop_m002_back AS b
JOIN main.stores AS s ON s.store_id = b.vector_store_id
ORDER BY s.rowid;

DROP TABLE temp.backstop_m002_back;
