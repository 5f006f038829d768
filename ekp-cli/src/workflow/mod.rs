//! The file workflow (EKP.jl's "HPC interface", done for the user): a
//! calibration folder (see `crate::folder`) that separate processes — a
//! shell loop, SLURM array jobs — move forward one step at a time.
//!
//! - [`init`] validates the calibration, draws the initial ensemble and
//!   makes the folder with iteration 0's parameter files and the state.
//! - [`forward`] runs members of an iteration (a `command` model's program,
//!   or a built-in model in-process) and records their outcomes; a failed
//!   member is recorded and `forward` still succeeds, so one bad member
//!   never stops a chain.
//! - [`update`] applies the driver's collect-update-checkpoint step to the
//!   newest iteration (or completes the calibration after the last one),
//!   optionally after rewinding to an earlier iteration.
//! - [`status`] gathers what `ekp-cli status` shows.
//!
//! Nothing here prints: the commands do.

pub mod forward;
pub mod init;
pub mod run;
pub mod status;
pub mod update;

use std::path::Path;

use crate::error::{Error, Result};
use crate::folder::lock::LockGuard;
use crate::folder::{LOCK_FILE, RunFolder};

/// Open `dir` and take its lock for `what` (`update`, `run`, ...): a
/// second command that changes the folder is kept out until the guard drops.
pub fn open_locked(dir: &Path, what: &str) -> Result<(RunFolder, LockGuard)> {
    let folder = RunFolder::open(dir)?;
    let lock = LockGuard::acquire(&folder.dir.join(LOCK_FILE), what).map_err(Error::Runtime)?;
    Ok((folder, lock))
}
