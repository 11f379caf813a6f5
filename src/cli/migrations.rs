//! Where the command line finds its migrations (`--migrations DIR`, else the program's), and
//! where `add` writes a new one.

use std::path::PathBuf;

use super::Cli;
use super::args::Args;
use super::output::{CliError, CliKind, Failure};
use crate::{Error, Source};

/// Where the command line finds its migrations.
pub(super) enum Migrations {
    /// Embedded at build time ([`embed_migrations!`](crate::embed_migrations)), or given.
    Embedded(Box<Result<Source, Error>>),
    /// A directory read at run time.
    Dir(PathBuf),
}

impl Cli {
    /// The migrations: `--migrations DIR`, else the program's.
    pub(super) fn source(&self, args: &Args) -> Result<Source, Failure> {
        match (&args.migrations, &self.migrations) {
            (Some(dir), _) | (None, Migrations::Dir(dir)) => Ok(Source::from_dir(dir)?),
            (None, Migrations::Embedded(source)) => match source.as_ref() {
                Ok(source) => Ok(source.clone()),
                Err(e) => Err(Failure::Reported {
                    kind: e.kind(),
                    message: e.to_string(),
                }),
            },
        }
    }

    /// Where `add` writes: `--migrations`, else the directory the program's migrations come
    /// from, never another (a `migrations/` that happens to be in the working directory).
    pub(super) fn add_dir(&self, args: &Args) -> Result<PathBuf, CliError> {
        let refuse = |why: String| {
            Err(CliError::new(
                CliKind::MigrationsDir,
                format!("{why}: pass --migrations DIR to say where the new migration goes"),
            ))
        };
        match (&args.migrations, &self.migrations) {
            (Some(dir), _) | (None, Migrations::Dir(dir)) => Ok(dir.clone()),
            (None, Migrations::Embedded(source)) => match source.as_ref() {
                Ok(source) => match source.dir() {
                    Some(dir) if dir.is_dir() => Ok(dir.to_owned()),
                    Some(dir) => refuse(format!(
                        "the program's migrations were embedded from {}, which is not on this \
                         machine",
                        dir.display()
                    )),
                    None => {
                        refuse("the program does not say where its migrations come from".into())
                    }
                },
                Err(e) => refuse(format!("the program's migrations do not load ({e})")),
            },
        }
    }
}
