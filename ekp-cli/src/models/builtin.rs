//! Building the forward model a calibration file describes, and the data it
//! calibrates against.
//!
//! Calibration parameters are matched to the model's parameters by name; model
//! parameters that are not calibrated take their value from `model.fixed`.

use std::collections::BTreeMap;
use std::sync::Arc;

use ekp_core::{NoiseCovariance, Observation, Prior};
use ekp_models::{Ensemble, Execution, Linear, Lorenz96, MemberModel, Sinusoid};
use nalgebra::DVector;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

use crate::config::{Calibration, ModelSpec, ObservationSpec};
use crate::error::InputError;
use crate::models::program;

/// Where one model parameter's value comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Source {
    /// Entry of the calibration's flat parameter vector.
    Calibrated(usize),
    /// A fixed value from `model.fixed`.
    Fixed(f64),
}

impl Source {
    /// This model parameter's value, given the calibration parameter at index
    /// `k` (`None`: out of range, which yields NaN, a failed member).
    pub(crate) fn value(self, calibrated: impl Fn(usize) -> Option<f64>) -> f64 {
        match self {
            Source::Calibrated(k) => calibrated(k).unwrap_or(f64::NAN),
            Source::Fixed(v) => v,
        }
    }
}

/// A model whose parameters are assembled from the calibration's flat
/// parameter vector and fixed values.
pub struct MappedModel {
    inner: Arc<dyn MemberModel>,
    pub(crate) sources: Vec<Source>,
    pub(crate) calibrated: usize,
}

impl MappedModel {
    /// The model parameters for the calibration parameters `theta`.
    fn assemble(&self, theta: &[f64], buf: &mut Vec<f64>) {
        buf.clear();
        buf.extend(
            self.sources
                .iter()
                .map(|s| s.value(|k| theta.get(k).copied())),
        );
    }
}

impl MemberModel for MappedModel {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn parameter_names(&self) -> Vec<String> {
        self.inner.parameter_names()
    }
    fn parameter_dim(&self) -> usize {
        self.calibrated
    }
    fn output_dim(&self) -> usize {
        self.inner.output_dim()
    }
    fn evaluate_member(&self, member: usize, theta: &[f64], out: &mut [f64]) {
        let mut buf = Vec::with_capacity(self.sources.len());
        self.assemble(theta, &mut buf);
        self.inner.evaluate_member(member, &buf, out);
    }
}

/// The model of a calibration, ready to run.
pub struct BuiltModel {
    /// The ensemble evaluator (a [`ekp_core::ForwardModel`]).
    pub ensemble: Ensemble<MappedModel>,
    /// The Lorenz 96 model, which can also produce truth data.
    lorenz: Option<Arc<Lorenz96>>,
}

fn map_by_name(
    file: &str,
    model: &str,
    model_names: &[String],
    prior: &Prior,
    fixed: &BTreeMap<String, f64>,
) -> Result<Vec<Source>, InputError> {
    let invalid = |key: String, message: String| InputError::Invalid {
        file: file.to_string(),
        key,
        message,
    };
    let ranges = prior.ranges();
    for (p, r) in prior.parameters().iter().zip(&ranges) {
        if !model_names.iter().any(|n| n == p.name()) {
            return Err(invalid(
                "parameters".into(),
                format!(
                    "parameter \"{}\" is not a parameter of the {model} model (its parameters: {})",
                    p.name(),
                    model_names.join(", ")
                ),
            ));
        }
        if r.len() != 1 {
            return Err(invalid(
                format!("parameters (name = \"{}\").size", p.name()),
                format!("the {model} model's parameter \"{}\" is a scalar", p.name()),
            ));
        }
        if fixed.contains_key(p.name()) {
            return Err(invalid(
                format!("model.fixed.{}", p.name()),
                "is calibrated, so it cannot also be fixed".into(),
            ));
        }
    }
    if let Some(name) = fixed.keys().find(|k| !model_names.contains(k)) {
        return Err(invalid(
            format!("model.fixed.{name}"),
            format!(
                "is not a parameter of the {model} model (its parameters: {})",
                model_names.join(", ")
            ),
        ));
    }
    model_names
        .iter()
        .map(|name| {
            if let Some(k) = prior.parameters().iter().position(|p| p.name() == name) {
                Ok(Source::Calibrated(ranges[k].start))
            } else if let Some(v) = fixed.get(name) {
                Ok(Source::Fixed(*v))
            } else {
                Err(invalid(
                    "model.fixed".into(),
                    format!(
                        "the {model} model's parameter \"{name}\" is neither calibrated nor fixed: \
                         add a [[parameters]] named \"{name}\" or `fixed = {{ {name} = ... }}` to [model]"
                    ),
                ))
            }
        })
        .collect()
}

impl BuiltModel {
    /// Build the model of `cal`, evaluated as `execution` says. A program
    /// model (`command`, `worker`, `batch`) is a stand-in here (it runs
    /// through its own evaluator, see [`crate::models::evaluator`]): its outputs are NaN, and
    /// it serves to check the data's dimension.
    pub fn new(cal: &Calibration, execution: Execution) -> Result<Self, InputError> {
        let bad_model = |e: ekp_models::ModelsError| InputError::Invalid {
            file: cal.source.clone(),
            key: "model".into(),
            message: e.to_string(),
        };
        let (inner, lorenz, sources): (Arc<dyn MemberModel>, _, _) = match &cal.model {
            ModelSpec::Lorenz96 { config, fixed } => {
                let m = Arc::new(Lorenz96::new(config.clone()).map_err(bad_model)?);
                let sources = map_by_name(
                    &cal.source,
                    "lorenz96",
                    &m.parameter_names(),
                    &cal.prior,
                    fixed,
                )?;
                (m.clone(), Some(m), sources)
            }
            ModelSpec::Sinusoid { config, fixed } => {
                let m = Arc::new(Sinusoid::new(config.clone()).map_err(bad_model)?);
                let sources = map_by_name(
                    &cal.source,
                    "sinusoid",
                    &m.parameter_names(),
                    &cal.prior,
                    fixed,
                )?;
                (m, None, sources)
            }
            ModelSpec::Linear { matrix, offset } => {
                let m = Arc::new(Linear::new(matrix.clone(), offset.clone()).map_err(bad_model)?);
                let sources = (0..cal.prior.dim()).map(Source::Calibrated).collect();
                (m, None, sources)
            }
            ModelSpec::Program(_) => {
                let m = Arc::new(program::Outputs::new(cal)?);
                let sources = (0..cal.prior.dim()).map(Source::Calibrated).collect();
                (m, None, sources)
            }
        };
        let mapped = MappedModel {
            inner,
            sources,
            calibrated: cal.prior.dim(),
        };
        Ok(Self {
            ensemble: Ensemble::new(mapped, execution),
            lorenz,
        })
    }

    /// Synthetic data `(y, Γ)` from the model at the true parameters `theta`.
    fn truth_data(
        &self,
        cal: &Calibration,
        theta: &DVector<f64>,
        noise: Option<&NoiseCovariance>,
    ) -> Result<(DVector<f64>, NoiseCovariance), InputError> {
        let invalid = |key: &str, message: String| InputError::Invalid {
            file: cal.source.clone(),
            key: key.to_string(),
            message,
        };
        let d = self.ensemble.model.output_dim();
        let mut model_theta = Vec::new();
        self.ensemble
            .model
            .assemble(theta.as_slice(), &mut model_theta);
        match (&self.lorenz, noise) {
            (Some(l), given) => {
                let (y, gamma) = l
                    .truth(&model_theta)
                    .map_err(|e| invalid("observations.truth", e.to_string()))?;
                let noise = match given {
                    Some(n) => n.clone(),
                    None => NoiseCovariance::full(gamma).map_err(|e| {
                        invalid(
                            "observations.truth",
                            format!(
                                "the truth run's sample covariance is unusable as Γ ({e}); give \
                                 `noise_std` or `covariance`"
                            ),
                        )
                    })?,
                };
                Ok((y, noise))
            }
            (None, Some(n)) => {
                let g = self
                    .ensemble
                    .model
                    .evaluate_single(0, theta.as_slice())
                    .map_err(|e| invalid("observations.truth", e.to_string()))?;
                let n = resize_scalar(n, d);
                let mut rng = ChaCha20Rng::seed_from_u64(cal.seed ^ 0x7275_7468);
                let eta = if n.dim() == d {
                    n.sample(&mut rng, 1, 1.0)
                } else {
                    nalgebra::DMatrix::zeros(d, 1)
                };
                Ok((DVector::from_vec(g) + eta.column(0), n))
            }
            (None, None) => Err(invalid(
                "observations",
                "`truth` needs `noise_std` or `covariance` for this model".into(),
            )),
        }
    }

    /// The data of `cal`: as given, or generated from the model at the truth.
    ///
    /// Truth data: the Lorenz 96 model runs one long truth trajectory (y = the
    /// mean of its window statistics, Γ their sample covariance unless given);
    /// other models give `y = G(θ†) + η`, `η ~ N(0, Γ)` drawn from the
    /// calibration seed.
    pub fn observation(&self, cal: &Calibration) -> Result<Observation, InputError> {
        let invalid = |key: &str, message: String| InputError::Invalid {
            file: cal.source.clone(),
            key: key.to_string(),
            message,
        };
        let d = self.ensemble.model.output_dim();
        let (values, noise) = match &cal.observations {
            ObservationSpec::Given { values, noise } => (values.clone(), noise.clone()),
            ObservationSpec::Truth { theta, noise } => {
                self.truth_data(cal, theta, noise.as_ref())?
            }
        };
        let noise = resize_scalar(&noise, values.len());
        if values.len() != d {
            return Err(invalid(
                "observations.values",
                format!(
                    "has {} values, the {} model has {d} outputs",
                    values.len(),
                    self.ensemble.model.name()
                ),
            ));
        }
        if noise.dim() != d {
            return Err(invalid(
                "observations",
                format!(
                    "the noise covariance has dimension {}, the {} model has {d} outputs",
                    noise.dim(),
                    self.ensemble.model.name()
                ),
            ));
        }
        if values.iter().any(|v| !v.is_finite()) {
            return Err(invalid(
                "observations.truth",
                "the model produced non-finite data at the truth".into(),
            ));
        }
        Observation::new(values, noise).map_err(|e| invalid("observations", e.to_string()))
    }
}

/// A scalar `Γ` takes the dimension of the data.
fn resize_scalar(n: &NoiseCovariance, d: usize) -> NoiseCovariance {
    match n {
        NoiseCovariance::Scalar { variance, .. } => NoiseCovariance::Scalar {
            variance: *variance,
            dim: d,
        },
        other => other.clone(),
    }
}
