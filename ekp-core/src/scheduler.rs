//! Learning-rate schedulers: how large the artificial time step `Δt` of each
//! update is, and when a process stops.

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use crate::observation::Observation;

/// Chooses `Δt` for each update.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Scheduler {
    /// The same `Δt` every update (EKP.jl's `DefaultScheduler`).
    Fixed {
        /// The step.
        dt: f64,
    },
    /// EKP.jl's `DataMisfitController` (Iglesias & Yang 2021): with the
    /// per-member misfits `Φ_j = ½‖Γ^{-½}(y − g_j)‖²` over the successful members,
    /// `Δt = min(max(d / (2 mean Φ), √(d / (2 var Φ))), T − Σ Δt)`; once
    /// `Σ Δt ≥ T` (`terminate_at`) the process stops.
    DataMisfit {
        /// The total artificial time `T` at which to stop.
        terminate_at: f64,
    },
}

impl Default for Scheduler {
    /// EKP.jl's default for `Inversion()`: `DataMisfitController(terminate_at = 1)`.
    fn default() -> Self {
        Scheduler::DataMisfit { terminate_at: 1.0 }
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
    /// Checks the scheduler's own settings; returns a message naming the bad key.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Scheduler::Fixed { dt } if !(dt.is_finite() && *dt > 0.0) => Err(format!(
                "scheduler.dt must be positive and finite, got {dt}"
            )),
            Scheduler::DataMisfit { terminate_at }
                if terminate_at.is_nan() || *terminate_at <= 0.0 =>
            {
                Err(format!(
                    "scheduler.terminate_at must be positive, got {terminate_at}"
                ))
            }
            _ => Ok(()),
        }
    }

    /// True when no further update will be made, judged from the `Δt` history alone.
    pub fn is_terminated(&self, dt_history: &[f64]) -> bool {
        match self {
            Scheduler::Fixed { .. } => false,
            Scheduler::DataMisfit { terminate_at } => {
                !dt_history.is_empty() && dt_history.iter().sum::<f64>() >= *terminate_at
            }
        }
    }

    /// The step for the next update, given the successful members' outputs
    /// `g` (`d × n`) and the data.
    pub fn next_step(&self, dt_history: &[f64], g: &DMatrix<f64>, obs: &Observation) -> Step {
        if self.is_terminated(dt_history) {
            return Step::Terminate;
        }
        match self {
            Scheduler::Fixed { dt } => Step::Dt(*dt),
            Scheduler::DataMisfit { terminate_at } => {
                let elapsed: f64 = dt_history.iter().sum();
                let d = obs.dim() as f64;
                let phi = member_misfits(g, obs);
                let n = phi.len() as f64;
                let mean = phi.mean();
                let var = if n > 1.0 {
                    phi.iter().map(|p| (p - mean).powi(2)).sum::<f64>() / (n - 1.0)
                } else {
                    0.0
                };
                let q = (d / (2.0 * mean)).max((d / (2.0 * var)).sqrt());
                let q = if q.is_finite() {
                    q
                } else {
                    terminate_at - elapsed
                };
                Step::Dt(q.min(terminate_at - elapsed))
            }
        }
    }
}

/// `Φ_j = ½ (y − g_j)ᵀ Γ⁻¹ (y − g_j)` for each column of `g`.
pub fn member_misfits(g: &DMatrix<f64>, obs: &Observation) -> DVector<f64> {
    let mut diff = g.clone();
    for mut col in diff.column_iter_mut() {
        col -= obs.values();
    }
    obs.noise().weighted_norms_sq(&diff) * 0.5
}
