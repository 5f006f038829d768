//! `update`: one collect-update-checkpoint step of the driver on a
//! calibration folder, optionally after rewinding it to an earlier iteration.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::driver::{Advance, Driver, MissingMembers, Observer};
use crate::error::{InputError, Result};
use crate::folder::{RECORD_FILE, RunFolder, state_text};
use crate::io::{unix_now, write_atomic};

/// What `update` did.
pub enum Updated {
    /// No update: why (after the rewind, if one was asked for).
    Nothing {
        /// Why.
        why: String,
        /// Where later iterations were moved by a rewind.
        rewound: Option<PathBuf>,
    },
    /// An update was applied, or the calibration completed.
    Step {
        /// What the driver did.
        advance: Advance,
        /// Failed or missing members of the iteration, one line each.
        problems: Vec<String>,
        /// Where later iterations were moved by a rewind.
        rewound: Option<PathBuf>,
    },
}

/// The options of one `update`.
#[derive(Debug, Clone, Copy, Default)]
pub struct UpdateOptions {
    /// Apply the update only if the newest iteration is this one.
    pub iteration: Option<usize>,
    /// Rewind to this iteration first.
    pub rewind_to: Option<usize>,
    /// Count members that have not run as failed.
    pub allow_missing: bool,
}

/// Apply one update to the folder `dir` (locked while it runs).
pub fn update(
    dir: &Path,
    options: UpdateOptions,
    observers: Vec<&mut dyn Observer>,
) -> Result<Updated> {
    let (folder, _lock) = super::open_locked(dir, "update")?;
    let rewound = match options.rewind_to {
        Some(k) => Some(rewind(&folder, k)?),
        None => None,
    };
    let ekp = folder.state()?;
    let k = ekp.iterations();
    let complete = folder.is_complete(&ekp);
    if let Some(why) = guard(options.iteration, k, complete)? {
        return Ok(Updated::Nothing { why, rewound });
    }
    if complete {
        return Ok(Updated::Nothing {
            why: format!(
                "the calibration is complete ({k} updates applied; results in {})",
                folder.dir.join("result.toml").display()
            ),
            rewound,
        });
    }
    let d = crate::folder::output_dim(&ekp);
    let states = folder.members(k, d);
    if states
        .iter()
        .all(|s| *s == crate::folder::MemberState::Missing)
    {
        return Ok(Updated::Nothing {
            why: format!(
                "no member of {} has run yet{}",
                folder.layout.iteration_name(k),
                if k > 0 {
                    format!(
                        " (the update of iteration {}'s outputs has already been applied)",
                        k - 1
                    )
                } else {
                    String::new()
                }
            ),
            rewound,
        });
    }
    let mut driver = Driver::new(&folder, observers);
    let missing = if options.allow_missing {
        MissingMembers::AsFailed
    } else {
        MissingMembers::Refuse
    };
    let collected = driver.collect(&ekp, missing)?;
    let problems = collected.problems.clone();
    let advance = driver.advance(ekp, collected)?;
    Ok(Updated::Step {
        advance,
        problems,
        rewound,
    })
}

/// `update --iteration I` in a job chain: why there is nothing to do when
/// the update of `I` was already applied (a repeated job), or bad input when
/// `I` is ahead of the newest iteration `k`.
fn guard(expected: Option<usize>, k: usize, complete: bool) -> Result<Option<String>> {
    let Some(expected) = expected else {
        return Ok(None);
    };
    if expected < k || complete {
        return Ok(Some(format!(
            "the update of iteration {expected} was already applied (the newest iteration is \
             {k}{})",
            if complete {
                ", and the calibration is complete"
            } else {
                ""
            }
        )));
    }
    if expected > k {
        return Err(InputError::Argument(format!(
            "--iteration {expected}: the newest iteration is {k}"
        ))
        .into());
    }
    Ok(None)
}

/// Move the iterations after `k` aside (into `DIR/rewound_<time>_<pid>/`)
/// and make iteration `k`'s saved state the current one. Works from the
/// per-iteration states alone (the top `state.toml` may be damaged), and is
/// safe to interrupt and repeat: the state is replaced first, then the later
/// iterations are moved, newest first.
pub fn rewind(folder: &RunFolder, k: usize) -> Result<PathBuf> {
    let snapshot_path = folder.iteration_state_path(k);
    if !snapshot_path.exists() {
        return Err(InputError::Argument(format!(
            "--rewind-to {k}: {} does not exist (no such iteration)",
            snapshot_path.display()
        ))
        .into());
    }
    let snapshot = folder.read_state(&snapshot_path)?;
    if snapshot.iterations() != k {
        return Err(InputError::Invalid {
            file: snapshot_path.display().to_string(),
            key: "dt".into(),
            message: format!(
                "holds the state after {} updates, not {k}",
                snapshot.iterations()
            ),
        }
        .into());
    }
    // The commit: iteration k is the current one. Later iteration folders
    // are then leftovers, moved aside below (a repeat moves what is left).
    write_atomic(&folder.state_path(), state_text(&snapshot)?.as_bytes())?;
    let aside = folder
        .dir
        .join(format!("rewound_{}_{}", unix_now(), std::process::id()));
    std::fs::create_dir_all(&aside)
        .with_context(|| format!("{}: cannot create", aside.display()))?;
    let record = folder.layout.iteration_dir(k).join(RECORD_FILE);
    if record.exists() {
        let to = aside.join(format!("{}_{RECORD_FILE}", folder.layout.iteration_name(k)));
        std::fs::rename(&record, &to)
            .with_context(|| format!("cannot move {}", record.display()))?;
    }
    let mut later: Vec<usize> = Vec::new();
    let mut it = k + 1;
    while folder.layout.iteration_dir(it).exists() {
        later.push(it);
        it += 1;
    }
    for it in later.into_iter().rev() {
        let from = folder.layout.iteration_dir(it);
        let to = aside.join(folder.layout.iteration_name(it));
        std::fs::rename(&from, &to)
            .with_context(|| format!("cannot move {} to {}", from.display(), to.display()))?;
    }
    Ok(aside)
}
