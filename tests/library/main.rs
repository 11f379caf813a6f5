//! The library on real SQLite files: what each operation does, refuses and leaves behind.

#[path = "../common/mod.rs"]
mod common;

mod add;
mod backups;
mod code_migrations;
mod connections;
mod fleet;
mod layers;
mod litestream;
mod long_lived;
mod migrate;
mod offline_metadata;
mod rollback;
mod source;
mod source_props;
mod spans;
mod sqlx_export;
mod sqlx_import;
mod verify;
mod verify_data;
