//! The calibration file: its TOML schema, and its validation into one
//! [`Calibration`] before any work starts.
//!
//! Unknown keys are errors (a typo must not pass silently). Every error names
//! the file and the key.

use std::collections::BTreeMap;
use std::path::Path;

use ekp_core::{
    FailurePolicy, Inversion, NoiseCovariance, ParameterPrior, Prior, Process, Scheduler,
    TransformInversion,
};
use ekp_models::{Lorenz96Config, SinusoidConfig};
use nalgebra::{DMatrix, DVector};
use serde::Deserialize;

use crate::error::InputError;

/// The embedded default calibration: EKP.jl's Lorenz 96 example.
pub const DEFAULT_CONFIG: &str = include_str!("default_config.toml");

/// The name used for the embedded default in messages.
pub const DEFAULT_SOURCE: &str = "<embedded default>";

// ---------------------------------------------------------------- raw schema

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    process: RawProcess,
    #[serde(default)]
    parameters: Vec<RawParameter>,
    observations: RawObservations,
    model: toml::Table,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum ProcessKind {
    Inversion,
    TransformInversion,
    Sampler,
    Unscented,
    TransformUnscented,
    GaussNewton,
    SparseInversion,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProcess {
    kind: ProcessKind,
    ensemble_size: Option<usize>,
    iterations: Option<usize>,
    seed: Option<u64>,
    impose_prior: Option<bool>,
    perturb_observations: Option<bool>,
    multiplicative_inflation: Option<f64>,
    scheduler: Option<RawScheduler>,
    localization: Option<RawKind>,
    failure: Option<FailurePolicy>,
    accelerator: Option<RawKind>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
enum RawScheduler {
    Fixed {
        dt: f64,
    },
    DataMisfit {
        #[serde(default = "one")]
        terminate_at: f64,
    },
    EksStable {
        #[serde(default = "one")]
        #[allow(dead_code)]
        numerator: f64,
    },
}

fn one() -> f64 {
    1.0
}

/// A `{ kind = "...", ... }` table whose kinds are checked by hand.
#[derive(Debug, Deserialize)]
struct RawKind {
    kind: String,
    #[serde(flatten)]
    rest: toml::Table,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParameter {
    name: String,
    prior: RawPrior,
    size: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
enum RawPrior {
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

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ScalarOrVector {
    Scalar(f64),
    Vector(Vec<f64>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawObservations {
    values: Option<Vec<f64>>,
    noise_std: Option<ScalarOrVector>,
    covariance: Option<Vec<Vec<f64>>>,
    truth: Option<BTreeMap<String, ScalarOrVector>>,
}

// ------------------------------------------------------------ validated form

/// Where the data `y` and `Γ` come from.
#[derive(Debug, Clone)]
pub enum ObservationSpec {
    /// Given in the file.
    Given {
        /// `y`.
        values: DVector<f64>,
        /// `Γ`.
        noise: NoiseCovariance,
    },
    /// Generated from the model at `theta` (flat, in parameter order, constrained units).
    Truth {
        /// The true parameters.
        theta: DVector<f64>,
        /// `Γ` if given; the Lorenz 96 model can estimate it from the truth run.
        noise: Option<NoiseCovariance>,
    },
}

/// The forward model, as configured.
#[derive(Debug, Clone)]
pub enum ModelSpec {
    /// Lorenz 96 (EKP.jl's Lorenz example); model parameters `F`, `A`.
    Lorenz96 {
        /// Settings.
        config: Lorenz96Config,
        /// Values of model parameters that are not calibrated.
        fixed: BTreeMap<String, f64>,
    },
    /// `G(θ) = A θ + b` on the whole flat parameter vector.
    Linear {
        /// `A` (`d × p`).
        matrix: DMatrix<f64>,
        /// `b`.
        offset: Option<DVector<f64>>,
    },
    /// EKP.jl's sinusoid; model parameters `amplitude`, `vert_shift`.
    Sinusoid {
        /// Settings.
        config: SinusoidConfig,
        /// Values of model parameters that are not calibrated.
        fixed: BTreeMap<String, f64>,
    },
}

impl ModelSpec {
    /// The `model.kind` name.
    pub fn kind(&self) -> &'static str {
        match self {
            ModelSpec::Lorenz96 { .. } => "lorenz96",
            ModelSpec::Linear { .. } => "linear",
            ModelSpec::Sinusoid { .. } => "sinusoid",
        }
    }
}

/// A validated calibration: everything `run` needs, checked before any work.
#[derive(Debug, Clone)]
pub struct Calibration {
    /// The file it came from (or [`DEFAULT_SOURCE`]).
    pub source: String,
    /// The TOML text, as read.
    pub text: String,
    /// The algorithm.
    pub process: Process,
    /// Members `N`.
    pub ensemble_size: usize,
    /// Maximum number of updates.
    pub iterations: usize,
    /// Seed of every random draw.
    pub seed: u64,
    /// The learning-rate scheduler.
    pub scheduler: Scheduler,
    /// The failure policy.
    pub failure: FailurePolicy,
    /// The prior.
    pub prior: Prior,
    /// The data.
    pub observations: ObservationSpec,
    /// The model.
    pub model: ModelSpec,
}

impl Calibration {
    /// The embedded default (EKP.jl's Lorenz example).
    pub fn embedded_default() -> Result<Self, InputError> {
        Self::parse(DEFAULT_CONFIG, DEFAULT_SOURCE)
    }

    /// Read and validate a calibration file.
    pub fn from_file(path: &Path) -> Result<Self, InputError> {
        let text = std::fs::read_to_string(path).map_err(|source| InputError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parse and validate calibration TOML; `source` names it in errors.
    pub fn parse(text: &str, source: &str) -> Result<Self, InputError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| InputError::Parse {
            file: source.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let ctx = Ctx { file: source };
        let prior = ctx.prior(&raw.parameters)?;
        let (process, ensemble_size) = ctx.process(&raw.process, &prior)?;
        let scheduler = ctx.scheduler(raw.process.scheduler.as_ref())?;
        ctx.only_none("process.localization", raw.process.localization.as_ref())?;
        ctx.only_none("process.accelerator", raw.process.accelerator.as_ref())?;
        let iterations = raw.process.iterations.unwrap_or(5);
        let model = ctx.model(&raw.model, &prior)?;
        let observations = ctx.observations(&raw.observations, &prior, &model)?;
        Ok(Self {
            source: source.to_string(),
            text: text.to_string(),
            process,
            ensemble_size,
            iterations,
            seed: raw.process.seed.unwrap_or(42),
            scheduler,
            failure: raw.process.failure.unwrap_or_default(),
            prior,
            observations,
            model,
        })
    }
}

struct Ctx<'a> {
    file: &'a str,
}

impl Ctx<'_> {
    fn invalid(&self, key: impl Into<String>, message: impl Into<String>) -> InputError {
        InputError::Invalid {
            file: self.file.to_string(),
            key: key.into(),
            message: message.into(),
        }
    }

    fn prior(&self, params: &[RawParameter]) -> Result<Prior, InputError> {
        if params.is_empty() {
            return Err(self.invalid(
                "parameters",
                "no [[parameters]] given: a calibration needs at least one",
            ));
        }
        let mut out = Vec::with_capacity(params.len());
        for (i, p) in params.iter().enumerate() {
            let key = format!("parameters[{}] (name = \"{}\")", i + 1, p.name);
            if p.name.trim().is_empty() {
                return Err(self.invalid(format!("parameters[{}].name", i + 1), "empty name"));
            }
            let size = p.size.unwrap_or(1);
            if size == 0 {
                return Err(self.invalid(format!("{key}.size"), "must be at least 1"));
            }
            let built = match p.prior {
                RawPrior::Gaussian { mean, std } => {
                    ParameterPrior::gaussian(&p.name, mean, std, size)
                }
                RawPrior::ConstrainedGaussian {
                    mean,
                    std,
                    lower,
                    upper,
                } => ParameterPrior::constrained_gaussian(&p.name, mean, std, lower, upper, size),
            };
            out.push(built.map_err(|e| self.invalid(format!("{key}.prior"), e.to_string()))?);
        }
        Prior::new(out).map_err(|e| self.invalid("parameters", e.to_string()))
    }

    fn process(&self, raw: &RawProcess, prior: &Prior) -> Result<(Process, usize), InputError> {
        let impose_prior = raw.impose_prior.unwrap_or(false);
        let process = match raw.kind {
            ProcessKind::Inversion => {
                let mut settings = Inversion::new(impose_prior);
                if let Some(p) = raw.perturb_observations {
                    settings.perturb_observations = p;
                }
                if let Some(s) = raw.multiplicative_inflation {
                    settings.multiplicative_inflation = s;
                }
                Process::Inversion(settings)
            }
            ProcessKind::TransformInversion => {
                if raw.perturb_observations.is_some() {
                    return Err(self.invalid(
                        "process.perturb_observations",
                        "transform-inversion is deterministic: it never perturbs observations",
                    ));
                }
                let mut settings = TransformInversion::new(impose_prior);
                if let Some(s) = raw.multiplicative_inflation {
                    settings.multiplicative_inflation = s;
                }
                Process::TransformInversion(settings)
            }
            other => {
                let name = match other {
                    ProcessKind::Sampler => "sampler",
                    ProcessKind::Unscented => "unscented",
                    ProcessKind::TransformUnscented => "transform-unscented",
                    ProcessKind::GaussNewton => "gauss-newton",
                    ProcessKind::SparseInversion => "sparse-inversion",
                    ProcessKind::Inversion | ProcessKind::TransformInversion => "",
                };
                return Err(self.invalid(
                    "process.kind",
                    format!(
                        "\"{name}\" is not available in this version of ekp; \
                         available: \"inversion\", \"transform-inversion\""
                    ),
                ));
            }
        };
        if let Some(s) = raw.multiplicative_inflation
            && !(s.is_finite() && s >= 0.0)
        {
            return Err(self.invalid(
                "process.multiplicative_inflation",
                format!("must be ≥ 0 and finite, got {s}"),
            ));
        }
        let n = raw.ensemble_size.unwrap_or(20);
        if n < 2 {
            return Err(self.invalid(
                "process.ensemble_size",
                format!("must be at least 2, got {n}"),
            ));
        }
        if raw.iterations == Some(0) {
            return Err(self.invalid("process.iterations", "must be at least 1"));
        }
        let _ = prior;
        Ok((process, n))
    }

    fn scheduler(&self, raw: Option<&RawScheduler>) -> Result<Scheduler, InputError> {
        let s = match raw {
            None => Scheduler::default(),
            Some(RawScheduler::Fixed { dt }) => Scheduler::Fixed { dt: *dt },
            Some(RawScheduler::DataMisfit { terminate_at }) => Scheduler::DataMisfit {
                terminate_at: *terminate_at,
            },
            Some(RawScheduler::EksStable { .. }) => {
                return Err(self.invalid(
                    "process.scheduler.kind",
                    "\"eks-stable\" belongs to the sampler process, which is not available in \
                     this version; use \"fixed\" or \"data-misfit\"",
                ));
            }
        };
        s.validate()
            .map_err(|m| self.invalid("process.scheduler", m))?;
        Ok(s)
    }

    fn only_none(&self, key: &str, raw: Option<&RawKind>) -> Result<(), InputError> {
        match raw {
            None => Ok(()),
            Some(r) if r.kind == "none" && r.rest.is_empty() => Ok(()),
            Some(r) if r.kind == "none" => Err(self.invalid(
                key,
                format!(
                    "unknown key(s) {:?} for kind \"none\"",
                    r.rest.keys().collect::<Vec<_>>()
                ),
            )),
            Some(r) => Err(self.invalid(
                format!("{key}.kind"),
                format!(
                    "\"{}\" is not available in this version of ekp; only \"none\" is",
                    r.kind
                ),
            )),
        }
    }

    fn model(&self, raw: &toml::Table, prior: &Prior) -> Result<ModelSpec, InputError> {
        let mut table = raw.clone();
        let kind = match table.remove("kind") {
            Some(toml::Value::String(s)) => s,
            Some(other) => {
                return Err(self.invalid(
                    "model.kind",
                    format!("must be a string, got {}", other.type_str()),
                ));
            }
            None => {
                return Err(self.invalid(
                    "model.kind",
                    "missing; one of \"lorenz96\", \"linear\", \"sinusoid\", \"command\"",
                ));
            }
        };
        let fixed = match table.remove("fixed") {
            None => BTreeMap::new(),
            Some(v) => v
                .try_into::<BTreeMap<String, f64>>()
                .map_err(|e| self.invalid("model.fixed", e.to_string().trim_end().to_string()))?,
        };
        let model_err =
            |e: toml::de::Error| self.invalid("model", e.to_string().trim_end().to_string());
        let spec = match kind.as_str() {
            "lorenz96" => {
                let config: Lorenz96Config =
                    toml::Value::Table(table).try_into().map_err(model_err)?;
                config
                    .validate()
                    .map_err(|e| self.invalid("model", e.to_string()))?;
                ModelSpec::Lorenz96 { config, fixed }
            }
            "sinusoid" => {
                let config: SinusoidConfig =
                    toml::Value::Table(table).try_into().map_err(model_err)?;
                config
                    .validate()
                    .map_err(|e| self.invalid("model", e.to_string()))?;
                ModelSpec::Sinusoid { config, fixed }
            }
            "linear" => {
                if !fixed.is_empty() {
                    return Err(self.invalid(
                        "model.fixed",
                        "the linear model takes the whole parameter vector; it has no fixed parameters",
                    ));
                }
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct RawLinear {
                    matrix: Vec<Vec<f64>>,
                    offset: Option<Vec<f64>>,
                }
                let raw: RawLinear = toml::Value::Table(table).try_into().map_err(model_err)?;
                let matrix = self.matrix("model.matrix", &raw.matrix)?;
                if matrix.ncols() != prior.dim() {
                    return Err(self.invalid(
                        "model.matrix",
                        format!(
                            "has {} columns but the parameters have {} components",
                            matrix.ncols(),
                            prior.dim()
                        ),
                    ));
                }
                let offset = match raw.offset {
                    None => None,
                    Some(b) if b.len() == matrix.nrows() => Some(DVector::from_vec(b)),
                    Some(b) => {
                        return Err(self.invalid(
                            "model.offset",
                            format!(
                                "has {} entries, the matrix has {} rows",
                                b.len(),
                                matrix.nrows()
                            ),
                        ));
                    }
                };
                ModelSpec::Linear { matrix, offset }
            }
            "command" => {
                return Err(self.invalid(
                    "model.kind",
                    "\"command\" models are not available in this version of ekp",
                ));
            }
            other => {
                return Err(self.invalid(
                    "model.kind",
                    format!(
                        "unknown model \"{other}\"; one of \"lorenz96\", \"linear\", \"sinusoid\", \"command\""
                    ),
                ));
            }
        };
        Ok(spec)
    }

    fn matrix(&self, key: &str, rows: &[Vec<f64>]) -> Result<DMatrix<f64>, InputError> {
        let nrows = rows.len();
        let ncols = rows.first().map_or(0, Vec::len);
        if nrows == 0 || ncols == 0 {
            return Err(self.invalid(key, "is empty"));
        }
        if let Some((i, r)) = rows.iter().enumerate().find(|(_, r)| r.len() != ncols) {
            return Err(self.invalid(
                key,
                format!("row {} has {} entries, row 1 has {ncols}", i + 1, r.len()),
            ));
        }
        Ok(DMatrix::from_fn(nrows, ncols, |i, j| rows[i][j]))
    }

    fn noise(
        &self,
        raw: &RawObservations,
        dim: Option<usize>,
    ) -> Result<Option<NoiseCovariance>, InputError> {
        match (&raw.noise_std, &raw.covariance) {
            (Some(_), Some(_)) => Err(self.invalid(
                "observations",
                "give either `noise_std` or `covariance`, not both",
            )),
            (None, None) => Ok(None),
            (Some(ScalarOrVector::Scalar(s)), None) => {
                let d = dim.unwrap_or(0);
                NoiseCovariance::scalar_std(*s, d)
                    .map(Some)
                    .map_err(|e| self.invalid("observations.noise_std", e.to_string()))
            }
            (Some(ScalarOrVector::Vector(v)), None) => NoiseCovariance::diagonal_std(v)
                .map(Some)
                .map_err(|e| self.invalid("observations.noise_std", e.to_string())),
            (None, Some(rows)) => {
                let m = self.matrix("observations.covariance", rows)?;
                NoiseCovariance::full(m)
                    .map(Some)
                    .map_err(|e| self.invalid("observations.covariance", e.to_string()))
            }
        }
    }

    fn observations(
        &self,
        raw: &RawObservations,
        prior: &Prior,
        model: &ModelSpec,
    ) -> Result<ObservationSpec, InputError> {
        match (&raw.values, &raw.truth) {
            (Some(_), Some(_)) => Err(self.invalid(
                "observations",
                "give either `values` or `truth`, not both",
            )),
            (None, None) => Err(self.invalid(
                "observations",
                "give the data as `values = [...]`, or `truth = { name = value, ... }` to generate it",
            )),
            (Some(values), None) => {
                let y = DVector::from_vec(values.clone());
                let noise = self.noise(raw, Some(y.len()))?.ok_or_else(|| {
                    self.invalid(
                        "observations",
                        "`values` needs its noise: `noise_std = s`, `noise_std = [...]` or `covariance = [[...]]`",
                    )
                })?;
                ekp_core::Observation::new(y.clone(), noise.clone())
                    .map_err(|e| self.invalid("observations", e.to_string()))?;
                Ok(ObservationSpec::Given { values: y, noise })
            }
            (None, Some(truth)) => {
                let mut theta = Vec::with_capacity(prior.dim());
                for p in prior.parameters() {
                    let key = format!("observations.truth.{}", p.name());
                    let vals = match truth.get(p.name()) {
                        None => {
                            return Err(self.invalid(
                                key,
                                "missing: `truth` needs a value for every parameter",
                            ));
                        }
                        Some(ScalarOrVector::Scalar(v)) => vec![*v; 1],
                        Some(ScalarOrVector::Vector(v)) => v.clone(),
                    };
                    if vals.len() != p.size() {
                        return Err(self.invalid(
                            key,
                            format!("has {} values, the parameter has size {}", vals.len(), p.size()),
                        ));
                    }
                    for v in &vals {
                        if !p.constraint().contains(*v) {
                            return Err(self.invalid(
                                key,
                                format!("{v} is outside the parameter's bounds ({}, {})", p.constraint().lower(), p.constraint().upper()),
                            ));
                        }
                    }
                    theta.extend(vals);
                }
                if let Some(extra) = truth.keys().find(|k| !prior.parameters().iter().any(|p| p.name() == k.as_str())) {
                    return Err(self.invalid(
                        format!("observations.truth.{extra}"),
                        "is not one of the calibrated parameters",
                    ));
                }
                let noise = match model {
                    // Lorenz 96 estimates Γ from the truth run when none is given.
                    ModelSpec::Lorenz96 { .. } => self.noise(raw, None)?,
                    ModelSpec::Linear { .. } | ModelSpec::Sinusoid { .. } => {
                        Some(self.noise(raw, None)?.ok_or_else(|| {
                            self.invalid(
                                "observations",
                                format!(
                                    "`truth` with the {} model needs `noise_std` or `covariance` (only lorenz96 estimates Γ from its truth run)",
                                    model.kind()
                                ),
                            )
                        })?)
                    }
                };
                Ok(ObservationSpec::Truth {
                    theta: DVector::from_vec(theta),
                    noise,
                })
            }
        }
    }
}
