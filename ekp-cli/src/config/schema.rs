//! The calibration file's TOML schema, as serde reads it: the raw tables,
//! before any validation (that is the job of the sibling modules, which
//! turn each into its validated form).
//!
//! Every table denies unknown keys: a typo must not pass silently.

use std::collections::BTreeMap;

use ekp_core::{
    Accelerator, FailurePolicy, HistoryPolicy, Inflation, Localizer, Remainder, SamplerType,
    Scheduler, SigmaPoints,
};
use serde::Deserialize;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) process: RawProcess,
    #[serde(default)]
    pub(super) parameters: Vec<RawParameter>,
    pub(super) parameters_from: Option<RawParametersFrom>,
    pub(super) parameter_files: Option<String>,
    pub(super) observations: RawObservations,
    pub(super) model: toml::Table,
}

/// `parameters_from = { ekp_toml = "FILE", names = [...] }`: the
/// parameters of an EKP.jl parameter file (see [`super::ekpjl`]), all of
/// them or those of `names` (EKP.jl's `get_parameter_distribution(dict,
/// names)`); a relative path is relative to the calibration file's folder.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawParametersFrom {
    pub(super) ekp_toml: String,
    pub(super) names: Option<Vec<String>>,
}

/// `process.kind`.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub(super) enum ProcessKind {
    Inversion,
    TransformInversion,
    Sampler,
    Unscented,
    TransformUnscented,
    GaussNewton,
    SparseInversion,
}

/// `[process]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProcess {
    pub(super) kind: ProcessKind,
    pub(super) ensemble_size: Option<usize>,
    pub(super) iterations: Option<usize>,
    pub(super) seed: Option<u64>,
    pub(super) impose_prior: Option<bool>,
    pub(super) perturb_observations: Option<bool>,
    pub(super) multiplicative_inflation: Option<f64>,
    pub(super) sampler_type: Option<SamplerType>,
    pub(super) alpha_reg: Option<f64>,
    pub(super) update_freq: Option<usize>,
    pub(super) sigma_points: Option<SigmaPoints>,
    pub(super) modified_unscented_transform: Option<bool>,
    pub(super) gamma: Option<f64>,
    pub(super) threshold: Option<f64>,
    pub(super) reg: Option<f64>,
    pub(super) sparse_parameters: Option<Vec<String>>,
    pub(super) scheduler: Option<Scheduler>,
    pub(super) localization: Option<Localizer>,
    pub(super) failure: Option<FailurePolicy>,
    pub(super) nan_tolerance: Option<f64>,
    pub(super) accelerator: Option<Accelerator>,
    pub(super) inflation: Option<Inflation>,
    pub(super) history: Option<HistoryPolicy>,
    pub(super) minibatch: Option<RawMinibatch>,
    pub(super) update_groups: Option<Vec<RawUpdateGroup>>,
}

/// `process.minibatch`: 1-based observation indices, as everywhere in the file.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub(super) enum RawMinibatch {
    Fixed {
        batches: Vec<Vec<usize>>,
        #[serde(default)]
        order: RawOrder,
        observation_sizes: Option<Vec<usize>>,
    },
    RandomFixedSize {
        size: usize,
        #[serde(default)]
        remainder: Remainder,
        observation_sizes: Option<Vec<usize>>,
    },
}

/// `process.minibatch.order`.
#[derive(Debug, Default, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub(super) enum RawOrder {
    #[default]
    InOrder,
    Random,
}

/// One of `process.update_groups`: parameters by name, outputs 1-based.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUpdateGroup {
    pub(super) parameters: Vec<String>,
    pub(super) outputs: Vec<usize>,
}

/// One `[[parameters]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawParameter {
    pub(super) name: String,
    pub(super) prior: RawPrior,
    pub(super) size: Option<usize>,
}

/// `parameters[i].prior`.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub(super) enum RawPrior {
    Gaussian {
        mean: f64,
        std: f64,
    },
    ConstrainedGaussian {
        mean: f64,
        std: f64,
        lower: Option<f64>,
        upper: Option<f64>,
    },
}

/// A number, or a list of them (`noise_std`, a value of `truth`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum ScalarOrVector {
    Scalar(f64),
    Vector(Vec<f64>),
}

/// `[observations]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawObservations {
    pub(super) values: Option<Vec<f64>>,
    pub(super) noise_std: Option<ScalarOrVector>,
    pub(super) covariance: Option<Vec<Vec<f64>>>,
    pub(super) truth: Option<BTreeMap<String, ScalarOrVector>>,
    pub(super) names: Option<Vec<String>>,
    pub(super) coordinates: Option<Vec<f64>>,
}
