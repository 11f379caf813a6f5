//! The command line (`examples/cli.rs`, a project's `backstop::cli`), run as a user runs it:
//! its commands and arguments, concurrent processes, and the catalogue of bad input.

#[path = "../common/mod.rs"]
mod common;

mod bad_input;
mod cli;
mod cli_database;
mod fleet;
mod output;
mod processes;
mod settings;
