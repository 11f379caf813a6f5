//! The operations, one per command of the command line, each over the run's machinery
//! ([`run`](crate::run)): `migrate`, `status`, `rollback` and `restore`, `backup` (on demand),
//! `import-sqlx` and `export-sqlx`, `verify` and `add`.

pub(crate) mod add;
pub(crate) mod backup;
pub(crate) mod export_sqlx;
pub(crate) mod import_sqlx;
pub(crate) mod migrate;
pub(crate) mod rollback;
pub(crate) mod status;
pub(crate) mod verify;
