//! `[model]`: which forward model, and its settings, validated into a
//! [`ModelSpec`] (how a model is built and run is the models layer's job).

use std::collections::BTreeMap;
use std::path::Path;

use ekp_core::Prior;
use ekp_models::{Lorenz96Config, SinusoidConfig};
use nalgebra::{DMatrix, DVector};
use serde::Deserialize;

use super::limits::{MAX_LORENZ96_SITES, MAX_LORENZ96_TRUTH_SAMPLES, MAX_SINUSOID_SAMPLES};
use super::program::ProgramKind;
use super::{Ctx, program};
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
    /// The user's own program: `command` (one process per member), `worker`
    /// (long-lived processes serving members) or `batch` (many members per
    /// process); see the `models::command`, `models::worker` and
    /// `models::batch` modules.
    Program(program::ProgramSpec),
}

impl ModelSpec {
    /// Outputs per member of a built-in model (the data generated from
    /// `truth`): Lorenz 96's observables, the linear model's rows, the
    /// sinusoid's 2; 0 for a program model (it cannot make data).
    pub(super) fn truth_outputs(&self) -> usize {
        match self {
            ModelSpec::Lorenz96 { config, .. } => {
                // A whole number below 2^52 once validated.
                let sub_windows = (config.window / config.sub_window).round() as usize;
                sub_windows / config.fit_windows.max(1)
            }
            ModelSpec::Linear { matrix, .. } => matrix.nrows(),
            ModelSpec::Sinusoid { .. } => 2,
            ModelSpec::Program(_) => 0,
        }
    }

    /// The `model.kind` name.
    pub fn kind(&self) -> &'static str {
        match self {
            ModelSpec::Lorenz96 { .. } => "lorenz96",
            ModelSpec::Linear { .. } => "linear",
            ModelSpec::Sinusoid { .. } => "sinusoid",
            ModelSpec::Program(spec) => spec.kind.name(),
        }
    }
}

/// The model kinds, as listed in messages.
const KINDS: &str = "\"lorenz96\", \"linear\", \"sinusoid\", \"command\", \"worker\", \"batch\"";

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
            "command" => self.program(table, &fixed, ProgramKind::Command),
            "worker" => self.program(table, &fixed, ProgramKind::Worker),
            "batch" => self.program(table, &fixed, ProgramKind::Batch),
            other => Err(self.invalid(
                "model.kind",
                format!("unknown model \"{other}\"; one of {KINDS}"),
            )),
        }
    }

    /// The `[model]` table of the user's own program.
    fn program(
        &self,
        table: toml::Table,
        fixed: &BTreeMap<String, f64>,
        kind: ProgramKind,
    ) -> Result<ModelSpec, InputError> {
        self.refuse_fixed(fixed, &format!("a {} model", kind.name()))?;
        let base = Path::new(self.file)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| Path::new("."));
        Ok(ModelSpec::Program(program::ProgramSpec::from_table(
            table, self.file, base, kind,
        )?))
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
        // Bounded before validation, which walks the truth windows.
        for (key, value, limit) in [
            ("model.sites", config.sites, MAX_LORENZ96_SITES),
            (
                "model.truth_samples",
                config.truth_samples,
                MAX_LORENZ96_TRUTH_SAMPLES,
            ),
        ] {
            if value > limit {
                return Err(self.invalid(key, format!("must be at most {limit}, got {value}")));
            }
        }
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
        // The model samples [0, 2π + dt] every dt; dt > 0 once validated, so
        // this is positive (infinite for a subnormal dt: refused too).
        let samples = (2.0 * std::f64::consts::PI + config.dt) / config.dt;
        if samples > MAX_SINUSOID_SAMPLES as f64 {
            return Err(self.invalid(
                "model.dt",
                format!(
                    "{} makes {samples:.3e} time samples; at most {MAX_SINUSOID_SAMPLES} \
                     (dt ≥ {:.3e})",
                    config.dt,
                    2.0 * std::f64::consts::PI / (MAX_SINUSOID_SAMPLES as f64 - 1.0)
                ),
            ));
        }
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
