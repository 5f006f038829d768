//! Quadrature for expectations under a normal distribution (crate-private).
//!
//! Two rules, both exponentially convergent for the integrands met here:
//!
//! - **Gauss–Hermite** (100 nodes, probabilists' weight `φ(z)`), computed once by
//!   Golub–Welsch (eigenvalues of the Jacobi matrix) and polished by Newton's method
//!   on the three-term recurrence, with weights from the Christoffel formula. It is
//!   exact for polynomials of degree ≤ 199 and very accurate for integrands that vary
//!   on a scale of order one in `z`.
//! - **Trapezoid on a truncated line** `|z| ≤ 9.5` with step `h`: for an integrand
//!   analytic in the strip `|Im z| < d` the error is `O(exp(−2πd/h))`. The logistic
//!   `1/(1 + e^{−(μ+σz)})` has poles at distance `π/σ`, which Gauss–Hermite resolves
//!   poorly once `σ` is large; the trapezoid rule with `h = 0.5/σ` keeps the error
//!   near `exp(−35)` whatever `σ`.
//!
//! [`expect_standard_normal`] picks between them from a "sharpness" hint (how fast
//! the integrand varies in `z`); [`logit_normal_moments`] uses it for the moments of
//! the logistic-normal distribution needed by two-sided constrained priors.

use std::sync::OnceLock;

use nalgebra::DMatrix;

/// Number of Gauss–Hermite nodes of the default rule.
pub(crate) const GAUSS_HERMITE_NODES: usize = 100;

/// Integrands with sharpness at most this use Gauss–Hermite, sharper ones the trapezoid rule.
const GAUSS_HERMITE_MAX_SHARPNESS: f64 = 1.0;

/// Half-width of the truncated line for the trapezoid rule: `P(|Z| > 9.5) ≈ 2e-21`.
const TRAPEZOID_Z_MAX: f64 = 9.5;

/// Upper limit on the number of trapezoid nodes (reached only for sharpness above ~1900).
const TRAPEZOID_MAX_NODES: f64 = 80_001.0;

/// Below this unconstrained std the logistic-normal moments use their Taylor series.
const SERIES_SIGMA: f64 = 1e-6;

/// `1/√(2π)`.
const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// A Gauss–Hermite rule for the standard normal weight: `Σ wᵢ f(zᵢ) ≈ E[f(Z)]`, `Z ~ N(0, 1)`.
#[derive(Clone, Debug)]
pub(crate) struct GaussHermite {
    /// Nodes, ascending and symmetric about zero.
    pub(crate) nodes: Vec<f64>,
    /// Weights, positive, summing to one.
    pub(crate) weights: Vec<f64>,
}

impl GaussHermite {
    /// The `n`-point rule (exact for polynomials of degree ≤ 2n − 1).
    pub(crate) fn new(n: usize) -> Self {
        if n == 0 {
            return Self {
                nodes: Vec::new(),
                weights: Vec::new(),
            };
        }
        // Golub–Welsch: the Jacobi matrix of the orthonormal probabilists' Hermite
        // polynomials has a zero diagonal and off-diagonal entries √k.
        let mut jacobi = DMatrix::<f64>::zeros(n, n);
        for k in 1..n {
            let b = (k as f64).sqrt();
            jacobi[(k - 1, k)] = b;
            jacobi[(k, k - 1)] = b;
        }
        let mut nodes: Vec<f64> = jacobi.symmetric_eigenvalues().iter().copied().collect();
        nodes.sort_by(f64::total_cmp);

        // Newton polish on p_n (p_n' = √n p_{n−1}), then Christoffel weights
        // w = 1 / Σ_{k<n} p_k(z)² = 1 / (n p_{n−1}(z)²).
        let nf = n as f64;
        let mut weights = Vec::with_capacity(n);
        for z in &mut nodes {
            for _ in 0..3 {
                let (p, p_prev) = orthonormal_hermite(n, *z);
                let dp = nf.sqrt() * p_prev;
                if dp != 0.0 && dp.is_finite() {
                    *z -= p / dp;
                }
            }
            let (_, p_prev) = orthonormal_hermite(n, *z);
            weights.push(1.0 / (nf * p_prev * p_prev));
        }

        // Enforce the exact symmetry of the rule.
        for i in 0..n / 2 {
            let j = n - 1 - i;
            let z = 0.5 * (nodes[j] - nodes[i]);
            let w = 0.5 * (weights[i] + weights[j]);
            nodes[i] = -z;
            nodes[j] = z;
            weights[i] = w;
            weights[j] = w;
        }
        if n % 2 == 1 {
            nodes[n / 2] = 0.0;
        }
        let total: f64 = weights.iter().sum();
        for w in &mut weights {
            *w /= total;
        }
        Self { nodes, weights }
    }

    /// The shared default rule with [`GAUSS_HERMITE_NODES`] nodes.
    pub(crate) fn default_rule() -> &'static Self {
        static RULE: OnceLock<GaussHermite> = OnceLock::new();
        RULE.get_or_init(|| Self::new(GAUSS_HERMITE_NODES))
    }
}

/// `(p_n(z), p_{n−1}(z))` of the orthonormal probabilists' Hermite polynomials
/// (`p_{k+1} = (z p_k − √k p_{k−1}) / √(k+1)`), for `n ≥ 1`.
fn orthonormal_hermite(n: usize, z: f64) -> (f64, f64) {
    let mut prev = 0.0;
    let mut cur = 1.0;
    for k in 0..n {
        let kf = k as f64;
        let next = (z * cur - kf.sqrt() * prev) / (kf + 1.0).sqrt();
        prev = cur;
        cur = next;
    }
    (cur, prev)
}

/// `E[f(X)]` for `X ~ N(mean, std²)`, by the 100-point Gauss–Hermite rule.
///
/// Accurate to near machine precision for integrands that are smooth on the scale
/// of `std` (polynomials, `exp(a x)` with `|a| std ≲ 3`, ...). For integrands with
/// sharp features use [`expect_standard_normal`] with a sharpness hint.
#[allow(dead_code)] // general-purpose helper; the prior code needs the multi-output form below
pub(crate) fn expect_normal(mean: f64, std: f64, mut f: impl FnMut(f64) -> f64) -> f64 {
    let [e] = expect_standard_normal(0.0, |z| [f(mean + std * z)]);
    e
}

/// `E[f(Z)]` for `Z ~ N(0, 1)` and `K` integrands at once (one pass over the nodes).
///
/// `sharpness` says how fast the integrand varies in `z`: features of width about
/// `1/sharpness` (for `g(μ + σz)` with `g` varying on a unit scale, pass `σ`). Up to
/// sharpness 1 the 100-point Gauss–Hermite rule is used, above it the trapezoid rule
/// with step `0.5/sharpness` on `|z| ≤ 9.5`.
pub(crate) fn expect_standard_normal<const K: usize>(
    sharpness: f64,
    mut f: impl FnMut(f64) -> [f64; K],
) -> [f64; K] {
    let mut acc = [0.0; K];
    let mut add = |w: f64, values: [f64; K]| {
        for (a, v) in acc.iter_mut().zip(values) {
            *a += w * v;
        }
    };
    if sharpness > GAUSS_HERMITE_MAX_SHARPNESS {
        let min_h = 2.0 * TRAPEZOID_Z_MAX / TRAPEZOID_MAX_NODES;
        let h = (0.5 / sharpness).max(min_h);
        let half = (TRAPEZOID_Z_MAX / h).ceil() as i64;
        for i in -half..=half {
            let z = i as f64 * h;
            add(h * FRAC_1_SQRT_2PI * (-0.5 * z * z).exp(), f(z));
        }
    } else {
        let rule = GaussHermite::default_rule();
        for (&z, &w) in rule.nodes.iter().zip(&rule.weights) {
            add(w, f(z));
        }
    }
    acc
}

/// The logistic function `1/(1 + e^{−t})` and its derivative, without overflow.
pub(crate) fn logistic_and_derivative(t: f64) -> (f64, f64) {
    let e = (-t.abs()).exp();
    let d = e / ((1.0 + e) * (1.0 + e));
    if t >= 0.0 {
        (1.0 / (1.0 + e), d)
    } else {
        (e / (1.0 + e), d)
    }
}

/// Mean and variance of `L(μ + σZ)`, `L` the logistic function and `Z ~ N(0, 1)`
/// (the logistic-normal distribution on (0, 1)), with their derivatives in `μ` and `σ`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct LogitNormalMoments {
    /// `E[L]`.
    pub(crate) mean: f64,
    /// `1 − E[L]`, computed without cancellation.
    pub(crate) mean_complement: f64,
    /// `Var[L]`.
    pub(crate) var: f64,
    /// `∂E[L]/∂μ = E[L']`.
    pub(crate) dmean_dmu: f64,
    /// `∂E[L]/∂σ = E[Z L']`.
    pub(crate) dmean_dsigma: f64,
    /// `∂Var[L]/∂μ = 2 E[(L − E L) L']`.
    pub(crate) dvar_dmu: f64,
    /// `∂Var[L]/∂σ = 2 E[(L − E L) Z L']`.
    pub(crate) dvar_dsigma: f64,
}

/// Moments of the logistic-normal distribution with parameters `μ`, `σ > 0`.
///
/// Uses a Taylor series for `σ < 1e-6` (relative error `O(σ²)`), otherwise
/// [`expect_standard_normal`] with sharpness `σ`. The variance is accumulated about
/// `L(μ)` so that it keeps full relative accuracy for small `σ`, and for `μ > 0` the
/// moments are computed for `−μ` and mirrored (`L(−t) = 1 − L(t)`), so that the values
/// summed are the small ones and keep their relative precision.
pub(crate) fn logit_normal_moments(mu: f64, sigma: f64) -> LogitNormalMoments {
    if mu > 0.0 {
        let m = lower_logit_normal_moments(-mu, sigma);
        return LogitNormalMoments {
            mean: m.mean_complement,
            mean_complement: m.mean,
            var: m.var,
            dmean_dmu: m.dmean_dmu,
            dmean_dsigma: -m.dmean_dsigma,
            dvar_dmu: -m.dvar_dmu,
            dvar_dsigma: m.dvar_dsigma,
        };
    }
    lower_logit_normal_moments(mu, sigma)
}

/// [`logit_normal_moments`] without the mirroring (accurate for `μ ≤ 0`).
fn lower_logit_normal_moments(mu: f64, sigma: f64) -> LogitNormalMoments {
    let (c, d1) = logistic_and_derivative(mu);
    let c_complement = logistic_and_derivative(-mu).0;
    if sigma < SERIES_SIGMA {
        // L' = L(1−L), L'' = L'(1−2L), L''' = L'(1 − 6L + 6L²)
        let d2 = d1 * (1.0 - 2.0 * c);
        let d3 = d1 * (1.0 - 6.0 * c + 6.0 * c * c);
        let s2 = sigma * sigma;
        return LogitNormalMoments {
            mean: c + 0.5 * d2 * s2,
            mean_complement: c_complement - 0.5 * d2 * s2,
            var: d1 * d1 * s2,
            dmean_dmu: d1 + 0.5 * d3 * s2,
            dmean_dsigma: d2 * sigma,
            dvar_dmu: 2.0 * d1 * d2 * s2,
            dvar_dsigma: 2.0 * d1 * d1 * sigma,
        };
    }
    let [e_dc, e_d, e_zd, e_dc2, e_dcd, e_dczd] = expect_standard_normal(sigma, |z| {
        let (l, dl) = logistic_and_derivative(mu + sigma * z);
        let dc = l - c;
        [dc, dl, z * dl, dc * dc, dc * dl, dc * z * dl]
    });
    LogitNormalMoments {
        mean: c + e_dc,
        mean_complement: c_complement - e_dc,
        var: (e_dc2 - e_dc * e_dc).max(0.0),
        dmean_dmu: e_d,
        dmean_dsigma: e_zd,
        dvar_dmu: 2.0 * (e_dcd - e_dc * e_d),
        dvar_dsigma: 2.0 * (e_dczd - e_dc * e_zd),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn double_factorial(n: i64) -> f64 {
        (1..=n).rev().step_by(2).map(|k| k as f64).product()
    }

    #[test]
    fn gauss_hermite_rule_is_symmetric_and_normalised() {
        for n in [1, 2, 5, 20, 100] {
            let rule = GaussHermite::new(n);
            assert_eq!(rule.nodes.len(), n);
            let total: f64 = rule.weights.iter().sum();
            assert!((total - 1.0).abs() < 1e-14);
            assert!(rule.weights.iter().all(|&w| w > 0.0));
            assert!(rule.nodes.windows(2).all(|p| p[0] < p[1]));
            for i in 0..n {
                assert_eq!(rule.nodes[i], -rule.nodes[n - 1 - i]);
            }
        }
        // Two-point rule: nodes ±1, weights ½.
        let two = GaussHermite::new(2);
        assert!((two.nodes[1] - 1.0).abs() < 1e-15);
        assert!((two.weights[0] - 0.5).abs() < 1e-15);
    }

    #[test]
    fn gauss_hermite_integrates_normal_moments_exactly() {
        // E[Z^{2k}] = (2k−1)!!, exact up to degree 2n − 1.
        let rule = GaussHermite::new(20);
        for k in 0..20 {
            let deg = 2 * k;
            let got: f64 = rule
                .nodes
                .iter()
                .zip(&rule.weights)
                .map(|(&z, &w)| w * z.powi(deg))
                .sum();
            let want = double_factorial(deg as i64 - 1);
            assert!(
                ((got - want) / want).abs() < 1e-12,
                "degree {deg}: {got} vs {want}"
            );
            let odd: f64 = rule
                .nodes
                .iter()
                .zip(&rule.weights)
                .map(|(&z, &w)| w * z.powi(deg + 1))
                .sum();
            assert!(odd.abs() < 1e-12 * want.max(1.0));
        }
    }

    #[test]
    fn expect_normal_matches_lognormal_moments() {
        for &(mu, sigma) in &[(0.0, 0.1), (1.0, 0.5), (-2.0, 1.0), (0.3, 2.0)] {
            let m1 = expect_normal(mu, sigma, f64::exp);
            let m2 = expect_normal(mu, sigma, |x| (2.0 * x).exp());
            let want1 = (mu + 0.5 * sigma * sigma).exp();
            let want2 = (2.0 * mu + 2.0 * sigma * sigma).exp();
            assert!(((m1 - want1) / want1).abs() < 1e-13, "{mu} {sigma}");
            assert!(((m2 - want2) / want2).abs() < 1e-12, "{mu} {sigma}");
        }
        let var = expect_normal(3.0, 0.7, |x| (x - 3.0) * (x - 3.0));
        assert!((var - 0.49).abs() < 1e-14);
    }

    #[test]
    fn trapezoid_rule_matches_lognormal_moments() {
        // Forcing the trapezoid branch with a large sharpness hint. (The rule is meant
        // for bounded integrands: e^{σz} φ(z) peaks at z = σ, so keep σ small enough
        // that the truncation at |z| = 9.5 costs nothing.)
        for &(mu, sigma) in &[(0.0, 0.5), (1.0, 1.0), (-1.0, 1.5)] {
            let [m1] = expect_standard_normal(5.0, |z| [(mu + sigma * z).exp()]);
            let want1 = (mu + 0.5 * sigma * sigma).exp();
            assert!(((m1 - want1) / want1).abs() < 1e-13, "{mu} {sigma}");
        }
    }

    #[test]
    fn logistic_is_stable_in_the_tails() {
        let (l, d) = logistic_and_derivative(800.0);
        assert_eq!(l, 1.0);
        assert_eq!(d, 0.0);
        let (l, d) = logistic_and_derivative(-800.0);
        assert_eq!(l, 0.0);
        assert_eq!(d, 0.0);
        let (l, d) = logistic_and_derivative(-30.0);
        assert!((l / (-30f64).exp() - 1.0).abs() < 1e-12);
        assert!((d / l - 1.0).abs() < 1e-12);
        let (l, d) = logistic_and_derivative(0.0);
        assert_eq!((l, d), (0.5, 0.25));
    }

    /// Reference moments by a very fine trapezoid rule, independent of the switch.
    fn reference_moments(mu: f64, sigma: f64) -> (f64, f64) {
        let h = 0.002 / sigma.max(1.0);
        let half = (10.0 / h).ceil() as i64;
        let (mut m, mut m2) = (0.0, 0.0);
        for i in -half..=half {
            let z = i as f64 * h;
            let w = h * FRAC_1_SQRT_2PI * (-0.5 * z * z).exp();
            let (l, _) = logistic_and_derivative(mu + sigma * z);
            m += w * l;
            m2 += w * l * l;
        }
        (m, m2 - m * m)
    }

    #[test]
    fn logit_normal_moments_are_accurate_on_both_rules() {
        for &mu in &[-6.0, -1.5, 0.0, 0.7, 3.0] {
            for &sigma in &[1e-3, 0.3, 0.99, 1.0, 1.01, 2.0, 5.0, 20.0, 80.0] {
                let got = logit_normal_moments(mu, sigma);
                let (m, v) = reference_moments(mu, sigma);
                // (the reference itself sums 10⁶ terms: ~1e-13 of rounding)
                assert!((got.mean - m).abs() < 1e-12, "mean at {mu} {sigma}");
                assert!(
                    (got.var - v).abs() < 1e-12 + 1e-10 * v,
                    "var at {mu} {sigma}: {} vs {v}",
                    got.var
                );
            }
        }
    }

    #[test]
    fn logit_normal_series_joins_the_quadrature() {
        // Just below the switch (series) and just above (quadrature): sd/σ and
        // (∂var/∂σ)/σ are continuous across it.
        let (sa, sb) = (0.999_999e-6, 1.000_001e-6);
        for &mu in &[-3.0, 0.0, 2.0] {
            let a = logit_normal_moments(mu, sa);
            let b = logit_normal_moments(mu, sb);
            assert!((a.mean - b.mean).abs() < 1e-15);
            assert!((a.var.sqrt() / sa / (b.var.sqrt() / sb) - 1.0).abs() < 1e-8);
            assert!((a.dvar_dsigma / sa / (b.dvar_dsigma / sb) - 1.0).abs() < 1e-6);
            assert!((a.dmean_dmu / b.dmean_dmu - 1.0).abs() < 1e-9);
        }
    }

    #[test]
    fn logit_normal_moments_are_mirror_symmetric() {
        for &(mu, sigma) in &[(0.3, 1e-7), (2.0, 0.5), (8.0, 3.0), (1.0, 30.0)] {
            let a = logit_normal_moments(mu, sigma);
            let b = logit_normal_moments(-mu, sigma);
            assert_eq!(a.mean, b.mean_complement);
            assert_eq!(a.mean_complement, b.mean);
            assert_eq!(a.var, b.var);
            assert_eq!(a.dmean_dmu, b.dmean_dmu);
            assert_eq!(a.dmean_dsigma, -b.dmean_dsigma);
            assert_eq!(a.dvar_dmu, -b.dvar_dmu);
            assert!((a.mean + a.mean_complement - 1.0).abs() < 1e-15);
        }
        // Near the upper end a small variance keeps its relative precision.
        let sigma = 1e-4;
        let m = logit_normal_moments(9.0, sigma);
        let d1 = logistic_and_derivative(9.0).1;
        assert!((m.var.sqrt() / (d1 * sigma) - 1.0).abs() < 1e-7);
    }

    #[test]
    fn logit_normal_derivatives_match_finite_differences() {
        for &(mu, sigma) in &[
            (-1.0, 0.5),
            (0.5, 1.5),
            (2.0, 4.0),
            (-0.3, 0.01),
            (0.3, 0.01),
        ] {
            let m = logit_normal_moments(mu, sigma);
            let h = 1e-5 * sigma.max(0.1);
            let mp = logit_normal_moments(mu + h, sigma);
            let mm = logit_normal_moments(mu - h, sigma);
            let sp = logit_normal_moments(mu, sigma + h);
            let sm = logit_normal_moments(mu, sigma - h);
            let close = |a: f64, b: f64| (a - b).abs() <= 1e-6 * (a.abs() + b.abs()) + 1e-12;
            assert!(close(m.dmean_dmu, (mp.mean - mm.mean) / (2.0 * h)));
            assert!(close(m.dmean_dsigma, (sp.mean - sm.mean) / (2.0 * h)));
            assert!(close(m.dvar_dmu, (mp.var - mm.var) / (2.0 * h)));
            assert!(close(m.dvar_dsigma, (sp.var - sm.var) / (2.0 * h)));
        }
    }
}
