//! Fleets: one operation over many databases (one file per tenant, user or session), a bounded
//! number at a time, each exactly as the operation does it alone: its own pool, backup, lock
//! and transaction. A fleet is not one transaction: a failure in one database never touches
//! another, and running the fleet again does only what is still pending.

mod report;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use tracing::Instrument;

use crate::error::Error;

pub use report::{FleetEntry, FleetOutcome, FleetReport};

/// One database of a fleet: a file path, or connect options of one (for instance with a key
/// or a VFS of its own). The connect options' busy timeout is replaced by the migrator's; a
/// missing file is that database's error, never created.
///
/// A path costs its bytes until its turn comes: connect options are only built then, so that
/// a fleet of many thousands holds little more than their names.
#[derive(Debug, Clone)]
pub struct FleetDatabase {
    given: Given,
}

#[derive(Debug, Clone)]
enum Given {
    Path(PathBuf),
    Options(Box<SqliteConnectOptions>),
}

impl FleetDatabase {
    /// The database as reports name it: the file the options point to.
    pub fn path(&self) -> &Path {
        match &self.given {
            Given::Path(path) => path,
            Given::Options(options) => options.get_filename(),
        }
    }

    /// Whether the file is there: a fleet never creates a database, and names the one missing.
    fn exists(&self) -> Result<(), Error> {
        match std::fs::metadata(self.path()) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::Io {
                path: self.path().to_owned(),
                cause: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no such database file (a fleet never creates one)",
                ),
            }),
            _ => Ok(()),
        }
    }

    /// A pool on it for one operation: one connection (an operation never holds two: with
    /// room for a second, the one just given back is still on its way to the pool when the
    /// next read asks, and a second is opened), none opened until the operation asks, closed
    /// when it ends.
    fn pool(&self, busy_timeout: Duration) -> SqlitePool {
        let options = match &self.given {
            Given::Path(path) => SqliteConnectOptions::new().filename(path),
            Given::Options(options) => (**options).clone(),
        };
        let options =
            crate::connection::quiet(options.create_if_missing(false).busy_timeout(busy_timeout));
        SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .connect_lazy_with(options)
    }
}

impl From<SqliteConnectOptions> for FleetDatabase {
    fn from(options: SqliteConnectOptions) -> Self {
        FleetDatabase {
            given: Given::Options(Box::new(options)),
        }
    }
}

impl From<PathBuf> for FleetDatabase {
    fn from(path: PathBuf) -> Self {
        FleetDatabase {
            given: Given::Path(path),
        }
    }
}

impl From<&Path> for FleetDatabase {
    fn from(path: &Path) -> Self {
        path.to_owned().into()
    }
}

impl From<&PathBuf> for FleetDatabase {
    fn from(path: &PathBuf) -> Self {
        path.clone().into()
    }
}

impl From<&str> for FleetDatabase {
    fn from(path: &str) -> Self {
        Path::new(path).into()
    }
}

/// How a fleet runs: how many databases at once, whether a failure stops the rest, how many go
/// first, one at a time, as canaries.
#[derive(Clone)]
pub struct FleetOptions {
    jobs: usize,
    keep_going: bool,
    canary: usize,
    progress: Option<Arc<dyn Fn(FleetProgress) + Send + Sync>>,
}

impl std::fmt::Debug for FleetOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetOptions")
            .field("jobs", &self.jobs)
            .field("keep_going", &self.keep_going)
            .field("canary", &self.canary)
            .finish_non_exhaustive()
    }
}

impl Default for FleetOptions {
    /// As many databases at once as the machine has CPUs; the first failure stops starting
    /// others; no canary.
    fn default() -> Self {
        FleetOptions {
            jobs: std::thread::available_parallelism().map_or(1, usize::from),
            keep_going: false,
            canary: 0,
            progress: None,
        }
    }
}

impl FleetOptions {
    /// At most `jobs` databases at once (at least one). Connections, descriptors and memory
    /// are bounded by it, not by the fleet's size.
    pub fn jobs(mut self, jobs: usize) -> Self {
        self.jobs = jobs.max(1);
        self
    }

    /// Goes on after a database fails. Without it, the first failure stops starting new
    /// databases (those under way finish), and the rest are reported
    /// [`FleetOutcome::NotStarted`].
    pub fn keep_going(mut self) -> Self {
        self.keep_going = true;
        self
    }

    /// The first `n` databases, in the order given, run one at a time before any other starts;
    /// if one of them fails, no other starts (whatever [`keep_going`](Self::keep_going) says).
    pub fn canary(mut self, n: usize) -> Self {
        self.canary = n;
        self
    }

    /// Calls `progress` after each database ends.
    pub fn on_progress(mut self, progress: impl Fn(FleetProgress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(progress));
        self
    }
}

/// Where a fleet is, after a database ended ([`FleetOptions::on_progress`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct FleetProgress {
    /// Databases that ended, well or not.
    pub done: usize,
    /// Of those, the ones that failed.
    pub failed: usize,
    /// Databases in the fleet.
    pub total: usize,
}

/// Runs `work` on each database, as `options` say, and reports each outcome in the order
/// given.
pub(crate) async fn each<T>(
    databases: Vec<FleetDatabase>,
    options: &FleetOptions,
    busy_timeout: Duration,
    work: impl AsyncFn(&SqlitePool) -> Result<T, Error>,
) -> FleetReport<T> {
    let span = tracing::info_span!("fleet", databases = databases.len(), jobs = options.jobs);
    run(databases, options, busy_timeout, work)
        .instrument(span)
        .await
}

async fn run<T>(
    databases: Vec<FleetDatabase>,
    options: &FleetOptions,
    busy_timeout: Duration,
    work: impl AsyncFn(&SqlitePool) -> Result<T, Error>,
) -> FleetReport<T> {
    let total = databases.len();
    let mut outcomes: Vec<Option<Result<T, Error>>> = (0..total).map(|_| None).collect();
    let mut progress = FleetProgress {
        done: 0,
        failed: 0,
        total,
    };
    let one = async |i: usize| {
        let db = &databases[i];
        if let Err(missing) = db.exists() {
            return (i, Err(missing));
        }
        let pool = db.pool(busy_timeout);
        let outcome = work(&pool).await;
        pool.close().await;
        (i, outcome)
    };
    let mut record = |(i, outcome): (usize, Result<T, Error>)| {
        progress.done += 1;
        let failed = outcome.is_err();
        if let Err(e) = &outcome {
            progress.failed += 1;
            tracing::info!(database = %databases[i].path().display(), kind = e.kind(), error = %e, "failed");
        }
        if let Some(report) = &options.progress {
            report(progress);
        }
        outcomes[i] = Some(outcome);
        failed
    };

    let canary = options.canary.min(total);
    let mut stopped = false;
    for i in 0..canary {
        if record(one(i).await) {
            stopped = true;
            break;
        }
    }
    let mut next = canary;
    let mut running = FuturesUnordered::new();
    loop {
        while !stopped && running.len() < options.jobs && next < total {
            running.push(one(next));
            next += 1;
        }
        match running.next().await {
            Some(ended) => stopped |= record(ended) && !options.keep_going,
            None => break,
        }
    }
    drop(running);
    let report = FleetReport::new(databases, outcomes);
    tracing::info!(
        ok = report.ok(),
        failed = report.failed(),
        not_started = report.not_started(),
        "fleet done"
    );
    report
}
