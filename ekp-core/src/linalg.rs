//! Small dense linear-algebra helpers shared by the processes.

use nalgebra::{DMatrix, DVector, SymmetricEigen};
use rand::Rng;
use rand_distr::StandardNormal;

/// Mean of the columns of `m` (a `rows`-vector).
pub fn column_mean(m: &DMatrix<f64>) -> DVector<f64> {
    let n = m.ncols().max(1) as f64;
    m.column_sum() / n
}

/// `m` with its column mean removed from every column.
pub fn anomalies(m: &DMatrix<f64>) -> (DVector<f64>, DMatrix<f64>) {
    let mean = column_mean(m);
    let mut a = m.clone();
    for mut col in a.column_iter_mut() {
        col -= &mean;
    }
    (mean, a)
}

/// The columns `idx` of `m`, in that order.
pub fn select_columns(m: &DMatrix<f64>, idx: &[usize]) -> DMatrix<f64> {
    DMatrix::from_fn(m.nrows(), idx.len(), |i, j| m[(i, idx[j])])
}

/// Sample covariance of the columns, normalised by `1/(n − 1)`.
pub fn sample_covariance(m: &DMatrix<f64>) -> DMatrix<f64> {
    let (_, a) = anomalies(m);
    let denom = (m.ncols().max(2) - 1) as f64;
    (&a * a.transpose()) / denom
}

/// Solves `A X = B` for a symmetric positive (semi)definite `A`: Cholesky first,
/// LU with partial pivoting if that fails. `None` if `A` is singular.
pub fn solve_spd(a: DMatrix<f64>, b: &DMatrix<f64>) -> Option<DMatrix<f64>> {
    if let Some(chol) = a.clone().cholesky() {
        return Some(chol.solve(b));
    }
    a.lu().solve(b)
}

/// The symmetric square root and the inverse of a symmetric positive definite
/// matrix, through its eigendecomposition. `None` if an eigenvalue is not positive.
pub fn sym_inverse_and_sqrt(a: DMatrix<f64>) -> Option<(DMatrix<f64>, DMatrix<f64>)> {
    let eig = SymmetricEigen::new(a);
    if eig.eigenvalues.iter().any(|&l| !(l > 0.0 && l.is_finite())) {
        return None;
    }
    let q = &eig.eigenvectors;
    let inv = q * DMatrix::from_diagonal(&eig.eigenvalues.map(|l| 1.0 / l)) * q.transpose();
    let sqrt_inv =
        q * DMatrix::from_diagonal(&eig.eigenvalues.map(|l| 1.0 / l.sqrt())) * q.transpose();
    Some((inv, sqrt_inv))
}

/// `n` draws from the Gaussian with the columns' mean and sample covariance
/// (EKP.jl's `sample_empirical_gaussian`). A singular covariance is inflated by
/// `λ_max √ε` on the diagonal, as EKP.jl does.
pub fn sample_empirical_gaussian<R: Rng + ?Sized>(
    rng: &mut R,
    u: &DMatrix<f64>,
    n: usize,
) -> DMatrix<f64> {
    let p = u.nrows();
    let mean = column_mean(u);
    let mut cov = sample_covariance(u);
    let l = match cov.clone().cholesky() {
        Some(c) => c.l(),
        None => {
            let lmax = SymmetricEigen::new(cov.clone())
                .eigenvalues
                .iter()
                .fold(0.0f64, |a, &b| a.max(b));
            let infl = (lmax * f64::EPSILON.sqrt()).max(f64::MIN_POSITIVE.sqrt());
            for i in 0..p {
                cov[(i, i)] += infl;
            }
            match cov.clone().cholesky() {
                Some(c) => c.l(),
                // Fall back to the standard deviations alone.
                None => DMatrix::from_diagonal(&cov.diagonal().map(|v| v.max(0.0).sqrt())),
            }
        }
    };
    let mut z = DMatrix::<f64>::zeros(p, n);
    for v in z.iter_mut() {
        *v = rng.sample(StandardNormal);
    }
    let mut out = l * z;
    for mut col in out.column_iter_mut() {
        col += &mean;
    }
    out
}
