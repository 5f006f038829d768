//! What a person sees: the progress bar ([`progress`]), the per-iteration
//! table ([`table`]), logs ([`logging`]), the prior table ([`prior`]), and
//! notes on stderr that `-q` silences ([`note`]). Numbers are formatted by
//! [`crate::report::number`] (the report uses it too). Observers here hang
//! off the driver; the commands create them.

pub mod logging;
pub mod prior;
pub mod progress;
pub mod table;

use std::sync::atomic::{AtomicBool, Ordering};

static QUIET: AtomicBool = AtomicBool::new(false);

/// Set by `-q`: only errors reach stderr, only results stdout.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// Whether `-q` was given.
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// A line for the user on stderr that is not an error (`note: …`,
/// failed-member summaries); `-q` silences it.
pub fn note(text: &str) {
    if !quiet() {
        eprintln!("{text}");
    }
}
