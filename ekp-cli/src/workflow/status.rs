//! `status`: what a calibration folder holds, gathered for printing.

use std::path::Path;

use ekp_core::EnsembleKalmanProcess;

use crate::error::{InputError, Result};
use crate::folder::{IterationRow, MemberState, RecordKind, RunFolder, output_dim};

/// Everything `ekp-cli status` shows.
pub struct Status {
    /// The folder.
    pub folder: RunFolder,
    /// Its current process.
    pub ekp: EnsembleKalmanProcess,
    /// Whether the calibration is complete.
    pub complete: bool,
    /// The iteration whose members are shown.
    pub shown: usize,
    /// Its members' states.
    pub members: Vec<MemberState>,
    /// The rows of every evaluated ensemble (the final one included once complete).
    pub rows: Vec<IterationRow>,
}

/// Read the status of `dir`, showing the members of `iteration` (default: the newest).
pub fn status(dir: &Path, iteration: Option<usize>) -> Result<Status> {
    let folder = RunFolder::open(dir)?;
    let ekp = folder.state()?;
    let k = ekp.iterations();
    let shown = iteration.unwrap_or(k);
    if shown > k {
        return Err(InputError::Argument(format!(
            "--iteration {shown}: the newest iteration is {k}"
        ))
        .into());
    }
    let last = folder.record(k).filter(|r| r.kind == RecordKind::Final);
    let complete = last.is_some();
    let rows = folder.rows(&ekp, last.as_ref());
    let members = folder.members(shown, output_dim(&ekp));
    Ok(Status {
        folder,
        ekp,
        complete,
        shown,
        members,
        rows,
    })
}
