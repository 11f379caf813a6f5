-- The history table that backstop owns: one row per applied migration.
-- This file is the only definition of the table. The runner executes it (it is idempotent),
-- and CI builds the development database that `cargo sqlx prepare` checks against from it.
CREATE TABLE IF NOT EXISTS _backstop_migrations (
    version      INTEGER PRIMARY KEY NOT NULL,
    description  TEXT    NOT NULL,
    checksum     TEXT    NOT NULL,
    applied_at   TEXT    NOT NULL,
    execution_ms INTEGER NOT NULL,
    method       TEXT    NOT NULL CHECK (method IN ('applied', 'adopted')),
    backup       TEXT
);
