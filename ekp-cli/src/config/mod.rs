//! The calibration file: its TOML schema, and its validation into one
//! [`Calibration`] before any work starts.
//!
//! Unknown keys are errors (a typo must not pass silently). Every error names
//! the file and the key.

use std::collections::BTreeMap;
use std::path::Path;

use ekp_core::{
    Accelerator, EkpBuilder, EkpError, EnsembleKalmanProcess, FailurePolicy, GaussNewton,
    HistoryPolicy, Inflation, Inversion, Localizer, Minibatcher, NoiseCovariance, Observation,
    ObservationSeries, ParameterPrior, Prior, Process, Remainder, Sampler, SamplerType, Scheduler,
    SigmaPoints, SparseInversion, TransformInversion, Unscented, UpdateGroup,
};
use ekp_models::{Lorenz96Config, SinusoidConfig};
use nalgebra::{DMatrix, DVector};
use serde::Deserialize;

use crate::error::InputError;

pub mod command;
pub mod ekpjl;
pub mod example;

pub use command::{CommandSpec, parse_duration};

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
    parameters_from: Option<RawParametersFrom>,
    parameter_files: Option<String>,
    observations: RawObservations,
    model: toml::Table,
}

/// `parameters_from = { ekp_toml = "FILE" }`: the parameters of an EKP.jl
/// parameter file (see [`ekpjl`]); a relative path is relative
/// to the calibration file's folder.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParametersFrom {
    ekp_toml: String,
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
    sampler_type: Option<SamplerType>,
    alpha_reg: Option<f64>,
    update_freq: Option<usize>,
    sigma_points: Option<SigmaPoints>,
    modified_unscented_transform: Option<bool>,
    gamma: Option<f64>,
    threshold: Option<f64>,
    reg: Option<f64>,
    sparse_parameters: Option<Vec<String>>,
    scheduler: Option<Scheduler>,
    localization: Option<Localizer>,
    failure: Option<FailurePolicy>,
    nan_tolerance: Option<f64>,
    accelerator: Option<Accelerator>,
    inflation: Option<Inflation>,
    history: Option<HistoryPolicy>,
    minibatch: Option<RawMinibatch>,
    update_groups: Option<Vec<RawUpdateGroup>>,
}

/// `process.minibatch`: 1-based observation indices, as everywhere in the file.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
enum RawMinibatch {
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

#[derive(Debug, Default, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum RawOrder {
    #[default]
    InOrder,
    Random,
}

/// One of `process.update_groups`: parameters by name, outputs 1-based.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpdateGroup {
    parameters: Vec<String>,
    outputs: Vec<usize>,
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
    /// Any executable, one process per member (see the `models::command` module).
    Command(command::CommandSpec),
}

impl ModelSpec {
    /// The `model.kind` name.
    pub fn kind(&self) -> &'static str {
        match self {
            ModelSpec::Lorenz96 { .. } => "lorenz96",
            ModelSpec::Linear { .. } => "linear",
            ModelSpec::Sinusoid { .. } => "sinusoid",
            ModelSpec::Command(_) => "command",
        }
    }
}

/// How each member's `parameters.toml` is written and read (the calibration
/// file's top-level `parameter_files`).
#[derive(Debug, Clone, Default, PartialEq)]
pub enum ParameterFiles {
    /// `F = 8.1`: each parameter by name, a vector parameter as an array.
    #[default]
    Flat,
    /// EKP.jl's layout (its `save_parameter_ensemble`): one table per
    /// parameter, `[F]` with `value = 8.1`, written into a copy of
    /// `template` — the EKP.jl parameter file the priors came from
    /// (`parameters_from.ekp_toml`), so its other entries (`prior`,
    /// `constraint`, descriptions, parameters that are not calibrated) stay as
    /// they were; empty when the priors came from `[[parameters]]`.
    Ekp {
        /// The tables the values are written into.
        template: toml::Table,
    },
}

impl ParameterFiles {
    /// The name used in calibration files (`"flat"`, `"ekp"`).
    pub fn name(&self) -> &'static str {
        match self {
            ParameterFiles::Flat => "flat",
            ParameterFiles::Ekp { .. } => "ekp",
        }
    }
}

/// Minibatching as configured: the data values cut into consecutive
/// observations of `observation_sizes`, fitted a minibatch at a time.
#[derive(Debug, Clone, PartialEq)]
pub struct MinibatchSpec {
    /// Sizes of the consecutive observations (`None`: one per data value).
    pub observation_sizes: Option<Vec<usize>>,
    /// The minibatcher (0-based observation indices).
    pub minibatcher: Minibatcher,
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
    /// The localizer.
    pub localizer: Localizer,
    /// The accelerator.
    pub accelerator: Accelerator,
    /// The fraction of non-finite outputs above which a member has failed.
    pub nan_tolerance: f64,
    /// Inflation after every update (`process.inflation`; `None`: only the
    /// process's own `multiplicative_inflation`).
    pub inflation: Option<Inflation>,
    /// Which outputs the process keeps in memory (`process.history`).
    pub history: HistoryPolicy,
    /// Minibatching: the data cut into observations, and the minibatcher.
    pub minibatch: Option<MinibatchSpec>,
    /// Update groups (empty: every parameter from every output).
    pub update_groups: Vec<UpdateGroup>,
    /// The prior.
    pub prior: Prior,
    /// The data.
    pub observations: ObservationSpec,
    /// The model.
    pub model: ModelSpec,
    /// How each member's `parameters.toml` is written (`parameter_files`).
    pub parameter_files: ParameterFiles,
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
        let base = Path::new(source)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| Path::new("."))
            .to_path_buf();
        Self::parse_with_base(text, source, &base)
    }

    /// [`Calibration::parse`], with relative paths in the file (such as
    /// `parameters_from.ekp_toml`) resolved against `base`.
    pub fn parse_with_base(text: &str, source: &str, base: &Path) -> Result<Self, InputError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| InputError::Parse {
            file: source.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let ctx = Ctx { file: source };
        let prior = match &raw.parameters_from {
            None => ctx.prior(&raw.parameters)?,
            Some(_) if !raw.parameters.is_empty() => {
                return Err(ctx.invalid(
                    "parameters_from",
                    "give either [[parameters]] or `parameters_from`, not both",
                ));
            }
            Some(from) => ekpjl::prior_from_file(&base.join(&from.ekp_toml))
                .map_err(|e| ctx.invalid("parameters_from.ekp_toml", e.to_string()))?,
        };
        let parameter_files = match raw.parameter_files.as_deref() {
            None | Some("flat") => ParameterFiles::Flat,
            Some("ekp") => ParameterFiles::Ekp {
                template: match &raw.parameters_from {
                    None => toml::Table::new(),
                    Some(from) => ekpjl::table_from_file(&base.join(&from.ekp_toml))
                        .map_err(|e| ctx.invalid("parameters_from.ekp_toml", e.to_string()))?,
                },
            },
            Some(other) => {
                return Err(ctx.invalid(
                    "parameter_files",
                    format!(
                        "unknown layout \"{other}\"; one of \"flat\" (`F = 8.1`, the default) \
                         or \"ekp\" (EKP.jl's: `[F]` tables with `value = 8.1`)"
                    ),
                ));
            }
        };
        let (process, ensemble_size) = ctx.process(&raw.process, &prior)?;
        let options = ctx.options(&raw.process, &process, &prior)?;
        let iterations = raw.process.iterations.unwrap_or(5);
        let model = ctx.model(&raw.model, &prior)?;
        let observations = ctx.observations(&raw.observations, &prior, &model)?;
        if let ObservationSpec::Given { values, .. } = &observations {
            ctx.check_against_data(&options, values.len())?;
        }
        Ok(Self {
            source: source.to_string(),
            text: text.to_string(),
            process,
            ensemble_size,
            iterations,
            seed: raw.process.seed.unwrap_or(42),
            scheduler: options.scheduler,
            failure: options.failure,
            localizer: options.localizer,
            accelerator: options.accelerator,
            nan_tolerance: options.nan_tolerance,
            inflation: options.inflation,
            history: raw.process.history.unwrap_or_default(),
            minibatch: options.minibatch,
            update_groups: options.update_groups,
            prior,
            observations,
            model,
            parameter_files,
        })
    }
}

impl Calibration {
    /// This calibration with every random draw seeded by `seed`, written into
    /// its text too (`process.seed`, comments and key order kept), so the
    /// file recorded in a calibration folder is the one that ran.
    pub fn with_seed(mut self, seed: u64) -> Result<Self, InputError> {
        let invalid = |message: String| InputError::Invalid {
            file: self.source.clone(),
            key: "process.seed".into(),
            message,
        };
        let value = i64::try_from(seed).map_err(|_| {
            invalid(format!(
                "--seed {seed}: at most {} (a TOML integer)",
                i64::MAX
            ))
        })?;
        let mut doc: toml_edit::DocumentMut = self
            .text
            .parse()
            .map_err(|e: toml_edit::TomlError| invalid(e.to_string()))?;
        let process = doc
            .get_mut("process")
            .and_then(|p| p.as_table_like_mut())
            .ok_or_else(|| invalid("[process] is missing".into()))?;
        process.insert("seed", toml_edit::value(value));
        self.text = doc.to_string();
        self.seed = seed;
        Ok(self)
    }

    /// A process builder with every `[process]` option of this calibration
    /// applied (scheduler, localization, failure handling, NaN tolerance,
    /// accelerator, minibatching, update groups), for the data `observation`
    /// (all data values, in order). Build it after setting anything else
    /// (e.g. an initial ensemble). With minibatching, the process fits one
    /// minibatch per update: tell it the outputs for all data values with
    /// [`EnsembleKalmanProcess::update_from_all_outputs`].
    pub fn builder(&self, observation: Observation) -> Result<EkpBuilder, EkpError> {
        let series = match &self.minibatch {
            None => ObservationSeries::from(observation),
            Some(spec) => {
                let sizes = spec
                    .observation_sizes
                    .clone()
                    .unwrap_or_else(|| vec![1; observation.dim()]);
                ObservationSeries::split(&observation, &sizes, spec.minibatcher.clone())
                    .map_err(|e| EkpError::InvalidSetting(format!("process.minibatch: {e}")))?
            }
        };
        let builder =
            EnsembleKalmanProcess::builder(self.prior.clone(), series, self.process.clone())
                .ensemble_size(self.ensemble_size)
                .seed(self.seed)
                .scheduler(self.scheduler.clone())
                .localizer(self.localizer.clone())
                .failure_policy(self.failure)
                .nan_tolerance(self.nan_tolerance)
                .accelerator(self.accelerator)
                .update_groups(self.update_groups.clone())
                .history(self.history);
        Ok(match self.inflation {
            Some(inflation) => builder.inflation(inflation),
            None => builder,
        })
    }
}

/// The `[process]` options other than the algorithm, with defaults applied.
struct ProcessOptions {
    scheduler: Scheduler,
    localizer: Localizer,
    failure: FailurePolicy,
    accelerator: Accelerator,
    nan_tolerance: f64,
    inflation: Option<Inflation>,
    minibatch: Option<MinibatchSpec>,
    update_groups: Vec<UpdateGroup>,
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
            ProcessKind::Sampler => {
                if raw.impose_prior.is_some() {
                    return Err(self.invalid(
                        "process.impose_prior",
                        "the sampler always uses the prior; remove the key",
                    ));
                }
                Process::Sampler(Sampler {
                    sampler_type: raw.sampler_type.unwrap_or_default(),
                })
            }
            ProcessKind::Unscented | ProcessKind::TransformUnscented => {
                let mut settings = Unscented::new(impose_prior);
                if let Some(a) = raw.alpha_reg {
                    settings.alpha_reg = a;
                }
                if let Some(f) = raw.update_freq {
                    settings.update_freq = f;
                }
                if let Some(sp) = raw.sigma_points {
                    settings.sigma_points = sp;
                }
                if let Some(m) = raw.modified_unscented_transform {
                    settings.modified_unscented_transform = m;
                }
                settings
                    .validate()
                    .map_err(|m| self.invalid("process", m))?;
                if raw.ensemble_size.is_some() {
                    return Err(self.invalid(
                        "process.ensemble_size",
                        format!(
                            "{} derives its ensemble from the {} parameters ({} sigma points, \
                             `sigma_points = \"{}\"`); remove the key",
                            match raw.kind {
                                ProcessKind::Unscented => "unscented",
                                _ => "transform-unscented",
                            },
                            prior.dim(),
                            settings.ensemble_size(prior.dim()),
                            settings.sigma_points.name()
                        ),
                    ));
                }
                if raw.kind == ProcessKind::Unscented {
                    Process::Unscented(settings)
                } else {
                    Process::TransformUnscented(settings)
                }
            }
            ProcessKind::GaussNewton => {
                if raw.impose_prior.is_some() {
                    return Err(self.invalid(
                        "process.impose_prior",
                        "gauss-newton always uses the prior; remove the key",
                    ));
                }
                let mut settings = GaussNewton::default();
                if let Some(p) = raw.perturb_observations {
                    settings.perturb_observations = p;
                }
                Process::GaussNewton(settings)
            }
            ProcessKind::SparseInversion => {
                if raw.impose_prior.is_some() {
                    return Err(self.invalid(
                        "process.impose_prior",
                        "sparse-inversion never uses the prior (as EKP.jl's SparseInversion); \
                         remove the key",
                    ));
                }
                Process::SparseInversion(self.sparse_inversion(raw, prior)?)
            }
        };
        // Keys that belong to other processes are errors, not silently ignored.
        let sparse = raw.kind == ProcessKind::SparseInversion;
        let foreign: [(&str, bool, bool); 10] = [
            (
                "perturb_observations",
                raw.perturb_observations.is_some(),
                matches!(
                    raw.kind,
                    ProcessKind::Inversion
                        | ProcessKind::GaussNewton
                        | ProcessKind::SparseInversion
                ),
            ),
            ("gamma", raw.gamma.is_some(), sparse),
            ("threshold", raw.threshold.is_some(), sparse),
            ("reg", raw.reg.is_some(), sparse),
            ("sparse_parameters", raw.sparse_parameters.is_some(), sparse),
            (
                "multiplicative_inflation",
                raw.multiplicative_inflation.is_some(),
                matches!(
                    raw.kind,
                    ProcessKind::Inversion | ProcessKind::TransformInversion
                ),
            ),
            (
                "sampler_type",
                raw.sampler_type.is_some(),
                raw.kind == ProcessKind::Sampler,
            ),
            (
                "alpha_reg",
                raw.alpha_reg.is_some(),
                matches!(
                    raw.kind,
                    ProcessKind::Unscented | ProcessKind::TransformUnscented
                ),
            ),
            (
                "update_freq",
                raw.update_freq.is_some(),
                matches!(
                    raw.kind,
                    ProcessKind::Unscented | ProcessKind::TransformUnscented
                ),
            ),
            (
                "sigma_points",
                raw.sigma_points.is_some() || raw.modified_unscented_transform.is_some(),
                matches!(
                    raw.kind,
                    ProcessKind::Unscented | ProcessKind::TransformUnscented
                ),
            ),
        ];
        for (key, given, applies) in foreign {
            if given && !applies {
                return Err(self.invalid(
                    format!("process.{key}"),
                    format!("does not apply to process kind \"{}\"", process.kind()),
                ));
            }
        }
        if let Some(s) = raw.multiplicative_inflation
            && !(s.is_finite() && s >= 0.0)
        {
            return Err(self.invalid(
                "process.multiplicative_inflation",
                format!("must be ≥ 0 and finite, got {s}"),
            ));
        }
        let n = process
            .derived_ensemble_size(prior.dim())
            .unwrap_or_else(|| raw.ensemble_size.unwrap_or(20));
        if n < 2 {
            return Err(self.invalid(
                "process.ensemble_size",
                format!("must be at least 2, got {n}"),
            ));
        }
        if raw.iterations == Some(0) {
            return Err(self.invalid("process.iterations", "must be at least 1"));
        }
        Ok((process, n))
    }

    /// The settings of `sparse-inversion`: `gamma` (required), `threshold`,
    /// `reg`, `sparse_parameters` (names of parameters, all their components,
    /// or of single components such as `"u[2]"`), `perturb_observations`.
    fn sparse_inversion(
        &self,
        raw: &RawProcess,
        prior: &Prior,
    ) -> Result<SparseInversion, InputError> {
        let gamma = raw.gamma.ok_or_else(|| {
            self.invalid(
                "process.gamma",
                "is required for sparse-inversion: the upper limit of the ℓ1 norm of the \
                 sparse parameters (in unconstrained space; EKP.jl's γ has no default)",
            )
        })?;
        let mut settings = SparseInversion::new(gamma);
        if let Some(t) = raw.threshold {
            settings.threshold = t;
        }
        if let Some(r) = raw.reg {
            settings.reg = r;
        }
        if let Some(p) = raw.perturb_observations {
            settings.perturb_observations = p;
        }
        for (key, v) in [
            ("gamma", settings.gamma),
            ("threshold", settings.threshold),
            ("reg", settings.reg),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(self.invalid(
                    format!("process.{key}"),
                    format!("must be ≥ 0 and finite, got {v}"),
                ));
            }
        }
        if let Some(names) = &raw.sparse_parameters {
            let key = "process.sparse_parameters";
            if names.is_empty() {
                return Err(self.invalid(key, "is empty; leave it out to choose every parameter"));
            }
            let ranges = prior.ranges();
            let flat = prior.flat_names();
            let mut indices: Vec<usize> = Vec::new();
            for name in names {
                let found: Vec<usize> =
                    match prior.parameters().iter().position(|p| p.name() == name) {
                        Some(i) => ranges[i].clone().collect(),
                        None => match flat.iter().position(|f| f == name) {
                            Some(i) => vec![i],
                            None => {
                                return Err(self.invalid(
                                    key,
                                    format!(
                                        "\"{name}\" is neither a calibrated parameter nor one \
                                         component of one (such as \"{}\")",
                                        flat.last().map(String::as_str).unwrap_or("u[1]")
                                    ),
                                ));
                            }
                        },
                    };
                for i in found {
                    if indices.contains(&i) {
                        return Err(self.invalid(
                            key,
                            format!("\"{}\" is chosen twice (through \"{name}\")", flat[i]),
                        ));
                    }
                    indices.push(i);
                }
            }
            settings.sparse_indices = Some(indices);
        }
        settings
            .validate(prior.dim())
            .map_err(|m| self.invalid("process", m))?;
        Ok(settings)
    }

    /// Scheduler, localization, failure handling, accelerator, minibatching
    /// and update groups; an option not given takes EKP.jl's default for the
    /// process (for `inversion`: data-misfit with `terminate_at = 1`,
    /// `sec-nice`, `sample-success-gauss`, `nesterov`).
    fn options(
        &self,
        raw: &RawProcess,
        process: &Process,
        prior: &Prior,
    ) -> Result<ProcessOptions, InputError> {
        let scheduler = raw
            .scheduler
            .clone()
            .unwrap_or_else(|| process.default_scheduler());
        scheduler
            .validate()
            .map_err(|m| self.invalid("process.scheduler", m))?;
        let localizer = raw
            .localization
            .clone()
            .unwrap_or_else(|| process.default_localizer());
        localizer
            .validate()
            .map_err(|m| self.invalid("process.localization", m))?;
        if !process.supports_localization() && !localizer.is_none() {
            return Err(self.invalid(
                "process.localization",
                format!(
                    "\"{}\" cannot be used with {}; use \"none\"",
                    localizer.kind(),
                    process.kind()
                ),
            ));
        }
        let failure = raw
            .failure
            .unwrap_or_else(|| process.default_failure_policy());
        let nan_tolerance = raw
            .nan_tolerance
            .unwrap_or(ekp_core::failure::DEFAULT_NAN_TOLERANCE);
        if !(0.0..=1.0).contains(&nan_tolerance) {
            return Err(self.invalid(
                "process.nan_tolerance",
                format!("must be in [0, 1], got {nan_tolerance}"),
            ));
        }
        let accelerator = raw
            .accelerator
            .unwrap_or_else(|| process.default_accelerator());
        accelerator
            .validate()
            .map_err(|m| self.invalid("process.accelerator", m))?;
        if process.unscented().is_some() && !accelerator.is_none() {
            return Err(self.invalid(
                "process.accelerator",
                format!(
                    "\"{}\" cannot be used with {}: its ensemble is a set of sigma points",
                    accelerator.kind(),
                    process.kind()
                ),
            ));
        }
        if let Some(inflation) = &raw.inflation {
            inflation
                .validate()
                .map_err(|m| self.invalid("process.inflation", m))?;
            if process.unscented().is_some() {
                return Err(self.invalid(
                    "process.inflation",
                    format!(
                        "cannot be used with {}: its ensemble is a set of sigma points",
                        process.kind()
                    ),
                ));
            }
            if raw.multiplicative_inflation.is_some() {
                return Err(self.invalid(
                    "process.inflation",
                    "give either `inflation = { ... }` or `multiplicative_inflation`, not both \
                     (`inflation` replaces the process's own inflation, as in EKP.jl)",
                ));
            }
        }
        if (process.unscented().is_some() || matches!(process, Process::SparseInversion(_)))
            && raw.update_groups.is_some()
        {
            return Err(self.invalid(
                "process.update_groups",
                format!("not supported with {} in this version", process.kind()),
            ));
        }
        if raw.perturb_observations == Some(true) && !accelerator.is_none() {
            return Err(self.invalid(
                "process.perturb_observations",
                format!(
                    "observations are never perturbed with an accelerator (\"{}\"), as in EKP.jl; \
                     set `accelerator = {{ kind = \"none\" }}` to perturb them",
                    accelerator.kind()
                ),
            ));
        }
        let minibatch = raw
            .minibatch
            .as_ref()
            .map(|m| self.minibatch(m))
            .transpose()?;
        let update_groups = match &raw.update_groups {
            None => Vec::new(),
            Some(groups) => self.update_groups(groups, prior)?,
        };
        Ok(ProcessOptions {
            scheduler,
            localizer,
            failure,
            accelerator,
            nan_tolerance,
            inflation: raw.inflation,
            minibatch,
            update_groups,
        })
    }

    fn one_based(&self, key: &str, i: usize) -> Result<usize, InputError> {
        i.checked_sub(1)
            .ok_or_else(|| self.invalid(key, "indices count from 1; got 0"))
    }

    fn minibatch(&self, raw: &RawMinibatch) -> Result<MinibatchSpec, InputError> {
        let (minibatcher, sizes) = match raw {
            RawMinibatch::Fixed {
                batches,
                order,
                observation_sizes,
            } => {
                let mut zero_based = Vec::with_capacity(batches.len());
                for (b, batch) in batches.iter().enumerate() {
                    let key = format!("process.minibatch.batches[{}]", b + 1);
                    zero_based.push(
                        batch
                            .iter()
                            .map(|&i| self.one_based(&key, i))
                            .collect::<Result<Vec<_>, _>>()?,
                    );
                }
                (
                    Minibatcher::Fixed {
                        batches: zero_based,
                        random_order: *order == RawOrder::Random,
                    },
                    observation_sizes,
                )
            }
            RawMinibatch::RandomFixedSize {
                size,
                remainder,
                observation_sizes,
            } => (
                Minibatcher::RandomFixedSize {
                    size: *size,
                    remainder: *remainder,
                },
                observation_sizes,
            ),
        };
        if let Some(sizes) = sizes {
            if sizes.is_empty() || sizes.contains(&0) {
                return Err(self.invalid(
                    "process.minibatch.observation_sizes",
                    "must list positive sizes",
                ));
            }
            minibatcher
                .validate(sizes.len())
                .map_err(|m| self.invalid("process.minibatch", m))?;
        }
        Ok(MinibatchSpec {
            observation_sizes: sizes.clone(),
            minibatcher,
        })
    }

    fn update_groups(
        &self,
        raw: &[RawUpdateGroup],
        prior: &Prior,
    ) -> Result<Vec<UpdateGroup>, InputError> {
        if raw.is_empty() {
            return Err(self.invalid(
                "process.update_groups",
                "is empty; leave it out for one group",
            ));
        }
        let ranges = prior.ranges();
        let mut groups = Vec::with_capacity(raw.len());
        for (k, g) in raw.iter().enumerate() {
            let key = format!("process.update_groups[{}]", k + 1);
            let mut parameters = Vec::new();
            for name in &g.parameters {
                let i = prior
                    .parameters()
                    .iter()
                    .position(|p| p.name() == name)
                    .ok_or_else(|| {
                        self.invalid(
                            format!("{key}.parameters"),
                            format!("\"{name}\" is not one of the calibrated parameters"),
                        )
                    })?;
                parameters.extend(ranges[i].clone());
            }
            let outputs = g
                .outputs
                .iter()
                .map(|&o| self.one_based(&format!("{key}.outputs"), o))
                .collect::<Result<Vec<_>, _>>()?;
            groups.push(UpdateGroup::new(parameters, outputs));
        }
        // Output ranges are checked against the data when the process is built;
        // the partition of the parameters can be checked now.
        ekp_core::update_group::validate_groups(&groups, prior.dim(), usize::MAX)
            .map_err(|m| self.invalid("process.update_groups", m))?;
        Ok(groups)
    }

    /// Checks minibatching and update groups against `d` data values, when
    /// the data are given in the file (with `truth`, the process checks them
    /// when it is built).
    fn check_against_data(&self, options: &ProcessOptions, d: usize) -> Result<(), InputError> {
        let obs_dim = match &options.minibatch {
            None => d,
            Some(spec) => match &spec.observation_sizes {
                None => {
                    spec.minibatcher
                        .validate(d)
                        .map_err(|m| self.invalid("process.minibatch", m))?;
                    1
                }
                Some(sizes) => {
                    let total: usize = sizes.iter().sum();
                    if total != d {
                        return Err(self.invalid(
                            "process.minibatch.observation_sizes",
                            format!("add up to {total}, but there are {d} data values"),
                        ));
                    }
                    if !options.update_groups.is_empty() && sizes.iter().any(|&k| k != sizes[0]) {
                        return Err(self.invalid(
                            "process.minibatch.observation_sizes",
                            "update groups need observations of one size (as in EKP.jl)",
                        ));
                    }
                    sizes[0]
                }
            },
        };
        if !options.update_groups.is_empty() {
            let p: usize = options
                .update_groups
                .iter()
                .map(|g| g.parameters.len())
                .sum();
            ekp_core::update_group::validate_groups(&options.update_groups, p, obs_dim)
                .map_err(|m| self.invalid("process.update_groups", m))?;
        }
        Ok(())
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
                if !fixed.is_empty() {
                    return Err(self.invalid(
                        "model.fixed",
                        "a command model takes the whole parameter vector; it has no fixed parameters",
                    ));
                }
                let base = Path::new(self.file)
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or_else(|| Path::new("."));
                ModelSpec::Command(command::CommandSpec::from_table(table, self.file, base)?)
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
                    ModelSpec::Command(_) => {
                        return Err(self.invalid(
                            "observations.truth",
                            "a command model cannot generate synthetic data: give the data as \
                             `values = [...]` with `noise_std` or `covariance`",
                        ));
                    }
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
