//! `[model]`: which forward model, and its settings, validated into a
//! [`ModelSpec`] (how a model is built and run is `crate::models`' job).

use std::collections::BTreeMap;
use std::path::Path;

use ekp_core::Prior;
use ekp_models::{Lorenz96Config, SinusoidConfig};
use nalgebra::{DMatrix, DVector};
use serde::Deserialize;

use super::{Ctx, command};
use crate::error::InputError;

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
    /// Any executable, one process per member (see `crate::models::command`).
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

/// The model kinds, as listed in messages.
const KINDS: &str = "\"lorenz96\", \"linear\", \"sinusoid\", \"command\"";

/// `model.matrix` and `model.offset` of the linear model.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLinear {
    matrix: Vec<Vec<f64>>,
    offset: Option<Vec<f64>>,
}

impl Ctx<'_> {
    /// The `[model]` table: `kind`, `fixed`, and the settings of the kind.
    pub(super) fn model(&self, raw: &toml::Table, prior: &Prior) -> Result<ModelSpec, InputError> {
        let mut table = raw.clone();
        let kind = self.model_kind(&mut table)?;
        let fixed = self.fixed(&mut table)?;
        match kind.as_str() {
            "lorenz96" => self.lorenz96(table, fixed),
            "sinusoid" => self.sinusoid(table, fixed),
            "linear" => {
                self.refuse_fixed(&fixed, "the linear model")?;
                self.linear(table, prior)
            }
            "command" => {
                self.refuse_fixed(&fixed, "a command model")?;
                let base = Path::new(self.file)
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or_else(|| Path::new("."));
                Ok(ModelSpec::Command(command::CommandSpec::from_table(
                    table, self.file, base,
                )?))
            }
            other => Err(self.invalid(
                "model.kind",
                format!("unknown model \"{other}\"; one of {KINDS}"),
            )),
        }
    }

    /// `model.kind`, removed from `table`.
    fn model_kind(&self, table: &mut toml::Table) -> Result<String, InputError> {
        match table.remove("kind") {
            Some(toml::Value::String(s)) => Ok(s),
            Some(other) => Err(self.invalid(
                "model.kind",
                format!("must be a string, got {}", other.type_str()),
            )),
            None => Err(self.invalid("model.kind", format!("missing; one of {KINDS}"))),
        }
    }

    /// `model.fixed` (empty when not given), removed from `table`.
    fn fixed(&self, table: &mut toml::Table) -> Result<BTreeMap<String, f64>, InputError> {
        match table.remove("fixed") {
            None => Ok(BTreeMap::new()),
            Some(v) => v
                .try_into::<BTreeMap<String, f64>>()
                .map_err(|e| self.invalid("model.fixed", e.to_string().trim_end().to_string())),
        }
    }

    /// Models that take the whole parameter vector have no fixed parameters.
    fn refuse_fixed(&self, fixed: &BTreeMap<String, f64>, model: &str) -> Result<(), InputError> {
        if fixed.is_empty() {
            return Ok(());
        }
        Err(self.invalid(
            "model.fixed",
            format!("{model} takes the whole parameter vector; it has no fixed parameters"),
        ))
    }

    /// The rest of `table` as the settings `T` of a built-in model.
    fn settings<T: serde::de::DeserializeOwned>(
        &self,
        table: toml::Table,
    ) -> Result<T, InputError> {
        toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| {
                self.invalid("model", e.to_string().trim_end().to_string())
            })
    }

    fn lorenz96(
        &self,
        table: toml::Table,
        fixed: BTreeMap<String, f64>,
    ) -> Result<ModelSpec, InputError> {
        let config: Lorenz96Config = self.settings(table)?;
        config
            .validate()
            .map_err(|e| self.invalid("model", e.to_string()))?;
        Ok(ModelSpec::Lorenz96 { config, fixed })
    }

    fn sinusoid(
        &self,
        table: toml::Table,
        fixed: BTreeMap<String, f64>,
    ) -> Result<ModelSpec, InputError> {
        let config: SinusoidConfig = self.settings(table)?;
        config
            .validate()
            .map_err(|e| self.invalid("model", e.to_string()))?;
        Ok(ModelSpec::Sinusoid { config, fixed })
    }

    /// `model.matrix` (`d × p`, p the parameter components) and `model.offset`.
    fn linear(&self, table: toml::Table, prior: &Prior) -> Result<ModelSpec, InputError> {
        let raw: RawLinear = self.settings(table)?;
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
        Ok(ModelSpec::Linear { matrix, offset })
    }
}
