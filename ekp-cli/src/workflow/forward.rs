//! `forward`: run members of an iteration of a calibration folder.

use std::path::Path;
use std::time::{Duration, Instant};

use nalgebra::DMatrix;

use crate::config::ModelSpec;
use crate::error::{InputError, Result};
use crate::folder::member::{self, MemberState};
use crate::folder::{ParameterFilesExt, RunFolder, output_dim};
use crate::models::{self, RunOptions, command::CommandEvaluator};

/// What `forward` did.
pub enum Forwarded {
    /// The calibration is complete: nothing to run.
    Complete {
        /// Updates applied.
        iterations: usize,
    },
    /// The member ran.
    Ran {
        /// The folder.
        folder: Box<RunFolder>,
        /// The iteration.
        iteration: usize,
        /// The member (from 1).
        member: usize,
        /// Its recorded state afterwards.
        state: MemberState,
        /// Wall-clock time.
        seconds: f64,
        /// Whether the iteration was already used by an update.
        already_used: bool,
        /// Whether `--member-timeout` was given for a built-in model (it has
        /// no effect there).
        timeout_ignored: bool,
    },
}

/// The member to run: `member`, else `$SLURM_ARRAY_TASK_ID`; 1 to `n`.
pub fn member_number(member: Option<usize>, n: usize) -> Result<usize, InputError> {
    let j = match member {
        Some(j) => j,
        None => match std::env::var("SLURM_ARRAY_TASK_ID") {
            Ok(s) => s.trim().parse::<usize>().map_err(|_| {
                InputError::Argument(format!(
                    "SLURM_ARRAY_TASK_ID = `{}` is not a member number",
                    s.escape_debug()
                ))
            })?,
            Err(_) => {
                return Err(InputError::Argument(
                    "--member J is required (outside a SLURM array job, where it defaults to \
                     $SLURM_ARRAY_TASK_ID)"
                        .into(),
                ));
            }
        },
    };
    if j == 0 || j > n {
        return Err(InputError::Argument(format!(
            "member {j} does not exist: members are numbered 1 to {n}"
        )));
    }
    Ok(j)
}

/// Run member `member` of `iteration` (default: the newest) of `dir` and
/// record its outcome in its folder.
pub fn forward(
    dir: &Path,
    iteration: Option<usize>,
    member: Option<usize>,
    timeout: Option<Duration>,
) -> Result<Forwarded> {
    let folder = RunFolder::open(dir)?;
    let ekp = folder.state()?;
    let current = ekp.iterations();
    let iteration = iteration.unwrap_or(current);
    let member = member_number(member, folder.cal.ensemble_size)?;
    if iteration > current {
        if folder.is_complete(&ekp) {
            return Ok(Forwarded::Complete {
                iterations: current,
            });
        }
        return Err(InputError::Argument(format!(
            "iteration {iteration} has no parameters yet: the newest iteration is {current} \
             (`ekp-cli update --dir {}` makes the next one)",
            dir.display()
        ))
        .into());
    }
    let member_dir = folder.layout.member_dir(iteration, member);
    let params_path = member_dir.join(member::PARAMETERS_FILE);
    if !params_path.is_file() {
        return Err(InputError::Argument(format!(
            "{}: missing (it is written by `init` and `update`)",
            params_path.display()
        ))
        .into());
    }
    let started = Instant::now();
    let mut timeout_ignored = false;
    match &folder.cal.model {
        ModelSpec::Program(spec) => {
            let ev = CommandEvaluator::new(&folder.cal, spec, Some(1), timeout)?;
            crate::driver::Evaluator::run_members(
                &ev,
                &folder,
                iteration,
                &[member],
                &DMatrix::zeros(0, 1),
                &|_| {},
            )?;
        }
        _ => {
            timeout_ignored = timeout.is_some();
            let theta = folder
                .cal
                .parameter_files
                .read(&params_path, &folder.cal.prior)?;
            let (ev, _) = models::evaluator(&folder.cal, &RunOptions::serial())?;
            let params = DMatrix::from_column_slice(theta.len(), 1, &theta);
            ev.run_members(&folder, iteration, &[member], &params, &|_| {})?;
        }
    }
    let state = member::classify(&member_dir, output_dim(&ekp));
    Ok(Forwarded::Ran {
        iteration,
        member,
        state,
        seconds: started.elapsed().as_secs_f64(),
        already_used: iteration < current,
        timeout_ignored,
        folder: Box::new(folder),
    })
}
