//! `[[parameters]]`: the prior, one parameter at a time; and how members'
//! parameter files are laid out ([`ParameterFiles`]).

use std::path::Path;

use ekp_core::{ParameterPrior, Prior};

use super::limits::{MAX_PARAMETER_DIM, MAX_PARAMETER_SIZE};
use super::schema::{RawConfig, RawParameter, RawPrior};
use super::{Ctx, ekpjl, names};
use crate::error::InputError;

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
    /// `constraint`, descriptions, parameters that are not calibrated),
    /// comments and key order stay as they were; empty when the priors came
    /// from `[[parameters]]`.
    Ekp {
        /// The text of the file the values are written into (valid TOML).
        template: String,
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

impl Ctx<'_> {
    /// The prior, from `[[parameters]]` or from `parameters_from.ekp_toml`
    /// (resolved against `base`), never both.
    pub(super) fn prior_source(&self, raw: &RawConfig, base: &Path) -> Result<Prior, InputError> {
        let (prior, key) = match &raw.parameters_from {
            None => (self.prior(&raw.parameters)?, "parameters"),
            Some(_) if !raw.parameters.is_empty() => {
                return Err(self.invalid(
                    "parameters_from",
                    "give either [[parameters]] or `parameters_from`, not both",
                ));
            }
            Some(from) => (
                ekpjl::prior_from_file_names(&base.join(&from.ekp_toml), from.names.as_deref())
                    .map_err(|e| self.invalid("parameters_from.ekp_toml", e.to_string()))?,
                "parameters_from.ekp_toml",
            ),
        };
        // Each size is bounded; their sum cannot overflow (at most one
        // parameter per byte of a capped file).
        let dim = prior
            .parameters()
            .iter()
            .fold(0usize, |sum, p| sum.saturating_add(p.size()));
        if dim > MAX_PARAMETER_DIM {
            return Err(self.invalid(
                key,
                format!("the parameters have {dim} components in all; at most {MAX_PARAMETER_DIM}"),
            ));
        }
        Ok(prior)
    }

    /// The top-level `parameter_files`: `"flat"` (the default) or `"ekp"`,
    /// whose template is the EKP.jl file of `parameters_from` (if any).
    pub(super) fn parameter_files(
        &self,
        raw: &RawConfig,
        base: &Path,
    ) -> Result<ParameterFiles, InputError> {
        match raw.parameter_files.as_deref() {
            None | Some("flat") => Ok(ParameterFiles::Flat),
            Some("ekp") => Ok(ParameterFiles::Ekp {
                template: match &raw.parameters_from {
                    None => String::new(),
                    Some(from) => ekpjl::text_from_file(&base.join(&from.ekp_toml))
                        .map_err(|e| self.invalid("parameters_from.ekp_toml", e.to_string()))?,
                },
            }),
            Some(other) => Err(self.invalid(
                "parameter_files",
                format!(
                    "unknown layout \"{other}\"; one of \"flat\" (`F = 8.1`, the default) \
                     or \"ekp\" (EKP.jl's: `[F]` tables with `value = 8.1`)"
                ),
            )),
        }
    }

    /// The prior of the `[[parameters]]` tables, in order.
    fn prior(&self, params: &[RawParameter]) -> Result<Prior, InputError> {
        if params.is_empty() {
            return Err(self.invalid(
                "parameters",
                "no [[parameters]] given: a calibration needs at least one",
            ));
        }
        let mut out = Vec::with_capacity(params.len());
        for (i, p) in params.iter().enumerate() {
            names::check_name(&p.name)
                .map_err(|m| self.invalid(format!("parameters[{}].name", i + 1), m))?;
            let key = format!("parameters[{}] (name = \"{}\")", i + 1, p.name);
            let size = p.size.unwrap_or(1);
            if size == 0 {
                return Err(self.invalid(format!("{key}.size"), "must be at least 1"));
            }
            if size > MAX_PARAMETER_SIZE {
                return Err(self.invalid(
                    format!("{key}.size"),
                    format!("must be at most {MAX_PARAMETER_SIZE}, got {size}"),
                ));
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
}
