//! Unscented Kalman inversion (UKI, EKP.jl's `Unscented`) and its transform
//! (Woodbury) form (UTKI, EKP.jl's `TransformUnscented`).
//!
//! The process carries a Gaussian `N(m_n, C_n)` of its own; the ensemble is a
//! set of sigma points of the *predicted* Gaussian, whose number is fixed by
//! the parameter dimension `p`: `2p + 1` (symmetric) or `p + 2` (simplex).
//!
//! **Prediction** (EKP.jl's `update_ensemble_prediction!`): the iteration
//! counter `k` grows by one; if `update_freq > 0` and `k` is a multiple of it,
//! `Σ_ω ← (2 − α²) C_n`; then `m̂ = α m_n + (1 − α) r`, `Ĉ = α² C_n + Δt Σ_ω`,
//! with `α = alpha_reg`, `r` the prior mean and `Σ_ω = (2 − α²) C_0` initially.
//! The initial ensemble is the prediction with `Δt = 0` from the prior.
//!
//! **Sigma points**: `L` the Cholesky factor of `Ĉ`; symmetric:
//! `m̂, m̂ ± √(p + λ) L_i` with `a = min(√(4/p), 1)`, `λ = a² p − p`, mean weights
//! `λ/(p+λ)` (centre) and `1/(2(p+λ))`, covariance weights
//! `λ/(p+λ) + 3 − a²` (centre) and `1/(2(p+λ))`; simplex (`p + 2` points):
//! EKP.jl's matrix with `a = p/(4(p+1))`, mean weights `0, 1/(p+1), …`,
//! covariance weights `0, a, …`. With the modified unscented transform (the
//! default) the mean weights are `1, 0, …, 0`: the mean is the centre point's.
//! If `Ĉ` is not numerically positive definite, its eigendecomposition is used
//! with eigenvalues below `1e-8` raised to the smallest one above (EKP.jl
//! floors the SVD the same way and takes a QR factor: the same `L Lᵀ`, sigma
//! points rotated).
//!
//! **Analysis** (UKI): weighted moments of the successful points (weights
//! rescaled over them as EKP.jl's `SampleSuccGauss` does; without failures
//! these are the plain weights), `√ε` on the diagonals of `Ĉ^{uu}` and
//! `Ĉ^{gg}`, then the Kalman update with noise `Σ_ν/Δt`, `Σ_ν = 2Γ`:
//! `m = m̂ + Ĉ^{ug}(Ĉ^{gg} + 2Γ/Δt)⁻¹(y − ĝ)`, `C = Ĉ^{uu} − Ĉ^{ug}(…)⁻¹Ĉ^{gu}`.
//!
//! **`impose_prior`**: `g` is extended by `u` and `y` by the prior mean, and
//! the noise by the prior covariance; `alpha_reg = 1` and `update_freq = 1`
//! (which EKP.jl forces; here other values are an error). **Deliberate
//! difference from EKP.jl**: EKP.jl scales only the data block by 2
//! (`blockdiag(2Γ, Σ₀)/Δt`), so its iteration converges to the posterior of a
//! prior `N(m₀, Σ₀/2)`. We scale both blocks, `2·blockdiag(Γ, Σ₀)/Δt` (as in
//! Huang, Schneider & Stuart's UKI papers). For a linear model the mean then
//! converges to the exact posterior mean for any steps, and the covariance to
//! `((1+Δt)/2)⁻¹` times the posterior covariance: the exact posterior with
//! `Δt = 1` (use `scheduler = { kind = "fixed", dt = 1 }`).
//!
//! **UTKI** replaces the analysis by its Woodbury form: with weighted
//! perturbations `X_i = √w_i (u_i − m̂)`, `Y_i = √w_i (g_i − ĝ)` (`i ≥ 1`, the
//! centre column zero), `Ω = (I + Yᵀ Σ_ν⁻¹ Y Δt)⁻¹`,
//! `m = m̂ + X Ω Yᵀ Σ_ν⁻¹ Δt (y − ĝ)`, `C = X Ω Xᵀ`: only `N × N` systems are
//! solved, and `Γ` only through solves (large `d`). With `impose_prior` the
//! prior block is scaled by 2 as for UKI (EKP.jl: unscaled). As in EKP.jl no
//! `√ε` is added to `I + Yᵀ Σ_ν⁻¹ Y Δt` (its eigenvalues are at least 1;
//! EKP.jl's call to `add_diagonal_regularization!` acts on a copy).
//!
//! **A failed centre point** (UTKI): only the centre's column is zeroed — a
//! successful off-centre point always contributes `√w_i (u_i − m̂)`, as in
//! UKI's covariances, so UTKI stays UKI's Woodbury form when the centre
//! fails. **Deliberate difference from EKP.jl**, whose
//! `construct_successful_perturbation` zeroes the *first successful* column,
//! assuming it is the centre: when the centre has failed it drops a real
//! sigma point (and disagrees with its own UKI).

use nalgebra::{DMatrix, DVector, SymmetricEigen};
use serde::{Deserialize, Serialize};

use rand_chacha::ChaCha20Rng;

use super::{ProcessStep, StepInput};
use crate::accelerator::Accelerator;
use crate::error::EkpError;
use crate::failure::FailurePolicy;
use crate::linalg::{solve_spd, sym_inverse_and_sqrt};
use crate::localization::Localizer;
use crate::observation::Observation;
use crate::scheduler::Scheduler;

/// The noise scale `Σ_ν = 2Γ` (EKP.jl's `Σ_ν_scale`), applied here to the
/// prior block too.
const NOISE_SCALE: f64 = 2.0;

/// Which sigma points the unscented transform uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SigmaPoints {
    /// `2p + 1` points, symmetric about the mean (EKP.jl's default).
    #[default]
    Symmetric,
    /// `p + 2` points on a simplex.
    Simplex,
}

impl SigmaPoints {
    /// The name used in calibration files.
    pub fn name(self) -> &'static str {
        match self {
            SigmaPoints::Symmetric => "symmetric",
            SigmaPoints::Simplex => "simplex",
        }
    }
    /// The number of points for `p` parameters.
    pub fn count(self, p: usize) -> usize {
        match self {
            SigmaPoints::Symmetric => 2 * p + 1,
            SigmaPoints::Simplex => p + 2,
        }
    }
}

/// Settings of UKI and UTKI.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unscented {
    /// The regularisation `α ∈ (0, 1]` of the prediction toward the prior
    /// mean (EKP.jl's `α_reg`, default 1: none).
    pub alpha_reg: f64,
    /// Every how many iterations `Σ_ω` is reset to `(2 − α²) C_n` (0: never;
    /// EKP.jl's default 0).
    pub update_freq: usize,
    /// Extend the system with the prior (both blocks scaled by 2, see the
    /// module docs); requires `alpha_reg = 1`, `update_freq = 1`.
    pub impose_prior: bool,
    /// Symmetric (`2p + 1`) or simplex (`p + 2`) sigma points.
    pub sigma_points: SigmaPoints,
    /// The modified unscented transform (Huang et al. 2021): the mean is the
    /// centre point's (EKP.jl's default, true).
    pub modified_unscented_transform: bool,
}

impl Unscented {
    /// EKP.jl's defaults for a given `impose_prior` (which sets
    /// `alpha_reg = 1`, `update_freq = 1`).
    pub fn new(impose_prior: bool) -> Self {
        Self {
            alpha_reg: 1.0,
            update_freq: usize::from(impose_prior),
            impose_prior,
            sigma_points: SigmaPoints::Symmetric,
            modified_unscented_transform: true,
        }
    }

    /// Checks the settings; the message names the bad key.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.alpha_reg > 0.0 && self.alpha_reg <= 1.0) {
            return Err(format!(
                "alpha_reg must be in (0, 1], got {}",
                self.alpha_reg
            ));
        }
        if self.impose_prior && (self.alpha_reg != 1.0 || self.update_freq != 1) {
            return Err(format!(
                "impose_prior = true needs alpha_reg = 1 and update_freq = 1 (as EKP.jl sets them), got alpha_reg = {} and update_freq = {}",
                self.alpha_reg, self.update_freq
            ));
        }
        Ok(())
    }

    /// The ensemble size for `p` parameters: `2p + 1` or `p + 2`.
    pub fn ensemble_size(&self, p: usize) -> usize {
        self.sigma_points.count(p)
    }

    /// The weighted mean of the outputs `g` (`d × N`, one column per sigma
    /// point of `p` parameters) over the successful points `ok`, with the
    /// weights rescaled over them as in an update; `None` when `g` does not
    /// have one column per sigma point or `ok` names a point that is not.
    pub(crate) fn successful_mean(
        &self,
        p: usize,
        g: &DMatrix<f64>,
        ok: &[usize],
    ) -> Option<DVector<f64>> {
        let n = self.ensemble_size(p);
        if g.ncols() != n || ok.is_empty() || ok.iter().any(|&j| j >= n) {
            return None;
        }
        let (wm, _) = self.weights(p).successful(ok);
        let g_ok = DMatrix::from_fn(g.nrows(), ok.len(), |i, j| g[(i, ok[j])]);
        Some(g_ok * wm)
    }

    /// The quadrature weights for `p` parameters.
    fn weights(&self, p: usize) -> Weights {
        let n = self.ensemble_size(p);
        let pf = p as f64;
        let mut mean = DVector::zeros(n);
        let mut cov = DVector::zeros(n);
        let offsets = match self.sigma_points {
            SigmaPoints::Symmetric => {
                let a = (4.0 / pf).sqrt().min(1.0);
                let lambda = a * a * pf - pf;
                mean[0] = lambda / (pf + lambda);
                cov[0] = lambda / (pf + lambda) + 1.0 - a * a + 2.0;
                for i in 1..n {
                    mean[i] = 1.0 / (2.0 * (pf + lambda));
                    cov[i] = 1.0 / (2.0 * (pf + lambda));
                }
                Offsets::Symmetric((pf + lambda).sqrt())
            }
            SigmaPoints::Simplex => {
                let a = pf / (4.0 * (pf + 1.0));
                let mut im = DMatrix::zeros(p, n);
                // Column 0 (the centre) stays zero; EKP.jl's `IM` fills 1..=p+1.
                im[(0, 1)] = -1.0 / (2.0 * a).sqrt();
                im[(0, 2)] = 1.0 / (2.0 * a).sqrt();
                for i in 2..=p {
                    let fi = i as f64;
                    let s = (a * fi * (fi + 1.0)).sqrt();
                    for j in 1..=i {
                        im[(i - 1, j)] = 1.0 / s;
                    }
                    im[(i - 1, i + 1)] = -fi / s;
                }
                for i in 1..n {
                    mean[i] = 1.0 / (pf + 1.0);
                    cov[i] = a;
                }
                Offsets::Simplex(im)
            }
        };
        if self.modified_unscented_transform {
            mean.fill(0.0);
            mean[0] = 1.0;
        }
        Weights { mean, cov, offsets }
    }
}

/// EKP.jl's defaults for `Unscented` (UKI and UTKI alike): data-misfit
/// (`terminate_at = 1`), no localization, `sample-success-gauss` (EKP.jl's
/// reweighting of the successful sigma points), no accelerator. The
/// ensemble is a set of sigma points, updated as a whole
/// (by the state's own update), never by groups.
impl ProcessStep for Unscented {
    fn default_scheduler(&self) -> Scheduler {
        Scheduler::data_misfit(1.0)
    }
    fn default_localizer(&self) -> Localizer {
        Localizer::None
    }
    fn supports_localization(&self) -> bool {
        false
    }
    fn default_failure_policy(&self) -> FailurePolicy {
        FailurePolicy::SampleSuccessGauss
    }
    fn default_accelerator(&self) -> Accelerator {
        Accelerator::None
    }
    fn impose_prior(&self) -> bool {
        self.impose_prior
    }
    fn perturb_observations(&self) -> bool {
        false
    }
    fn multiplicative_inflation(&self) -> f64 {
        0.0
    }

    /// An error: the unscented processes are not updated group by group.
    fn step(
        &self,
        _input: &StepInput<'_>,
        _rng: &mut ChaCha20Rng,
    ) -> Result<DMatrix<f64>, EkpError> {
        Err(EkpError::InvalidSetting(
            "unscented processes are updated as a whole, not by groups".to_string(),
        ))
    }
}

/// Quadrature weights and sigma-point offsets.
struct Weights {
    mean: DVector<f64>,
    cov: DVector<f64>,
    offsets: Offsets,
}

enum Offsets {
    /// `m ± c L_i`.
    Symmetric(f64),
    /// `m + L c_j`, `c` `p × N`.
    Simplex(DMatrix<f64>),
}

impl Weights {
    /// Mean and covariance weights over the successful points, as EKP.jl's
    /// `construct_successful_mean`/`_cov`: the mean weights renormalised (all
    /// equal if the centre failed under the modified transform), the
    /// off-centre covariance weights scaled to keep their sum.
    fn successful(&self, ok: &[usize]) -> (DVector<f64>, DVector<f64>) {
        let n = self.mean.len();
        let off_centre_mean: f64 = self.mean.iter().skip(1).sum();
        let mean = if off_centre_mean.abs() < 1e-12 && !ok.contains(&0) {
            DVector::from_element(ok.len(), 1.0 / ok.len() as f64)
        } else {
            let total: f64 = ok.iter().map(|&j| self.mean[j]).sum();
            DVector::from_iterator(ok.len(), ok.iter().map(|&j| self.mean[j] / total))
        };
        let orig: f64 = self.cov.iter().skip(1).sum();
        let succ: f64 = ok.iter().filter(|&&j| j > 0).map(|&j| self.cov[j]).sum();
        let scale = if succ > 0.0 { orig / succ } else { 1.0 };
        let cov = DVector::from_iterator(
            ok.len(),
            ok.iter().map(|&j| {
                if j == 0 {
                    self.cov[0]
                } else {
                    self.cov[j] * scale
                }
            }),
        );
        debug_assert!(ok.iter().all(|&j| j < n));
        (mean, cov)
    }
}

/// The Gaussian state of UKI/UTKI: the history of means and covariances
/// (`N(m_0, C_0)` the prior first), the evolution covariance `Σ_ω`, the
/// iteration counter of the prediction, the predicted-output means, and the
/// prior (regularisation target `r` and the `impose_prior` block).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnscentedState {
    #[serde(with = "crate::serde_nalgebra::matrices")]
    means: Vec<DMatrix<f64>>,
    #[serde(with = "crate::serde_nalgebra::matrices")]
    covs: Vec<DMatrix<f64>>,
    #[serde(with = "crate::serde_nalgebra::matrix")]
    sigma_omega: DMatrix<f64>,
    #[serde(with = "crate::serde_nalgebra::vector")]
    prior_mean: DVector<f64>,
    #[serde(with = "crate::serde_nalgebra::vector")]
    prior_var: DVector<f64>,
    iter: usize,
    #[serde(with = "crate::serde_nalgebra::matrices")]
    obs_pred: Vec<DMatrix<f64>>,
}

fn column(v: &DVector<f64>) -> DMatrix<f64> {
    DMatrix::from_column_slice(v.len(), 1, v.as_slice())
}

impl UnscentedState {
    /// The state before the first iteration: the prior `N(m₀, diag(σ₀²))`.
    pub(crate) fn new(
        settings: &Unscented,
        prior_mean: DVector<f64>,
        prior_var: DVector<f64>,
    ) -> Self {
        let c0 = DMatrix::from_diagonal(&prior_var);
        let a = settings.alpha_reg;
        Self {
            means: vec![column(&prior_mean)],
            sigma_omega: &c0 * (2.0 - a * a),
            covs: vec![c0],
            prior_mean,
            prior_var,
            iter: 0,
            obs_pred: Vec::new(),
        }
    }

    /// The current mean `m_n`.
    pub fn mean(&self) -> DVector<f64> {
        let m = &self.means[self.means.len() - 1];
        m.column(0).into_owned()
    }
    /// The current covariance `C_n`.
    pub fn cov(&self) -> &DMatrix<f64> {
        &self.covs[self.covs.len() - 1]
    }
    /// All means, the prior's first.
    pub fn mean_history(&self) -> Vec<DVector<f64>> {
        self.means
            .iter()
            .map(|m| m.column(0).into_owned())
            .collect()
    }
    /// The mean after `k` updates (`k = 0`: the prior's), if there is one.
    pub fn mean_at(&self, k: usize) -> Option<DVector<f64>> {
        self.means.get(k).map(|m| m.column(0).into_owned())
    }
    /// All covariances, the prior's first.
    pub fn cov_history(&self) -> &[DMatrix<f64>] {
        &self.covs
    }
    /// The weighted output mean `ĝ` of each analysis.
    pub fn obs_pred_history(&self) -> Vec<DVector<f64>> {
        self.obs_pred
            .iter()
            .map(|m| m.column(0).into_owned())
            .collect()
    }

    /// The prediction with step `dt`: advances the counter (and `Σ_ω`) and
    /// returns the sigma points.
    pub(crate) fn predict(&mut self, settings: &Unscented, dt: f64) -> DMatrix<f64> {
        self.iter += 1;
        let a = settings.alpha_reg;
        if settings.update_freq > 0 && self.iter.is_multiple_of(settings.update_freq) {
            self.sigma_omega = self.cov() * (2.0 - a * a);
        }
        let m = self.mean() * a + &self.prior_mean * (1.0 - a);
        let c = self.cov() * (a * a) + &self.sigma_omega * dt;
        sigma_ensemble(settings, &m, &c)
    }

    /// The analysis of the predicted points `u` (`p × N`) with outputs `g`
    /// over the successful members `ok`; then the prediction with the same
    /// `dt`. Returns the new sigma points. `self` is changed only on success.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn update(
        &mut self,
        settings: &Unscented,
        transform: bool,
        u: &DMatrix<f64>,
        g: &DMatrix<f64>,
        ok: &[usize],
        obs: &Observation,
        dt: f64,
    ) -> Result<(DMatrix<f64>, DVector<f64>), EkpError> {
        let p = u.nrows();
        let weights = settings.weights(p);
        let (wm, wc) = weights.successful(ok);
        let u_ok = DMatrix::from_fn(p, ok.len(), |i, j| u[(i, ok[j])]);
        let g_ok = DMatrix::from_fn(g.nrows(), ok.len(), |i, j| g[(i, ok[j])]);
        let u_mean = &u_ok * &wm;
        let g_mean = &g_ok * &wm;
        let prior = settings
            .impose_prior
            .then_some((&self.prior_mean, &self.prior_var));
        let (m, c) = if transform {
            analysis_transform(&u_ok, &g_ok, &u_mean, &g_mean, ok, &wc, obs, dt, prior)?
        } else {
            analysis(&u_ok, &g_ok, &u_mean, &g_mean, &wc, obs, dt, prior)?
        };
        let mut next = self.clone();
        next.means.push(column(&m));
        next.covs.push(c);
        next.obs_pred.push(column(&g_mean));
        let sigma = next.predict(settings, dt);
        *self = next;
        Ok((sigma, g_mean))
    }
}

/// The sigma points of `N(m, c)`.
pub(crate) fn sigma_ensemble(
    settings: &Unscented,
    m: &DVector<f64>,
    c: &DMatrix<f64>,
) -> DMatrix<f64> {
    let p = m.len();
    let l = match c.clone().cholesky() {
        Some(ch) => ch.l(),
        None => {
            let eig = SymmetricEigen::new(c.clone());
            let floor = eig
                .eigenvalues
                .iter()
                .copied()
                .filter(|&l| l >= 1e-8)
                .fold(f64::INFINITY, f64::min);
            let floor = if floor.is_finite() { floor } else { 1e-8 };
            let s = eig
                .eigenvalues
                .map(|l| if l < 1e-8 { floor } else { l }.sqrt());
            &eig.eigenvectors * DMatrix::from_diagonal(&s)
        }
    };
    let weights = settings.weights(p);
    let n = settings.ensemble_size(p);
    let mut x = DMatrix::zeros(p, n);
    for j in 0..n {
        x.set_column(j, m);
    }
    match &weights.offsets {
        Offsets::Symmetric(cw) => {
            for i in 0..p {
                let col = l.column(i) * *cw;
                let mut plus = x.column_mut(i + 1);
                plus += &col;
                let mut minus = x.column_mut(i + 1 + p);
                minus -= &col;
            }
        }
        Offsets::Simplex(cm) => {
            let off = &l * cm;
            x += off;
        }
    }
    x
}

/// Weighted covariance `Σ w_j (a_j − ā)(b_j − b̄)ᵀ`.
fn weighted_cross(
    a: &DMatrix<f64>,
    am: &DVector<f64>,
    b: &DMatrix<f64>,
    bm: &DVector<f64>,
    w: &DVector<f64>,
) -> DMatrix<f64> {
    let mut da = a.clone();
    for (j, mut col) in da.column_iter_mut().enumerate() {
        col -= am;
        col *= w[j];
    }
    let mut db = b.clone();
    for mut col in db.column_iter_mut() {
        col -= bm;
    }
    da * db.transpose()
}

/// The UKI analysis; returns the new mean and covariance.
#[allow(clippy::too_many_arguments)]
fn analysis(
    u: &DMatrix<f64>,
    g: &DMatrix<f64>,
    u_mean: &DVector<f64>,
    g_mean: &DVector<f64>,
    wc: &DVector<f64>,
    obs: &Observation,
    dt: f64,
    prior: Option<(&DVector<f64>, &DVector<f64>)>,
) -> Result<(DVector<f64>, DMatrix<f64>), EkpError> {
    let p = u.nrows();
    let d = g.nrows();
    let reg = f64::EPSILON.sqrt();
    let mut c_uu = weighted_cross(u, u_mean, u, u_mean, wc);
    let mut c_gg = weighted_cross(g, g_mean, g, g_mean, wc);
    for i in 0..p {
        c_uu[(i, i)] += reg;
    }
    for i in 0..d {
        c_gg[(i, i)] += reg;
    }
    obs.noise().add_scaled_to(&mut c_gg, NOISE_SCALE / dt);
    let c_ug = weighted_cross(u, u_mean, g, g_mean, wc);
    let (a, b, resid) = match prior {
        None => (c_gg, c_ug, obs.values() - g_mean),
        Some((m0, v0)) => {
            let mut a = DMatrix::zeros(d + p, d + p);
            a.view_mut((0, 0), (d, d)).copy_from(&c_gg);
            a.view_mut((0, d), (d, p)).copy_from(&c_ug.transpose());
            a.view_mut((d, 0), (p, d)).copy_from(&c_ug);
            a.view_mut((d, d), (p, p)).copy_from(&c_uu);
            for k in 0..p {
                a[(d + k, d + k)] += NOISE_SCALE * v0[k] / dt;
            }
            let mut b = DMatrix::zeros(p, d + p);
            b.view_mut((0, 0), (p, d)).copy_from(&c_ug);
            b.view_mut((0, d), (p, p)).copy_from(&c_uu);
            let mut resid = DVector::zeros(d + p);
            resid.rows_mut(0, d).copy_from(&(obs.values() - g_mean));
            resid.rows_mut(d, p).copy_from(&(m0 - u_mean));
            (a, b, resid)
        }
    };
    // K = B A⁻¹, A symmetric: solve A X = Bᵀ, K = Xᵀ.
    let x = solve_spd(a, &b.transpose()).ok_or(EkpError::Singular {
        what: "the UKI innovation covariance",
    })?;
    let k = x.transpose();
    let m = u_mean + &k * resid;
    let mut c = c_uu - &k * b.transpose();
    c = (&c + c.transpose()) * 0.5;
    Ok((m, c))
}

/// The UTKI (Woodbury) analysis; returns the new mean and covariance.
#[allow(clippy::too_many_arguments)]
fn analysis_transform(
    u: &DMatrix<f64>,
    g: &DMatrix<f64>,
    u_mean: &DVector<f64>,
    g_mean: &DVector<f64>,
    ok: &[usize],
    wc: &DVector<f64>,
    obs: &Observation,
    dt: f64,
    prior: Option<(&DVector<f64>, &DVector<f64>)>,
) -> Result<(DVector<f64>, DMatrix<f64>), EkpError> {
    let n = u.ncols();
    // Perturbations √w_j (x_j − x̄), the centre column (member 0) zero.
    let pert = |a: &DMatrix<f64>, am: &DVector<f64>| {
        let mut out = a.clone();
        for (j, mut col) in out.column_iter_mut().enumerate() {
            if ok[j] == 0 {
                col.fill(0.0);
            } else {
                col -= am;
                col *= wc[j].max(0.0).sqrt();
            }
        }
        out
    };
    let x = pert(u, u_mean);
    let y = pert(g, g_mean);
    let inv_scale = dt / NOISE_SCALE;
    // Σ_ν⁻¹ Δt Y and the data part of S and of the right-hand side.
    let gy = obs.noise().solve(&y) * inv_scale;
    let mut s = y.transpose() * &gy;
    let mut rhs: DVector<f64> = gy.transpose() * (obs.values() - g_mean);
    if let Some((m0, v0)) = prior {
        let mut gx = x.clone();
        for (k, v) in v0.iter().enumerate() {
            let mut row = gx.row_mut(k);
            row *= inv_scale / v;
        }
        s += x.transpose() * &gx;
        rhs += gx.transpose() * (m0 - u_mean);
    }
    // No √ε: every eigenvalue of I + Yᵀ Σ_ν⁻¹ Y Δt is at least 1 (EKP.jl's
    // regularisation of it acts on a copy and adds nothing either).
    for i in 0..n {
        s[(i, i)] += 1.0;
    }
    let (omega, _) = sym_inverse_and_sqrt(s).ok_or(EkpError::Singular {
        what: "I + Yᵀ Σ_ν⁻¹ Y Δt",
    })?;
    let m = u_mean + &x * (&omega * rhs);
    let c = &x * omega * x.transpose();
    let c = (&c + c.transpose()) * 0.5;
    Ok((m, c))
}
