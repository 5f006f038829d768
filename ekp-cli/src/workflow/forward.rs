//! `forward`: run members of an iteration of a calibration folder.

use std::path::Path;
use std::time::Instant;

use nalgebra::DMatrix;

use crate::config::ModelSpec;
use crate::error::{InputError, Result};
use crate::folder::member::{self, MemberState};
use crate::folder::{ParameterFilesExt, RunFolder, output_dim};
use crate::models::{self, RunOptions};

/// What `forward` did.
pub enum Forwarded {
    /// The calibration is complete: nothing to run.
    Complete {
        /// Updates applied.
        iterations: usize,
    },
    /// The members ran.
    Ran {
        /// The folder.
        folder: Box<RunFolder>,
        /// The iteration.
        iteration: usize,
        /// Each member (from 1) and its recorded state afterwards.
        members: Vec<(usize, MemberState)>,
        /// Wall-clock time.
        seconds: f64,
        /// Whether the iteration was already used by an update.
        already_used: bool,
        /// Whether `--member-timeout` was given for a built-in model (it has
        /// no effect there).
        timeout_ignored: bool,
    },
}

/// Which members `forward` runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// `--member J`, else `$SLURM_ARRAY_TASK_ID`.
    One(Option<usize>),
    /// `--members A-B` (or a list, `1-4,7,9-10`).
    Many(String),
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
                    "--member J (or --members A-B) is required (outside a SLURM array job, \
                     where --member defaults to $SLURM_ARRAY_TASK_ID)"
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

/// The members of a list such as `5`, `1-10` or `1-4,7,9-10` (each from 1
/// to `n`, ranges ascending), sorted, each once.
pub fn parse_members(spec: &str, n: usize) -> Result<Vec<usize>, InputError> {
    let bad = |why: String| {
        InputError::Argument(format!(
            "--members `{}`: {why} (give A-B, or a list such as 1-4,7,9-10; members are \
             numbered 1 to {n})",
            spec.escape_debug()
        ))
    };
    let number = |s: &str| {
        s.trim().parse::<usize>().map_err(|_| {
            bad(format!(
                "`{}` is not a member number",
                s.trim().escape_debug()
            ))
        })
    };
    let mut members = std::collections::BTreeSet::new();
    for part in spec.split(',') {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (number(a)?, number(b)?),
            None => {
                let a = number(part)?;
                (a, a)
            }
        };
        if a == 0 || b > n {
            return Err(bad(format!("{a}-{b} is outside 1-{n}")));
        }
        if a > b {
            return Err(bad(format!("{a}-{b} is a descending range")));
        }
        members.extend(a..=b);
    }
    Ok(members.into_iter().collect())
}

/// Run the selected members of `iteration` (default: the newest) of `dir`
/// as `options` say, and record their outcomes in their folders.
pub fn forward(
    dir: &Path,
    iteration: Option<usize>,
    selection: &Selection,
    options: &RunOptions,
) -> Result<Forwarded> {
    let (folder, ekp, iteration, members) = match select(dir, iteration, selection)? {
        Selected::Members(s) => *s,
        Selected::Complete(iterations) => return Ok(Forwarded::Complete { iterations }),
    };
    let current = ekp.iterations();
    let params = read_parameters(&folder, iteration, &members)?;
    // A time limit is for the user's program; the SLURM chain passes it
    // whatever the model, so for a built-in model it is noted, not refused.
    let is_program = matches!(folder.cal.model, ModelSpec::Program(_));
    let mut options = options.clone();
    let timeout_ignored = !is_program && options.member_timeout.take().is_some();
    let started = Instant::now();
    let (ev, _) = models::evaluator(&folder.cal, &options)?;
    ev.run_members(&folder, iteration, &members, &params, &|_| {})?;
    drop(ev);
    let states = states_of(&folder, &ekp, iteration, &members);
    Ok(Forwarded::Ran {
        iteration,
        members: states,
        seconds: started.elapsed().as_secs_f64(),
        already_used: iteration < current,
        timeout_ignored,
        folder: Box::new(folder),
    })
}

/// What `forward` selected: the folder, its state, the iteration and the
/// members; or the calibration is complete (updates applied).
enum Selected {
    Members(
        Box<(
            RunFolder,
            ekp_core::EnsembleKalmanProcess,
            usize,
            Vec<usize>,
        )>,
    ),
    Complete(usize),
}

/// Open `dir` and check the iteration and the members `forward` is asked
/// to run.
fn select(dir: &Path, iteration: Option<usize>, selection: &Selection) -> Result<Selected> {
    let folder = RunFolder::open(dir)?;
    let ekp = folder.state()?;
    let current = ekp.iterations();
    let iteration = iteration.unwrap_or(current);
    let n = folder.cal.ensemble_size;
    let members = match selection {
        Selection::One(member) => vec![member_number(*member, n)?],
        Selection::Many(spec) => parse_members(spec, n)?,
    };
    if iteration > current {
        if folder.is_complete(&ekp) {
            return Ok(Selected::Complete(current));
        }
        return Err(InputError::Argument(format!(
            "iteration {iteration} has no parameters yet: the newest iteration is {current} \
             (`ekp-cli update --dir {}` makes the next one)",
            dir.display()
        ))
        .into());
    }
    Ok(Selected::Members(Box::new((
        folder, ekp, iteration, members,
    ))))
}

/// `forward --lost REASON`: run nothing; record each selected member that
/// has no outcome yet as failed with `reason` (the SLURM chain's task that
/// SLURM requeued more often than `--retries` after node failures).
pub fn mark_lost(
    dir: &Path,
    iteration: Option<usize>,
    selection: &Selection,
    reason: &str,
) -> Result<Forwarded> {
    let (folder, ekp, iteration, members) = match select(dir, iteration, selection)? {
        Selected::Members(s) => *s,
        Selected::Complete(iterations) => return Ok(Forwarded::Complete { iterations }),
    };
    if reason.trim().is_empty() {
        return Err(
            InputError::Argument("--lost: give the cause (e.g. \"node failure\")".into()).into(),
        );
    }
    models::launcher::record_lost(&folder, iteration, &members, reason)?;
    let states = states_of(&folder, &ekp, iteration, &members);
    Ok(Forwarded::Ran {
        iteration,
        members: states,
        seconds: 0.0,
        already_used: iteration < ekp.iterations(),
        timeout_ignored: false,
        folder: Box::new(folder),
    })
}

/// Each of `members` (from 1) of `iteration` with its recorded state.
fn states_of(
    folder: &RunFolder,
    ekp: &ekp_core::EnsembleKalmanProcess,
    iteration: usize,
    members: &[usize],
) -> Vec<(usize, MemberState)> {
    let d = output_dim(ekp);
    members
        .iter()
        .map(|&m| {
            (
                m,
                member::classify(&folder.layout.member_dir(iteration, m), d),
            )
        })
        .collect()
}

/// The constrained parameters of `members` of `iteration`, read from their
/// `parameters.toml` (`p × members.len()`).
fn read_parameters(
    folder: &RunFolder,
    iteration: usize,
    members: &[usize],
) -> Result<DMatrix<f64>> {
    let p = folder.cal.prior.dim();
    let mut params = DMatrix::zeros(p, members.len());
    for (i, &m) in members.iter().enumerate() {
        let path = folder
            .layout
            .member_dir(iteration, m)
            .join(member::PARAMETERS_FILE);
        if !path.is_file() {
            return Err(InputError::Argument(format!(
                "{}: missing (it is written by `init` and `update`)",
                path.display()
            ))
            .into());
        }
        let theta = folder.cal.parameter_files.read(&path, &folder.cal.prior)?;
        params.column_mut(i).copy_from_slice(&theta);
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn member_lists_parse_and_are_checked() {
        assert_eq!(parse_members("3", 10).unwrap(), [3]);
        assert_eq!(parse_members("1-4", 10).unwrap(), [1, 2, 3, 4]);
        assert_eq!(parse_members("9-10,1-2,2,5", 10).unwrap(), [1, 2, 5, 9, 10]);
        assert_eq!(parse_members(" 7 - 8 ", 10).unwrap(), [7, 8]);
        for bad in ["0-3", "5-11", "4-2", "", "a-b", "1-", "-3", "1,,2", "1-2-3"] {
            assert!(parse_members(bad, 10).is_err(), "{bad} was accepted");
        }
    }
}
