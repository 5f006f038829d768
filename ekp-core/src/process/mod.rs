//! The ensemble Kalman processes: one module per algorithm, one enum to choose.
//!
//! Each algorithm's module holds its settings, EKP.jl's defaults for it and
//! its step, a pure function from the current ensemble `u` (`p × n`), its
//! outputs `g` (`d × n`), the data and the step `Δt` to the new ensemble,
//! behind one crate-internal trait (`ProcessStep`). [`Process`] chooses
//! among them with one exhaustive `match`.

pub mod gauss_newton;
pub mod inversion;
pub mod sampler;
pub mod sparse_inversion;
pub mod transform_inversion;
pub mod unscented;

mod step;

use serde::{Deserialize, Serialize};

use crate::accelerator::Accelerator;
use crate::failure::FailurePolicy;
use crate::localization::Localizer;
use crate::scheduler::Scheduler;

pub use gauss_newton::GaussNewton;
pub use inversion::Inversion;
pub use sampler::{Sampler, SamplerType};
pub use sparse_inversion::SparseInversion;
pub use transform_inversion::TransformInversion;
pub use unscented::{SigmaPoints, Unscented, UnscentedState};

pub(crate) use step::{OutputSelection, ProcessStep, StepInput};

/// Which algorithm updates the ensemble. Matched exhaustively everywhere.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Process {
    /// Ensemble Kalman inversion (EKI).
    Inversion(Inversion),
    /// Ensemble transform Kalman inversion (ETKI).
    TransformInversion(TransformInversion),
    /// The ensemble Kalman sampler (EKS) or ALDI.
    Sampler(Sampler),
    /// Unscented Kalman inversion (UKI): `2p + 1` or `p + 2` sigma points.
    Unscented(Unscented),
    /// Unscented transform Kalman inversion (UTKI): UKI's Woodbury form.
    TransformUnscented(Unscented),
    /// Gauss–Newton Kalman inversion (GNKI).
    GaussNewton(GaussNewton),
    /// Sparse EKI: EKI followed by an ℓ1-constrained projection per member.
    SparseInversion(SparseInversion),
}

impl Process {
    /// The name used in calibration files (`process.kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            Process::Inversion(_) => "inversion",
            Process::TransformInversion(_) => "transform-inversion",
            Process::Sampler(_) => "sampler",
            Process::Unscented(_) => "unscented",
            Process::TransformUnscented(_) => "transform-unscented",
            Process::GaussNewton(_) => "gauss-newton",
            Process::SparseInversion(_) => "sparse-inversion",
        }
    }

    /// The process's own settings and step: every variant's implementation
    /// of [`ProcessStep`], chosen by one exhaustive `match`.
    pub(crate) fn as_step(&self) -> &dyn ProcessStep {
        match self {
            Process::Inversion(p) => p,
            Process::TransformInversion(p) => p,
            Process::Sampler(p) => p,
            Process::Unscented(p) | Process::TransformUnscented(p) => p,
            Process::GaussNewton(p) => p,
            Process::SparseInversion(p) => p,
        }
    }

    /// Whether the prior is imposed in every update.
    pub fn impose_prior(&self) -> bool {
        self.as_step().impose_prior()
    }

    /// Whether the update takes the prior's mean and variances: with
    /// `impose_prior`, and always for the sampler and GNKI.
    pub fn uses_prior_block(&self) -> bool {
        self.as_step().uses_prior_block()
    }

    /// Whether the settings ask for perturbed data (EKI, GNKI, sparse EKI's
    /// `perturb_observations`; an accelerator still switches it off).
    pub(crate) fn perturb_observations(&self) -> bool {
        self.as_step().perturb_observations()
    }

    /// The unscented settings of UKI/UTKI (`None` for the other processes).
    pub fn unscented(&self) -> Option<&Unscented> {
        match self {
            Process::Unscented(p) | Process::TransformUnscented(p) => Some(p),
            Process::Inversion(_)
            | Process::TransformInversion(_)
            | Process::Sampler(_)
            | Process::GaussNewton(_)
            | Process::SparseInversion(_) => None,
        }
    }

    /// The ensemble size the process fixes itself for `p` parameters (UKI,
    /// UTKI: `2p + 1` or `p + 2`), `None` where it is chosen freely.
    pub fn derived_ensemble_size(&self, p: usize) -> Option<usize> {
        self.unscented().map(|u| u.ensemble_size(p))
    }

    /// EKP.jl's default scheduler for this process (`default_options_dict`):
    /// data-misfit with `terminate_at = 1`, `eks-stable` for the sampler,
    /// fixed `Δt = 1` for GNKI and sparse EKI.
    pub fn default_scheduler(&self) -> Scheduler {
        self.as_step().default_scheduler()
    }

    /// EKP.jl's default localizer: `sec-nice` for EKI, GNKI and sparse EKI,
    /// none for the others (here only those three can be localized).
    pub fn default_localizer(&self) -> Localizer {
        self.as_step().default_localizer()
    }

    /// Whether a localizer other than `none` may be used (EKI, GNKI, sparse
    /// EKI).
    pub fn supports_localization(&self) -> bool {
        self.as_step().supports_localization()
    }

    /// EKP.jl's default failure handling: `sample-success-gauss`, `ignore`
    /// (failures are an error) for the sampler. For UKI/UTKI
    /// `sample-success-gauss` means EKP.jl's reweighting of the successful
    /// sigma points.
    pub fn default_failure_policy(&self) -> FailurePolicy {
        self.as_step().default_failure_policy()
    }

    /// EKP.jl's default accelerator: `nesterov` for EKI and GNKI, none for
    /// the others (sparse EKI included).
    pub fn default_accelerator(&self) -> Accelerator {
        self.as_step().default_accelerator()
    }

    /// The multiplicative inflation factor `s` applied after every update
    /// (`0` for none): `u ← ū + (1 − s Δt)^{-½} (u − ū)`, with `s` bounded by
    /// `s · min(1, 1/Δt)` as in EKP.jl.
    pub fn multiplicative_inflation(&self) -> f64 {
        self.as_step().multiplicative_inflation()
    }
}

/// The prior terms of the extended ("impose_prior") system: mean and variances
/// of the unconstrained Gaussian prior.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PriorBlock<'a> {
    pub mean: &'a nalgebra::DVector<f64>,
    pub variances: &'a nalgebra::DVector<f64>,
}
