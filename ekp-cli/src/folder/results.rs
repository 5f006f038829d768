//! The TOML summaries of a calibration folder:
//!
//! - `result.toml`: iterations applied, each parameter's constrained and
//!   unconstrained mean and std, the unconstrained mean vector and covariance
//!   (rewritten after every update; final once the calibration is complete).
//! - `observations.toml`: the data calibrated against (`values`, `covariance`,
//!   `source` = `"given"` or `"truth"`, and `truth` when generated); written
//!   here, read back by the plots.

use std::collections::BTreeMap;

use ekp_core::{EnsembleKalmanProcess, Observation};
use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use crate::config::{Calibration, ObservationSpec};
use crate::folder::records::constrained_summary;

/// `result.toml`.
pub const RESULT_FILE: &str = "result.toml";
/// `observations.toml`.
pub const OBSERVATIONS_FILE: &str = "observations.toml";

fn matrix_rows(m: &DMatrix<f64>) -> Vec<Vec<f64>> {
    m.row_iter().map(|r| r.iter().copied().collect()).collect()
}

/// One parameter's summary in `result.toml`: scalars for scalar parameters,
/// arrays for vector parameters.
#[derive(Serialize)]
#[serde(untagged)]
enum Value {
    Scalar(f64),
    Vector(Vec<f64>),
}

impl Value {
    fn of(v: &DVector<f64>, range: std::ops::Range<usize>) -> Self {
        if range.len() == 1 {
            Value::Scalar(v[range.start])
        } else {
            Value::Vector(v.rows(range.start, range.len()).iter().copied().collect())
        }
    }
}

#[derive(Serialize)]
struct ParameterResult {
    mean: Value,
    std: Value,
    unconstrained_mean: Value,
    unconstrained_std: Value,
}

#[derive(Serialize)]
struct Unconstrained {
    mean: Vec<f64>,
    covariance: Vec<Vec<f64>>,
}

#[derive(Serialize)]
struct ResultFile {
    iterations: usize,
    process: String,
    ensemble_size: usize,
    final_loss: f64,
    parameters: indexmap_like::Ordered<ParameterResult>,
    unconstrained: Unconstrained,
}

/// A map that serialises in insertion order (parameter order).
mod indexmap_like {
    use serde::ser::{Serialize, SerializeMap, Serializer};

    /// Entries in insertion order.
    pub struct Ordered<T>(pub Vec<(String, T)>);

    impl<T: Serialize> Serialize for Ordered<T> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut m = s.serialize_map(Some(self.0.len()))?;
            for (k, v) in &self.0 {
                m.serialize_entry(k, v)?;
            }
            m.end()
        }
    }
}

/// The contents of `result.toml` for a process (and its final loss).
pub fn result_toml(ekp: &EnsembleKalmanProcess, final_loss: f64) -> anyhow::Result<String> {
    let (mean, std) = constrained_summary(ekp, ekp.iterations());
    let mean_u = ekp.unconstrained_mean();
    let cov_u = ekp.unconstrained_covariance();
    let std_u = cov_u.diagonal().map(f64::sqrt);
    let prior = ekp.prior();
    let parameters = prior
        .parameters()
        .iter()
        .zip(prior.ranges())
        .map(|(p, r)| {
            (
                p.name().to_string(),
                ParameterResult {
                    mean: Value::of(&mean, r.clone()),
                    std: Value::of(&std, r.clone()),
                    unconstrained_mean: Value::of(&mean_u, r.clone()),
                    unconstrained_std: Value::of(&std_u, r),
                },
            )
        })
        .collect();
    let file = ResultFile {
        iterations: ekp.iterations(),
        process: ekp.process().kind().to_string(),
        ensemble_size: ekp.ensemble_size(),
        final_loss,
        parameters: indexmap_like::Ordered(parameters),
        unconstrained: Unconstrained {
            mean: mean_u.iter().copied().collect(),
            covariance: matrix_rows(&cov_u),
        },
    };
    Ok(toml::to_string(&file)?)
}

#[derive(Serialize)]
struct ObservationsFile {
    source: &'static str,
    values: Vec<f64>,
    covariance: Vec<Vec<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    truth: Option<indexmap_like::Ordered<Value>>,
}

/// The contents of `observations.toml`.
pub fn observations_toml(cal: &Calibration, obs: &Observation) -> anyhow::Result<String> {
    let (source, truth) = match &cal.observations {
        ObservationSpec::Given { .. } => ("given", None),
        ObservationSpec::Truth { theta, .. } => {
            let entries = cal
                .prior
                .parameters()
                .iter()
                .zip(cal.prior.ranges())
                .map(|(p, r)| (p.name().to_string(), Value::of(theta, r)))
                .collect();
            ("truth", Some(indexmap_like::Ordered(entries)))
        }
    };
    let file = ObservationsFile {
        source,
        values: obs.values().iter().copied().collect(),
        covariance: matrix_rows(&obs.noise().dense()),
        truth,
    };
    Ok(toml::to_string(&file)?)
}

/// `observations.toml` as read back (by the plots).
#[derive(Debug, Clone, Deserialize)]
pub struct ObservationsRead {
    /// `y`.
    pub values: Vec<f64>,
    /// `Γ`, dense.
    #[serde(default)]
    pub covariance: Vec<Vec<f64>>,
    /// The true parameters by name, when the data were generated.
    pub truth: Option<BTreeMap<String, toml::Value>>,
}

impl ObservationsRead {
    /// The truth as a flat vector in the prior's parameter order, if every
    /// parameter is there with the right size.
    pub fn truth_flat(&self, prior: &ekp_core::Prior) -> Option<Vec<f64>> {
        let t = self.truth.as_ref()?;
        let mut flat = Vec::with_capacity(prior.dim());
        for p in prior.parameters() {
            match t.get(p.name())? {
                toml::Value::Float(v) => flat.push(*v),
                toml::Value::Integer(v) => flat.push(*v as f64),
                toml::Value::Array(a) => flat.extend(a.iter().filter_map(toml::Value::as_float)),
                _ => return None,
            }
        }
        (flat.len() == prior.dim()).then_some(flat)
    }
}
