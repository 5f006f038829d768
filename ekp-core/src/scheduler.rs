//! Learning-rate schedulers: how large the artificial time step `Δt` of each
//! update is, and when a process stops (EKP.jl's `LearningRateSchedulers.jl`).
//!
//! Every scheduler sees the outputs of the *successful* members only (after
//! NaN imputation, see [`failure`](crate::failure)) and the observation of the
//! current minibatch.
//!
//! A one-step override ([`EnsembleKalmanProcess::update_with_dt`](crate::EnsembleKalmanProcess::update_with_dt))
//! replaces the scheduler's step for that one update, whatever the scheduler.
//! *Deliberate difference:* EKP.jl ignores `Δt_new` for `DataMisfitController`
//! and `EKSStableScheduler` (with an info message); we apply it, and the
//! overridden step counts toward a data-misfit terminal time like any other.

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use crate::observation::Observation;

/// What a [`Scheduler::DataMisfit`] does once its terminal time is reached
/// (EKP.jl's `on_terminate`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnTerminate {
    /// Stop: every further `update` returns
    /// [`UpdateOutcome::Terminated`](crate::UpdateOutcome::Terminated) and changes
    /// nothing (EKP.jl's `"stop"`, the default).
    #[default]
    Stop,
    /// Keep going with the data-misfit step, no longer capped by the remaining
    /// time (EKP.jl's `"continue"`).
    Continue,
    /// Keep going, repeating the last step taken (EKP.jl's `"continue_fixed"`):
    /// usually the small remainder step that reached the terminal time.
    #[serde(alias = "continue_fixed")]
    ContinueFixed,
}

impl OnTerminate {
    /// The name used in calibration files.
    pub fn name(self) -> &'static str {
        match self {
            OnTerminate::Stop => "stop",
            OnTerminate::Continue => "continue",
            OnTerminate::ContinueFixed => "continue-fixed",
        }
    }
}

/// Chooses `Δt` for each update.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Scheduler {
    /// The same `Δt` every update (EKP.jl's `DefaultScheduler`, whose default
    /// step is 1).
    Fixed {
        /// The step (default 1).
        #[serde(default = "one")]
        dt: f64,
    },
    /// EKP.jl's `DataMisfitController` (Iglesias & Yang 2021): with the
    /// per-member misfits `Φ_j = ½‖Γ^{-½}(y − g_j)‖²` over the successful members
    /// and `d = dim y`,
    /// `Δt = min(max(d / (2 mean Φ), √(d / (2 var Φ))), T − Σ Δt)`. The update
    /// that reaches `T` (`terminate_at`) is applied; what follows is decided by
    /// `on_terminate`. When all `Φ_j` are equal the max is `+∞` and the step is
    /// the remaining time (as in EKP.jl); after `T` with `continue`, where EKP.jl
    /// would take an infinite step, the last step is repeated instead.
    DataMisfit {
        /// The total artificial time `T` (EKP.jl's default 1: at `T = 1` the
        /// ensemble spread approximates the posterior's).
        #[serde(default = "one")]
        terminate_at: f64,
        /// What happens once `Σ Δt ≥ T`.
        #[serde(default)]
        on_terminate: OnTerminate,
    },
    /// EKP.jl's `EKSStableScheduler`: with `D = (1/J) (g − ḡ)ᵀ Γ⁻¹ (g − y)`
    /// (`J × J`, over the `J` successful members),
    /// `Δt = max(numerator, ε) / (‖D‖_F + max(nugget, ε))`, `ε` the machine
    /// epsilon. Made for the sampler (EKS/ALDI), usable with any process; it
    /// never terminates.
    EksStable {
        /// The numerator `α` (EKP.jl's default 1).
        #[serde(default = "one")]
        numerator: f64,
        /// The nugget (EKP.jl's default `eps()`).
        #[serde(default = "epsilon")]
        nugget: f64,
    },
}

fn one() -> f64 {
    1.0
}

fn epsilon() -> f64 {
    f64::EPSILON
}

impl Default for Scheduler {
    /// EKP.jl's default for `Inversion()`: `DataMisfitController(terminate_at = 1)`.
    fn default() -> Self {
        Scheduler::data_misfit(1.0)
    }
}

/// What a scheduler decided for the next update.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Step {
    /// Update with this `Δt`.
    Dt(f64),
    /// Stop: the terminal time has been reached.
    Terminate,
}

impl Scheduler {
    /// A data-misfit scheduler that stops at `terminate_at` (EKP.jl's
    /// `DataMisfitController(terminate_at = T)`).
    pub fn data_misfit(terminate_at: f64) -> Self {
        Scheduler::DataMisfit {
            terminate_at,
            on_terminate: OnTerminate::Stop,
        }
    }

    /// EKP.jl's `EKSStableScheduler()`: numerator 1, nugget `ε`.
    pub fn eks_stable() -> Self {
        Scheduler::EksStable {
            numerator: 1.0,
            nugget: f64::EPSILON,
        }
    }

    /// The name used in calibration files (`scheduler.kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            Scheduler::Fixed { .. } => "fixed",
            Scheduler::DataMisfit { .. } => "data-misfit",
            Scheduler::EksStable { .. } => "eks-stable",
        }
    }

    /// Checks the scheduler's own settings; returns a message naming the bad key.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Scheduler::Fixed { dt } if !(dt.is_finite() && *dt > 0.0) => Err(format!(
                "scheduler.dt must be positive and finite, got {dt}"
            )),
            Scheduler::DataMisfit { terminate_at, .. }
                if terminate_at.is_nan() || *terminate_at <= 0.0 =>
            {
                Err(format!(
                    "scheduler.terminate_at must be positive (+inf allowed), got {terminate_at}"
                ))
            }
            Scheduler::EksStable { numerator, .. }
                if !(numerator.is_finite() && *numerator > 0.0) =>
            {
                Err(format!(
                    "scheduler.numerator must be positive and finite, got {numerator}"
                ))
            }
            Scheduler::EksStable { nugget, .. } if !(nugget.is_finite() && *nugget >= 0.0) => Err(
                format!("scheduler.nugget must be ≥ 0 and finite, got {nugget}"),
            ),
            _ => Ok(()),
        }
    }

    /// True when no further update will be made, judged from the `Δt` history
    /// alone: only a data-misfit scheduler with `on_terminate = stop` whose
    /// steps add up to its terminal time.
    pub fn is_terminated(&self, dt_history: &[f64]) -> bool {
        match self {
            Scheduler::Fixed { .. } | Scheduler::EksStable { .. } => false,
            Scheduler::DataMisfit {
                terminate_at,
                on_terminate,
            } => {
                *on_terminate == OnTerminate::Stop
                    && !dt_history.is_empty()
                    && dt_history.iter().sum::<f64>() >= *terminate_at
            }
        }
    }

    /// The step for the next update, given the successful members' outputs
    /// `g` (`d × n`) and the data.
    pub fn next_step(&self, dt_history: &[f64], g: &DMatrix<f64>, obs: &Observation) -> Step {
        self.next_step_with(dt_history, g, obs, None)
    }

    /// [`next_step`](Self::next_step) with the member misfits `Φ` (see
    /// [`member_misfits`]) when they are already known.
    pub(crate) fn next_step_with(
        &self,
        dt_history: &[f64],
        g: &DMatrix<f64>,
        obs: &Observation,
        misfits: Option<&DVector<f64>>,
    ) -> Step {
        if self.is_terminated(dt_history) {
            return Step::Terminate;
        }
        match self {
            Scheduler::Fixed { dt } => Step::Dt(*dt),
            Scheduler::DataMisfit {
                terminate_at,
                on_terminate,
            } => {
                let elapsed: f64 = dt_history.iter().sum();
                let reached = !dt_history.is_empty() && elapsed >= *terminate_at;
                if reached && *on_terminate == OnTerminate::ContinueFixed {
                    // `reached` implies a non-empty history.
                    return Step::Dt(dt_history[dt_history.len() - 1]);
                }
                let q = match misfits {
                    Some(phi) => data_misfit_step_from(phi, obs.dim()),
                    None => data_misfit_step_from(&member_misfits(g, obs), obs.dim()),
                };
                if reached {
                    // `continue`: the plain data-misfit step.
                    let q = if q.is_finite() {
                        q
                    } else {
                        dt_history[dt_history.len() - 1]
                    };
                    Step::Dt(q)
                } else {
                    let remaining = terminate_at - elapsed;
                    let q = if q.is_finite() { q } else { remaining };
                    Step::Dt(q.min(remaining))
                }
            }
            Scheduler::EksStable { numerator, nugget } => {
                let d = eks_stable_matrix(g, obs);
                let num = numerator.max(f64::EPSILON);
                let nug = nugget.max(f64::EPSILON);
                Step::Dt(num / (d.norm() + nug))
            }
        }
    }
}

/// The uncapped data-misfit step `max(d / (2 mean Φ), √(d / (2 var Φ)))`
/// (`+∞` when all `Φ_j` are equal, as in EKP.jl).
fn data_misfit_step_from(phi: &DVector<f64>, d: usize) -> f64 {
    let d = d as f64;
    let n = phi.len() as f64;
    let mean = phi.mean();
    let var = if n > 1.0 {
        phi.iter().map(|p| (p - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    let q = (d / (2.0 * mean)).max((d / (2.0 * var)).sqrt());
    if q.is_nan() { f64::INFINITY } else { q }
}

/// `Φ_j = ½ (y − g_j)ᵀ Γ⁻¹ (y − g_j)` for each column of `g`.
pub fn member_misfits(g: &DMatrix<f64>, obs: &Observation) -> DVector<f64> {
    if let Some(variances) = obs.noise().diagonal_if_diagonal() {
        // Column by column, without a copy of `g`.
        let cols: Vec<usize> = (0..g.ncols()).collect();
        let weights = variances.map(|v| 1.0 / v);
        return crate::lowrank::weighted_misfits(g, &cols, obs.values(), &weights) * 0.5;
    }
    let mut diff = g.clone();
    for mut col in diff.column_iter_mut() {
        col -= obs.values();
    }
    obs.noise().weighted_norms_sq(&diff) * 0.5
}

/// The `J × J` matrix `D = (1/J) (g − ḡ)ᵀ Γ⁻¹ (g − y)` of the EKS-stable
/// scheduler (and of the EKS update), for the `J` columns of `g`.
pub fn eks_stable_matrix(g: &DMatrix<f64>, obs: &Observation) -> DMatrix<f64> {
    let j = g.ncols().max(1) as f64;
    let (_, ga) = crate::linalg::anomalies(g);
    let mut diff = g.clone();
    for mut col in diff.column_iter_mut() {
        col -= obs.values();
    }
    obs.noise().solve_inplace(&mut diff);
    (ga.transpose() * diff) / j
}
