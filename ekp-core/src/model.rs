//! The forward-model interface: a whole ensemble evaluated at once.
//!
//! `ekp-core` never runs a model itself (ask/tell); this trait is what model
//! crates (`ekp-models`, `ekp-gpu`, the CLI's external commands) implement so that
//! drivers can treat every backend alike.

use nalgebra::DMatrix;
use thiserror::Error;

/// Why a forward model could not evaluate an ensemble at all.
///
/// A single member that fails (diverges, crashes) is *not* an error: its output
/// column is filled with NaN and the process's failure policy deals with it.
#[derive(Debug, Error)]
pub enum ModelError {
    /// The parameter matrix has the wrong number of rows for this model.
    #[error("model `{model}` expects {expected} parameters per member, got {got}")]
    ParameterCount {
        /// Model name.
        model: String,
        /// Parameters the model takes.
        expected: usize,
        /// Rows of the matrix that was passed.
        got: usize,
    },
    /// The output matrix has the wrong shape.
    #[error(
        "model `{model}` writes a {rows}×{cols} output, but the buffer is {got_rows}×{got_cols}"
    )]
    OutputShape {
        /// Model name.
        model: String,
        /// Expected rows (output dimension).
        rows: usize,
        /// Expected columns (members).
        cols: usize,
        /// Rows of the buffer passed.
        got_rows: usize,
        /// Columns of the buffer passed.
        got_cols: usize,
    },
    /// The backend itself failed (device lost, I/O, ...).
    #[error("model `{model}` failed: {message}")]
    Backend {
        /// Model name.
        model: String,
        /// What went wrong.
        message: String,
    },
}

/// A model G that maps parameters (constrained, physical units) to outputs.
///
/// Parameters come as a `p × N` matrix, one column per ensemble member; outputs
/// are written into a `d × N` matrix. A member that fails gets a column of NaN.
pub trait ForwardModel {
    /// A short name for messages.
    fn name(&self) -> &str;
    /// Number of parameters `p` one member takes.
    fn parameter_dim(&self) -> usize;
    /// Number of outputs `d` one member produces.
    fn output_dim(&self) -> usize;

    /// Evaluate every member, writing outputs in place (the hot path).
    fn evaluate_into(
        &self,
        params: &DMatrix<f64>,
        out: &mut DMatrix<f64>,
    ) -> Result<(), ModelError>;

    /// Like [`evaluate_into`](Self::evaluate_into), calling `progress(k)` as
    /// members finish (`k` = how many just finished; the calls add up to `N`).
    /// `progress` may be called from several threads. The default reports all
    /// members at the end; backends that can report earlier override it.
    fn evaluate_into_with_progress(
        &self,
        params: &DMatrix<f64>,
        out: &mut DMatrix<f64>,
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<(), ModelError> {
        self.evaluate_into(params, out)?;
        progress(params.ncols());
        Ok(())
    }

    /// Evaluate every member into a new `d × N` matrix.
    fn evaluate(&self, params: &DMatrix<f64>) -> Result<DMatrix<f64>, ModelError> {
        let mut out = DMatrix::zeros(self.output_dim(), params.ncols());
        self.evaluate_into(params, &mut out)?;
        Ok(out)
    }

    /// Check the shapes of `params` and `out` against this model.
    fn check_shapes(&self, params: &DMatrix<f64>, out: &DMatrix<f64>) -> Result<(), ModelError> {
        if params.nrows() != self.parameter_dim() {
            return Err(ModelError::ParameterCount {
                model: self.name().to_string(),
                expected: self.parameter_dim(),
                got: params.nrows(),
            });
        }
        if out.nrows() != self.output_dim() || out.ncols() != params.ncols() {
            return Err(ModelError::OutputShape {
                model: self.name().to_string(),
                rows: self.output_dim(),
                cols: params.ncols(),
                got_rows: out.nrows(),
                got_cols: out.ncols(),
            });
        }
        Ok(())
    }
}
