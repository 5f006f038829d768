//! Gauss–Newton Kalman inversion (GNKI, Chada, Chen & Sanz-Alonso 2021), as
//! EKP.jl's `GaussNewtonInversion`.
//!
//! With the ensemble covariances `C^{uu}`, `C^{ug}`, `C^{gg}` (normalised by
//! `1/n`, `√ε` added to the diagonal of the joint covariance), the prior
//! `N(m₀, Σ₀)` and the data `y_j` (perturbed with `N(0, 2Γ/Δt)` noise when
//! observations are perturbed):
//!
//! ```text
//! m_j = m₀ + ζ_j,   ζ_j ~ N(0, 2Σ₀/Δt)
//! A_j = (y_j − g_j) − C^{gu} C^{uu}⁻¹ (m_j − u_j)
//! Q   = C^{gu} C^{uu}⁻¹ Σ₀ C^{uu}⁻¹ C^{ug}
//! u_j ← (1 − Δt) u_j + Δt (m_j + Σ₀ C^{uu}⁻¹ C^{ug} (Q + Γ)⁻¹ A_j)
//! ```
//!
//! (`C^{gu} C^{uu}⁻¹` is the ensemble's linearisation of the model.) A
//! localizer acts on `C^{ug}` and `C^{gg}` (as for EKI); `C^{uu}` is not
//! localized here (EKP.jl localizes the whole joint covariance, so with a
//! localizer whose kernel changes the parameter block the two differ).
//! EKP.jl's defaults: fixed `Δt = 1`, `sec-nice`, `sample-success-gauss`,
//! `nesterov` (which switches the perturbation off).

use nalgebra::{DMatrix, DVector};
use rand::Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use rand_chacha::ChaCha20Rng;

use super::{PriorBlock, ProcessStep, StepInput};
use crate::accelerator::Accelerator;
use crate::error::EkpError;
use crate::failure::FailurePolicy;
use crate::linalg::{anomalies, select_columns, solve_spd};
use crate::localization::Localizer;
use crate::observation::NoiseCovariance;
use crate::scheduler::Scheduler;

/// Settings of GNKI.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GaussNewton {
    /// Perturb the data of each member with `N(0, 2Γ/Δt)` noise (EKP.jl's
    /// `deterministic_forward_map = true`, the default). Ignored (no
    /// perturbation) when an accelerator is used, as in EKP.jl.
    pub perturb_observations: bool,
}

impl Default for GaussNewton {
    fn default() -> Self {
        Self {
            perturb_observations: true,
        }
    }
}

/// EKP.jl's defaults for `GaussNewtonInversion`: fixed `Δt = 1`, `sec-nice`,
/// `sample-success-gauss`, `nesterov`.
impl ProcessStep for GaussNewton {
    fn default_scheduler(&self) -> Scheduler {
        Scheduler::Fixed { dt: 1.0 }
    }
    fn default_localizer(&self) -> Localizer {
        Localizer::sec_nice()
    }
    fn supports_localization(&self) -> bool {
        true
    }
    fn default_failure_policy(&self) -> FailurePolicy {
        FailurePolicy::SampleSuccessGauss
    }
    fn default_accelerator(&self) -> Accelerator {
        Accelerator::Nesterov
    }
    fn impose_prior(&self) -> bool {
        false
    }
    /// GNKI always takes the prior.
    fn uses_prior_block(&self) -> bool {
        true
    }
    fn perturb_observations(&self) -> bool {
        self.perturb_observations
    }
    fn multiplicative_inflation(&self) -> f64 {
        0.0
    }

    /// Draws the perturbations `N(0, 2Γ/Δt)` (all `N` members, as EKP.jl),
    /// then [`update`]'s draws.
    fn step(&self, input: &StepInput<'_>, rng: &mut ChaCha20Rng) -> Result<DMatrix<f64>, EkpError> {
        let g_ok = input.dense_outputs();
        let obs = input.obs;
        let y_all = if input.perturb {
            let mut noise = obs.noise().sample(rng, input.members, 2.0 / input.dt);
            for mut col in noise.column_iter_mut() {
                col += obs.values();
            }
            noise
        } else {
            input.data_for_all()
        };
        let y_ok = select_columns(&y_all, input.successful());
        let pb = input.prior.ok_or(EkpError::InvalidSetting(
            "gauss-newton needs the prior".to_string(),
        ))?;
        update(
            input.u,
            &g_ok,
            &y_ok,
            obs.noise(),
            input.dt,
            pb,
            input.localizer,
            rng,
        )
    }
}

/// One GNKI update of the members `u` with outputs `g` against the (possibly
/// perturbed) data columns `y`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn update<R: Rng + ?Sized>(
    u: &DMatrix<f64>,
    g: &DMatrix<f64>,
    y: &DMatrix<f64>,
    noise: &NoiseCovariance,
    dt: f64,
    prior: PriorBlock<'_>,
    localizer: &Localizer,
    rng: &mut R,
) -> Result<DMatrix<f64>, EkpError> {
    let (p, n) = u.shape();
    let d = g.nrows();
    // The prior draws m_j = m₀ + √(2Σ₀/Δt) ζ_j (Σ₀ diagonal).
    let mut m = DMatrix::from_fn(p, n, |_, _| rng.sample::<f64, _>(StandardNormal));
    for (k, v) in prior.variances.iter().enumerate() {
        let s = (2.0 * v / dt).sqrt();
        let mut row = m.row_mut(k);
        row *= s;
        row.add_scalar_mut(prior.mean[k]);
    }
    let (_, ua) = anomalies(u);
    let (_, ga) = anomalies(g);
    let inv_n = 1.0 / n as f64;
    let reg = f64::EPSILON.sqrt();
    let mut c_uu = (&ua * ua.transpose()) * inv_n;
    let mut c_ug = (&ua * ga.transpose()) * inv_n;
    let mut c_gg = (&ga * ga.transpose()) * inv_n;
    for i in 0..p {
        c_uu[(i, i)] += reg;
    }
    for i in 0..d {
        c_gg[(i, i)] += reg;
    }
    if !localizer.is_none() {
        let var_u = DVector::from_iterator(p, (0..p).map(|i| c_uu[(i, i)]));
        localizer.localize_blocks(&mut c_ug, &mut c_gg, &var_u, n, rng);
    }
    let singular = EkpError::Singular { what: "C^uu" };
    // C^{uu}⁻¹ C^{ug} (p × d) and C^{uu}⁻¹ (m − u) (p × n).
    let uu_inv_ug = solve_spd(c_uu.clone(), &c_ug).ok_or(singular)?;
    let uu_inv_mu =
        solve_spd(c_uu.clone(), &(&m - u)).ok_or(EkpError::Singular { what: "C^uu" })?;
    let a = (y - g) - c_ug.transpose() * uu_inv_mu;
    // Q = (C^{uu}⁻¹ C^{ug})ᵀ Σ₀ (C^{uu}⁻¹ C^{ug}).
    let mut s0_h = uu_inv_ug.clone();
    for (k, v) in prior.variances.iter().enumerate() {
        let mut row = s0_h.row_mut(k);
        row *= *v;
    }
    let mut q = uu_inv_ug.transpose() * &s0_h;
    noise.add_scaled_to(&mut q, 1.0);
    let x = solve_spd(q, &a).ok_or(EkpError::Singular { what: "Q + Γ" })?;
    let update = s0_h * x;
    Ok(u * (1.0 - dt) + (m + update) * dt)
}
