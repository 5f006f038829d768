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
//!
//! The module's files: `builder` ([`EkpBuilder`]: settings and defaults),
//! `update` (the steps above), `group` (one update group), `metrics`
//! ([`ErrorMetrics`]), `outcome` ([`UpdateOutcome`], [`UpdateReport`],
//! [`Assessment`]) and `history` ([`HistoryPolicy`] and the history
//! accessors); this file holds the state and its settings.

mod builder;
mod group;
mod history;
mod metrics;
mod outcome;
mod update;

use nalgebra::{DMatrix, DVector};
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};

use crate::accelerator::{Accelerator, Momentum};
use crate::failure::{FailurePolicy, ImputedValue};
use crate::inflation::Inflation;
use crate::linalg::{column_mean, sample_covariance, select_columns};
use crate::localization::Localizer;
use crate::observation::Observation;
use crate::observation_series::ObservationSeries;
use crate::prior::Prior;
use crate::process::{Process, UnscentedState};
use crate::scheduler::Scheduler;
use crate::update_group::UpdateGroup;
use crate::warnings::{self, Warning};

pub use builder::EkpBuilder;
pub use history::HistoryPolicy;
pub use metrics::ErrorMetrics;
pub use outcome::{Assessment, UpdateOutcome, UpdateReport};

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

impl EnsembleKalmanProcess {
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

    /// True when the scheduler will make no further update: there is no need to
    /// run the model on the current ensemble for another update.
    pub fn is_terminated(&self) -> bool {
        self.scheduler.is_terminated(&self.dt)
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
}
