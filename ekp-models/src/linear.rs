//! The linear model G(θ) = Aθ + b.

use nalgebra::{DMatrix, DVector};

use crate::ensemble::MemberModel;
use crate::error::ModelsError;

const MODEL: &str = "linear";

/// G(θ) = Aθ + b with a `d × p` matrix A and an offset b of length `d`.
///
/// Output `i` is `(Σ_k A[i,k]·θ[k]) + b[i]`, summed in order k = 0, 1, …, the
/// order nalgebra's `&a * &theta + &b` uses, so both agree bit for bit.
/// Parameter names are `theta[1]`, …, `theta[p]` unless set with
/// [`Linear::with_parameter_names`].
#[derive(Debug, Clone, PartialEq)]
pub struct Linear {
    matrix: DMatrix<f64>,
    offset: DVector<f64>,
    names: Vec<String>,
}

impl Linear {
    /// A model with matrix `matrix` (d rows, p columns) and an optional
    /// offset (default zero). Errors name `matrix` (empty or non-finite) or
    /// `offset` (wrong length or non-finite).
    pub fn new(matrix: DMatrix<f64>, offset: Option<DVector<f64>>) -> Result<Self, ModelsError> {
        let (d, p) = matrix.shape();
        if d == 0 || p == 0 {
            return Err(ModelsError::config(
                MODEL,
                "matrix",
                format!("must have at least one row and one column, got {d}×{p}"),
            ));
        }
        if !matrix.iter().all(|v| v.is_finite()) {
            return Err(ModelsError::config(
                MODEL,
                "matrix",
                "entries must be finite",
            ));
        }
        let offset = offset.unwrap_or_else(|| DVector::zeros(d));
        if offset.len() != d {
            return Err(ModelsError::config(
                MODEL,
                "offset",
                format!("has length {} but the matrix has {d} rows", offset.len()),
            ));
        }
        if !offset.iter().all(|v| v.is_finite()) {
            return Err(ModelsError::config(
                MODEL,
                "offset",
                "entries must be finite",
            ));
        }
        let names = (1..=p).map(|k| format!("theta[{k}]")).collect();
        Ok(Self {
            matrix,
            offset,
            names,
        })
    }

    /// Build from rows (`d` rows of `p` values each, as in a TOML
    /// `matrix = [[...], ...]`) and an optional offset.
    pub fn from_rows(rows: &[Vec<f64>], offset: Option<Vec<f64>>) -> Result<Self, ModelsError> {
        let d = rows.len();
        let p = rows.first().map_or(0, Vec::len);
        if let Some((i, row)) = rows.iter().enumerate().find(|(_, r)| r.len() != p) {
            return Err(ModelsError::config(
                MODEL,
                "matrix",
                format!("row {} has {} entries, row 1 has {p}", i + 1, row.len()),
            ));
        }
        let matrix = DMatrix::from_fn(d, p, |i, k| rows[i][k]);
        Self::new(matrix, offset.map(DVector::from_vec))
    }

    /// Replace the parameter names (`p` of them, else an error naming `names`).
    pub fn with_parameter_names(mut self, names: Vec<String>) -> Result<Self, ModelsError> {
        if names.len() != self.matrix.ncols() {
            return Err(ModelsError::config(
                MODEL,
                "names",
                format!(
                    "{} names given for {} parameters",
                    names.len(),
                    self.matrix.ncols()
                ),
            ));
        }
        self.names = names;
        Ok(self)
    }

    /// The matrix A (`d × p`).
    pub fn matrix(&self) -> &DMatrix<f64> {
        &self.matrix
    }

    /// The offset b (length `d`).
    pub fn offset(&self) -> &DVector<f64> {
        &self.offset
    }
}

impl MemberModel for Linear {
    fn name(&self) -> &str {
        MODEL
    }

    fn parameter_names(&self) -> Vec<String> {
        self.names.clone()
    }

    fn parameter_dim(&self) -> usize {
        self.matrix.ncols()
    }

    fn output_dim(&self) -> usize {
        self.matrix.nrows()
    }

    fn evaluate_member(&self, _member: usize, theta: &[f64], out: &mut [f64]) {
        if theta.len() != self.matrix.ncols() || out.len() != self.matrix.nrows() {
            out.fill(f64::NAN);
            return;
        }
        out.fill(0.0);
        // Column by column (A is column-major): out += θ_k A[:, k].
        for (column, &t) in self.matrix.column_iter().zip(theta) {
            for (o, &a) in out.iter_mut().zip(column.iter()) {
                *o += a * t;
            }
        }
        for (o, &b) in out.iter_mut().zip(self.offset.iter()) {
            *o += b;
        }
    }
}
