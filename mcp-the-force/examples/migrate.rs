//! This repository's command line: `cargo run --example migrate -- [OPTIONS] <COMMAND>`.
//!
//! The migrations of MCP The Force, embedded, with its session database as the default; every
//! command is `backstop::cli`'s. A project of its own writes the same lines in
//! `src/bin/migrate.rs` (with backstop's `cli` feature).

fn main() -> std::process::ExitCode {
    let migrations = backstop::embed_migrations!("$CARGO_MANIFEST_DIR/migrations");
    backstop::cli::Cli::embedded("migrate", migrations)
        .version(env!("CARGO_PKG_VERSION"))
        .default_database(".mcp-the-force/sessions.sqlite3")
        .run()
}
