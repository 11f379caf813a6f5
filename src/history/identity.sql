-- The database's identity: a random value that the first run backing the database up writes
-- in its transaction. Every backup taken after holds it; the backup taken by that first run
-- (before the database had it) is named in first_backup. A backup is so known to be this
-- database's by what it and the database hold, not only by its file's name. The table stays
-- at version 0, and a restore keeps it. One row.
CREATE TABLE IF NOT EXISTS _backstop_database (
    identity     TEXT NOT NULL,
    first_backup TEXT
);
