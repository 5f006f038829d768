//! Dense kernels behind the nalgebra types, computed by `faer` (pure Rust,
//! SIMD, on rayon's threads): matrix products, the symmetric Gram matrix,
//! and the eigenvalues of a symmetric matrix together with the projections
//! of one vector on its eigenvectors (all the CRPS needs), without forming
//! the eigenvectors.
//!
//! nalgebra's `DMatrix` is column-major and contiguous, so faer reads and
//! writes it in place (safe slice views, no copies). faer's parallel
//! kernels use the current rayon pool: with one thread they run
//! sequentially.

use faer::dyn_stack::{MemBuffer, MemStack, StackReq};
use faer::linalg::evd::tridiag;
use faer::linalg::householder;
use faer::linalg::matmul::matmul;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::linalg::qr::no_pivoting::factor::recommended_block_size;
use faer::{Accum, Conj, Mat, MatMut, MatRef, Par};
use nalgebra::{DMatrix, DVector};

/// faer's parallelism: every thread of the current rayon pool, or none.
fn par() -> Par {
    if rayon::current_num_threads() > 1 {
        Par::rayon(0)
    } else {
        Par::Seq
    }
}

/// A faer view of `m`.
fn view(m: &DMatrix<f64>) -> MatRef<'_, f64> {
    MatRef::from_column_major_slice(m.as_slice(), m.nrows(), m.ncols())
}

/// A mutable faer view of `m`.
fn view_mut(m: &mut DMatrix<f64>) -> MatMut<'_, f64> {
    let (r, c) = m.shape();
    MatMut::from_column_major_slice_mut(m.as_mut_slice(), r, c)
}

/// `a b` for faer views; the zero matrix of the product's shape when the
/// inner sizes differ.
fn product(a: MatRef<'_, f64>, b: MatRef<'_, f64>) -> DMatrix<f64> {
    let mut out = DMatrix::zeros(a.nrows(), b.ncols());
    if a.ncols() == b.nrows() {
        matmul(view_mut(&mut out), Accum::Replace, a, b, 1.0, par());
    }
    out
}

/// `a b` (`a`: `m × k`, `b`: `k × n`).
pub(crate) fn mul(a: &DMatrix<f64>, b: &DMatrix<f64>) -> DMatrix<f64> {
    product(view(a), view(b))
}

/// `a bᵀ` (`a`: `m × k`, `b`: `n × k`).
pub(crate) fn mul_transpose(a: &DMatrix<f64>, b: &DMatrix<f64>) -> DMatrix<f64> {
    product(view(a), view(b).transpose())
}

/// `aᵀ b` (`a`: `k × m`, `b`: `k × n`).
pub(crate) fn transpose_mul(a: &DMatrix<f64>, b: &DMatrix<f64>) -> DMatrix<f64> {
    product(view(a).transpose(), view(b))
}

/// Solves `A X = B` for a symmetric positive (semi)definite `A` (its lower
/// triangle is read): faer's blocked, parallel Cholesky first, then (as
/// [`crate::linalg::solve_spd`]) nalgebra's LU with partial pivoting if that
/// fails. `None` if `A` is singular or the shapes do not match.
pub(crate) fn solve_spd(a: DMatrix<f64>, b: &DMatrix<f64>) -> Option<DMatrix<f64>> {
    if a.nrows() != a.ncols() || a.nrows() != b.nrows() {
        return None;
    }
    match faer::linalg::solvers::Llt::new(view(&a), faer::Side::Lower) {
        Ok(llt) => {
            let mut x = b.clone();
            faer::linalg::solvers::Solve::solve_in_place(&llt, view_mut(&mut x));
            Some(x)
        }
        Err(_) => a.lu().solve(b),
    }
}

/// `acc += aᵀ b` (`a`: `k × m`, `b`: `k × n`, `acc`: `m × n`), on the
/// calling thread (for callers that are themselves parallel).
pub(crate) fn add_transpose_mul(acc: &mut DMatrix<f64>, a: &DMatrix<f64>, b: &DMatrix<f64>) {
    if a.nrows() != b.nrows() || acc.shape() != (a.ncols(), b.ncols()) {
        return;
    }
    matmul(
        view_mut(acc),
        Accum::Add,
        view(a).transpose(),
        view(b),
        1.0,
        Par::Seq,
    );
}

/// The lower triangle (diagonal included) of `acc += aᵀ b`, for a symmetric
/// `aᵀ b` (`a`, `b`: `k × n`, `acc`: `n × n`): half the work of
/// [`add_transpose_mul`]; the strict upper triangle of `acc` is not touched.
/// On the calling thread.
pub(crate) fn add_transpose_mul_lower(acc: &mut DMatrix<f64>, a: &DMatrix<f64>, b: &DMatrix<f64>) {
    let n = a.ncols();
    if a.shape() != b.shape() || acc.shape() != (n, n) {
        return;
    }
    triangular::matmul(
        view_mut(acc),
        BlockStructure::TriangularLower,
        Accum::Add,
        view(a).transpose(),
        BlockStructure::Rectangular,
        view(b),
        BlockStructure::Rectangular,
        1.0,
        Par::Seq,
    );
}

/// Copies the strict lower triangle of the square `m` onto its upper one.
pub(crate) fn mirror_lower(m: &mut DMatrix<f64>) {
    let n = m.nrows().min(m.ncols());
    for j in 1..n {
        for i in 0..j {
            m[(i, j)] = m[(j, i)];
        }
    }
}

/// The eigenvalues `λ` of the symmetric matrix `m` (its lower triangle is
/// read) and the projections `Uᵀ v` of `v` on the matching eigenvectors
/// (`m = U diag(λ) Uᵀ`), in matching order (not sorted).
///
/// Householder tridiagonalisation `m = Q T Qᵀ` (faer: blocked and parallel),
/// `Qᵀ v`, then the implicit QL algorithm on `T` with each plane rotation
/// applied to the vector only: `O(n³)` for the tridiagonalisation, `O(n²)`
/// after it, and no eigenvector matrix. Falls back to nalgebra's full
/// eigendecomposition if the QL iteration does not converge (`None` only if
/// that fails too, or on a shape mismatch).
pub(crate) fn sym_eigen_projections(
    m: DMatrix<f64>,
    v: &DVector<f64>,
) -> Option<(Vec<f64>, Vec<f64>)> {
    let n = m.nrows();
    if m.ncols() != n || v.len() != n {
        return None;
    }
    if n == 0 {
        return Some((Vec::new(), Vec::new()));
    }
    match tridiagonal_projections(&m, v) {
        Some(res) => Some(res),
        None => reference_eigen_projections(m, v),
    }
}

/// [`sym_eigen_projections`] through nalgebra's full eigendecomposition (the
/// reference: eigenvectors formed, then `Uᵀ v`).
pub(crate) fn reference_eigen_projections(
    m: DMatrix<f64>,
    v: &DVector<f64>,
) -> Option<(Vec<f64>, Vec<f64>)> {
    let eig = nalgebra::SymmetricEigen::try_new(m, f64::EPSILON, 0)?;
    let proj = eig.eigenvectors.transpose() * v;
    Some((
        eig.eigenvalues.as_slice().to_vec(),
        proj.as_slice().to_vec(),
    ))
}

/// The tridiagonalisation and QL steps of [`sym_eigen_projections`]; `None`
/// if the QL iteration does not converge.
fn tridiagonal_projections(m: &DMatrix<f64>, v: &DVector<f64>) -> Option<(Vec<f64>, Vec<f64>)> {
    let n = m.nrows();
    let par = par();
    let mut trid = Mat::<f64>::zeros(n, n);
    trid.copy_from_triangular_lower(view(m));
    let bs = recommended_block_size::<f64>(n, n);
    let mut hh = Mat::<f64>::zeros(bs, n - 1);
    let mut w: Vec<f64> = v.as_slice().to_vec();
    {
        let req = StackReq::any_of(&[
            tridiag::tridiag_in_place_scratch::<f64>(n, par, Default::default()),
            householder::apply_block_householder_sequence_transpose_on_the_left_in_place_scratch::<
                f64,
            >(n.saturating_sub(1), bs, 1),
        ]);
        let mut buf = MemBuffer::new(req);
        let stack = MemStack::new(&mut buf);
        tridiag::tridiag_in_place(trid.as_mut(), hh.as_mut(), par, stack, Default::default());
        if n > 1 {
            // m = Q T Qᵀ with Q = diag(1, H): Qᵀ v = (v₀, Hᵀ v₁..).
            let tail = MatMut::from_column_major_slice_mut(&mut w[1..], n - 1, 1);
            householder::apply_block_householder_sequence_transpose_on_the_left_in_place_with_conj(
                trid.as_ref().submatrix(1, 0, n - 1, n - 1),
                hh.as_ref(),
                Conj::No,
                tail,
                par,
                stack,
            );
        }
    }
    let mut diag: Vec<f64> = (0..n).map(|i| trid[(i, i)]).collect();
    let mut sub: Vec<f64> = (0..n)
        .map(|i| if i + 1 < n { trid[(i + 1, i)] } else { 0.0 })
        .collect();
    ql_implicit(&mut diag, &mut sub, &mut w)?;
    Some((diag, w))
}

/// The implicit QL algorithm with Wilkinson shifts on the symmetric
/// tridiagonal matrix with diagonal `d` and subdiagonal `e` (`e[i] =
/// T[i+1, i]`, `e[n−1]` ignored), as in Numerical Recipes' `tqli`. On return
/// `d` holds the eigenvalues; each plane rotation `Z ← Z G` that would
/// accumulate the eigenvectors `Z` is applied to `w` instead, so `w` becomes
/// `Zᵀ w`. `None` if an eigenvalue takes more than 60 iterations.
/// Deflation: `e[m]` counts as zero below `ε (|d[m]| + |d[m+1]|)` or below
/// `ε ‖T‖`.
fn ql_implicit(d: &mut [f64], e: &mut [f64], w: &mut [f64]) -> Option<()> {
    let n = d.len();
    if n < 2 {
        return Some(());
    }
    e[n - 1] = 0.0;
    // An off-diagonal entry is negligible against its neighbours or against
    // the norm of T: the eigenvalues at rounding level of a low-rank matrix
    // would never meet the relative test alone (a perturbation of ε‖T‖ is
    // within the backward error of the tridiagonalisation anyway).
    let tnorm = d
        .iter()
        .zip(e.iter())
        .fold(0.0f64, |m, (a, b)| m.max(a.abs() + 2.0 * b.abs()));
    let tiny = f64::EPSILON * tnorm;
    for l in 0..n {
        let mut iter = 0;
        loop {
            let mut m = l;
            while m + 1 < n {
                let dd = d[m].abs() + d[m + 1].abs();
                if e[m].abs() <= f64::EPSILON * dd || e[m].abs() <= tiny {
                    break;
                }
                m += 1;
            }
            if m == l {
                break;
            }
            iter += 1;
            if iter > 60 {
                return None;
            }
            let mut g = (d[l + 1] - d[l]) / (2.0 * e[l]);
            let mut r = g.hypot(1.0);
            g = d[m] - d[l] + e[l] / (g + r.copysign(g));
            let (mut s, mut c, mut p) = (1.0f64, 1.0f64, 0.0f64);
            let mut underflow = false;
            for i in (l..m).rev() {
                let f = s * e[i];
                let b = c * e[i];
                r = f.hypot(g);
                e[i + 1] = r;
                if r == 0.0 {
                    d[i + 1] -= p;
                    e[m] = 0.0;
                    underflow = true;
                    break;
                }
                s = f / r;
                c = g / r;
                g = d[i + 1] - p;
                r = (d[i] - g) * s + 2.0 * c * b;
                p = s * r;
                d[i + 1] = g + p;
                g = c * r - b;
                let (wi, wi1) = (w[i], w[i + 1]);
                w[i + 1] = s * wi + c * wi1;
                w[i] = c * wi - s * wi1;
            }
            if underflow {
                continue;
            }
            d[l] -= p;
            e[l] = g;
            e[m] = 0.0;
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn random(r: usize, c: usize, seed: u64) -> DMatrix<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        DMatrix::from_fn(r, c, |_, _| rng.random_range(-1.0..1.0))
    }

    /// Pairs sorted by eigenvalue, projections by absolute value (an
    /// eigenvector's sign is arbitrary).
    fn sorted(res: (Vec<f64>, Vec<f64>)) -> Vec<(f64, f64)> {
        let mut v: Vec<(f64, f64)> = res
            .0
            .into_iter()
            .zip(res.1.into_iter().map(f64::abs))
            .collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v
    }

    #[test]
    fn eigen_projections_match_the_full_eigendecomposition() {
        for (n, seed) in [(1usize, 1u64), (2, 2), (7, 3), (40, 4), (150, 5)] {
            let a = random(n, n + 3, seed);
            let m = &a * a.transpose();
            let v = DVector::from_column_slice(random(n, 1, seed + 100).as_slice());
            let fast = sorted(sym_eigen_projections(m.clone(), &v).unwrap_or_default());
            let slow = sorted(reference_eigen_projections(m.clone(), &v).unwrap_or_default());
            assert_eq!(fast.len(), n);
            assert_eq!(slow.len(), n);
            let scale = m.norm();
            for (f, s) in fast.iter().zip(&slow) {
                assert!((f.0 - s.0).abs() <= 1e-12 * scale, "{n}: {f:?} vs {s:?}");
                assert!((f.1 - s.1).abs() <= 1e-9 * v.norm(), "{n}: {f:?} vs {s:?}");
            }
            // Invariants: the eigenvalues sum to the trace, and the rotation
            // keeps the norm of v.
            let tr: f64 = fast.iter().map(|x| x.0).sum();
            assert!((tr - m.trace()).abs() <= 1e-11 * scale.max(1.0));
            let norm: f64 = fast.iter().map(|x| x.1 * x.1).sum::<f64>().sqrt();
            assert!((norm - v.norm()).abs() <= 1e-12 * v.norm().max(1.0));
        }
    }

    #[test]
    fn the_ql_iteration_converges_on_low_rank_matrices() {
        // Rank 40 in 300 dimensions (outputs driven by few parameters): most
        // eigenvalues are rounding noise, and must not need the fallback.
        let a = random(300, 40, 21);
        let m = &a * a.transpose();
        let v = DVector::from_column_slice(random(300, 1, 22).as_slice());
        assert!(tridiagonal_projections(&m, &v).is_some());
    }

    #[test]
    fn diagonal_and_rank_deficient_matrices() {
        let m = DMatrix::from_diagonal(&DVector::from_vec(vec![3.0, 1.0, 2.0]));
        let v = DVector::from_vec(vec![1.0, 2.0, 3.0]);
        let res = sorted(sym_eigen_projections(m, &v).unwrap_or_default());
        assert_eq!(res, vec![(1.0, 2.0), (2.0, 3.0), (3.0, 1.0)]);
        // Rank 2 in 30 dimensions.
        let a = random(30, 2, 9);
        let m = &a * a.transpose();
        let v = DVector::from_column_slice(random(30, 1, 10).as_slice());
        let fast = sorted(sym_eigen_projections(m.clone(), &v).unwrap_or_default());
        let slow = sorted(reference_eigen_projections(m, &v).unwrap_or_default());
        for (f, s) in fast.iter().zip(&slow).skip(28) {
            assert!((f.0 - s.0).abs() <= 1e-12 * s.0, "{f:?} vs {s:?}");
            assert!((f.1 - s.1).abs() <= 1e-9, "{f:?} vs {s:?}");
        }
    }

    #[test]
    fn solve_spd_matches_nalgebra() {
        let a = random(60, 80, 11);
        let spd = &a * a.transpose() + DMatrix::identity(60, 60);
        let b = random(60, 7, 12);
        let x = solve_spd(spd.clone(), &b).unwrap_or_default();
        let reference = crate::linalg::solve_spd(spd.clone(), &b).unwrap_or_default();
        assert!((&x - &reference).norm() <= 1e-10 * reference.norm());
        assert!((&spd * &x - &b).norm() <= 1e-10 * b.norm());
        // Indefinite but invertible: the LU fallback.
        let indef = DMatrix::from_row_slice(2, 2, &[0.0, 1.0, 1.0, 0.0]);
        let rhs = DMatrix::from_row_slice(2, 1, &[2.0, 3.0]);
        let x = solve_spd(indef, &rhs).unwrap_or_default();
        assert_eq!(x, DMatrix::from_row_slice(2, 1, &[3.0, 2.0]));
        // Singular: None.
        assert!(solve_spd(DMatrix::zeros(3, 3), &DMatrix::zeros(3, 1)).is_none());
    }

    #[test]
    fn products_match_nalgebra() {
        let a = random(37, 11, 1);
        let b = random(29, 11, 2);
        let c = random(37, 5, 3);
        assert!((mul_transpose(&a, &b) - &a * b.transpose()).norm() <= 1e-12);
        assert!((transpose_mul(&a, &c) - a.transpose() * &c).norm() <= 1e-12);
        let mut acc = DMatrix::from_element(11, 5, 1.0);
        add_transpose_mul(&mut acc, &a, &c);
        let expected = DMatrix::from_element(11, 5, 1.0) + a.transpose() * &c;
        assert!((&acc - expected).norm() <= 1e-12);
        let b2 = random(37, 11, 4);
        let mut sym = DMatrix::from_element(11, 11, 2.0);
        add_transpose_mul_lower(&mut sym, &a, &b2);
        let full = DMatrix::from_element(11, 11, 2.0) + a.transpose() * &b2;
        for j in 0..11 {
            for i in 0..11 {
                let expected = if i >= j { full[(i, j)] } else { 2.0 };
                assert!((sym[(i, j)] - expected).abs() <= 1e-12, "({i}, {j})");
            }
        }
        mirror_lower(&mut sym);
        assert_eq!(sym, sym.transpose());
    }
}
