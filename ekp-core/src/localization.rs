//! Localization of the ensemble covariances (EKP.jl's `Localizers.jl`).
//!
//! With few members, the sample covariances `C^{ug}` (parameters × outputs) and
//! `C^{gg}` carry spurious correlations, and the EKI update is confined to the
//! span of the ensemble (rank ≤ N − 1). A localizer modifies the joint
//! covariance of `[u; g]` — EKP.jl's `localize(cov, FT, p, d, N)`, applied after
//! `√ε` has been added to its diagonal — before the update uses its blocks:
//!
//! | localizer | what it does |
//! |---|---|
//! | `none` | nothing (EKP.jl's `NoLocalization`) |
//! | `delta` | `C^{ug} ∘ I` (EKP.jl's `Delta`): parameter `i` only sees output `i` |
//! | `rbf` | `C^{ug}_{ij} · exp(−(i − j)² / (2 l²))` (EKP.jl's `RBF(l)`) |
//! | `bernoulli-dropout` | `C^{ug} ∘ K`, `K` a fresh random 0/1 kernel each update, kept with probability `prob` (EKP.jl's `BernoulliDropout`) |
//! | `sec` | correlations `r ← r |r|^α`, zeroed where `|r|^{1+α} ≤ r₀` (Lee 2021; EKP.jl's `SEC(α, r₀)`) |
//! | `sec-fisher` | correlations shrunk by `Q²/(1 + Q²)`, `Q = r / σ_r`, `σ_r` from the Fisher transform (Flowerdew 2015; EKP.jl's `SECFisher`) |
//! | `sec-nice` | correlations raised to powers chosen by a discrepancy principle (Vishny, Morzfeld et al. 2024; EKP.jl's `SECNice`, the default for EKI) |
//!
//! The kernel localizers (`delta`, `rbf`, `bernoulli-dropout`) act on the
//! `u–g` block only, and `delta` and `rbf` measure distance by index: they
//! assume parameter `i` and output `i` describe the same place (as for
//! `G(θ) = θ`); used on a model without that correspondence they cut the
//! wrong covariances and can make EKI diverge; the correlation-based ones (`sec`, `sec-fisher`,
//! `sec-nice`) act on the `u–g` and `g–g` blocks (and on `u–u`, which the EKI
//! update does not use). Everything here works block by block, so the joint
//! `(p + d)²` matrix is never formed during an update;
//! [`Localizer::localize_joint`] is the EKP.jl-shaped form for tests and users.
//!
//! `bernoulli-dropout` draws from the process's own seeded RNG (never a global
//! one): one uniform `U[0, 1)` per random kernel entry, an entry being kept
//! when `U < prob`, in the order of EKP.jl's `bernoulli_kernel` (the kernel
//! laid out tall — `p × d` if `p ≥ d`, else its transpose `d × p` — rows
//! `i = 2, 3, …`, columns `j = 1 … min(i − 1, cols)`; the leading square block is
//! mirrored, so the kernel's square part is symmetric with a unit diagonal).
//!
//! Localization is an EKI feature: EKP.jl rejects it for `TransformInversion`,
//! and so do we.

use nalgebra::{DMatrix, DVector};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// How the ensemble covariances are localized.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "LocalizerRepr", into = "LocalizerRepr")]
pub enum Localizer {
    /// No localization.
    #[default]
    None,
    /// The identity kernel on `C^{ug}`.
    Delta,
    /// A Gaussian kernel in index distance on `C^{ug}`.
    Rbf {
        /// The length scale `l` (in index units; > 0).
        length_scale: f64,
    },
    /// A random symmetric 0/1 kernel on `C^{ug}`, drawn anew each update.
    BernoulliDropout {
        /// Probability of keeping an off-diagonal cross-covariance, in `[0, 1]`.
        prob: f64,
    },
    /// Sampling error correction, Lee (2021).
    Sec {
        /// The exponent `α ≥ 0`.
        alpha: f64,
        /// The cutoff `r₀ ∈ [0, 1)`: corrected correlations with `|·| ≤ r₀` are
        /// zeroed (EKP.jl's default 0).
        r0: f64,
    },
    /// Sampling error correction with the Fisher transformation, Flowerdew (2015).
    SecFisher,
    /// Sampling error correction of Vishny, Morzfeld et al. (2024). EKP.jl's
    /// `SECNice()` also stores `n_samples = 1000`, which its computation does
    /// not use; we leave it out.
    SecNice {
        /// Tolerance scaling of the discrepancy principle for the `u–g` block
        /// (default 1).
        delta_ug: f64,
        /// Tolerance scaling of the discrepancy principle for the `g–g` block
        /// (default 1).
        delta_gg: f64,
    },
}

fn one() -> f64 {
    1.0
}

/// The serialised form: `{ kind = "...", ... }`, unknown keys rejected for
/// every kind (serde ignores extra keys of internally tagged *unit* variants,
/// hence the empty-struct variants here).
#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
enum LocalizerRepr {
    None {},
    Delta {},
    Rbf {
        length_scale: f64,
    },
    BernoulliDropout {
        prob: f64,
    },
    Sec {
        alpha: f64,
        #[serde(default)]
        r0: f64,
    },
    SecFisher {},
    SecNice {
        #[serde(default = "one")]
        delta_ug: f64,
        #[serde(default = "one")]
        delta_gg: f64,
    },
}

impl From<LocalizerRepr> for Localizer {
    fn from(r: LocalizerRepr) -> Self {
        match r {
            LocalizerRepr::None {} => Localizer::None,
            LocalizerRepr::Delta {} => Localizer::Delta,
            LocalizerRepr::Rbf { length_scale } => Localizer::Rbf { length_scale },
            LocalizerRepr::BernoulliDropout { prob } => Localizer::BernoulliDropout { prob },
            LocalizerRepr::Sec { alpha, r0 } => Localizer::Sec { alpha, r0 },
            LocalizerRepr::SecFisher {} => Localizer::SecFisher,
            LocalizerRepr::SecNice { delta_ug, delta_gg } => {
                Localizer::SecNice { delta_ug, delta_gg }
            }
        }
    }
}

impl From<Localizer> for LocalizerRepr {
    fn from(l: Localizer) -> Self {
        match l {
            Localizer::None => LocalizerRepr::None {},
            Localizer::Delta => LocalizerRepr::Delta {},
            Localizer::Rbf { length_scale } => LocalizerRepr::Rbf { length_scale },
            Localizer::BernoulliDropout { prob } => LocalizerRepr::BernoulliDropout { prob },
            Localizer::Sec { alpha, r0 } => LocalizerRepr::Sec { alpha, r0 },
            Localizer::SecFisher => LocalizerRepr::SecFisher {},
            Localizer::SecNice { delta_ug, delta_gg } => {
                LocalizerRepr::SecNice { delta_ug, delta_gg }
            }
        }
    }
}

/// `1e8 ε`: EKP.jl's clamp of correlations away from ±1.
const BD_TOL: f64 = 1e8 * f64::EPSILON;

impl Localizer {
    /// EKP.jl's `SECNice()`: both tolerance scalings 1.
    pub fn sec_nice() -> Self {
        Localizer::SecNice {
            delta_ug: 1.0,
            delta_gg: 1.0,
        }
    }

    /// EKP.jl's `SEC(α)`: cutoff 0.
    pub fn sec(alpha: f64) -> Self {
        Localizer::Sec { alpha, r0: 0.0 }
    }

    /// The name used in calibration files (`localization.kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            Localizer::None => "none",
            Localizer::Delta => "delta",
            Localizer::Rbf { .. } => "rbf",
            Localizer::BernoulliDropout { .. } => "bernoulli-dropout",
            Localizer::Sec { .. } => "sec",
            Localizer::SecFisher => "sec-fisher",
            Localizer::SecNice { .. } => "sec-nice",
        }
    }

    /// Whether this is [`Localizer::None`].
    pub fn is_none(&self) -> bool {
        matches!(self, Localizer::None)
    }

    /// Whether it uses the variances of the parameters (the diagonal of `C^{uu}`).
    pub(crate) fn needs_parameter_variances(&self) -> bool {
        matches!(
            self,
            Localizer::Sec { .. } | Localizer::SecFisher | Localizer::SecNice { .. }
        )
    }

    /// Checks the settings; the message names the bad key.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Localizer::Rbf { length_scale }
                if !(length_scale.is_finite() && *length_scale > 0.0) =>
            {
                Err(format!(
                    "localization.length_scale must be positive and finite, got {length_scale}"
                ))
            }
            Localizer::BernoulliDropout { prob } if !(0.0..=1.0).contains(prob) => {
                Err(format!("localization.prob must be in [0, 1], got {prob}"))
            }
            Localizer::Sec { alpha, .. } if !(alpha.is_finite() && *alpha >= 0.0) => Err(format!(
                "localization.alpha must be ≥ 0 and finite, got {alpha}"
            )),
            Localizer::Sec { r0, .. } if !(0.0..1.0).contains(r0) => {
                Err(format!("localization.r0 must be in [0, 1), got {r0}"))
            }
            Localizer::SecNice { delta_ug, .. } if !(delta_ug.is_finite() && *delta_ug > 0.0) => {
                Err(format!(
                    "localization.delta_ug must be positive and finite, got {delta_ug}"
                ))
            }
            Localizer::SecNice { delta_gg, .. } if !(delta_gg.is_finite() && *delta_gg > 0.0) => {
                Err(format!(
                    "localization.delta_gg must be positive and finite, got {delta_gg}"
                ))
            }
            _ => Ok(()),
        }
    }

    /// Localizes the blocks of a joint covariance in place: `c_ug` (`p × d`)
    /// and `c_gg` (`d × d`, symmetric), given the parameter variances
    /// `var_u` (the diagonal of `C^{uu}`, regularisation included; only the
    /// correlation-based localizers read it) and the number of members `n`.
    /// Only `bernoulli-dropout` draws from `rng`.
    pub fn localize_blocks<R: Rng + ?Sized>(
        &self,
        c_ug: &mut DMatrix<f64>,
        c_gg: &mut DMatrix<f64>,
        var_u: &DVector<f64>,
        n: usize,
        rng: &mut R,
    ) {
        let (p, d) = c_ug.shape();
        match self {
            Localizer::None => {}
            Localizer::Delta => {
                for j in 0..d {
                    for i in 0..p {
                        if i != j {
                            c_ug[(i, j)] = 0.0;
                        }
                    }
                }
            }
            Localizer::Rbf { length_scale } => {
                let two_l2 = 2.0 * length_scale * length_scale;
                for j in 0..d {
                    for i in 0..p {
                        let k = i as f64 - j as f64;
                        c_ug[(i, j)] *= (-(k * k) / two_l2).exp();
                    }
                }
            }
            Localizer::BernoulliDropout { prob } => {
                let kernel = bernoulli_kernel(*prob, p, d, rng);
                c_ug.component_mul_assign(&kernel);
            }
            Localizer::Sec { alpha, r0 } => {
                let su = var_u.map(f64::sqrt);
                let sg = c_gg.diagonal().map(f64::sqrt);
                map_correlations(c_ug, &su, &sg, false, |r, _| sec(r, *alpha, *r0));
                map_correlations(c_gg, &sg, &sg, true, |r, _| sec(r, *alpha, *r0));
            }
            Localizer::SecFisher => {
                let su = var_u.map(f64::sqrt);
                let sg = c_gg.diagonal().map(f64::sqrt);
                map_correlations(c_ug, &su, &sg, false, |r, _| sec_fisher(r, false, n));
                map_correlations(c_gg, &sg, &sg, true, |r, diag| sec_fisher(r, diag, n));
            }
            Localizer::SecNice { delta_ug, delta_gg } => {
                let su = var_u.map(f64::sqrt);
                let sg = c_gg.diagonal().map(f64::sqrt);
                sec_nice_block(c_ug, &su, &sg, *delta_ug, n);
                sec_nice_block(c_gg, &sg, &sg, *delta_gg, n);
            }
        }
    }

    /// EKP.jl's `localize(cov, FT, p, d, N)`: the localized joint covariance
    /// of `[u; g]` (`(p + d) × (p + d)`, `p` parameters first) estimated from
    /// `n` members.
    pub fn localize_joint<R: Rng + ?Sized>(
        &self,
        cov: &DMatrix<f64>,
        p: usize,
        n: usize,
        rng: &mut R,
    ) -> DMatrix<f64> {
        let m = cov.nrows();
        let d = m.saturating_sub(p);
        let mut c_uu = cov.view((0, 0), (p, p)).into_owned();
        let mut c_ug = cov.view((0, p), (p, d)).into_owned();
        let mut c_gg = cov.view((p, p), (d, d)).into_owned();
        let var_u = c_uu.diagonal();
        self.localize_blocks(&mut c_ug, &mut c_gg, &var_u, n, rng);
        let su = var_u.map(f64::sqrt);
        match self {
            Localizer::None
            | Localizer::Delta
            | Localizer::Rbf { .. }
            | Localizer::BernoulliDropout { .. } => {}
            Localizer::Sec { alpha, r0 } => {
                map_correlations(&mut c_uu, &su, &su, true, |r, _| sec(r, *alpha, *r0));
            }
            Localizer::SecFisher => {
                map_correlations(&mut c_uu, &su, &su, true, |r, diag| sec_fisher(r, diag, n));
            }
            Localizer::SecNice { .. } => {
                // EKP.jl keeps the clamped correlations of this block.
                map_correlations(&mut c_uu, &su, &su, true, |r, _| {
                    r.clamp(-1.0 + BD_TOL, 1.0 - BD_TOL)
                });
            }
        }
        let mut out = DMatrix::zeros(m, m);
        out.view_mut((0, 0), (p, p)).copy_from(&c_uu);
        out.view_mut((0, p), (p, d)).copy_from(&c_ug);
        out.view_mut((p, 0), (d, p)).copy_from(&c_ug.transpose());
        out.view_mut((p, p), (d, d)).copy_from(&c_gg);
        out
    }
}

/// `c_ij ← s_i t_j f(c_ij / (s_i t_j), i == j)`: a map on the correlations of a
/// covariance block with row stds `s` and column stds `t`. The flag marks the
/// diagonal of a diagonal block (`square`: `s` and `t` are the same variables).
fn map_correlations(
    c: &mut DMatrix<f64>,
    s: &DVector<f64>,
    t: &DVector<f64>,
    square: bool,
    f: impl Fn(f64, bool) -> f64,
) {
    let (rows, cols) = c.shape();
    for j in 0..cols {
        for i in 0..rows {
            let scale = s[i] * t[j];
            let r = c[(i, j)] / scale;
            c[(i, j)] = f(r, square && i == j) * scale;
        }
    }
}

/// Lee (2021): `r |r|^α`, zeroed unless its magnitude exceeds `r₀`.
fn sec(r: f64, alpha: f64, r0: f64) -> f64 {
    let v = r * r.abs().powf(alpha);
    if v.abs() > r0 { v } else { 0.0 }
}

/// Flowerdew (2015) as EKP.jl's `sec_fisher`: `r` clamped to `±(1 − 1e8 ε)`,
/// `s = atanh r`, `σ_s = 1/√(n − 3)`, `σ_r = (tanh(s + σ_s) − tanh(s − σ_s))/2`,
/// `Q = r/σ_r`, `r ← Q²/(1 + Q²) · r`; the diagonal stays 1. For `n ≤ 3`,
/// `σ_s = ∞` (EKP.jl would take the root of a negative number at `n = 2`).
fn sec_fisher(r: f64, diagonal: bool, n: usize) -> f64 {
    if diagonal {
        return 1.0;
    }
    let r = r.clamp(-1.0 + BD_TOL, 1.0 - BD_TOL);
    let s = r.atanh();
    let sigma_s = 1.0 / (n.saturating_sub(3) as f64).sqrt();
    let sigma_r = ((s + sigma_s).tanh() - (s - sigma_s).tanh()) / 2.0;
    let q = r / sigma_r;
    q * q / (1.0 + q * q) * r
}

/// Vishny, Morzfeld et al. (2024) as EKP.jl's `sec_nice`, on one block:
/// correlations `R` clamped to `±(1 − 1e8 ε)`; tolerance
/// `τ = δ ‖(1 − R)/√n‖_F`; `γ` the first even exponent in 2, 4, …, 10 with
/// `‖R^{∘(γ+1)} − R‖_F > τ` (10 if none); then, for `a = 1, 8/9, …, 0`, the
/// first `((1 − a) R^{∘(γ−2)} + a R^{∘γ}) ∘ R` within `τ` of `R` (in Frobenius
/// norm, strictly) replaces the block.
fn sec_nice_block(c: &mut DMatrix<f64>, s: &DVector<f64>, t: &DVector<f64>, delta: f64, n: usize) {
    const MAX_EXPONENT: i32 = 10;
    const INTERP_STEPS: usize = 10;
    let (rows, cols) = c.shape();
    let corr = DMatrix::from_fn(rows, cols, |i, j| {
        (c[(i, j)] / (s[i] * t[j])).clamp(-1.0 + BD_TOL, 1.0 - BD_TOL)
    });
    let sqrt_n = (n as f64).sqrt();
    let tol = delta
        * corr
            .iter()
            .map(|r| ((1.0 - r) / sqrt_n).powi(2))
            .sum::<f64>()
            .sqrt();
    let dist = |m: &DMatrix<f64>| -> f64 {
        m.iter()
            .zip(corr.iter())
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f64>()
            .sqrt()
    };
    let mut gamma = MAX_EXPONENT;
    for g in (2..=MAX_EXPONENT).step_by(2) {
        if dist(&corr.map(|r| r.powi(g + 1))) > tol {
            gamma = g;
            break;
        }
    }
    let update = corr.map(|r| r.powi(gamma));
    let prev = corr.map(|r| r.powi(gamma - 2));
    let mut chosen = corr.clone();
    for k in 0..INTERP_STEPS {
        let a = 1.0 - k as f64 / (INTERP_STEPS - 1) as f64;
        let interp = (&prev * (1.0 - a) + &update * a).component_mul(&corr);
        if dist(&interp) < tol {
            chosen = interp;
            break;
        }
    }
    for j in 0..cols {
        for i in 0..rows {
            c[(i, j)] = chosen[(i, j)] * s[i] * t[j];
        }
    }
}

/// EKP.jl's `bernoulli_kernel(prob, T, p, d)`: the `p × d` identity, with
/// random 0/1 entries (1 with probability `prob`) below the diagonal of its
/// tall layout, mirrored into the leading square block.
fn bernoulli_kernel<R: Rng + ?Sized>(prob: f64, p: usize, d: usize, rng: &mut R) -> DMatrix<f64> {
    // Tall layout: rows ≥ cols.
    let (rows, cols) = if p < d { (d, p) } else { (p, d) };
    let mut k = DMatrix::<f64>::identity(rows, cols);
    for i in 1..rows {
        for j in 0..i.min(cols) {
            let keep = rng.random::<f64>() < prob;
            let v = if keep { 1.0 } else { 0.0 };
            k[(i, j)] = v;
            if i < cols {
                k[(j, i)] = v;
            }
        }
    }
    if p < d { k.transpose() } else { k }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    fn joint(p: usize, d: usize, n: usize, seed: u64) -> DMatrix<f64> {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let x = DMatrix::<f64>::from_fn(p + d, n, |_, _| rng.random::<f64>() - 0.5);
        let (_, a) = crate::linalg::anomalies(&x);
        let mut c = &a * a.transpose() / n as f64;
        for i in 0..p + d {
            c[(i, i)] += f64::EPSILON.sqrt();
        }
        c
    }

    #[test]
    fn blockwise_and_joint_agree_and_stay_symmetric() {
        let (p, d, n) = (5, 7, 6);
        let c = joint(p, d, n, 3);
        for loc in [
            Localizer::None,
            Localizer::Delta,
            Localizer::Rbf { length_scale: 1.5 },
            Localizer::sec(1.0),
            Localizer::Sec {
                alpha: 2.0,
                r0: 0.1,
            },
            Localizer::SecFisher,
            Localizer::sec_nice(),
        ] {
            let mut rng = ChaCha20Rng::seed_from_u64(1);
            let out = loc.localize_joint(&c, p, n, &mut rng);
            assert!(
                (&out - out.transpose()).amax() < 1e-14,
                "{loc:?} not symmetric"
            );
            for i in p..p + d {
                // The output variances are (nearly) untouched.
                assert!(
                    ((out[(i, i)] - c[(i, i)]) / c[(i, i)]).abs() < 1e-6,
                    "{loc:?}"
                );
            }
        }
    }

    #[test]
    fn bernoulli_kernel_has_a_symmetric_unit_diagonal_square_part() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        for (p, d) in [(6, 4), (4, 6), (5, 5)] {
            let k = bernoulli_kernel(0.5, p, d, &mut rng);
            assert_eq!(k.shape(), (p, d));
            let m = p.min(d);
            for i in 0..m {
                assert_eq!(k[(i, i)], 1.0);
                for j in 0..m {
                    assert_eq!(k[(i, j)], k[(j, i)]);
                }
            }
            assert!(k.iter().all(|&v| v == 0.0 || v == 1.0));
        }
        // prob = 0 keeps only the diagonal; prob = 1 keeps everything.
        assert_eq!(
            bernoulli_kernel(0.0, 4, 3, &mut rng),
            DMatrix::identity(4, 3)
        );
        assert_eq!(
            bernoulli_kernel(1.0, 4, 3, &mut rng),
            DMatrix::from_element(4, 3, 1.0)
        );
    }

    #[test]
    fn sec_and_fisher_shrink_small_correlations_more() {
        assert_eq!(sec(0.5, 1.0, 0.0), 0.25);
        assert_eq!(sec(-0.5, 1.0, 0.0), -0.25);
        assert_eq!(sec(0.3, 1.0, 0.1), 0.0);
        let small = sec_fisher(0.1, false, 10) / 0.1;
        let large = sec_fisher(0.9, false, 10) / 0.9;
        assert!(small < large && large < 1.0 && small > 0.0);
        assert_eq!(sec_fisher(0.3, true, 10), 1.0);
        assert!(sec_fisher(0.3, false, 2).is_finite());
    }

    /// Values from a line-by-line Python transliteration of EKP.jl's
    /// `sec`, `sec_fisher` and `sec_nice` (Localizers.jl) on the joint
    /// covariance of a fixed 5-variable, 6-member ensemble (p = 2, d = 3),
    /// √ε on the diagonal, as EKI forms it.
    #[test]
    fn correlation_localizers_match_a_transliteration_of_ekp_jl() {
        let (p, d, n) = (2usize, 3usize, 6usize);
        let x = DMatrix::from_fn(p + d, n, |i, j| {
            let (i, j) = (i as f64, j as f64);
            (1.3 * i + 0.7 * j * j + 0.1 * i * j).sin()
        });
        let (_, a) = crate::linalg::anomalies(&x);
        let mut cov = &a * a.transpose() / n as f64;
        for i in 0..p + d {
            cov[(i, i)] += f64::EPSILON.sqrt();
        }
        let expected_cov = DMatrix::from_column_slice(5, 5, &COV);
        assert!((&cov - expected_cov).amax() < 1e-14);
        let mut rng = ChaCha20Rng::seed_from_u64(0);
        for (loc, expected) in [
            (
                Localizer::Sec {
                    alpha: 1.0,
                    r0: 0.1,
                },
                SEC,
            ),
            (Localizer::SecFisher, FISHER),
            (Localizer::sec_nice(), NICE),
            (
                Localizer::SecNice {
                    delta_ug: 0.3,
                    delta_gg: 0.3,
                },
                NICE_TIGHT,
            ),
        ] {
            let out = loc.localize_joint(&cov, p, n, &mut rng);
            let want = DMatrix::from_column_slice(5, 5, &expected);
            let err = (&out - &want).amax();
            assert!(err < 1e-12, "{loc:?}: differs by {err}\n{out}\n{want}");
        }
    }

    const COV: [f64; 25] = [
        0.38082338139360444,
        -0.008730616451902321,
        -0.3017552182138375,
        0.07435100499201208,
        0.1904591048799473,
        -0.008730616451902321,
        0.4362216017451857,
        0.09970301347451616,
        -0.40026437139482846,
        -0.18010553352118616,
        -0.3017552182138375,
        0.09970301347451616,
        0.28921707083167036,
        -0.12658660936550328,
        -0.2426715968219767,
        0.07435100499201208,
        -0.40026437139482846,
        -0.12658660936550328,
        0.40312041195751586,
        0.16850865976241095,
        0.1904591048799473,
        -0.18010553352118616,
        -0.2426715968219767,
        0.16850865976241095,
        0.2651015937112571,
    ];
    const SEC: [f64; 25] = [
        0.38082338139360455,
        0.0,
        -0.2743694887211477,
        0.0,
        0.11416566377788222,
        0.0,
        0.4362216017451857,
        0.0,
        -0.38205236251254554,
        -0.09538813529925975,
        -0.2743694887211477,
        0.0,
        0.28921707083167025,
        -0.04692952716910618,
        -0.2126766274520657,
        0.0,
        -0.38205236251254554,
        -0.04692952716910618,
        0.40312041195751586,
        0.08686021199777542,
        0.11416566377788223,
        -0.09538813529925975,
        -0.2126766274520657,
        0.08686021199777542,
        0.2651015937112571,
    ];
    const FISHER: [f64; 25] = [
        0.3808233813936044,
        -1.475785018575686e-05,
        -0.29689760499678375,
        0.009137870341058695,
        0.13798547643171907,
        -1.475785018575686e-05,
        0.4362216017451857,
        0.02462120662914992,
        -0.3986093802761993,
        -0.11354225023595597,
        -0.2968976049967838,
        0.02462120662914992,
        0.2892170708316704,
        -0.04899328160351168,
        -0.2355356446147921,
        0.009137870341058695,
        -0.3986093802761993,
        -0.04899328160351168,
        0.40312041195751586,
        0.10280889790624048,
        0.13798547643171905,
        -0.11354225023595597,
        -0.2355356446147921,
        0.10280889790624047,
        0.2651015937112571,
    ];
    const NICE: [f64; 25] = [
        0.38082337293762664,
        -0.008730616451902323,
        -0.11653732321532903,
        4.501562713475479e-09,
        0.00114061587174945,
        -0.008730616451902323,
        0.43622159205912037,
        3.027859202868099e-07,
        -0.2512502421180311,
        -0.0003127519921257498,
        -0.11653732321532902,
        3.027859202868099e-07,
        0.289217000190679,
        -6.208288337753741e-06,
        -0.06486749353622702,
        4.501562713475479e-09,
        -0.2512502421180311,
        -6.208288337753741e-06,
        0.4031203134957429,
        0.00022315613454355313,
        0.00114061587174945,
        -0.0003127519921257498,
        -0.06486749353622702,
        0.0002231561345435531,
        0.26510152896044775,
    ];
    const NICE_TIGHT: [f64; 25] = [
        0.38082337293762664,
        -0.008730616451902323,
        -0.2727073998611414,
        0.0345322974548062,
        0.12266714776641305,
        -0.008730616451902323,
        0.43622159205912037,
        0.048676817380202665,
        -0.3804891645775188,
        -0.1081134618828844,
        -0.2727073998611414,
        0.04867681738020267,
        0.28921705870139797,
        -0.07805843224675843,
        -0.21765716722776102,
        0.0345322974548062,
        -0.38048916457751886,
        -0.07805843224675842,
        0.4031203950499371,
        0.11351518671736945,
        0.12266714776641305,
        -0.1081134618828844,
        -0.21765716722776102,
        0.11351518671736946,
        0.26510158259243016,
    ];
}
