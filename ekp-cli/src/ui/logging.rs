//! Logging with `tracing`: diagnostics go to stderr, results to stdout.
//!
//! The level comes from the global `-v`/`-q` flags: warnings by default,
//! `-v` info (what runs, what is written), `-vv` debug (every iteration),
//! `-vvv` trace; `-q` errors only. `RUST_LOG` (e.g. `RUST_LOG=ekp_cli=debug`),
//! when set, overrides the flags.

use tracing_subscriber::EnvFilter;

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

/// Install the global subscriber (stderr; `RUST_LOG` wins over the flags).
/// A second call does nothing.
pub fn init(verbose: u8, quiet: bool) {
    let filter = match std::env::var("RUST_LOG") {
        Ok(s) if !s.trim().is_empty() => {
            EnvFilter::try_new(&s).unwrap_or_else(|_| EnvFilter::new(level(verbose, quiet)))
        }
        _ => EnvFilter::new(level(verbose, quiet)),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
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
