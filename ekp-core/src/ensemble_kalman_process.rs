//! [`EnsembleKalmanProcess`]: the ask/tell state of a calibration.
//!
//! The driver asks for the ensemble ([`EnsembleKalmanProcess::constrained_ensemble`]),
//! runs the model on it however it likes, and tells the outputs back
//! ([`EnsembleKalmanProcess::update`]). The process never runs a model.
//!
//! One update, in order: (1) NaN imputation and failure detection
//! ([`failure`](crate::failure)); (2) the scheduler's `Δt` (or the one-step
//! override); (3) for each update group in turn, the process's update of the
//! successful members (drawing the EKI perturbations, then any
//! `bernoulli-dropout` kernel) and the redraw of failed members
//! (`sample-success-gauss`); (4) the accelerator; (5) multiplicative inflation;
//! (6) the history is stored and the observation series moves to its next
//! minibatch. On any error nothing changes, the RNG included.

use std::borrow::Cow;

use nalgebra::{DMatrix, DVector};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};

use crate::accelerator::{Accelerator, Momentum};
use crate::error::EkpError;
use crate::failure::{
    DEFAULT_NAN_TOLERANCE, FailurePolicy, ImputedValue, impute_lazy, impute_over_nonfinite,
};
use crate::inflation::Inflation;
use crate::linalg::{column_mean, sample_covariance, sample_empirical_gaussian, select_columns};
use crate::localization::Localizer;
use crate::lowrank::Rows;
use crate::observation::Observation;
use crate::observation_series::ObservationSeries;
use crate::prior::Prior;
use crate::process::{OutputSelection, PriorBlock, Process, StepInput, UnscentedState};
use crate::scheduler::{Scheduler, Step};
use crate::update_group::{UpdateGroup, minibatch_rows, validate_groups};
use crate::warnings::{self, Warning};

/// Error metrics of one evaluated ensemble (EKP.jl's `compute_error!`), over
/// the successful members.
///
/// `bayes_loss` and `crps` are absent (`None`) in states saved by versions
/// that did not compute them. Differences from EKP.jl: `bayes_loss` takes the
/// parameter mean of the ensemble that produced the outputs (EKP.jl: of the
/// updated ensemble, after the update), and `crps` uses the plain sample
/// statistics for every process (EKP.jl weights UKI's sigma points).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorMetrics {
    /// The data misfit at the ensemble mean: `(1/d) (y − ḡ)ᵀ Γ⁻¹ (y − ḡ)`.
    pub loss: f64,
    /// The mean over members of `√((1/d) (y − g_j)ᵀ Γ⁻¹ (y − g_j))`.
    pub avg_rmse: f64,
    /// `(1/d) ‖y − ḡ‖²`.
    pub unweighted_loss: f64,
    /// The Bayesian loss at the mean (EKP.jl's `compute_bayes_loss_at_mean`):
    /// `(1/(d p)) [(y − ḡ)ᵀ Γ⁻¹ (y − ḡ) + (ū − m₀)ᵀ Σ₀⁻¹ (ū − m₀)]`, `ū` the
    /// unconstrained parameter mean (UKI: the process's mean) of the members
    /// that were run.
    #[serde(default)]
    pub bayes_loss: Option<f64>,
    /// A Gaussian approximation of the continuous ranked probability score
    /// (EKP.jl's `compute_crps`): with `A = (g − ḡ)/√(n−1) = U S Vᵀ` (rank
    /// `r`), `w = S⁻¹ Uᵀ (y − ḡ)`,
    /// `crps = (1/r) Σ_i s_i [w_i (2Φ(w_i) − 1) + 2φ(w_i) − 1/√π]`.
    #[serde(default)]
    pub crps: Option<f64>,
}

impl ErrorMetrics {
    /// The metrics of the outputs `g` (`d × n`, successful members only).
    pub fn compute(g: &DMatrix<f64>, obs: &Observation) -> Self {
        Self::compute_inner(g, &column_mean(g), obs, true, None)
    }

    /// The metrics with the loss taken at the given output mean `ḡ` (UKI's
    /// weighted mean) instead of the plain column mean.
    pub fn compute_with_mean(g: &DMatrix<f64>, gbar: &DVector<f64>, obs: &Observation) -> Self {
        Self::compute_inner(g, gbar, obs, false, None)
    }

    /// The metrics; `plain_mean` when `gbar` is the column mean of `g`, so
    /// the CRPS may stream over row blocks; `misfits` the member misfits `Φ`
    /// when they are known.
    fn compute_inner(
        g: &DMatrix<f64>,
        gbar: &DVector<f64>,
        obs: &Observation,
        plain_mean: bool,
        misfits: Option<&DVector<f64>>,
    ) -> Self {
        let d = obs.dim() as f64;
        let diff = obs.values() - gbar;
        let diff_m = DMatrix::from_column_slice(diff.len(), 1, diff.as_slice());
        let loss = obs.noise().weighted_norms_sq(&diff_m)[0] / d;
        // Twice the member misfits; column by column for a diagonal Γ.
        let per = match misfits {
            Some(phi) => phi * 2.0,
            None => crate::scheduler::member_misfits(g, obs) * 2.0,
        };
        let avg_rmse = per.iter().map(|v| (v / d).sqrt()).sum::<f64>() / per.len().max(1) as f64;
        Self {
            loss,
            avg_rmse,
            unweighted_loss: diff.norm_squared() / d,
            bayes_loss: None,
            crps: if plain_mean && g.nrows() > g.ncols() {
                crps_streaming(g, obs.values())
            } else {
                crps(g, gbar, obs.values())
            },
        }
    }

    /// These metrics with the Bayesian loss for `d` data values, the
    /// parameter mean `u_mean` and the (diagonal) prior `N(m₀, diag(σ₀²))`.
    pub fn with_prior(
        mut self,
        d: usize,
        u_mean: &DVector<f64>,
        prior_mean: &DVector<f64>,
        prior_var: &DVector<f64>,
    ) -> Self {
        let p = u_mean.len().max(1) as f64;
        // (1/p) (ū − m₀)ᵀ Σ₀⁻¹ (ū − m₀), as EKP.jl's `prior_misfit_at_mean`.
        let prior_misfit: f64 = u_mean
            .iter()
            .zip(prior_mean.iter())
            .zip(prior_var.iter())
            .map(|((u, m), v)| (u - m).powi(2) / v)
            .sum::<f64>()
            / p;
        // `loss` already carries 1/d: (1/p) loss + (1/d) prior misfit.
        self.bayes_loss = Some(self.loss / p + prior_misfit / d.max(1) as f64);
        self
    }
}

/// CRPS of the ensemble `g` (`d × n`) with mean `gbar` against `y`, through
/// the `n × n` Gram matrix of the scaled anomalies (so `O(n² d)`); `None` with
/// fewer than 2 members or a collapsed ensemble.
fn crps(g: &DMatrix<f64>, gbar: &DVector<f64>, y: &DVector<f64>) -> Option<f64> {
    let n = g.ncols();
    if n < 2 {
        return None;
    }
    let mut a = g.clone();
    for mut col in a.column_iter_mut() {
        col -= gbar;
    }
    a /= ((n - 1) as f64).sqrt();
    let d = g.nrows();
    let diff = y - gbar;
    // The singular values s and w = S⁻¹ Uᵀ diff, through the smaller of the
    // d × d covariance A Aᵀ and the n × n Gram matrix Aᵀ A.
    let (sq, ws): (Vec<f64>, Vec<f64>) = if d <= n {
        let eig = nalgebra::SymmetricEigen::new(&a * a.transpose());
        let ud = eig.eigenvectors.transpose() * &diff;
        eig.eigenvalues
            .iter()
            .zip(ud.iter())
            .map(|(&l, &x)| (l, x))
            .unzip()
    } else {
        return crps_from_gram(a.transpose() * &a, a.transpose() * &diff, d);
    };
    crps_sum(&sq, &ws, d, n)
}

/// [`crps`] with the plain column mean, for `d > n`: the Gram matrix `AᵀA`
/// and `Aᵀ (y − ḡ)` are accumulated over row blocks (no copy of `g`).
fn crps_streaming(g: &DMatrix<f64>, y: &DVector<f64>) -> Option<f64> {
    let (d, n) = g.shape();
    if n < 2 {
        return None;
    }
    let cols: Vec<usize> = (0..n).collect();
    let ones = DVector::from_element(d, 1.0);
    let stats = crate::lowrank::gram(&crate::lowrank::GramInput {
        g,
        rows: Rows::All(d),
        cols: &cols,
        weights: &ones,
        y,
        perturbation: None,
    });
    let s = 1.0 / ((n - 1) as f64).sqrt();
    crps_from_gram(stats.m * (s * s), stats.c * s, d)
}

/// The CRPS from the Gram matrix `AᵀA` (`n × n`) of the scaled anomalies and
/// `Aᵀ (y − ḡ)`, for `d` outputs.
fn crps_from_gram(ata: DMatrix<f64>, atd: DVector<f64>, d: usize) -> Option<f64> {
    let n = ata.nrows();
    let eig = nalgebra::SymmetricEigen::new(ata);
    let vd = eig.eigenvectors.transpose() * atd;
    // Uᵀ diff = S⁻¹ Vᵀ Aᵀ diff.
    let (sq, ws): (Vec<f64>, Vec<f64>) = eig
        .eigenvalues
        .iter()
        .zip(vd.iter())
        .map(|(&l, &x)| (l, x / l.max(f64::MIN_POSITIVE).sqrt()))
        .unzip();
    crps_sum(&sq, &ws, d, n)
}

/// The CRPS sum over the squared singular values `sq` and `w` (see [`crps`]).
fn crps_sum(sq: &[f64], ws: &[f64], d: usize, n: usize) -> Option<f64> {
    let smax = sq.iter().fold(0.0f64, |m, &l| m.max(l)).sqrt();
    if !(smax > 0.0 && smax.is_finite()) {
        return None;
    }
    // Rank tolerance: eigenvalues of a squared matrix carry rounding of
    // order ε λ_max, so singular values below √(max(d, n) ε) s_max are zero.
    let tol = smax * ((d.max(n) as f64) * f64::EPSILON).sqrt();
    let mut total = 0.0;
    let mut rank = 0usize;
    for (&l, &ud) in sq.iter().zip(ws.iter()) {
        let s = l.max(0.0).sqrt();
        if s <= tol {
            continue;
        }
        let w = ud / s;
        let pdf = (-0.5 * w * w).exp() / (2.0 * std::f64::consts::PI).sqrt();
        let cdf = 0.5 * erfc(-w / std::f64::consts::SQRT_2);
        total += s * (w * (2.0 * cdf - 1.0) + 2.0 * pdf - 1.0 / std::f64::consts::PI.sqrt());
        rank += 1;
    }
    (rank > 0).then(|| total / rank as f64)
}

/// The complementary error function (Numerical Recipes' Chebyshev fit,
/// relative error < 1.2e-7: ample for a diagnostic score).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

/// Which outputs `g` an [`EnsembleKalmanProcess`] keeps: with `d` outputs
/// and `N` members each update stores a `d × N` matrix, which for large `d`
/// makes a long calibration grow without bound.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HistoryPolicy {
    /// Keep the outputs of every update (the default).
    #[default]
    All,
    /// Keep only the outputs of the latest update: the previous ones are
    /// dropped before the new ones are stored. The ensembles `u` (`p × N`
    /// each), steps, metrics, failed members and imputed values are still
    /// kept for every update.
    Last,
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
    /// Members (0-based) that failed: more than the tolerated fraction of
    /// their outputs non-finite.
    pub failed: Vec<usize>,
    /// Isolated non-finite outputs of the other members, and the values
    /// imputed in their place.
    pub imputed: Vec<ImputedValue>,
    /// The observations (0-based) of the minibatch this update fitted.
    pub minibatch: Vec<usize>,
    /// Metrics of the outputs that were told (successful members, imputed).
    pub metrics: ErrorMetrics,
    /// Warnings about the outputs (members with exactly equal outputs).
    pub warnings: Vec<Warning>,
}

/// How a set of outputs fares (see [`EnsembleKalmanProcess::assess_all_outputs`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Assessment {
    /// Members (0-based) that would fail.
    pub failed: Vec<usize>,
    /// Values that would be imputed.
    pub imputed: Vec<ImputedValue>,
    /// Metrics over the other members (imputed), against all the data.
    pub metrics: ErrorMetrics,
}

/// The state of an ensemble Kalman process: its settings, the history of the
/// unconstrained ensembles `u` (one column per member), the outputs `g`, the
/// steps `Δt`, error metrics, failed members and imputed values, the
/// observation series with its minibatch position, the accelerator's momentum,
/// and the RNG. Serialisable, all of it, so a run can be saved and resumed
/// exactly.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EnsembleKalmanProcess {
    prior: Prior,
    observations: ObservationSeries,
    process: Process,
    scheduler: Scheduler,
    localizer: Localizer,
    failure: FailurePolicy,
    nan_tolerance: f64,
    accelerator: Accelerator,
    momentum: Option<Momentum>,
    update_groups: Vec<UpdateGroup>,
    rng: ChaCha20Rng,
    #[serde(with = "crate::serde_nalgebra::matrices")]
    u: Vec<DMatrix<f64>>,
    #[serde(with = "crate::serde_nalgebra::matrices")]
    g: Vec<DMatrix<f64>>,
    dt: Vec<f64>,
    metrics: Vec<ErrorMetrics>,
    failed: Vec<Vec<usize>>,
    imputed: Vec<Vec<ImputedValue>>,
    minibatches: Vec<Vec<usize>>,
    /// The Gaussian of UKI/UTKI (`None` for the other processes).
    #[serde(default)]
    unscented: Option<UnscentedState>,
    /// User inflation (replaces the process's default inflation).
    #[serde(default)]
    inflation: Option<Inflation>,
    /// Which outputs are kept (states saved before this option: all).
    #[serde(default)]
    history: HistoryPolicy,
}

/// Builds an [`EnsembleKalmanProcess`], validating every setting. Options not
/// set take EKP.jl's defaults for the process (its `default_options_dict`):
/// for EKI data-misfit (`terminate_at = 1`), `sec-nice`, `sample-success-gauss`
/// and `nesterov`; for ETKI the same scheduler and failure handling, no
/// localization and no accelerator.
#[derive(Clone, Debug)]
pub struct EkpBuilder {
    prior: Prior,
    observations: ObservationSeries,
    process: Process,
    ensemble_size: usize,
    seed: u64,
    scheduler: Option<Scheduler>,
    localizer: Option<Localizer>,
    failure: Option<FailurePolicy>,
    accelerator: Option<Accelerator>,
    nan_tolerance: f64,
    update_groups: Vec<UpdateGroup>,
    initial: Option<DMatrix<f64>>,
    inflation: Option<Inflation>,
    history: HistoryPolicy,
}

impl EkpBuilder {
    /// Which outputs to keep in [`g_history`](EnsembleKalmanProcess::g_history)
    /// (default: [`HistoryPolicy::All`]).
    pub fn history(mut self, history: HistoryPolicy) -> Self {
        self.history = history;
        self
    }
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
    /// The learning-rate scheduler (default: the process's, see [`Process::default_scheduler`]).
    pub fn scheduler(mut self, scheduler: Scheduler) -> Self {
        self.scheduler = Some(scheduler);
        self
    }
    /// The localizer (default: the process's, see [`Process::default_localizer`]).
    pub fn localizer(mut self, localizer: Localizer) -> Self {
        self.localizer = Some(localizer);
        self
    }
    /// The failure policy (default: sample-success-gauss).
    pub fn failure_policy(mut self, failure: FailurePolicy) -> Self {
        self.failure = Some(failure);
        self
    }
    /// The accelerator (default: the process's, see [`Process::default_accelerator`]).
    pub fn accelerator(mut self, accelerator: Accelerator) -> Self {
        self.accelerator = Some(accelerator);
        self
    }
    /// The fraction of non-finite outputs above which a member has failed
    /// (EKP.jl's `nan_tolerance`, default 0.1; in `[0, 1]`).
    pub fn nan_tolerance(mut self, tolerance: f64) -> Self {
        self.nan_tolerance = tolerance;
        self
    }
    /// Update groups (default: one group, every parameter from every output).
    pub fn update_groups(mut self, groups: Vec<UpdateGroup>) -> Self {
        self.update_groups = groups;
        self
    }
    /// Start from this unconstrained ensemble (`p × N`) instead of prior draws.
    pub fn initial_ensemble(mut self, u: DMatrix<f64>) -> Self {
        self.initial = Some(u);
        self
    }

    /// Inflation after every update (default: none beyond the process's
    /// own, see [`Inflation`]).
    pub fn inflation(mut self, inflation: Inflation) -> Self {
        self.inflation = Some(inflation);
        self
    }

    /// Validates and builds.
    pub fn build(self) -> Result<EnsembleKalmanProcess, EkpError> {
        let scheduler = self
            .scheduler
            .unwrap_or_else(|| self.process.default_scheduler());
        let localizer = self
            .localizer
            .unwrap_or_else(|| self.process.default_localizer());
        let failure = self
            .failure
            .unwrap_or_else(|| self.process.default_failure_policy());
        let accelerator = self
            .accelerator
            .unwrap_or_else(|| self.process.default_accelerator());
        scheduler.validate().map_err(EkpError::InvalidSetting)?;
        localizer.validate().map_err(EkpError::InvalidSetting)?;
        accelerator.validate().map_err(EkpError::InvalidSetting)?;
        if !self.process.supports_localization() && !localizer.is_none() {
            return Err(EkpError::InvalidSetting(format!(
                "localization \"{}\" cannot be used with {}; use \"none\"",
                localizer.kind(),
                self.process.kind()
            )));
        }
        if let Some(inflation) = &self.inflation {
            inflation.validate().map_err(EkpError::InvalidSetting)?;
        }
        if let Some(settings) = self.process.unscented() {
            settings.validate().map_err(EkpError::InvalidSetting)?;
            if self.inflation.is_some() {
                return Err(EkpError::InvalidSetting(format!(
                    "inflation cannot be used with {}: its ensemble is a set of sigma points",
                    self.process.kind()
                )));
            }
            if !accelerator.is_none() {
                return Err(EkpError::InvalidSetting(format!(
                    "accelerator \"{}\" cannot be used with {}: its ensemble is a set of sigma points",
                    accelerator.kind(),
                    self.process.kind()
                )));
            }
            if !self.update_groups.is_empty() {
                return Err(EkpError::InvalidSetting(format!(
                    "update groups are not supported with {} in this version",
                    self.process.kind()
                )));
            }
            if self.initial.is_some() {
                return Err(EkpError::InvalidSetting(format!(
                    "{} builds its own sigma-point ensemble from the prior: no initial ensemble can be given",
                    self.process.kind()
                )));
            }
        }
        if !(0.0..=1.0).contains(&self.nan_tolerance) {
            return Err(EkpError::InvalidSetting(format!(
                "nan_tolerance must be in [0, 1], got {}",
                self.nan_tolerance
            )));
        }
        let s = self.process.multiplicative_inflation();
        if !(s.is_finite() && s >= 0.0) {
            return Err(EkpError::InvalidSetting(format!(
                "multiplicative_inflation must be ≥ 0 and finite, got {s}"
            )));
        }
        let p = self.prior.dim();
        if let Process::SparseInversion(settings) = &self.process {
            settings.validate(p).map_err(EkpError::InvalidSetting)?;
            if !self.update_groups.is_empty() {
                return Err(EkpError::InvalidSetting(
                    "update groups are not supported with sparse-inversion (EKP.jl's sparse \
                     update ignores them too)"
                        .to_string(),
                ));
            }
        }
        if !self.update_groups.is_empty() {
            let dims: Vec<usize> = self
                .observations
                .observations()
                .iter()
                .map(Observation::dim)
                .collect();
            if dims.iter().any(|&k| k != dims[0]) {
                return Err(EkpError::InvalidSetting(format!(
                    "update groups need observations of one length (as in EKP.jl); the series has lengths {dims:?}"
                )));
            }
            validate_groups(&self.update_groups, p, dims[0]).map_err(EkpError::InvalidSetting)?;
        }
        let mut rng = ChaCha20Rng::seed_from_u64(self.seed);
        let mut unscented = None;
        let u0 = match (self.initial, self.process.unscented()) {
            (_, Some(settings)) => {
                let mut state = UnscentedState::new(
                    settings,
                    self.prior.mean(),
                    self.prior.std().map(|s| s * s),
                );
                // EKP.jl: the initial ensemble is the prediction with Δt = 0.
                let u0 = state.predict(settings, 0.0);
                unscented = Some(state);
                u0
            }
            (Some(u), None) => {
                if u.nrows() != p || u.ncols() < 2 {
                    return Err(EkpError::InitialEnsembleShape {
                        rows: u.nrows(),
                        cols: u.ncols(),
                        expected_rows: p,
                    });
                }
                u
            }
            (None, None) => {
                if self.ensemble_size < 2 {
                    return Err(EkpError::EnsembleSize {
                        members: self.ensemble_size,
                    });
                }
                self.prior.sample(&mut rng, self.ensemble_size)
            }
        };
        let mut observations = self.observations;
        observations.reseed(self.seed);
        let momentum = (!accelerator.is_none()).then(|| Momentum::new(&u0));
        Ok(EnsembleKalmanProcess {
            prior: self.prior,
            observations,
            process: self.process,
            scheduler,
            localizer,
            failure,
            nan_tolerance: self.nan_tolerance,
            accelerator,
            momentum,
            update_groups: self.update_groups,
            rng,
            u: vec![u0],
            g: Vec::new(),
            dt: Vec::new(),
            metrics: Vec::new(),
            failed: Vec::new(),
            imputed: Vec::new(),
            minibatches: Vec::new(),
            unscented,
            inflation: self.inflation,
            history: self.history,
        })
    }
}

impl EnsembleKalmanProcess {
    /// Start building a process for this prior, data (one [`Observation`] or an
    /// [`ObservationSeries`]) and algorithm.
    pub fn builder(
        prior: Prior,
        observations: impl Into<ObservationSeries>,
        process: Process,
    ) -> EkpBuilder {
        EkpBuilder {
            prior,
            observations: observations.into(),
            process,
            ensemble_size: 20,
            seed: 0,
            scheduler: None,
            localizer: None,
            failure: None,
            accelerator: None,
            nan_tolerance: DEFAULT_NAN_TOLERANCE,
            update_groups: Vec::new(),
            initial: None,
            inflation: None,
            history: HistoryPolicy::All,
        }
    }

    /// The prior.
    pub fn prior(&self) -> &Prior {
        &self.prior
    }
    /// The data the next update fits: the current minibatch's observations,
    /// stacked (the one observation without a series).
    pub fn observation(&self) -> &Observation {
        self.observations.current()
    }
    /// The observation series, with its minibatcher and position.
    pub fn observation_series(&self) -> &ObservationSeries {
        &self.observations
    }
    /// The algorithm.
    pub fn process(&self) -> &Process {
        &self.process
    }
    /// The scheduler.
    pub fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }
    /// The localizer.
    pub fn localizer(&self) -> &Localizer {
        &self.localizer
    }
    /// The failure policy.
    pub fn failure_policy(&self) -> FailurePolicy {
        self.failure
    }
    /// The fraction of non-finite outputs above which a member has failed.
    pub fn nan_tolerance(&self) -> f64 {
        self.nan_tolerance
    }
    /// The accelerator.
    pub fn accelerator(&self) -> &Accelerator {
        &self.accelerator
    }
    /// The user inflation (`None`: only the process's own).
    pub fn inflation(&self) -> Option<&Inflation> {
        self.inflation.as_ref()
    }
    /// The accelerator's state (`None` without an accelerator).
    pub fn momentum(&self) -> Option<&Momentum> {
        self.momentum.as_ref()
    }
    /// The update groups (empty: one group of everything).
    pub fn update_groups(&self) -> &[UpdateGroup] {
        &self.update_groups
    }
    /// Whether EKI perturbs the observations: `perturb_observations`, and no
    /// accelerator (EKP.jl switches perturbation off under acceleration).
    pub fn perturbs_observations(&self) -> bool {
        self.process.perturb_observations() && self.accelerator.is_none()
    }
    /// The Gaussian of UKI/UTKI: mean and covariance history (`None` for the
    /// other processes).
    pub fn unscented_state(&self) -> Option<&UnscentedState> {
        self.unscented.as_ref()
    }
    /// Number of members `N`.
    pub fn ensemble_size(&self) -> usize {
        self.ensemble().ncols()
    }
    /// Number of updates applied so far.
    pub fn iterations(&self) -> usize {
        self.dt.len()
    }
    /// Warnings about this process's settings (EKP.jl's ensemble-size
    /// recommendations); empty when there is nothing to say.
    pub fn warnings(&self) -> Vec<Warning> {
        warnings::ensemble_size(self.process(), self.prior().dim(), self.ensemble_size())
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
    /// Mean of the current unconstrained ensemble; for UKI/UTKI the process's
    /// own mean `m_n` (EKP.jl's `get_u_mean_final`).
    pub fn unconstrained_mean(&self) -> DVector<f64> {
        match &self.unscented {
            Some(state) => state.mean(),
            None => column_mean(self.ensemble()),
        }
    }
    /// Sample covariance (`1/(N−1)`) of the current unconstrained ensemble;
    /// for UKI/UTKI the process's own covariance `C_n`.
    pub fn unconstrained_covariance(&self) -> DMatrix<f64> {
        match &self.unscented {
            Some(state) => state.cov().clone(),
            None => sample_covariance(self.ensemble()),
        }
    }
    /// The constrained transform of the unconstrained mean (EKP.jl's
    /// `get_ϕ_mean_final`).
    pub fn constrained_mean(&self) -> DVector<f64> {
        self.prior.to_constrained(&self.unconstrained_mean())
    }

    /// All unconstrained ensembles, the initial one first (with an
    /// accelerator: the accelerated ensembles, the ones that were run).
    pub fn u_history(&self) -> &[DMatrix<f64>] {
        &self.u
    }
    /// The outputs told to each update, after imputation (failed members'
    /// columns as told). With [`HistoryPolicy::Last`] only the latest update's
    /// (see [`g_history_start`](Self::g_history_start)).
    pub fn g_history(&self) -> &[DMatrix<f64>] {
        &self.g
    }
    /// The update (0-based) whose outputs are the first of
    /// [`g_history`](Self::g_history): 0 with [`HistoryPolicy::All`].
    pub fn g_history_start(&self) -> usize {
        self.dt.len() - self.g.len()
    }
    /// The outputs told to update `k` (0-based), if they are kept.
    pub fn outputs_of_update(&self, k: usize) -> Option<&DMatrix<f64>> {
        k.checked_sub(self.g_history_start())
            .and_then(|i| self.g.get(i))
    }
    /// Which outputs are kept.
    pub fn history_policy(&self) -> HistoryPolicy {
        self.history
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
    /// The imputed outputs of each update.
    pub fn imputed_history(&self) -> &[Vec<ImputedValue>] {
        &self.imputed
    }
    /// The minibatch (observation indices, 0-based) each update fitted.
    pub fn minibatch_history(&self) -> &[Vec<usize>] {
        &self.minibatches
    }

    /// Failed members, imputed values and error metrics of outputs for *every*
    /// observation of the series (rows as in [`ObservationSeries::all_stacked`];
    /// without a series, the outputs an update takes), judged as an update
    /// would judge them (same NaN tolerance and imputation), against all the
    /// data. Changes nothing: for reports, e.g. of a final ensemble that is
    /// not updated. Panics never; a wrong row count gives an error.
    pub fn assess_all_outputs(&self, g_all: &DMatrix<f64>) -> Result<Assessment, EkpError> {
        let all = self.observations.all_stacked();
        if g_all.nrows() != all.dim() {
            return Err(EkpError::OutputShape {
                rows: g_all.nrows(),
                cols: g_all.ncols(),
                expected_rows: all.dim(),
                expected_cols: g_all.ncols(),
            });
        }
        let imputation = impute_over_nonfinite(g_all, self.nan_tolerance, all.values());
        let ok = imputation.successful();
        let metrics = ErrorMetrics::compute(&select_columns(&imputation.outputs, &ok), &all)
            .with_prior(
                all.dim(),
                &self.run_mean(&ok),
                &self.prior.mean(),
                &self.prior.std().map(|s| s * s),
            );
        Ok(Assessment {
            failed: imputation.failed,
            imputed: imputation.imputed,
            metrics,
        })
    }

    /// The parameter mean of the current members `ok` (for the Bayesian loss):
    /// the process's own mean for UKI/UTKI.
    fn run_mean(&self, ok: &[usize]) -> DVector<f64> {
        match &self.unscented {
            Some(state) => state.mean(),
            None if ok.iter().all(|&j| j < self.ensemble_size()) && !ok.is_empty() => {
                column_mean(&select_columns(self.ensemble(), ok))
            }
            None => column_mean(self.ensemble()),
        }
    }

    /// True when the scheduler will make no further update: there is no need to
    /// run the model on the current ensemble for another update.
    pub fn is_terminated(&self) -> bool {
        self.scheduler.is_terminated(&self.dt)
    }

    /// Tell the outputs `g` (`d × N`, column `j` = member `j` of
    /// [`ensemble`](Self::ensemble), rows those of the current minibatch's
    /// [`observation`](Self::observation)) and apply one update with the
    /// scheduler's step. On error nothing changes, the RNG included.
    pub fn update(&mut self, g: &DMatrix<f64>) -> Result<UpdateOutcome, EkpError> {
        self.update_inner(Cow::Borrowed(g), None, None)
    }

    /// Like [`update`](Self::update), taking the outputs by value: the
    /// history keeps them without a copy (for a large `d × N` output matrix
    /// that saves its size in memory and the time to copy it). On error the
    /// outputs are dropped and nothing else changes.
    pub fn update_owned(&mut self, g: DMatrix<f64>) -> Result<UpdateOutcome, EkpError> {
        self.update_inner(Cow::Owned(g), None, None)
    }

    /// Like [`update`](Self::update), but this one update uses the step `dt`
    /// whatever the scheduler says.
    pub fn update_with_dt(&mut self, g: &DMatrix<f64>, dt: f64) -> Result<UpdateOutcome, EkpError> {
        if !(dt.is_finite() && dt > 0.0) {
            return Err(EkpError::InvalidDt { dt });
        }
        self.update_inner(Cow::Borrowed(g), Some(dt), None)
    }

    /// Like [`update`](Self::update), with the outputs for *every* observation
    /// of the series (rows as in
    /// [`ObservationSeries::all_stacked`]): the rows of the current minibatch
    /// are picked. Without minibatching this is [`update`](Self::update). The
    /// [`g_history`](Self::g_history) then keeps all the rows told (the
    /// minibatch's with their imputed values).
    pub fn update_from_all_outputs(
        &mut self,
        g_all: &DMatrix<f64>,
    ) -> Result<UpdateOutcome, EkpError> {
        let total = self.observations.total_dim();
        if g_all.nrows() != total || g_all.ncols() != self.ensemble_size() {
            return Err(EkpError::OutputShape {
                rows: g_all.nrows(),
                cols: g_all.ncols(),
                expected_rows: total,
                expected_cols: self.ensemble_size(),
            });
        }
        let rows = self.observations.current_rows();
        let g = g_all.select_rows(rows.iter());
        self.update_inner(Cow::Owned(g), None, Some((g_all, &rows)))
    }

    /// One update with the minibatch's outputs `g`; `all` holds the outputs of
    /// every observation and the minibatch's rows in them, when they were told.
    fn update_inner(
        &mut self,
        g_in: Cow<'_, DMatrix<f64>>,
        dt_override: Option<f64>,
        all: Option<(&DMatrix<f64>, &[usize])>,
    ) -> Result<UpdateOutcome, EkpError> {
        let g: &DMatrix<f64> = &g_in;
        let n = self.ensemble_size();
        let obs = self.observations.current();
        let d = obs.dim();
        if g.nrows() != d || g.ncols() != n {
            return Err(EkpError::OutputShape {
                rows: g.nrows(),
                cols: g.ncols(),
                expected_rows: d,
                expected_cols: n,
            });
        }
        let warnings: Vec<Warning> = warnings::repeated_outputs(g).into_iter().collect();
        // No copy of `g` unless values are imputed.
        let (imputed_g, failed, imputed) = impute_lazy(g, self.nan_tolerance, obs.values());
        let successful: Vec<usize> = (0..n)
            .filter(|j| failed.binary_search(j).is_err())
            .collect();
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
        let g: &DMatrix<f64> = imputed_g.as_ref().unwrap_or(g);
        let g_ok: Cow<'_, DMatrix<f64>> = if failed.is_empty() {
            Cow::Borrowed(g)
        } else {
            Cow::Owned(select_columns(g, &successful))
        };
        let misfits = crate::scheduler::member_misfits(&g_ok, obs);
        let dt = match dt_override {
            Some(dt) => dt,
            None => match self
                .scheduler
                .next_step_with(&self.dt, &g_ok, obs, Some(&misfits))
            {
                Step::Dt(dt) => dt,
                Step::Terminate => return Ok(UpdateOutcome::Terminated),
            },
        };
        if !(dt.is_finite() && dt > 0.0) {
            return Err(EkpError::InvalidDt { dt });
        }

        // Work on copies of the RNG, the momentum and the unscented state:
        // they are committed only if the update succeeds.
        let mut rng = self.rng.clone();
        let mut momentum = self.momentum.clone();
        let mut new_unscented = None;
        let prior_mean = self.prior.mean();
        let prior_var = self.prior.std().map(|s| s * s);
        let (new_u, metrics) = if let Some(settings) = self.process.unscented() {
            let transform = matches!(self.process, Process::TransformUnscented(_));
            let mut state = self.unscented.clone().ok_or_else(|| {
                EkpError::InvalidSetting(format!(
                    "the {} process has no unscented state (built without the builder?)",
                    self.process.kind()
                ))
            })?;
            let (sigma, g_mean) = state.update(
                settings,
                transform,
                self.ensemble(),
                g,
                &successful,
                obs,
                dt,
            )?;
            new_unscented = Some(state);
            // EKP.jl's loss of UKI is at the weighted output mean.
            let metrics = ErrorMetrics::compute_with_mean(&g_ok, &g_mean, obs).with_prior(
                d,
                &self.run_mean(&successful),
                &prior_mean,
                &prior_var,
            );
            (sigma, metrics)
        } else {
            // Work on copies of the RNG and the momentum: they are committed only
            // if the update succeeds.
            let u = self.ensemble();
            let p = u.nrows();
            let step = GroupStep {
                process: &self.process,
                localizer: &self.localizer,
                perturb: self.perturbs_observations(),
                dt,
                successful: &successful,
                failed: &failed,
            };
            let mut new_u = if self.update_groups.is_empty() {
                let prior_block = self.process.uses_prior_block().then_some(PriorBlock {
                    mean: &prior_mean,
                    variances: &prior_var,
                });
                step.run(u, g, None, obs, prior_block, &mut rng)?
            } else {
                let count = self.observations.current_minibatch().len();
                let obs_dim = d / count.max(1);
                let mut new_u = DMatrix::zeros(p, n);
                for group in &self.update_groups {
                    let rows = minibatch_rows(group, count, obs_dim);
                    let u_g = u.select_rows(group.parameters.iter());
                    let obs_g = Observation::new(
                        obs.values().select_rows(rows.iter()),
                        obs.noise().restrict(&rows)?,
                    )?;
                    let mean_g = prior_mean.select_rows(group.parameters.iter());
                    let var_g = prior_var.select_rows(group.parameters.iter());
                    let prior_block = self.process.uses_prior_block().then_some(PriorBlock {
                        mean: &mean_g,
                        variances: &var_g,
                    });
                    let updated = step.run(&u_g, g, Some(&rows), &obs_g, prior_block, &mut rng)?;
                    for (k, &i) in group.parameters.iter().enumerate() {
                        new_u.set_row(i, &updated.row(k));
                    }
                }
                new_u
            };

            if let Some(m) = momentum.as_mut() {
                new_u = m.accelerate(&self.accelerator, new_u, self.dt.len());
            }

            let s = self.process.multiplicative_inflation();
            if let Some(inflation) = &self.inflation {
                inflation.apply(&mut new_u, dt, &prior_var, &mut rng)?;
            } else if s > 0.0 {
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
            let metrics =
                ErrorMetrics::compute_inner(&g_ok, &column_mean(&g_ok), obs, true, Some(&misfits))
                    .with_prior(d, &self.run_mean(&successful), &prior_mean, &prior_var);
            (new_u, metrics)
        };
        let minibatch = self.observations.current_minibatch().to_vec();
        if self.history == HistoryPolicy::Last {
            // Free the previous outputs before copying the new ones.
            self.g.clear();
        }
        let stored = match all {
            None => match imputed_g {
                Some(imputed_g) => imputed_g,
                None => match g_in {
                    Cow::Owned(m) => m,
                    Cow::Borrowed(b) => crate::lowrank::par_clone(b),
                },
            },
            Some((g_all, rows)) => {
                let mut stored = g_all.clone();
                for (k, &r) in rows.iter().enumerate() {
                    stored.set_row(r, &g.row(k));
                }
                stored
            }
        };
        self.rng = rng;
        self.momentum = momentum;
        if new_unscented.is_some() {
            self.unscented = new_unscented;
        }
        self.u.push(new_u);
        self.g.push(stored);
        self.dt.push(dt);
        self.metrics.push(metrics);
        self.failed.push(failed.clone());
        self.imputed.push(imputed.clone());
        self.minibatches.push(minibatch.clone());
        self.observations.advance();
        Ok(UpdateOutcome::Updated(UpdateReport {
            dt,
            failed,
            imputed,
            minibatch,
            metrics,
            warnings,
        }))
    }
}

/// What every group of one update shares.
struct GroupStep<'a> {
    process: &'a Process,
    localizer: &'a Localizer,
    perturb: bool,
    dt: f64,
    successful: &'a [usize],
    failed: &'a [usize],
}

impl GroupStep<'_> {
    /// The update of one group: `u` (`p_g × N`) with outputs `rows` of `g`
    /// (`d × N`, every row when `None`) against `obs` (those rows' data);
    /// returns the new `p_g × N` ensemble, failed members redrawn.
    /// Draws, in order: the process's step (perturbations of all `N` members,
    /// so the draws do not depend on which failed, then the localizer's), the
    /// redraws of failed members.
    ///
    /// EKI without a localizer and ETKI take the low-rank path when `Γ` is
    /// diagonal (EKI only when it has more outputs than members, where it is
    /// the cheaper form): the outputs are read in row blocks and never copied.
    fn run(
        &self,
        u: &DMatrix<f64>,
        g: &DMatrix<f64>,
        rows: Option<&[usize]>,
        obs: &Observation,
        prior_block: Option<PriorBlock<'_>>,
        rng: &mut ChaCha20Rng,
    ) -> Result<DMatrix<f64>, EkpError> {
        let (p, n) = u.shape();
        let u_ok = select_columns(u, self.successful);
        let input = StepInput {
            u: &u_ok,
            outputs: OutputSelection {
                g,
                rows: match rows {
                    Some(r) => Rows::List(r),
                    None => Rows::All(obs.dim()),
                },
                cols: self.successful,
            },
            obs,
            dt: self.dt,
            prior: prior_block,
            localizer: self.localizer,
            perturb: self.perturb,
            members: n,
        };
        let updated_ok = self.process.as_step().step(&input, rng)?;
        let mut out = DMatrix::zeros(p, n);
        for (k, &j) in self.successful.iter().enumerate() {
            out.set_column(j, &updated_ok.column(k));
        }
        if !self.failed.is_empty() {
            let draws = sample_empirical_gaussian(rng, &updated_ok, self.failed.len());
            for (k, &j) in self.failed.iter().enumerate() {
                out.set_column(j, &draws.column(k));
            }
        }
        Ok(out)
    }
}
