//! A progress bar on stderr for backups and restores that take more than a second.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::BackupProgress;

#[derive(Clone, Default)]
pub(crate) struct Progress(Arc<Mutex<State>>);

#[derive(Default)]
struct State {
    started: Option<Instant>,
    bar: Option<ProgressBar>,
}

impl Progress {
    pub fn update(&self, progress: BackupProgress) {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let started = *state.started.get_or_insert_with(Instant::now);
        if state.bar.is_none() && started.elapsed() > Duration::from_secs(1) {
            let bar = ProgressBar::new(progress.total_pages);
            bar.set_style(
                ProgressStyle::with_template("backup {bar:40} {percent:>3}% ({pos}/{len} pages)")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            state.bar = Some(bar);
        }
        if let Some(bar) = &state.bar {
            bar.set_length(progress.total_pages);
            bar.set_position(progress.copied_pages);
        }
    }

    pub fn finish(&self) {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bar) = state.bar.take() {
            bar.finish_and_clear();
        }
        state.started = None;
    }
}
