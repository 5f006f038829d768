//! Logging with `tracing`: diagnostics go to stderr, results to stdout.
//!
//! The level comes from the global `-v`/`-q` flags: warnings by default,
//! `-v` info (what runs, what is written), `-vv` debug (every iteration),
//! `-vvv` trace; `-q` errors only. `RUST_LOG` (e.g. `RUST_LOG=ekp_cli=debug`),
//! when set, overrides the flags. Lines carry a timestamp from `-vv` on
//! (a person reading warnings does not need microseconds). Colour follows
//! `--color`: `auto` (the default) colours a terminal unless `NO_COLOR` is
//! set and not empty (<https://no-color.org>); `always` and `never` decide.

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

/// `--color`: when log lines on stderr are coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless `NO_COLOR` is set.
    #[default]
    Auto,
    /// Always (even into a file or pipe, even with `NO_COLOR`).
    Always,
    /// Never.
    Never,
}

impl ColorChoice {
    /// Whether to colour stderr, given whether it is a terminal and the
    /// value of `NO_COLOR`.
    pub fn colour(self, terminal: bool, no_color: Option<&str>) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => terminal && no_color.is_none_or(str::is_empty),
        }
    }

    /// [`colour`](Self::colour) for this process's stderr and environment.
    pub fn colour_stderr(self) -> bool {
        let no_color = std::env::var("NO_COLOR").ok();
        self.colour(
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
            no_color.as_deref(),
        )
    }
}

/// The filter directive for `verbose` `-v`s and `quiet`.
pub fn level(verbose: u8, quiet: bool) -> &'static str {
    if quiet {
        return "error";
    }
    match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    }
}

/// Install the global subscriber (stderr; `RUST_LOG` wins over the flags)
/// and record `-q` for [`super::note`]. A second call does nothing.
pub fn init(verbose: u8, quiet: bool, color: ColorChoice) {
    super::set_quiet(quiet);
    let filter = match std::env::var("RUST_LOG") {
        Ok(s) if !s.trim().is_empty() => {
            EnvFilter::try_new(&s).unwrap_or_else(|_| EnvFilter::new(level(verbose, quiet)))
        }
        _ => EnvFilter::new(level(verbose, quiet)),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(super::progress::AboveBar)
        .with_ansi(color.colour_stderr())
        .with_target(false);
    let _ = if verbose >= 2 && !quiet {
        builder.try_init()
    } else {
        builder.without_time().try_init()
    };
}

/// Logs each iteration of a run at debug level (`-vv`).
pub struct LogObserver;

impl crate::driver::Observer for LogObserver {
    fn evaluation_started(
        &mut self,
        iteration: usize,
        to_run: usize,
        members: usize,
    ) -> crate::error::Result<()> {
        tracing::debug!(iteration, to_run, members, "evaluating ensemble");
        Ok(())
    }
    fn iteration_done(&mut self, row: &crate::folder::IterationRow) -> crate::error::Result<()> {
        tracing::debug!(
            iteration = row.iteration,
            dt = row.dt,
            loss = row.metrics.loss,
            failed = row.failed.len(),
            "ensemble done"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_color_is_honoured_only_by_auto() {
        assert!(ColorChoice::Auto.colour(true, None));
        assert!(ColorChoice::Auto.colour(true, Some("")));
        assert!(!ColorChoice::Auto.colour(true, Some("1")));
        assert!(!ColorChoice::Auto.colour(false, None));
        assert!(ColorChoice::Always.colour(false, Some("1")));
        assert!(!ColorChoice::Never.colour(true, None));
    }
}
