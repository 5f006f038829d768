//! Ensemble Kalman inversion (EKI), as EKP.jl's `Inversion`.
//!
//! `u_j ← u_j + C^{ug} (C^{gg} + Γ/Δt)⁻¹ (y_j − g_j)`, with the ensemble
//! covariances normalised by `1/n` and `√ε` added to the diagonal of the joint
//! covariance; `y_j = y + ξ_j`, `ξ_j ~ N(0, Γ/Δt)` when observations are
//! perturbed. With `impose_prior`, `g` is extended by `u`, `y` by the prior mean
//! (unperturbed) and `Γ` by the prior covariance `Σ₀` (both scaled by `1/Δt`).
//!
//! A [`Localizer`] modifies `C^{ug}` and `C^{gg}` (of the extended system with
//! `impose_prior`, as EKP.jl passes `d + p` outputs to `localize`) before the
//! solve. Observations are perturbed only when `perturb_observations` is set
//! *and* no accelerator is used (EKP.jl switches perturbation off under
//! acceleration).

use std::cell::OnceCell;

use nalgebra::{DMatrix, DVector};
use rand::Rng;
use serde::{Deserialize, Serialize};

use rand_chacha::ChaCha20Rng;

use super::{OutputSelection, PriorBlock, ProcessStep, StepInput};
use crate::accelerator::Accelerator;
use crate::dense;
use crate::error::EkpError;
use crate::failure::FailurePolicy;
use crate::linalg::{anomalies, solve_spd};
use crate::localization::Localizer;
use crate::lowrank::{Gram, GramInput, Perturbation, UnitGram, gram};
use crate::observation::NoiseCovariance;
use crate::scheduler::Scheduler;

/// The largest number of outputs (with `impose_prior`: outputs plus
/// parameters) for which the dense path, which forms `d × d` matrices, is
/// allowed (it is used with a localizer or a full `Γ`): 20 000 outputs already
/// take 3.2 GB per `d × d` matrix.
pub const DENSE_LIMIT: usize = 20_000;

/// Settings of EKI.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inversion {
    /// Extend the system with the prior (EKP.jl's `impose_prior`).
    pub impose_prior: bool,
    /// Perturb the data of each member with `N(0, Γ/Δt)` noise (EKP.jl's
    /// default for a deterministic forward map). Ignored (no perturbation)
    /// when an accelerator is used, as in EKP.jl.
    pub perturb_observations: bool,
    /// Multiplicative inflation `s` after each update; EKP.jl uses `1e-3` when
    /// the prior is imposed and `0` otherwise.
    pub multiplicative_inflation: f64,
}

impl Inversion {
    /// EKP.jl's defaults for a given `impose_prior`.
    pub fn new(impose_prior: bool) -> Self {
        Self {
            impose_prior,
            perturb_observations: true,
            multiplicative_inflation: if impose_prior { 1e-3 } else { 0.0 },
        }
    }
}

impl Default for Inversion {
    fn default() -> Self {
        Self::new(false)
    }
}

/// EKP.jl's defaults for `Inversion()`: data-misfit (`terminate_at = 1`),
/// `sec-nice`, `sample-success-gauss`, `nesterov`.
impl ProcessStep for Inversion {
    fn default_scheduler(&self) -> Scheduler {
        Scheduler::data_misfit(1.0)
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
        self.impose_prior
    }
    fn perturb_observations(&self) -> bool {
        self.perturb_observations
    }
    fn multiplicative_inflation(&self) -> f64 {
        self.multiplicative_inflation
    }

    /// Draws the perturbations (all `N` members), then takes the low-rank
    /// form when `Γ` is diagonal, there is no localizer and there are more
    /// outputs `m` (with the prior rows) than members — it factors an
    /// `n × n` matrix where the dense form factors an `m × m` one — and the
    /// dense form otherwise.
    fn step(&self, input: &StepInput<'_>, rng: &mut ChaCha20Rng) -> Result<DMatrix<f64>, EkpError> {
        let n = input.members;
        let perturbation = input.perturb.then(|| Perturbation::draw(rng, n));
        let m = input.obs.dim() + input.prior.map_or(0, |pb| pb.mean.len());
        match input.obs.noise().diagonal_if_diagonal() {
            Some(variances) if input.localizer.is_none() && m > n => update_lowrank(
                input.u,
                input.outputs,
                input.obs.values(),
                &variances,
                input.dt,
                input.prior,
                perturbation.as_ref(),
                input.unit_gram,
            ),
            _ => {
                if m > DENSE_LIMIT && !input.localizer.is_none() {
                    return Err(EkpError::InvalidSetting(format!(
                        "localizer \"{}\" needs {m} × {m} covariance matrices ({m} outputs, more than {DENSE_LIMIT}); set localizer = \"none\" to use the low-rank update",
                        input.localizer.kind()
                    )));
                }
                let y_ok = input.perturbed_data(perturbation.as_ref());
                update(
                    input.u,
                    &input.dense_outputs(),
                    &y_ok,
                    input.obs.noise(),
                    input.dt,
                    input.prior,
                    input.localizer,
                    rng,
                )
            }
        }
    }
}

/// One EKI update in the low-rank (Woodbury) form, for a diagonal `Γ` (its
/// `variances`, one per selected row) and no localizer. With
/// `A = D + G Gᵀ/n`, `D = Γ/Δt + √ε I` (extended by `Σ₀/Δt + √ε I` with
/// `impose_prior`), `G` the output anomalies and `R = y_pert − g`:
/// `C^{ug} A⁻¹ R = U (nI + Gᵀ D⁻¹ G)⁻¹ Gᵀ D⁻¹ R`, where only the `n × n`
/// matrices `Gᵀ D⁻¹ G` and `Gᵀ D⁻¹ R` are needed; they are accumulated over
/// row blocks ([`gram`]), so the cost is `O(n² d + n³)` and no `d × n`
/// temporary is formed. The perturbations (`N(0, Γ/Δt)`) are drawn block by
/// block from `perturbation`, exactly as the dense path draws them.
#[allow(clippy::too_many_arguments)]
pub(crate) fn update_lowrank(
    u: &DMatrix<f64>,
    outputs: OutputSelection<'_>,
    y: &DVector<f64>,
    variances: &DVector<f64>,
    dt: f64,
    prior: Option<PriorBlock<'_>>,
    perturbation: Option<&Perturbation>,
    unit_gram: Option<&OnceCell<UnitGram>>,
) -> Result<DMatrix<f64>, EkpError> {
    let n = u.ncols();
    let reg = f64::EPSILON.sqrt();
    let weights = variances.map(|v| 1.0 / (v / dt + reg));
    let sd = perturbation.map(|_| perturbation_sd(variances, 1.0 / dt));
    let stats = gram(&GramInput {
        g: outputs.g,
        rows: outputs.rows,
        cols: outputs.cols,
        weights: &weights,
        y,
        perturbation: perturbation.zip(sd.as_ref()),
    });
    UnitGram::offer(unit_gram, &outputs.rows, &weights, &stats);
    let Gram { mut m, mut c, e } = stats;
    let (u_mean, ua) = anomalies(u);
    if let Some(pb) = prior {
        // The prior rows: "outputs" u, data the prior mean (unperturbed).
        let w_p = pb.variances.map(|v| 1.0 / (v / dt + reg));
        let mut wua = ua.clone();
        for (k, w) in w_p.iter().enumerate() {
            let mut row = wua.row_mut(k);
            row *= *w;
        }
        m += ua.transpose() * &wua;
        c += wua.transpose() * (pb.mean - &u_mean);
    }
    // B = Gᵀ D⁻¹ R = c 1ᵀ + Gᵀ D⁻¹ Ξ − Gᵀ D⁻¹ G.
    let mut b = match e {
        Some(e) => e - &m,
        None => -&m,
    };
    for mut col in b.column_iter_mut() {
        col += &c;
    }
    for i in 0..n {
        m[(i, i)] += n as f64;
    }
    let x = solve_spd(m, &b).ok_or(EkpError::Singular {
        what: "nI + Gᵀ (Γ/Δt)⁻¹ G",
    })?;
    Ok(u + ua * x)
}

/// The standard deviations `√(scale · v_i)` of the perturbations.
pub(crate) fn perturbation_sd(variances: &DVector<f64>, scale: f64) -> DVector<f64> {
    let root = scale.sqrt();
    variances.map(|v| v.sqrt() * root)
}

/// One EKI update of the members `u` with outputs `g` against the (possibly
/// perturbed) data columns `y`, with noise `Γ` and the localizer (which may
/// draw from `rng`). `C^{ug}` and `C^{gg}` are formed directly; the joint
/// covariance of `[u; g]` is never built.
#[allow(clippy::too_many_arguments)]
pub(crate) fn update<R: Rng + ?Sized>(
    u: &DMatrix<f64>,
    g: &DMatrix<f64>,
    y: &DMatrix<f64>,
    noise: &NoiseCovariance,
    dt: f64,
    prior: Option<PriorBlock<'_>>,
    localizer: &Localizer,
    rng: &mut R,
) -> Result<DMatrix<f64>, EkpError> {
    let n = u.ncols();
    let d = g.nrows();
    let (g_ext, y_ext) = match prior {
        Some(pb) => {
            let p = u.nrows();
            let mut g_ext = DMatrix::zeros(d + p, n);
            g_ext.rows_mut(0, d).copy_from(g);
            g_ext.rows_mut(d, p).copy_from(u);
            let mut y_ext = DMatrix::zeros(d + p, n);
            y_ext.rows_mut(0, d).copy_from(y);
            for mut col in y_ext.columns_mut(0, n).column_iter_mut() {
                col.rows_mut(d, p).copy_from(pb.mean);
            }
            (g_ext, y_ext)
        }
        None => (g.clone(), y.clone()),
    };
    let m = g_ext.nrows();
    let (_, ua) = anomalies(u);
    let (_, ga) = anomalies(&g_ext);
    let inv_n = 1.0 / n as f64;
    let reg = f64::EPSILON.sqrt();
    let mut c_ug = dense::mul_transpose(&ua, &ga) * inv_n;
    let mut c_gg = dense::mul_transpose(&ga, &ga) * inv_n;
    for i in 0..m {
        c_gg[(i, i)] += reg;
    }
    if !localizer.is_none() {
        // EKP.jl localizes the joint covariance after adding √ε to its whole
        // diagonal: the parameter variances carry it too.
        let var_u = if localizer.needs_parameter_variances() {
            DVector::from_iterator(
                ua.nrows(),
                ua.row_iter().map(|r| r.norm_squared() * inv_n + reg),
            )
        } else {
            DVector::zeros(0)
        };
        localizer.localize_blocks(&mut c_ug, &mut c_gg, &var_u, n, rng);
    }
    let mut a = c_gg;
    noise.add_scaled_to(&mut a, 1.0 / dt);
    if let Some(pb) = prior {
        for (k, v) in pb.variances.iter().enumerate() {
            a[(d + k, d + k)] += v / dt;
        }
    }
    let resid = y_ext - g_ext;
    let x = dense::solve_spd(a, &resid).ok_or(EkpError::Singular {
        what: "C^gg + Γ/Δt",
    })?;
    Ok(u + dense::mul(&c_ug, &x))
}
