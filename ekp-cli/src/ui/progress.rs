//! A progress bar per ensemble evaluation, on stderr (only when it is a
//! terminal). Log lines written while it is drawn go through
//! [`write_above`]: the bar is lifted, the line printed, the bar redrawn,
//! so logs never tear it or leave stale copies behind.

use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};

/// The bar being drawn, if any (log lines are written above it).
static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);

fn set_active(bar: Option<ProgressBar>) {
    if let Ok(mut a) = ACTIVE.lock() {
        *a = bar;
    }
}

/// Write `bytes` to stderr above the progress bar being drawn (or plainly,
/// when there is none).
pub fn write_above(bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let bar = ACTIVE.lock().ok().and_then(|a| a.clone());
    let write = || std::io::stderr().lock().write_all(bytes);
    match bar {
        Some(b) => b.suspend(write),
        None => write(),
    }
}

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
        set_active(Some(bar.clone()));
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
            set_active(None);
            b.finish_and_clear();
        }
        Ok(())
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(b) = self.bar.take() {
            set_active(None);
            b.finish_and_clear();
        }
    }
}

/// stderr for the log subscriber: every line is written above the bar.
#[derive(Debug, Clone, Copy, Default)]
pub struct AboveBar;

impl std::io::Write for AboveBar {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        write_above(buf)?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::Write::flush(&mut std::io::stderr())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for AboveBar {
    type Writer = AboveBar;
    fn make_writer(&'a self) -> Self::Writer {
        AboveBar
    }
}
