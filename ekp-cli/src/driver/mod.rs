//! The one calibration step, as an executor over `ekp-core`'s ask/tell
//! process (argmin's shape: the process never runs the loop):
//!
//! 1. **evaluate** — run the members of the current iteration that have no
//!    recorded outcome yet ([`Evaluator`], implemented in the `models` layer);
//!    each outcome is recorded in its member folder as it finishes;
//! 2. **collect** — read every member's outcome back from the folder
//!    ([`Driver::collect`]): the outputs `g` (`d × N`), failed and missing
//!    members;
//! 3. **update** — judge the outputs against all the data, then update the
//!    process, or complete the calibration after the last iteration (or
//!    when the scheduler stops);
//! 4. **checkpoint** — write the next iteration's files, the record and the
//!    state (in the order `crate::folder` documents), or the results.
//!
//! `run` repeats all four; the file workflow's `forward` does 1 for one
//! member and `update` does 2–4 (so a SLURM chain, a shell loop and `run`
//! give the same bytes). [`Observer`]s — progress, the table, logs, the
//! report — hang off the driver and see every step.

use ekp_core::{EnsembleKalmanProcess, Observation, UpdateOutcome};
use nalgebra::{DMatrix, DVector};

use crate::config::Calibration;
use crate::error::{Error, InputError, Result};
use crate::folder::{
    self, IterationRow, MemberState, ParameterFilesExt, RecordKind, RunFolder, UpdateRecord,
    member, results, tables,
};
use crate::io::{content_hash, unix_now, write_atomic};

/// Testing hook: `EKP_FAULT_INJECTION=update-before-commit` makes the
/// update abort (as if killed) after writing the next iteration's files and
/// before replacing `state.toml`.
pub const FAULT_ENV: &str = "EKP_FAULT_INJECTION";

/// Hooks called by the [`Driver`] as a calibration goes. Each may fail (a
/// report that cannot be written stops the command with that error).
pub trait Observer: Send + Sync {
    /// Before the members of ensemble `iteration` run: `to_run` of its
    /// `members` (the others finished before an interruption).
    fn evaluation_started(
        &mut self,
        _iteration: usize,
        _to_run: usize,
        _members: usize,
    ) -> Result<()> {
        Ok(())
    }
    /// `k` more members of the current evaluation finished (may come from any thread).
    fn members_done(&self, _k: usize) {}
    /// After ensemble `row.iteration` was evaluated, and updated if `row.dt` is set.
    fn iteration_done(&mut self, _row: &IterationRow) -> Result<()> {
        Ok(())
    }
    /// After the calibration completed (its result files are written).
    fn completed(&mut self, _done: &Completion<'_>) -> Result<()> {
        Ok(())
    }
}

/// A completed calibration, as observers see it.
pub struct Completion<'a> {
    /// The folder.
    pub folder: &'a RunFolder,
    /// The process, with its whole history.
    pub ekp: &'a EnsembleKalmanProcess,
    /// The outputs of the final ensemble.
    pub final_g: &'a DMatrix<f64>,
    /// One row per ensemble, the initial one first.
    pub rows: &'a [IterationRow],
    /// Whether the scheduler stopped the run before `iterations` updates.
    pub terminated_early: bool,
}

/// Runs members of one iteration of a calibration folder and records each
/// outcome in its member folder (`output.toml`, `status.toml`).
pub trait Evaluator: Sync {
    /// Run `members` (numbered from 1) of `iteration`, whose constrained
    /// parameters are the columns of `params` (`p × members.len()`), calling
    /// `progress(k)` as `k` more finish. A member that fails is recorded as
    /// failed; an error means the evaluation itself could not go on.
    fn run_members(
        &self,
        folder: &RunFolder,
        iteration: usize,
        members: &[usize],
        params: &DMatrix<f64>,
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<()>;
}

/// What `collect` does with members that have no outcome yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingMembers {
    /// Refuse (bad input, listing them): the update waits for them.
    Refuse,
    /// Count them as failed (`update --allow-missing`).
    AsFailed,
}

/// The outcomes of an iteration's members, read from the folder.
#[derive(Debug, Clone)]
pub struct Collected {
    /// Which iteration.
    pub iteration: usize,
    /// The outputs, `d × N` (NaN columns for members without usable outputs).
    pub g: DMatrix<f64>,
    /// How many members have outputs.
    pub done: usize,
    /// Members (from 1) with no outcome yet.
    pub missing: Vec<usize>,
    /// One line per failed or missing member: `iteration_000/member_004: why`.
    pub problems: Vec<String>,
}

/// What [`Driver::advance`] did.
#[derive(Debug)]
pub enum Advance {
    /// The update was applied and checkpointed: the next iteration's files
    /// and the state are written.
    Updated {
        /// The process after the update.
        next: Box<EnsembleKalmanProcess>,
        /// The record of the update.
        record: UpdateRecord,
    },
    /// The calibration completed: the result files are written.
    Completed {
        /// The final process (its last ensemble evaluated, not updated).
        ekp: Box<EnsembleKalmanProcess>,
        /// The record of the completion.
        record: UpdateRecord,
        /// Whether the scheduler stopped before `process.iterations` updates.
        terminated_early: bool,
    },
}

/// The process a calibration starts from (EKP.jl's warnings about the
/// ensemble size are logged).
pub fn start(cal: &Calibration, observation: Observation) -> Result<EnsembleKalmanProcess> {
    let ekp = cal
        .builder(observation)
        .and_then(|b| b.build())
        .map_err(|e| InputError::Invalid {
            file: cal.source.clone(),
            key: "process".into(),
            message: e.to_string(),
        })?;
    for w in ekp.warnings() {
        tracing::warn!("{}: {w}", cal.source);
    }
    Ok(ekp)
}

/// Members (from 1) of `iteration` that have no recorded outcome: the ones
/// an evaluation (or a resumed one) still has to run.
pub fn pending(folder: &RunFolder, iteration: usize) -> Vec<usize> {
    (1..=folder.cal.ensemble_size)
        .filter(|j| member::MemberRecord::read(&folder.layout.member_dir(iteration, *j)).is_none())
        .collect()
}

/// Drives a calibration folder one step at a time.
pub struct Driver<'f, 'o> {
    folder: &'f RunFolder,
    observers: Vec<&'o mut dyn Observer>,
}

impl<'f, 'o> Driver<'f, 'o> {
    /// A driver of `folder` with `observers`.
    pub fn new(folder: &'f RunFolder, observers: Vec<&'o mut dyn Observer>) -> Self {
        Self { folder, observers }
    }

    /// Step 1: run the members of `ekp`'s current iteration that have no
    /// recorded outcome.
    pub fn evaluate(
        &mut self,
        ekp: &EnsembleKalmanProcess,
        evaluator: &dyn Evaluator,
    ) -> Result<()> {
        let k = ekp.iterations();
        let todo = pending(self.folder, k);
        for o in self.observers.iter_mut() {
            o.evaluation_started(k, todo.len(), ekp.ensemble_size())?;
        }
        if todo.is_empty() {
            return Ok(());
        }
        let all = ekp.constrained_ensemble();
        let params = DMatrix::from_fn(all.nrows(), todo.len(), |i, c| all[(i, todo[c] - 1)]);
        let observers: &[&mut dyn Observer] = &self.observers;
        let progress = |n: usize| {
            for o in observers {
                o.members_done(n);
            }
        };
        evaluator.run_members(self.folder, k, &todo, &params, &progress)
    }

    /// Members (from 1) of iteration `k` whose outcome was computed from
    /// parameters other than the ones ekp wrote for them (a hand-edited
    /// `parameters.toml`): their outputs cannot be paired with the member.
    fn edited_parameters(&self, ekp: &EnsembleKalmanProcess, k: usize) -> Vec<usize> {
        let theta = ekp.constrained_ensemble();
        let f = self.folder;
        (1..=ekp.ensemble_size())
            .filter(|&j| {
                let col: Vec<f64> = theta.column(j - 1).iter().copied().collect();
                let expected = content_hash(
                    f.cal
                        .parameter_files
                        .render(ekp.prior(), &col, k, j)
                        .as_bytes(),
                );
                let dir = f.layout.member_dir(k, j);
                let ran_with = match member::MemberRecord::read(&dir) {
                    Some(Ok(r)) => r.parameters_hash,
                    _ if dir.join(member::OUTPUT_FILE).exists() => {
                        std::fs::read(dir.join(member::PARAMETERS_FILE))
                            .ok()
                            .map(|b| content_hash(&b))
                    }
                    _ => None,
                };
                ran_with.is_some_and(|h| h != expected)
            })
            .collect()
    }

    /// Refuse (bad input) when members ran with edited parameter files.
    fn refuse_edited_parameters(&self, ekp: &EnsembleKalmanProcess, k: usize) -> Result<()> {
        let edited = self.edited_parameters(ekp, k);
        if edited.is_empty() {
            return Ok(());
        }
        Err(InputError::Argument(format!(
            "{}: members {} ran with a parameters.toml that is not the one ekp wrote for \
                 them (edited by hand?), so their outputs cannot be paired with the ensemble. \
                 Restore the files and run the members again (`ekp-cli update --rewind-to {k}` \
                 rewrites them). Nothing was changed.",
            self.folder.layout.iteration_name(k),
            compress(&edited)
        ))
        .into())
    }

    /// Step 2: every member's outcome in `ekp`'s current iteration.
    pub fn collect(
        &self,
        ekp: &EnsembleKalmanProcess,
        missing: MissingMembers,
    ) -> Result<Collected> {
        let k = ekp.iterations();
        self.refuse_edited_parameters(ekp, k)?;
        let d = folder::output_dim(ekp);
        let n = ekp.ensemble_size();
        let layout = &self.folder.layout;
        let mut g = DMatrix::from_element(d, n, f64::NAN);
        let (mut done, mut absent, mut problems) = (0usize, Vec::new(), Vec::new());
        let mut malformed = false;
        for (j, s) in self.folder.members(k, d).into_iter().enumerate() {
            let label = layout.member_label(k, j + 1);
            match s {
                MemberState::Done(v) => {
                    g.set_column(j, &DVector::from_vec(v));
                    done += 1;
                }
                MemberState::Failed {
                    reason,
                    malformed: m,
                    values,
                } => {
                    // Non-finite outputs go to the process as they are: its NaN
                    // tolerance decides whether the member failed.
                    if let Some(v) = values {
                        g.set_column(j, &DVector::from_vec(v));
                    }
                    malformed |= m;
                    problems.push(format!("{label}: {reason}"));
                }
                MemberState::Missing => {
                    absent.push(j + 1);
                    problems.push(format!(
                        "{label}: missing ({} not written)",
                        member::OUTPUT_FILE
                    ));
                }
            }
        }
        let it_name = layout.iteration_name(k);
        if !absent.is_empty() && missing == MissingMembers::Refuse {
            return Err(InputError::Argument(format!(
                "{it_name}: {} of {n} members have not run yet (members {}); run them (`ekp-cli \
                 forward`), or count them as failed with `update --allow-missing`. Nothing was \
                 changed.",
                absent.len(),
                compress(&absent)
            ))
            .into());
        }
        if done < 2 {
            let msg = format!(
                "{it_name}: only {done} of {n} members have usable outputs, and an update needs \
                 at least 2; nothing was changed.{}",
                self.diagnose(k, &problems)
            );
            return Err(if malformed {
                InputError::Argument(msg).into()
            } else {
                Error::Runtime(anyhow::anyhow!(msg))
            });
        }
        Ok(Collected {
            iteration: k,
            g,
            done,
            missing: absent,
            problems,
        })
    }

    /// What went wrong with an iteration's members: the most common cause,
    /// the end of one such member's `stderr.log`, and the first problems.
    fn diagnose(&self, k: usize, problems: &[String]) -> String {
        // "iteration_000/member_004: why" → why, counted.
        let mut causes: Vec<(&str, usize, &str)> = Vec::new();
        for p in problems {
            let (label, why) = p.split_once(": ").unwrap_or(("", p));
            match causes.iter_mut().find(|c| c.0 == why) {
                Some(c) => c.1 += 1,
                None => causes.push((why, 1, label)),
            }
        }
        let Some(&(why, count, label)) = causes.iter().max_by_key(|c| c.1) else {
            return String::new();
        };
        let member = label.rsplit('/').next().unwrap_or(label);
        let log = self
            .folder
            .layout
            .iteration_dir(k)
            .join(member)
            .join(member::STDERR_FILE);
        let shown: Vec<&str> = problems.iter().take(10).map(String::as_str).collect();
        format!(
            "\nmost common cause ({count} of {} members): {why}{}\nmembers:\n  {}{}",
            problems.len(),
            crate::io::tail_of(&log, 5),
            shown.join("\n  "),
            if problems.len() > shown.len() {
                format!("\n  ... and {} more", problems.len() - shown.len())
            } else {
                String::new()
            }
        )
    }

    /// Steps 3 and 4: update `ekp` with the collected outputs and checkpoint,
    /// or complete the calibration.
    pub fn advance(&mut self, ekp: EnsembleKalmanProcess, c: Collected) -> Result<Advance> {
        let k = ekp.iterations();
        let it_name = self.folder.layout.iteration_name(k);
        let assessed = ekp
            .assess_all_outputs(&c.g)
            .map_err(|e| anyhow::anyhow!("{it_name}: {e}; nothing was changed"))?;
        let record = |kind: RecordKind, dt: Option<f64>| UpdateRecord {
            kind,
            iteration: k,
            done: c.done,
            failed: assessed.failed.iter().map(|j| j + 1).collect(),
            missing: c.missing.clone(),
            dt,
            finished_unix: unix_now(),
            metrics: assessed.metrics,
        };
        let last = k >= self.folder.cal.iterations || ekp.is_terminated();
        let mut next = ekp.clone();
        let outcome = if last {
            UpdateOutcome::Terminated
        } else {
            next.update_from_all_outputs(&c.g).map_err(|e| {
                anyhow::anyhow!("update of {it_name}'s outputs: {e}; nothing was changed")
            })?
        };
        match outcome {
            UpdateOutcome::Updated(report) => {
                for w in &report.warnings {
                    tracing::warn!("{it_name}: {w}");
                }
                let record = record(RecordKind::Update, Some(report.dt));
                self.checkpoint(&next, &record)?;
                if let Some(row) = IterationRow::from_record(&next, &record) {
                    for o in self.observers.iter_mut() {
                        o.iteration_done(&row)?;
                    }
                }
                Ok(Advance::Updated {
                    next: Box::new(next),
                    record,
                })
            }
            UpdateOutcome::Terminated => {
                let record = record(RecordKind::Final, None);
                let terminated_early = k < self.folder.cal.iterations;
                let rows = self.folder.rows(&ekp, Some(&record));
                self.complete(&ekp, &c.g, &rows, &record)?;
                if let Some(row) = rows.last() {
                    for o in self.observers.iter_mut() {
                        o.iteration_done(row)?;
                    }
                }
                let done = Completion {
                    folder: self.folder,
                    ekp: &ekp,
                    final_g: &c.g,
                    rows: &rows,
                    terminated_early,
                };
                for o in self.observers.iter_mut() {
                    o.completed(&done)?;
                }
                Ok(Advance::Completed {
                    ekp: Box::new(ekp),
                    record,
                    terminated_early,
                })
            }
        }
    }

    /// The update's checkpoint: the next iteration's files and the record,
    /// then the state (the commit), then the result snapshot.
    fn checkpoint(&self, next: &EnsembleKalmanProcess, record: &UpdateRecord) -> Result<()> {
        let f = self.folder;
        f.write_iteration(next)?;
        f.write_record(record)?;
        if std::env::var(FAULT_ENV).as_deref() == Ok("update-before-commit") {
            eprintln!(
                "{FAULT_ENV}: aborting before replacing {}",
                folder::STATE_FILE
            );
            std::process::abort();
        }
        // The commit: from here on the next iteration is the current one.
        write_atomic(&f.state_path(), folder::state_text(next)?.as_bytes())?;
        let names = next.prior().flat_names();
        write_atomic(
            &f.dir.join(results::RESULT_FILE),
            results::result_toml(next, f64::NAN)?.as_bytes(),
        )?;
        write_atomic(
            &f.dir.join(tables::HISTORY_FILE),
            &tables::history_csv(&names, &f.rows(next, None))?,
        )?;
        Ok(())
    }

    /// The completion: every result file, then the final record (the commit).
    fn complete(
        &self,
        ekp: &EnsembleKalmanProcess,
        final_g: &DMatrix<f64>,
        rows: &[IterationRow],
        record: &UpdateRecord,
    ) -> Result<()> {
        let f = self.folder;
        let names = ekp.prior().flat_names();
        let final_loss = rows.last().map_or(f64::NAN, |r| r.metrics.loss);
        let output_names = self.folder.cal.data_labels.columns(final_g.nrows());
        let files: [(&str, Vec<u8>); 5] = [
            (tables::HISTORY_FILE, tables::history_csv(&names, rows)?),
            (tables::ENSEMBLES_FILE, tables::ensembles_csv(ekp, &names)?),
            (
                tables::OUTPUTS_FILE,
                tables::outputs_csv(ekp, final_g, &output_names)?,
            ),
            (
                tables::FINAL_ENSEMBLE_FILE,
                tables::final_ensemble_csv(ekp, &names)?,
            ),
            (
                results::RESULT_FILE,
                results::result_toml(ekp, final_loss)?.into_bytes(),
            ),
        ];
        for (name, contents) in files {
            write_atomic(&f.dir.join(name), &contents)?;
        }
        f.write_record(record)?;
        Ok(())
    }
}

/// `1-3 5 7-9`: a sorted list of numbers with runs compressed.
pub fn compress(numbers: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < numbers.len() {
        let mut j = i;
        while j + 1 < numbers.len() && numbers[j + 1] == numbers[j] + 1 {
            j += 1;
        }
        parts.push(if j > i {
            format!("{}-{}", numbers[i], numbers[j])
        } else {
            numbers[i].to_string()
        });
        i = j + 1;
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_of_members_are_compressed() {
        assert_eq!(compress(&[1, 2, 3, 5, 7, 8, 9]), "1-3 5 7-9");
        assert_eq!(compress(&[4]), "4");
        assert_eq!(compress(&[]), "");
    }
}
