//! [`ErrorMetrics`]: how well one evaluated ensemble fits the data (EKP.jl's
//! `compute_error!`), and the CRPS behind one of them.

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use crate::dense;
use crate::linalg::column_mean;
use crate::lowrank::{GramInput, Rows, UnitGram, gram};
use crate::observation::Observation;
use crate::scheduler::member_misfits;

/// Error metrics of one evaluated ensemble (EKP.jl's `compute_error!`), over
/// the successful members.
///
/// `bayes_loss` and `crps` are absent (`None`) in states saved by versions
/// that did not compute them. Differences from EKP.jl: `bayes_loss` takes the
/// parameter mean of the ensemble that produced the outputs (EKP.jl: of the
/// updated ensemble, after the update) and always the process's own prior
/// (EKP.jl's `Inversion()` and `TransformInversion()`, built without a prior,
/// estimate `m₀` and `Σ₀` from the initial ensemble instead; ekp's processes
/// always carry the prior, so they compute what EKP.jl computes when given
/// one, e.g. `Inversion(prior; impose_prior = false)`); `crps` uses the plain
/// sample statistics for every process (EKP.jl weights UKI's sigma points).
/// For UKI/UTKI, as in EKP.jl, the loss is taken at the weighted output mean
/// and `avg_rmse` is `√loss` ([`compute_unscented`](Self::compute_unscented)):
/// the RMSEs of single sigma points mean nothing.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorMetrics {
    /// The data misfit at the ensemble mean: `(1/d) (y − ḡ)ᵀ Γ⁻¹ (y − ḡ)`.
    pub loss: f64,
    /// The mean over members of `√((1/d) (y − g_j)ᵀ Γ⁻¹ (y − g_j))`; for
    /// UKI/UTKI `√loss`, the RMSE at the weighted mean (EKP.jl's
    /// `compute_average_rmse` for its unscented processes).
    pub avg_rmse: f64,
    /// `(1/d) ‖y − ḡ‖²`.
    pub unweighted_loss: f64,
    /// The Bayesian loss at the mean (EKP.jl's `compute_bayes_loss_at_mean`):
    /// `(1/(d p)) [(y − ḡ)ᵀ Γ⁻¹ (y − ḡ) + (ū − m₀)ᵀ Σ₀⁻¹ (ū − m₀)]`, `ū` the
    /// unconstrained parameter mean (UKI: the process's mean) of the members
    /// that were run.
    #[serde(default)]
    pub bayes_loss: Option<f64>,
    /// A Gaussian approximation of the continuous ranked probability score
    /// (EKP.jl's `compute_crps`): with `A = (g − ḡ)/√(n−1) = U S Vᵀ` (rank
    /// `r`), `w = S⁻¹ Uᵀ (y − ḡ)`,
    /// `crps = (1/r) Σ_i s_i [w_i (2Φ(w_i) − 1) + 2φ(w_i) − 1/√π]`.
    #[serde(default)]
    pub crps: Option<f64>,
}

impl ErrorMetrics {
    /// The metrics of the outputs `g` (`d × n`, successful members only).
    pub fn compute(g: &DMatrix<f64>, obs: &Observation) -> Self {
        Self::compute_inner(g, &column_mean(g), obs, true, None, None)
    }

    /// The metrics with the loss taken at the given output mean `ḡ` (UKI's
    /// weighted mean) instead of the plain column mean.
    pub fn compute_with_mean(g: &DMatrix<f64>, gbar: &DVector<f64>, obs: &Observation) -> Self {
        Self::compute_inner(g, gbar, obs, false, None, None)
    }

    /// The metrics of UKI/UTKI's sigma points `g` (`d × n`, successful
    /// points only) with their weighted mean `gbar`: the loss at `gbar`, and
    /// `avg_rmse = √loss` (EKP.jl's `compute_average_rmse` for `Unscented`
    /// and `TransformUnscented`).
    pub fn compute_unscented(g: &DMatrix<f64>, gbar: &DVector<f64>, obs: &Observation) -> Self {
        let mut metrics = Self::compute_with_mean(g, gbar, obs);
        metrics.avg_rmse = metrics.loss.sqrt();
        metrics
    }

    /// The metrics; `plain_mean` when `gbar` is the column mean of `g`, so
    /// the CRPS may stream over row blocks; `misfits` the member misfits `Φ`
    /// when they are known; `unit_gram` the update's own `AᵀA` and
    /// `Aᵀ(y − ḡ)` of `g` when it left them (plain mean, every row, `g`'s
    /// columns), so the CRPS needs no second pass over the outputs.
    pub(super) fn compute_inner(
        g: &DMatrix<f64>,
        gbar: &DVector<f64>,
        obs: &Observation,
        plain_mean: bool,
        misfits: Option<&DVector<f64>>,
        unit_gram: Option<UnitGram>,
    ) -> Self {
        let d = obs.dim() as f64;
        let diff = obs.values() - gbar;
        let diff_m = DMatrix::from_column_slice(diff.len(), 1, diff.as_slice());
        let loss = obs.noise().weighted_norms_sq(&diff_m)[0] / d;
        // Twice the member misfits; column by column for a diagonal Γ.
        let per = match misfits {
            Some(phi) => phi * 2.0,
            None => member_misfits(g, obs) * 2.0,
        };
        let avg_rmse = per.iter().map(|v| (v / d).sqrt()).sum::<f64>() / per.len().max(1) as f64;
        Self {
            loss,
            avg_rmse,
            unweighted_loss: diff.norm_squared() / d,
            bayes_loss: None,
            crps: match unit_gram {
                Some(UnitGram { m, c }) if plain_mean && g.nrows() > g.ncols() => {
                    crps_from_anomaly_gram(m, c, g.nrows(), Eigen::Fast)
                }
                _ => crps_of(g, gbar, obs.values(), plain_mean, Eigen::Fast),
            },
        }
    }

    /// The CRPS of [`compute`](Self::compute) computed as before the fast
    /// eigensolver: nalgebra's products and full symmetric
    /// eigendecomposition (eigenvectors formed). The reference that the
    /// tests compare the fast computation with, and the "before" of the
    /// metrics benchmark; equal to `compute(g, obs).crps` up to rounding.
    pub fn crps_reference(g: &DMatrix<f64>, obs: &Observation) -> Option<f64> {
        crps_of(g, &column_mean(g), obs.values(), true, Eigen::Reference)
    }

    /// These metrics with the Bayesian loss for `d` data values, the
    /// parameter mean `u_mean` and the (diagonal) prior `N(m₀, diag(σ₀²))`.
    pub fn with_prior(
        mut self,
        d: usize,
        u_mean: &DVector<f64>,
        prior_mean: &DVector<f64>,
        prior_var: &DVector<f64>,
    ) -> Self {
        let p = u_mean.len().max(1) as f64;
        // (1/p) (ū − m₀)ᵀ Σ₀⁻¹ (ū − m₀), as EKP.jl's `prior_misfit_at_mean`.
        let prior_misfit: f64 = u_mean
            .iter()
            .zip(prior_mean.iter())
            .zip(prior_var.iter())
            .map(|((u, m), v)| (u - m).powi(2) / v)
            .sum::<f64>()
            / p;
        // `loss` already carries 1/d: (1/p) loss + (1/d) prior misfit.
        self.bayes_loss = Some(self.loss / p + prior_misfit / d.max(1) as f64);
        self
    }
}

/// The CRPS, streaming over row blocks when `gbar` is the plain mean and
/// `d > n`.
fn crps_of(
    g: &DMatrix<f64>,
    gbar: &DVector<f64>,
    y: &DVector<f64>,
    plain_mean: bool,
    eigen: Eigen,
) -> Option<f64> {
    if plain_mean && g.nrows() > g.ncols() {
        crps_streaming(g, y, eigen)
    } else {
        crps(g, gbar, y, eigen)
    }
}

/// How the CRPS's eigenvalues and projections are computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Eigen {
    /// Tridiagonalisation and QL on the projected vector (no eigenvectors).
    Fast,
    /// nalgebra's full eigendecomposition (the previous computation).
    Reference,
}

impl Eigen {
    fn run(self, m: DMatrix<f64>, v: &DVector<f64>) -> Option<(Vec<f64>, Vec<f64>)> {
        match self {
            Eigen::Fast => dense::sym_eigen_projections(m, v),
            Eigen::Reference => dense::reference_eigen_projections(m, v),
        }
    }
}

/// CRPS of the ensemble `g` (`d × n`) with mean `gbar` against `y`, through
/// the smaller of the `d × d` covariance `A Aᵀ` and the `n × n` Gram matrix
/// `Aᵀ A` of the scaled anomalies (so `O(min(d, n)² max(d, n))`); `None` with
/// fewer than 2 members or a collapsed ensemble.
fn crps(g: &DMatrix<f64>, gbar: &DVector<f64>, y: &DVector<f64>, eigen: Eigen) -> Option<f64> {
    let n = g.ncols();
    if n < 2 {
        return None;
    }
    let mut a = g.clone();
    for mut col in a.column_iter_mut() {
        col -= gbar;
    }
    a /= ((n - 1) as f64).sqrt();
    let d = g.nrows();
    let diff = y - gbar;
    // The singular values s and w = S⁻¹ Uᵀ diff, through the smaller of the
    // d × d covariance A Aᵀ and the n × n Gram matrix Aᵀ A.
    if d <= n {
        let aat = match eigen {
            Eigen::Fast => dense::mul_transpose(&a, &a),
            Eigen::Reference => &a * a.transpose(),
        };
        let (sq, ws) = eigen.run(aat, &diff)?;
        crps_sum(&sq, &ws, d, n)
    } else {
        let (ata, atd) = match eigen {
            Eigen::Fast => {
                let diff_m = DMatrix::from_column_slice(d, 1, diff.as_slice());
                let atd = dense::transpose_mul(&a, &diff_m);
                (
                    dense::transpose_mul(&a, &a),
                    DVector::from_column_slice(atd.as_slice()),
                )
            }
            Eigen::Reference => (a.transpose() * &a, a.transpose() * &diff),
        };
        crps_from_gram(ata, atd, d, eigen)
    }
}

/// [`crps`] with the plain column mean, for `d > n`: the Gram matrix `AᵀA`
/// and `Aᵀ (y − ḡ)` are accumulated over row blocks (no copy of `g`).
fn crps_streaming(g: &DMatrix<f64>, y: &DVector<f64>, eigen: Eigen) -> Option<f64> {
    let (d, n) = g.shape();
    if n < 2 {
        return None;
    }
    let cols: Vec<usize> = (0..n).collect();
    let ones = DVector::from_element(d, 1.0);
    let stats = gram(&GramInput {
        g,
        rows: Rows::All(d),
        cols: &cols,
        weights: &ones,
        y,
        perturbation: None,
    });
    crps_from_anomaly_gram(stats.m, stats.c, d, eigen)
}

/// The CRPS from the unscaled `(g − ḡ)ᵀ(g − ḡ)` and `(g − ḡ)ᵀ(y − ḡ)` of
/// `n` members (scaled here by `1/(n−1)` and `1/√(n−1)`), for `d` outputs;
/// `None` with fewer than 2 members.
fn crps_from_anomaly_gram(m: DMatrix<f64>, c: DVector<f64>, d: usize, eigen: Eigen) -> Option<f64> {
    let n = m.nrows();
    if n < 2 {
        return None;
    }
    let s = 1.0 / ((n - 1) as f64).sqrt();
    crps_from_gram(m * (s * s), c * s, d, eigen)
}

/// The CRPS from the Gram matrix `AᵀA` (`n × n`) of the scaled anomalies and
/// `Aᵀ (y − ḡ)`, for `d` outputs.
fn crps_from_gram(ata: DMatrix<f64>, atd: DVector<f64>, d: usize, eigen: Eigen) -> Option<f64> {
    let n = ata.nrows();
    let (sq, vd) = eigen.run(ata, &atd)?;
    // Uᵀ diff = S⁻¹ Vᵀ Aᵀ diff.
    let ws: Vec<f64> = sq
        .iter()
        .zip(vd.iter())
        .map(|(&l, &x)| x / l.max(f64::MIN_POSITIVE).sqrt())
        .collect();
    crps_sum(&sq, &ws, d, n)
}

/// The CRPS sum over the squared singular values `sq` and `w` (see [`crps`]).
fn crps_sum(sq: &[f64], ws: &[f64], d: usize, n: usize) -> Option<f64> {
    let smax = sq.iter().fold(0.0f64, |m, &l| m.max(l)).sqrt();
    if !(smax > 0.0 && smax.is_finite()) {
        return None;
    }
    // Rank tolerance: eigenvalues of a squared matrix carry rounding of
    // order ε λ_max, so singular values below √(max(d, n) ε) s_max are zero.
    let tol = smax * ((d.max(n) as f64) * f64::EPSILON).sqrt();
    let mut total = 0.0;
    let mut rank = 0usize;
    for (&l, &ud) in sq.iter().zip(ws.iter()) {
        let s = l.max(0.0).sqrt();
        if s <= tol {
            continue;
        }
        let w = ud / s;
        let pdf = (-0.5 * w * w).exp() / (2.0 * std::f64::consts::PI).sqrt();
        let cdf = 0.5 * erfc(-w / std::f64::consts::SQRT_2);
        total += s * (w * (2.0 * cdf - 1.0) + 2.0 * pdf - 1.0 / std::f64::consts::PI.sqrt());
        rank += 1;
    }
    (rank > 0).then(|| total / rank as f64)
}

/// The complementary error function (Numerical Recipes' Chebyshev fit,
/// relative error < 1.2e-7: ample for a diagnostic score).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 { r } else { 2.0 - r }
}
