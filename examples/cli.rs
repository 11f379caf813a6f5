//! A project's command line, exactly as a project that depends on backstop (with its `cli`
//! feature) writes it in `src/bin/migrate.rs`: every command of `backstop::cli`, for the
//! migrations embedded from `migrations/` (or `--migrations DIR`), on `app.sqlite3` unless
//! told otherwise. The tests run it as a user would.
//!
//! ```sh
//! cargo run --example cli -- status
//! ```
//!
//! (A project also adds the `build.rs` line that makes cargo rebuild when a migration file is
//! added; this library does not carry a build script for its example.)

use backstop::Migrator;

/// The project's settings, shared by its startup code and its command line (in a real project,
/// a function of its library): here, 3 backups kept instead of 10.
fn settings(migrator: Migrator) -> Migrator {
    migrator.keep_backups(3)
}

fn main() -> std::process::ExitCode {
    let migrations = backstop::embed_migrations!("$CARGO_MANIFEST_DIR/migrations");
    backstop::cli::Cli::embedded("migrate", migrations)
        .configure(settings)
        .version(env!("CARGO_PKG_VERSION"))
        .default_database("app.sqlite3")
        .run()
}
