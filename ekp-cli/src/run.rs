//! The calibration loop: ask the process for the ensemble, run the model on
//! it, tell the outputs back, until the iterations are spent or the scheduler
//! stops. Progress, the table and files hang off it as [`Observer`]s.

use ekp_core::{EnsembleKalmanProcess, ErrorMetrics, ForwardModel, Observation, UpdateOutcome};
use nalgebra::{DMatrix, DVector};

use crate::config::Calibration;

/// One row of the per-iteration table: ensemble `iteration` (0 = the prior draw).
#[derive(Debug, Clone)]
pub struct IterationRow {
    /// Which ensemble (0 = initial).
    pub iteration: usize,
    /// The step of the update that followed it (`None` for the last ensemble).
    pub dt: Option<f64>,
    /// Metrics of its outputs.
    pub metrics: ErrorMetrics,
    /// Members (0-based) whose model run failed.
    pub failed: Vec<usize>,
    /// Constrained mean of each flat parameter (transform of the unconstrained mean).
    pub mean: DVector<f64>,
    /// Standard deviation of each flat parameter over the constrained ensemble.
    pub std: DVector<f64>,
}

/// Hooks called by [`calibrate`] as the run goes.
pub trait Observer: Send + Sync {
    /// Before the model runs ensemble `iteration` of `members` members.
    fn evaluation_started(&mut self, _iteration: usize, _members: usize) {}
    /// `k` more members of the current evaluation finished (may come from any thread).
    fn members_done(&self, _k: usize) {}
    /// After ensemble `row.iteration` was evaluated (and updated, if `row.dt` is set).
    fn iteration_done(&mut self, _row: &IterationRow) {}
}

/// What a finished calibration left.
pub struct RunOutput {
    /// The process, with its whole history.
    pub ekp: EnsembleKalmanProcess,
    /// The outputs of the final ensemble.
    pub final_g: DMatrix<f64>,
    /// One row per ensemble, the initial one first.
    pub rows: Vec<IterationRow>,
    /// Whether the scheduler stopped the run before `iterations` updates.
    pub terminated_early: bool,
}

/// Constrained mean and std of an unconstrained ensemble.
pub fn constrained_summary(
    ekp: &EnsembleKalmanProcess,
    u: &DMatrix<f64>,
) -> (DVector<f64>, DVector<f64>) {
    let prior = ekp.prior();
    let mean_u = ekp_core::linalg::column_mean(u);
    let mean = prior.to_constrained(&mean_u);
    let x = prior.to_constrained_matrix(u);
    let (_, a) = ekp_core::linalg::anomalies(&x);
    let n = (u.ncols().max(2) - 1) as f64;
    let std = DVector::from_iterator(
        a.nrows(),
        a.row_iter().map(|r| (r.norm_squared() / n).sqrt()),
    );
    (mean, std)
}

fn evaluate(
    model: &(dyn ForwardModel + Sync),
    ekp: &EnsembleKalmanProcess,
    iteration: usize,
    observers: &mut [&mut dyn Observer],
) -> anyhow::Result<DMatrix<f64>> {
    let params = ekp.constrained_ensemble();
    for o in observers.iter_mut() {
        o.evaluation_started(iteration, params.ncols());
    }
    let mut out = DMatrix::zeros(model.output_dim(), params.ncols());
    {
        let obs: &[&mut dyn Observer] = observers;
        let progress = |k: usize| {
            for o in obs {
                o.members_done(k);
            }
        };
        model.evaluate_into_with_progress(&params, &mut out, &progress)?;
    }
    Ok(out)
}

/// The process a calibration starts from (also used by the file workflow's
/// `init`, so that it reproduces `run` exactly).
pub fn build_process(
    cal: &Calibration,
    observation: Observation,
) -> anyhow::Result<EnsembleKalmanProcess> {
    let ekp = cal.builder(observation)?.build()?;
    for w in ekp.warnings() {
        tracing::warn!("{}: {w}", cal.source);
    }
    Ok(ekp)
}

/// Run a calibration to the end.
pub fn calibrate(
    cal: &Calibration,
    observation: Observation,
    model: &(dyn ForwardModel + Sync),
    observers: &mut [&mut dyn Observer],
) -> anyhow::Result<RunOutput> {
    let mut ekp = build_process(cal, observation)?;
    let mut rows = Vec::new();
    loop {
        let k = ekp.iterations();
        let g = evaluate(model, &ekp, k, observers)?;
        let u = ekp.ensemble().clone();
        let (mean, std) = constrained_summary(&ekp, &u);
        // Failed members (NaN tolerance and imputation as in the update) and
        // metrics against all the data, whatever the minibatch.
        let assessed = ekp.assess_all_outputs(&g)?;
        let (failed, metrics) = (assessed.failed, assessed.metrics);
        let done = k >= cal.iterations || ekp.is_terminated();
        let dt = if done {
            None
        } else {
            match ekp.update_from_all_outputs(&g)? {
                UpdateOutcome::Updated(report) => {
                    for w in &report.warnings {
                        tracing::warn!("ensemble {k}: {w}");
                    }
                    Some(report.dt)
                }
                UpdateOutcome::Terminated => None,
            }
        };
        let row = IterationRow {
            iteration: k,
            dt,
            metrics,
            failed,
            mean,
            std,
        };
        for o in observers.iter_mut() {
            o.iteration_done(&row);
        }
        rows.push(row);
        if dt.is_none() {
            return Ok(RunOutput {
                terminated_early: k < cal.iterations,
                ekp,
                final_g: g,
                rows,
            });
        }
    }
}
