//! `[observations]`: the data `y` and their noise `Γ`, given or generated
//! from `truth`, validated into an [`ObservationSpec`].

use std::collections::BTreeMap;

use ekp_core::{NoiseCovariance, Prior};
use nalgebra::DVector;

use super::schema::{RawObservations, ScalarOrVector};
use super::{Ctx, ModelSpec};
use crate::error::InputError;

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

/// What each datum is: `observations.names` and `observations.coordinates`
/// (optional, one per datum). Used for the columns of `outputs.csv` and the
/// x axis of the outputs plot.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DataLabels {
    /// A name per datum.
    pub names: Option<Vec<String>>,
    /// A coordinate per datum (time, depth, ...).
    pub coordinates: Option<Vec<f64>>,
}

impl DataLabels {
    /// The column names of the outputs: the names, else `g1`, `g2`, ...
    pub fn columns(&self, d: usize) -> Vec<String> {
        match &self.names {
            Some(n) if n.len() == d => n.clone(),
            _ => (1..=d).map(|i| format!("g{i}")).collect(),
        }
    }
}

impl Ctx<'_> {
    /// `observations.names` and `.coordinates`, checked against the number
    /// `d` of data (unknown for a model that cannot make data: then not checked).
    pub(super) fn data_labels(
        &self,
        raw: &RawObservations,
        d: Option<usize>,
    ) -> Result<DataLabels, InputError> {
        let check_len = |key: &str, n: usize| match d {
            Some(d) if d != n => Err(self.invalid(
                key,
                format!("has {n} entries; the data have {d} values (one entry per datum)"),
            )),
            _ => Ok(()),
        };
        if let Some(names) = &raw.names {
            check_len("observations.names", names.len())?;
            let mut seen = std::collections::BTreeSet::new();
            for n in names {
                if n.trim().is_empty() || n.chars().any(char::is_control) || n.len() > 200 {
                    return Err(self.invalid(
                        "observations.names",
                        format!(
                            "`{}`: a name is 1 to 200 printable characters",
                            n.escape_debug()
                        ),
                    ));
                }
                if !seen.insert(n.as_str()) {
                    return Err(self.invalid("observations.names", format!("`{n}` is given twice")));
                }
            }
        }
        if let Some(c) = &raw.coordinates {
            check_len("observations.coordinates", c.len())?;
            if let Some(v) = c.iter().find(|v| !v.is_finite()) {
                return Err(self.invalid(
                    "observations.coordinates",
                    format!("{v} is not a finite number"),
                ));
            }
        }
        Ok(DataLabels {
            names: raw.names.clone(),
            coordinates: raw.coordinates.clone(),
        })
    }

    /// `Γ` from `noise_std` or `covariance` (`None`: neither given); a
    /// scalar `noise_std` needs the dimension `dim` of the data.
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

    /// The data: given as `values` (with their noise), or generated from
    /// `truth` by the model.
    pub(super) fn observations(
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
            (Some(values), None) => self.given(raw, values),
            (None, Some(truth)) => Ok(ObservationSpec::Truth {
                theta: self.truth_theta(truth, prior)?,
                noise: self.truth_noise(raw, model)?,
            }),
        }
    }

    /// `values` and their noise, checked together.
    fn given(&self, raw: &RawObservations, values: &[f64]) -> Result<ObservationSpec, InputError> {
        let y = DVector::from_vec(values.to_vec());
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

    /// The flat parameter vector of `truth`: a value for every parameter
    /// (its size, inside its bounds), and no other name.
    fn truth_theta(
        &self,
        truth: &BTreeMap<String, ScalarOrVector>,
        prior: &Prior,
    ) -> Result<DVector<f64>, InputError> {
        let mut theta = Vec::with_capacity(prior.dim());
        for p in prior.parameters() {
            let key = format!("observations.truth.{}", p.name());
            let vals = match truth.get(p.name()) {
                None => {
                    return Err(
                        self.invalid(key, "missing: `truth` needs a value for every parameter")
                    );
                }
                Some(ScalarOrVector::Scalar(v)) => vec![*v; 1],
                Some(ScalarOrVector::Vector(v)) => v.clone(),
            };
            if vals.len() != p.size() {
                return Err(self.invalid(
                    key,
                    format!(
                        "has {} values, the parameter has size {}",
                        vals.len(),
                        p.size()
                    ),
                ));
            }
            if let Some(v) = vals.iter().find(|v| !p.constraint().contains(**v)) {
                return Err(self.invalid(
                    key,
                    format!(
                        "{v} is outside the parameter's bounds ({}, {})",
                        p.constraint().lower(),
                        p.constraint().upper()
                    ),
                ));
            }
            theta.extend(vals);
        }
        if let Some(extra) = truth
            .keys()
            .find(|k| !prior.parameters().iter().any(|p| p.name() == k.as_str()))
        {
            return Err(self.invalid(
                format!("observations.truth.{extra}"),
                "is not one of the calibrated parameters",
            ));
        }
        Ok(DVector::from_vec(theta))
    }

    /// `Γ` of synthetic data: given, or (Lorenz 96 only) estimated from the
    /// truth run; a command model cannot make synthetic data.
    fn truth_noise(
        &self,
        raw: &RawObservations,
        model: &ModelSpec,
    ) -> Result<Option<NoiseCovariance>, InputError> {
        match model {
            // Lorenz 96 estimates Γ from the truth run when none is given.
            ModelSpec::Lorenz96 { .. } => self.noise(raw, None),
            ModelSpec::Program(_) => Err(self.invalid(
                "observations.truth",
                "a command model cannot generate synthetic data: give the data as \
                 `values = [...]` with `noise_std` or `covariance`",
            )),
            ModelSpec::Linear { .. } | ModelSpec::Sinusoid { .. } => {
                Ok(Some(self.noise(raw, None)?.ok_or_else(|| {
                    self.invalid(
                        "observations",
                        format!(
                            "`truth` with the {} model needs `noise_std` or `covariance` (only lorenz96 estimates Γ from its truth run)",
                            model.kind()
                        ),
                    )
                })?))
            }
        }
    }
}
