//! Observations: the data `y` and its noise covariance `Γ`.
//!
//! `Γ` is stored in the cheapest form that describes it ‒ a scalar variance, a
//! diagonal, or a full symmetric positive definite matrix ‒ and every use of it
//! (solves, sampling, adding it to a covariance) goes through that form, so a
//! diagonal `Γ` never becomes a dense `d × d` matrix.

use nalgebra::{Cholesky, DMatrix, DVector};
use rand::Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why an observation could not be built.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum ObservationError {
    /// No data.
    #[error("the observation vector is empty")]
    Empty,
    /// A data value is NaN or infinite.
    #[error("observation value {} (counting from 1) is not finite ({value})", index + 1)]
    NonFiniteValue {
        /// 0-based index into `y`.
        index: usize,
        /// The value.
        value: f64,
    },
    /// A variance (or a standard deviation) is not positive and finite.
    #[error("noise entry {} (counting from 1) must be positive and finite, got {value}", index + 1)]
    BadVariance {
        /// 0-based index of the diagonal entry.
        index: usize,
        /// The value.
        value: f64,
    },
    /// `Γ` does not have the size of `y`.
    #[error("noise covariance is {rows}×{cols}, but there are {dim} observations")]
    DimensionMismatch {
        /// Length of `y`.
        dim: usize,
        /// Rows of `Γ`.
        rows: usize,
        /// Columns of `Γ`.
        cols: usize,
    },
    /// `Γ` is not symmetric.
    #[error(
        "noise covariance is not symmetric: entry ({row}, {col}) is {a} but ({col}, {row}) is {b}"
    )]
    NotSymmetric {
        /// Row (0-based).
        row: usize,
        /// Column (0-based).
        col: usize,
        /// Γ[row, col].
        a: f64,
        /// Γ[col, row].
        b: f64,
    },
    /// `Γ` is symmetric but not positive definite (its Cholesky factorisation failed).
    #[error("noise covariance is not positive definite")]
    NotPositiveDefinite,
    /// A series of observations or its minibatcher is inconsistent.
    #[error("{0}")]
    Minibatch(String),
}

/// The observational noise covariance `Γ`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum NoiseCovariance {
    /// `Γ = variance · I`.
    Scalar {
        /// The common variance.
        variance: f64,
        /// The dimension `d`.
        dim: usize,
    },
    /// `Γ = diag(variances)`.
    Diagonal {
        /// The variances.
        #[serde(with = "crate::serde_nalgebra::vector")]
        variances: DVector<f64>,
    },
    /// A full symmetric positive definite `Γ`, with its lower Cholesky factor.
    Full {
        /// `Γ` itself.
        #[serde(with = "crate::serde_nalgebra::matrix")]
        covariance: DMatrix<f64>,
        /// `L` with `Γ = L Lᵀ`.
        #[serde(with = "crate::serde_nalgebra::matrix")]
        cholesky_l: DMatrix<f64>,
    },
}

impl NoiseCovariance {
    /// `Γ = std² I` of dimension `dim`.
    pub fn scalar_std(std: f64, dim: usize) -> Result<Self, ObservationError> {
        let variance = std * std;
        if !(std > 0.0 && variance.is_finite() && variance > 0.0) {
            return Err(ObservationError::BadVariance {
                index: 0,
                value: std,
            });
        }
        Ok(Self::Scalar { variance, dim })
    }

    /// `Γ = diag(stds²)`.
    pub fn diagonal_std(stds: &[f64]) -> Result<Self, ObservationError> {
        if let Some((index, &value)) = stds
            .iter()
            .enumerate()
            .find(|(_, s)| s.is_nan() || **s <= 0.0)
        {
            return Err(ObservationError::BadVariance { index, value });
        }
        Self::diagonal_variances(stds.iter().map(|s| s * s).collect::<Vec<_>>().as_slice())
    }

    /// `Γ = diag(variances)`.
    pub fn diagonal_variances(variances: &[f64]) -> Result<Self, ObservationError> {
        for (index, &v) in variances.iter().enumerate() {
            if !(v.is_finite() && v > 0.0) {
                return Err(ObservationError::BadVariance { index, value: v });
            }
        }
        Ok(Self::Diagonal {
            variances: DVector::from_column_slice(variances),
        })
    }

    /// A full covariance: checked square, symmetric (to a relative 1e-10) and
    /// positive definite. It is symmetrised exactly before factorising.
    pub fn full(covariance: DMatrix<f64>) -> Result<Self, ObservationError> {
        let (rows, cols) = covariance.shape();
        if rows != cols {
            return Err(ObservationError::DimensionMismatch {
                dim: rows,
                rows,
                cols,
            });
        }
        let scale = covariance.amax().max(f64::MIN_POSITIVE);
        for i in 0..rows {
            let d = covariance[(i, i)];
            if !(d.is_finite() && d > 0.0) {
                return Err(ObservationError::BadVariance { index: i, value: d });
            }
            for j in 0..i {
                let (a, b) = (covariance[(i, j)], covariance[(j, i)]);
                if !a.is_finite() || !b.is_finite() || (a - b).abs() > 1e-10 * scale {
                    return Err(ObservationError::NotSymmetric {
                        row: i,
                        col: j,
                        a,
                        b,
                    });
                }
            }
        }
        let sym = (&covariance + covariance.transpose()) * 0.5;
        let chol = Cholesky::new(sym.clone()).ok_or(ObservationError::NotPositiveDefinite)?;
        Ok(Self::Full {
            covariance: sym,
            cholesky_l: chol.l(),
        })
    }

    /// The dimension `d`.
    pub fn dim(&self) -> usize {
        match self {
            Self::Scalar { dim, .. } => *dim,
            Self::Diagonal { variances } => variances.len(),
            Self::Full { covariance, .. } => covariance.nrows(),
        }
    }

    /// `Γ` as a dense matrix (for small problems and output files).
    pub fn dense(&self) -> DMatrix<f64> {
        match self {
            Self::Scalar { variance, dim } => DMatrix::from_diagonal_element(*dim, *dim, *variance),
            Self::Diagonal { variances } => DMatrix::from_diagonal(variances),
            Self::Full { covariance, .. } => covariance.clone(),
        }
    }

    /// The diagonal of `Γ`.
    pub fn diagonal(&self) -> DVector<f64> {
        match self {
            Self::Scalar { variance, dim } => DVector::from_element(*dim, *variance),
            Self::Diagonal { variances } => variances.clone(),
            Self::Full { covariance, .. } => covariance.diagonal(),
        }
    }

    /// `m ← m + s Γ` on the leading `d × d` block of a square matrix `m`
    /// (`m` may be larger, as for the prior-extended system).
    pub fn add_scaled_to(&self, m: &mut DMatrix<f64>, s: f64) {
        match self {
            Self::Scalar { variance, dim } => {
                for i in 0..*dim {
                    m[(i, i)] += s * variance;
                }
            }
            Self::Diagonal { variances } => {
                for (i, v) in variances.iter().enumerate() {
                    m[(i, i)] += s * v;
                }
            }
            Self::Full { covariance, .. } => {
                let d = covariance.nrows();
                let mut block = m.view_mut((0, 0), (d, d));
                block += covariance * s;
            }
        }
    }

    /// `x ← Γ⁻¹ x` in place, column by column (`x` has `d` rows).
    pub fn solve_inplace(&self, x: &mut DMatrix<f64>) {
        match self {
            Self::Scalar { variance, .. } => *x /= *variance,
            Self::Diagonal { variances } => {
                for mut col in x.column_iter_mut() {
                    col.component_div_assign(variances);
                }
            }
            Self::Full { cholesky_l, .. } => {
                // Γ = L Lᵀ: solve L z = x, then Lᵀ w = z. The triangular solves
                // cannot fail: L has a positive diagonal by construction.
                let _ = cholesky_l.solve_lower_triangular_mut(x);
                let _ = cholesky_l.tr_solve_lower_triangular_mut(x);
            }
        }
    }

    /// `Γ⁻¹ x` (allocating wrapper of [`solve_inplace`](Self::solve_inplace)).
    pub fn solve(&self, x: &DMatrix<f64>) -> DMatrix<f64> {
        let mut out = x.clone();
        self.solve_inplace(&mut out);
        out
    }

    /// `xᵀ Γ⁻¹ x` for each column of `x`.
    pub fn weighted_norms_sq(&self, x: &DMatrix<f64>) -> DVector<f64> {
        let w = self.solve(x);
        DVector::from_iterator(
            x.ncols(),
            x.column_iter().zip(w.column_iter()).map(|(a, b)| a.dot(&b)),
        )
    }

    /// The principal sub-covariance of the outputs `idx` (0-based, in that
    /// order): `Γ[idx, idx]`, in the same form. A full `Γ` is refactorised.
    pub fn restrict(&self, idx: &[usize]) -> Result<Self, ObservationError> {
        if let Some(&bad) = idx.iter().find(|&&i| i >= self.dim()) {
            return Err(ObservationError::DimensionMismatch {
                dim: bad + 1,
                rows: self.dim(),
                cols: self.dim(),
            });
        }
        Ok(match self {
            Self::Scalar { variance, .. } => Self::Scalar {
                variance: *variance,
                dim: idx.len(),
            },
            Self::Diagonal { variances } => Self::Diagonal {
                variances: DVector::from_iterator(idx.len(), idx.iter().map(|&i| variances[i])),
            },
            Self::Full { covariance, .. } => {
                let sub =
                    DMatrix::from_fn(idx.len(), idx.len(), |a, b| covariance[(idx[a], idx[b])]);
                let chol =
                    Cholesky::new(sub.clone()).ok_or(ObservationError::NotPositiveDefinite)?;
                Self::Full {
                    covariance: sub,
                    cholesky_l: chol.l(),
                }
            }
        })
    }

    /// The block-diagonal covariance `blockdiag(Γ_1, …, Γ_k)`, in the cheapest
    /// form that holds it: scalar if all blocks are scalar with one variance,
    /// diagonal if all are diagonal, full otherwise (no refactorisation: the
    /// Cholesky factors are assembled block by block).
    pub fn block_diagonal(blocks: &[&NoiseCovariance]) -> Self {
        let dim: usize = blocks.iter().map(|b| b.dim()).sum();
        if let Some(Self::Scalar { variance, .. }) = blocks.first()
            && blocks
                .iter()
                .all(|b| matches!(b, Self::Scalar { variance: v, .. } if v == variance))
        {
            return Self::Scalar {
                variance: *variance,
                dim,
            };
        }
        if blocks.iter().all(|b| !matches!(b, Self::Full { .. })) {
            let mut variances = DVector::zeros(dim);
            let mut at = 0;
            for b in blocks {
                variances.rows_mut(at, b.dim()).copy_from(&b.diagonal());
                at += b.dim();
            }
            return Self::Diagonal { variances };
        }
        let mut covariance = DMatrix::zeros(dim, dim);
        let mut cholesky_l = DMatrix::zeros(dim, dim);
        let mut at = 0;
        for b in blocks {
            let k = b.dim();
            let (c, l) = match b {
                Self::Full {
                    covariance,
                    cholesky_l,
                } => (covariance.clone(), cholesky_l.clone()),
                other => {
                    let diag = other.diagonal();
                    (
                        DMatrix::from_diagonal(&diag),
                        DMatrix::from_diagonal(&diag.map(f64::sqrt)),
                    )
                }
            };
            covariance.view_mut((at, at), (k, k)).copy_from(&c);
            cholesky_l.view_mut((at, at), (k, k)).copy_from(&l);
            at += k;
        }
        Self::Full {
            covariance,
            cholesky_l,
        }
    }

    /// The largest `|Γ_ij|` with `i` and `j` in different blocks of the given
    /// consecutive sizes (0 when `Γ` is block diagonal over them).
    pub fn max_cross_block(&self, sizes: &[usize]) -> f64 {
        let Self::Full { covariance, .. } = self else {
            return 0.0;
        };
        let mut block_of = Vec::with_capacity(covariance.nrows());
        for (b, &k) in sizes.iter().enumerate() {
            block_of.extend(std::iter::repeat_n(b, k));
        }
        let mut worst = 0.0f64;
        for j in 0..covariance.ncols() {
            for i in 0..covariance.nrows() {
                if block_of.get(i) != block_of.get(j) {
                    worst = worst.max(covariance[(i, j)].abs());
                }
            }
        }
        worst
    }

    /// The diagonal of `Γ` when `Γ` is diagonal (scalar or diagonal form);
    /// `None` for a full `Γ`.
    pub fn diagonal_if_diagonal(&self) -> Option<DVector<f64>> {
        match self {
            Self::Scalar { .. } | Self::Diagonal { .. } => Some(self.diagonal()),
            Self::Full { .. } => None,
        }
    }

    /// `√scale · Γ^{½} z` for standard normals `z` (`d × n`): for a diagonal
    /// `Γ` row `i` is scaled by `√Γ_ii · √scale`, for a full `Γ` the Cholesky
    /// factor is applied. Draws of `N(0, scale · Γ)`.
    pub(crate) fn color(&self, mut z: DMatrix<f64>, scale: f64) -> DMatrix<f64> {
        let root = scale.sqrt();
        match self {
            Self::Scalar { .. } | Self::Diagonal { .. } => {
                let sd = self.diagonal().map(|v| v.sqrt() * root);
                for mut col in z.column_iter_mut() {
                    col.component_mul_assign(&sd);
                }
                z
            }
            Self::Full { cholesky_l, .. } => cholesky_l * z * root,
        }
    }

    /// `n` draws from `N(0, scale · Γ)`, as a `d × n` matrix, drawn column by column.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R, n: usize, scale: f64) -> DMatrix<f64> {
        let d = self.dim();
        let mut z = DMatrix::<f64>::from_fn(d, n, |_, _| 0.0);
        for v in z.iter_mut() {
            *v = rng.sample(StandardNormal);
        }
        let root = scale.sqrt();
        match self {
            Self::Scalar { variance, .. } => z * (variance.sqrt() * root),
            Self::Diagonal { variances } => {
                let sd = variances.map(|v| v.sqrt() * root);
                for mut col in z.column_iter_mut() {
                    col.component_mul_assign(&sd);
                }
                z
            }
            Self::Full { cholesky_l, .. } => cholesky_l * z * root,
        }
    }
}

/// The data a calibration fits: `y = G(θ) + η`, `η ~ N(0, Γ)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    #[serde(with = "crate::serde_nalgebra::vector")]
    values: DVector<f64>,
    noise: NoiseCovariance,
}

impl Observation {
    /// Checks that `y` is finite and `Γ` has its size.
    pub fn new(values: DVector<f64>, noise: NoiseCovariance) -> Result<Self, ObservationError> {
        if values.is_empty() {
            return Err(ObservationError::Empty);
        }
        if let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(ObservationError::NonFiniteValue { index, value });
        }
        if noise.dim() != values.len() {
            return Err(ObservationError::DimensionMismatch {
                dim: values.len(),
                rows: noise.dim(),
                cols: noise.dim(),
            });
        }
        Ok(Self { values, noise })
    }

    /// Assembles an observation whose parts are known to be valid (stacked
    /// from valid observations).
    pub(crate) fn from_parts_unchecked(values: DVector<f64>, noise: NoiseCovariance) -> Self {
        Self { values, noise }
    }

    /// The data `y`.
    pub fn values(&self) -> &DVector<f64> {
        &self.values
    }

    /// The noise covariance `Γ`.
    pub fn noise(&self) -> &NoiseCovariance {
        &self.noise
    }

    /// The dimension `d`.
    pub fn dim(&self) -> usize {
        self.values.len()
    }
}
