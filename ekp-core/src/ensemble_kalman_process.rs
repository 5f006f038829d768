//! [`EnsembleKalmanProcess`]: the ask/tell state of a calibration.
//!
//! The driver asks for the ensemble ([`EnsembleKalmanProcess::constrained_ensemble`]),
//! runs the model on it however it likes, and tells the outputs back
//! ([`EnsembleKalmanProcess::update`]). The process never runs a model.

use nalgebra::{DMatrix, DVector};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};

use crate::error::EkpError;
use crate::failure::{FailurePolicy, failed_members};
use crate::linalg::{column_mean, sample_covariance, sample_empirical_gaussian, select_columns};
use crate::observation::Observation;
use crate::prior::Prior;
use crate::process::{PriorBlock, Process, inversion, transform_inversion};
use crate::scheduler::{Scheduler, Step};

/// Error metrics of one evaluated ensemble (EKP.jl's `compute_error!`), over
/// the successful members.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorMetrics {
    /// The data misfit at the ensemble mean: `(1/d) (y − ḡ)ᵀ Γ⁻¹ (y − ḡ)`.
    pub loss: f64,
    /// The mean over members of `√((1/d) (y − g_j)ᵀ Γ⁻¹ (y − g_j))`.
    pub avg_rmse: f64,
    /// `(1/d) ‖y − ḡ‖²`.
    pub unweighted_loss: f64,
}

impl ErrorMetrics {
    /// The metrics of the outputs `g` (`d × n`, successful members only).
    pub fn compute(g: &DMatrix<f64>, obs: &Observation) -> Self {
        let d = obs.dim() as f64;
        let gbar = column_mean(g);
        let diff = obs.values() - &gbar;
        let diff_m = DMatrix::from_column_slice(diff.len(), 1, diff.as_slice());
        let loss = obs.noise().weighted_norms_sq(&diff_m)[0] / d;
        let mut dev = g.clone();
        for mut col in dev.column_iter_mut() {
            col -= obs.values();
        }
        let per = obs.noise().weighted_norms_sq(&dev);
        let avg_rmse = per.iter().map(|v| (v / d).sqrt()).sum::<f64>() / per.len().max(1) as f64;
        Self {
            loss,
            avg_rmse,
            unweighted_loss: diff.norm_squared() / d,
        }
    }
}

/// What one call to [`EnsembleKalmanProcess::update`] did.
#[derive(Clone, Debug, PartialEq)]
pub enum UpdateOutcome {
    /// The ensemble was updated.
    Updated(UpdateReport),
    /// The scheduler's terminal time had been reached: nothing changed.
    Terminated,
}

/// Details of an applied update.
#[derive(Clone, Debug, PartialEq)]
pub struct UpdateReport {
    /// The step used.
    pub dt: f64,
    /// Members (0-based) whose outputs were non-finite.
    pub failed: Vec<usize>,
    /// Metrics of the outputs that were told.
    pub metrics: ErrorMetrics,
}

/// The state of an ensemble Kalman process: its settings, the history of the
/// unconstrained ensembles `u` (one column per member), the outputs `g`, the
/// steps `Δt`, error metrics, failed members, and the RNG. Serialisable, RNG
/// included, so a run can be saved and resumed exactly.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EnsembleKalmanProcess {
    prior: Prior,
    observation: Observation,
    process: Process,
    scheduler: Scheduler,
    failure: FailurePolicy,
    rng: ChaCha20Rng,
    #[serde(with = "crate::serde_nalgebra::matrices")]
    u: Vec<DMatrix<f64>>,
    #[serde(with = "crate::serde_nalgebra::matrices")]
    g: Vec<DMatrix<f64>>,
    dt: Vec<f64>,
    metrics: Vec<ErrorMetrics>,
    failed: Vec<Vec<usize>>,
}

/// Builds an [`EnsembleKalmanProcess`], validating every setting.
#[derive(Clone, Debug)]
pub struct EkpBuilder {
    prior: Prior,
    observation: Observation,
    process: Process,
    ensemble_size: usize,
    seed: u64,
    scheduler: Scheduler,
    failure: FailurePolicy,
    initial: Option<DMatrix<f64>>,
}

impl EkpBuilder {
    /// Number of members `N` drawn from the prior (default 20).
    pub fn ensemble_size(mut self, n: usize) -> Self {
        self.ensemble_size = n;
        self
    }
    /// Seed of every random draw (default 0).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    /// The learning-rate scheduler (default: data-misfit, terminate at 1).
    pub fn scheduler(mut self, scheduler: Scheduler) -> Self {
        self.scheduler = scheduler;
        self
    }
    /// The failure policy (default: sample-success-gauss).
    pub fn failure_policy(mut self, failure: FailurePolicy) -> Self {
        self.failure = failure;
        self
    }
    /// Start from this unconstrained ensemble (`p × N`) instead of prior draws.
    pub fn initial_ensemble(mut self, u: DMatrix<f64>) -> Self {
        self.initial = Some(u);
        self
    }

    /// Validates and builds.
    pub fn build(self) -> Result<EnsembleKalmanProcess, EkpError> {
        self.scheduler
            .validate()
            .map_err(EkpError::InvalidSetting)?;
        let s = self.process.multiplicative_inflation();
        if !(s.is_finite() && s >= 0.0) {
            return Err(EkpError::InvalidSetting(format!(
                "multiplicative_inflation must be ≥ 0 and finite, got {s}"
            )));
        }
        let mut rng = ChaCha20Rng::seed_from_u64(self.seed);
        let p = self.prior.dim();
        let u0 = match self.initial {
            Some(u) => {
                if u.nrows() != p || u.ncols() < 2 {
                    return Err(EkpError::InitialEnsembleShape {
                        rows: u.nrows(),
                        cols: u.ncols(),
                        expected_rows: p,
                    });
                }
                u
            }
            None => {
                if self.ensemble_size < 2 {
                    return Err(EkpError::EnsembleSize {
                        members: self.ensemble_size,
                    });
                }
                self.prior.sample(&mut rng, self.ensemble_size)
            }
        };
        Ok(EnsembleKalmanProcess {
            prior: self.prior,
            observation: self.observation,
            process: self.process,
            scheduler: self.scheduler,
            failure: self.failure,
            rng,
            u: vec![u0],
            g: Vec::new(),
            dt: Vec::new(),
            metrics: Vec::new(),
            failed: Vec::new(),
        })
    }
}

impl EnsembleKalmanProcess {
    /// Start building a process for this prior, data and algorithm.
    pub fn builder(prior: Prior, observation: Observation, process: Process) -> EkpBuilder {
        EkpBuilder {
            prior,
            observation,
            process,
            ensemble_size: 20,
            seed: 0,
            scheduler: Scheduler::default(),
            failure: FailurePolicy::default(),
            initial: None,
        }
    }

    /// The prior.
    pub fn prior(&self) -> &Prior {
        &self.prior
    }
    /// The data.
    pub fn observation(&self) -> &Observation {
        &self.observation
    }
    /// The algorithm.
    pub fn process(&self) -> &Process {
        &self.process
    }
    /// The scheduler.
    pub fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }
    /// The failure policy.
    pub fn failure_policy(&self) -> FailurePolicy {
        self.failure
    }
    /// Number of members `N`.
    pub fn ensemble_size(&self) -> usize {
        self.ensemble().ncols()
    }
    /// Number of updates applied so far.
    pub fn iterations(&self) -> usize {
        self.dt.len()
    }

    /// The current unconstrained ensemble `u` (`p × N`): the members to run next.
    pub fn ensemble(&self) -> &DMatrix<f64> {
        // `u` always holds the initial ensemble, so `last` exists.
        &self.u[self.u.len() - 1]
    }
    /// The current ensemble in constrained (physical) units: what a model takes.
    pub fn constrained_ensemble(&self) -> DMatrix<f64> {
        self.prior.to_constrained_matrix(self.ensemble())
    }
    /// Mean of the current unconstrained ensemble.
    pub fn unconstrained_mean(&self) -> DVector<f64> {
        column_mean(self.ensemble())
    }
    /// Sample covariance (`1/(N−1)`) of the current unconstrained ensemble.
    pub fn unconstrained_covariance(&self) -> DMatrix<f64> {
        sample_covariance(self.ensemble())
    }
    /// The constrained transform of the unconstrained mean (EKP.jl's
    /// `get_ϕ_mean_final`).
    pub fn constrained_mean(&self) -> DVector<f64> {
        self.prior.to_constrained(&self.unconstrained_mean())
    }

    /// All unconstrained ensembles, the initial one first.
    pub fn u_history(&self) -> &[DMatrix<f64>] {
        &self.u
    }
    /// The outputs told to each update.
    pub fn g_history(&self) -> &[DMatrix<f64>] {
        &self.g
    }
    /// The step of each update.
    pub fn dt_history(&self) -> &[f64] {
        &self.dt
    }
    /// Error metrics of the outputs told to each update.
    pub fn metrics_history(&self) -> &[ErrorMetrics] {
        &self.metrics
    }
    /// The failed members (0-based) of each update.
    pub fn failed_history(&self) -> &[Vec<usize>] {
        &self.failed
    }

    /// True when the scheduler will make no further update: there is no need to
    /// run the model on the current ensemble for another update.
    pub fn is_terminated(&self) -> bool {
        self.scheduler.is_terminated(&self.dt)
    }

    /// Tell the outputs `g` (`d × N`, column `j` = member `j` of
    /// [`ensemble`](Self::ensemble)) and apply one update with the scheduler's step.
    /// On error nothing changes, the RNG included.
    pub fn update(&mut self, g: &DMatrix<f64>) -> Result<UpdateOutcome, EkpError> {
        self.update_inner(g, None)
    }

    /// Like [`update`](Self::update), but this one update uses the step `dt`
    /// whatever the scheduler says.
    pub fn update_with_dt(&mut self, g: &DMatrix<f64>, dt: f64) -> Result<UpdateOutcome, EkpError> {
        if !(dt.is_finite() && dt > 0.0) {
            return Err(EkpError::InvalidDt { dt });
        }
        self.update_inner(g, Some(dt))
    }

    fn update_inner(
        &mut self,
        g: &DMatrix<f64>,
        dt_override: Option<f64>,
    ) -> Result<UpdateOutcome, EkpError> {
        let n = self.ensemble_size();
        let d = self.observation.dim();
        if g.nrows() != d || g.ncols() != n {
            return Err(EkpError::OutputShape {
                rows: g.nrows(),
                cols: g.ncols(),
                expected_rows: d,
                expected_cols: n,
            });
        }
        let failed = failed_members(g);
        let successful: Vec<usize> = (0..n).filter(|j| !failed.contains(j)).collect();
        if successful.len() < 2 {
            return Err(EkpError::TooFewSuccessful {
                successful: successful.len(),
                total: n,
                failed: failed.iter().map(|j| j + 1).collect(),
            });
        }
        if !failed.is_empty() && self.failure == FailurePolicy::Ignore {
            return Err(EkpError::FailedMembers {
                members: failed.iter().map(|j| j + 1).collect(),
            });
        }
        let g_ok = select_columns(g, &successful);
        let dt = match dt_override {
            Some(dt) => dt,
            None => match self.scheduler.next_step(&self.dt, &g_ok, &self.observation) {
                Step::Dt(dt) => dt,
                Step::Terminate => return Ok(UpdateOutcome::Terminated),
            },
        };
        if !(dt.is_finite() && dt > 0.0) {
            return Err(EkpError::InvalidDt { dt });
        }

        // Work on a copy of the RNG: it is committed only if the update succeeds.
        let mut rng = self.rng.clone();
        let u = self.ensemble();
        let u_ok = select_columns(u, &successful);
        let prior_mean = self.prior.mean();
        let prior_var = self.prior.std().map(|s| s * s);
        let prior_block = self.process.impose_prior().then_some(PriorBlock {
            mean: &prior_mean,
            variances: &prior_var,
        });
        let updated_ok = match &self.process {
            Process::Inversion(settings) => {
                // Noise for every member, so the draws do not depend on which failed.
                let y_all = if settings.perturb_observations {
                    let mut noise = self.observation.noise().sample(&mut rng, n, 1.0 / dt);
                    for mut col in noise.column_iter_mut() {
                        col += self.observation.values();
                    }
                    noise
                } else {
                    DMatrix::from_fn(d, n, |i, _| self.observation.values()[i])
                };
                let y_ok = select_columns(&y_all, &successful);
                inversion::update(&u_ok, &g_ok, &y_ok, &self.observation, dt, prior_block)?
            }
            Process::TransformInversion(_) => {
                transform_inversion::update(&u_ok, &g_ok, &self.observation, dt, prior_block)?
            }
        };

        let mut new_u = DMatrix::zeros(u.nrows(), n);
        for (k, &j) in successful.iter().enumerate() {
            new_u.set_column(j, &updated_ok.column(k));
        }
        if !failed.is_empty() {
            let draws = sample_empirical_gaussian(&mut rng, &updated_ok, failed.len());
            for (k, &j) in failed.iter().enumerate() {
                new_u.set_column(j, &draws.column(k));
            }
        }

        let s = self.process.multiplicative_inflation();
        if s > 0.0 {
            let s_eff = s * (1.0f64).min(1.0 / dt);
            if s_eff * dt >= 1.0 {
                return Err(EkpError::InflationUnstable { s: s_eff, dt });
            }
            let factor = (1.0 / (1.0 - s_eff * dt)).sqrt();
            let mean = column_mean(&new_u);
            for mut col in new_u.column_iter_mut() {
                let dev = &col - &mean;
                col.copy_from(&(&mean + dev * factor));
            }
        }

        let metrics = ErrorMetrics::compute(&g_ok, &self.observation);
        self.rng = rng;
        self.u.push(new_u);
        self.g.push(g.clone());
        self.dt.push(dt);
        self.metrics.push(metrics);
        self.failed.push(failed.clone());
        Ok(UpdateOutcome::Updated(UpdateReport {
            dt,
            failed,
            metrics,
        }))
    }
}
