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

fn main() -> std::process::ExitCode {
    let migrations = backstop::embed_migrations!("$CARGO_MANIFEST_DIR/migrations");
    backstop::cli::Cli::embedded("migrate", migrations)
        .default_database("app.sqlite3")
        .run()
}
