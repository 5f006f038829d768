//! Errors of model construction and of the truth runs.

use thiserror::Error;

/// Why a model could not be built or run.
///
/// A single member that fails inside an ensemble evaluation is not an error
/// (it gets a NaN column); these are errors of configuration and of runs that
/// must succeed, such as the truth run.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ModelsError {
    /// A configuration value is out of range or inconsistent.
    #[error("invalid `{field}` in the {model} model configuration: {reason}")]
    InvalidConfig {
        /// The model (`lorenz96`, `linear`, `sinusoid`).
        model: &'static str,
        /// The configuration key at fault.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A parameter vector of the wrong length.
    #[error("model `{model}` expects {expected} parameters, got {got}")]
    ParameterCount {
        /// The model.
        model: &'static str,
        /// Parameters the model takes.
        expected: usize,
        /// Length of the vector passed.
        got: usize,
    },
    /// A batch buffer does not hold the number of values its members need.
    #[error("model `{model}`: the {buffer} buffer holds {got} values, expected {expected}")]
    BufferLength {
        /// The model.
        model: &'static str,
        /// Which buffer (`parameters`, `states`).
        buffer: &'static str,
        /// Values it should hold.
        expected: usize,
        /// Values it holds.
        got: usize,
    },
    /// A run that had to succeed produced non-finite values.
    #[error("model `{model}` diverged at parameters {theta:?} (non-finite state or outputs)")]
    Diverged {
        /// The model.
        model: &'static str,
        /// The parameters of the run.
        theta: Vec<f64>,
    },
}

impl ModelsError {
    /// Shorthand for [`ModelsError::InvalidConfig`].
    pub(crate) fn config(
        model: &'static str,
        field: &'static str,
        reason: impl Into<String>,
    ) -> Self {
        Self::InvalidConfig {
            model,
            field,
            reason: reason.into(),
        }
    }
}
