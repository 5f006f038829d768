//! What a person sees: the progress bar ([`progress`]), the per-iteration
//! table ([`table`]), logs ([`logging`]) and the prior table ([`prior`]).
//! Observers here hang off the driver; the commands create them.

pub mod logging;
pub mod prior;
pub mod progress;
pub mod table;
