//! A progress bar per ensemble evaluation, on stderr (only when it is a
//! terminal).

use indicatif::{ProgressBar, ProgressStyle};

use crate::driver::Observer;
use crate::error::Result;
use crate::folder::IterationRow;

/// A progress bar over the members of each ensemble evaluation (drawn on
/// stderr, and only when stderr is a terminal).
pub struct Progress {
    bar: Option<ProgressBar>,
    iterations: usize,
}

impl Progress {
    /// A bar for a run of at most `iterations` updates.
    pub fn new(iterations: usize) -> Self {
        Self {
            bar: None,
            iterations,
        }
    }
}

impl Observer for Progress {
    fn evaluation_started(
        &mut self,
        iteration: usize,
        to_run: usize,
        _members: usize,
    ) -> Result<()> {
        let bar = ProgressBar::new(to_run as u64);
        if let Ok(style) = ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {bar:30} {pos}/{len} members",
        ) {
            bar.set_style(style);
        }
        bar.set_prefix(format!("ensemble {iteration}/{}", self.iterations));
        self.bar = Some(bar);
        Ok(())
    }
    fn members_done(&self, k: usize) {
        if let Some(b) = &self.bar {
            b.inc(k as u64);
        }
    }
    fn iteration_done(&mut self, _row: &IterationRow) -> Result<()> {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        Ok(())
    }
}
