//! MCP The Force's session database, backstop's first user: its migrations are in
//! `migrations/`, its command line is `examples/migrate.rs` (`cargo run --example migrate`
//! from the repository's root), and `tests/sessions` tests the migrations on the four shapes of
//! the database in the field. See this package's README. The crate itself holds no code.
