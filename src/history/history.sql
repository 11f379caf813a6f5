-- The history table that backstop owns: one row per applied migration.
-- This file is the only definition of the table. The runner executes it (it is idempotent),
-- and CI builds the development database that `cargo sqlx prepare` checks against from it.
--
-- superseded_by: a later migration of the same run that removed this one's effect (its probe
--   went from 1 to 0), so that `status` does not count it as drift.
-- rollback_sql, probe_sql: the migration's rollback script and probe as they were when it was
--   applied, so that an older build, which lacks the migration's files, can roll it back.
CREATE TABLE IF NOT EXISTS _backstop_migrations (
    version       INTEGER PRIMARY KEY NOT NULL,
    description   TEXT    NOT NULL,
    checksum      TEXT    NOT NULL,
    applied_at    TEXT    NOT NULL,
    execution_ms  INTEGER NOT NULL,
    method        TEXT    NOT NULL CHECK (method IN ('applied', 'adopted', 'imported')),
    backup        TEXT,
    superseded_by INTEGER,
    rollback_sql  TEXT,
    probe_sql     TEXT
);
