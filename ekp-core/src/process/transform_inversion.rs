//! Ensemble transform Kalman inversion (ETKI), as EKP.jl's `TransformInversion`.
//!
//! With anomalies `X = (u − ū)/√(n−1)`, `Y = (g − ḡ)/√(n−1)`:
//! `Ω = (I + Δt Yᵀ Γ⁻¹ Y)⁻¹`, `w = Δt Ω Yᵀ Γ⁻¹ (y − ḡ)`, and
//! `u ← ū 1ᵀ + X (w 1ᵀ + √(n−1) Ω^{½})`. Every product involving `d` is
//! `O(n² d)`; only `n × n` matrices are factorised. With `impose_prior`, `g` is
//! extended by `u`, `y` by the prior mean and `Γ` by `Σ₀`.
//!
//! `I + Δt Yᵀ Γ⁻¹ Y` is inverted as it is, without `√ε` on its diagonal: its
//! eigenvalues are all at least 1, so it needs no regularisation, and
//! EKP.jl's `etki_update` — which calls `add_diagonal_regularization!` on a
//! slice, i.e. on a copy — effectively adds none (a `√ε` would move the
//! update by up to ~1.4e-8).
//!
//! **Update groups**: a group's outputs are fitted with the group's block
//! `Γ_gg` of `Γ`, inverted (`Γ_gg⁻¹`): the noise of the data the group sees,
//! as EKP.jl's EKI (and ekp's EKI) use it. **Deliberate difference from
//! EKP.jl**, whose `etki_update` takes the block `(Γ⁻¹)_gg` of the inverse of
//! the whole `Γ` instead — the precision of the group's data *given* the
//! other groups' data, which the group does not see. The two agree for a
//! block-diagonal `Γ` (no correlation between groups' outputs, always the
//! case for a diagonal `Γ`); with correlated outputs EKP.jl's ETKI weighs the
//! group's data more than its marginal noise warrants (`(Γ⁻¹)_gg ⪰ Γ_gg⁻¹`).

use std::cell::OnceCell;

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use rand_chacha::ChaCha20Rng;

use super::{OutputSelection, PriorBlock, ProcessStep, StepInput};
use crate::accelerator::Accelerator;
use crate::error::EkpError;
use crate::failure::FailurePolicy;
use crate::linalg::{anomalies, sym_inverse_and_sqrt};
use crate::localization::Localizer;
use crate::lowrank::{GramInput, UnitGram, gram};
use crate::observation::Observation;
use crate::scheduler::Scheduler;

/// Settings of ETKI.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformInversion {
    /// Extend the system with the prior (EKP.jl's `impose_prior`).
    pub impose_prior: bool,
    /// Multiplicative inflation `s` after each update (EKP.jl's default: 0).
    pub multiplicative_inflation: f64,
}

impl TransformInversion {
    /// EKP.jl's defaults for a given `impose_prior`.
    pub fn new(impose_prior: bool) -> Self {
        Self {
            impose_prior,
            multiplicative_inflation: 0.0,
        }
    }
}

/// EKP.jl's defaults for `TransformInversion()`: data-misfit
/// (`terminate_at = 1`), no localization (ETKI cannot be localized),
/// `sample-success-gauss`, no accelerator.
impl ProcessStep for TransformInversion {
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
        self.multiplicative_inflation
    }

    /// The streaming low-rank form for a diagonal `Γ`, the dense form
    /// otherwise. Draws nothing.
    fn step(
        &self,
        input: &StepInput<'_>,
        _rng: &mut ChaCha20Rng,
    ) -> Result<DMatrix<f64>, EkpError> {
        match input.obs.noise().diagonal_if_diagonal() {
            Some(variances) => update_lowrank(
                input.u,
                input.outputs,
                input.obs.values(),
                &variances,
                input.dt,
                input.prior,
                input.unit_gram,
            ),
            None => update(
                input.u,
                &input.dense_outputs(),
                input.obs,
                input.dt,
                input.prior,
            ),
        }
    }
}

/// One ETKI update for a diagonal `Γ` (its `variances`, one per selected
/// row), streaming over row blocks: `Yᵀ Γ⁻¹ Y` and `Yᵀ Γ⁻¹ (y − ḡ)` are
/// accumulated block by block ([`gram`]), so no `d × n` temporary is formed.
pub(crate) fn update_lowrank(
    u: &DMatrix<f64>,
    outputs: OutputSelection<'_>,
    y: &DVector<f64>,
    variances: &DVector<f64>,
    dt: f64,
    prior: Option<PriorBlock<'_>>,
    unit_gram: Option<&OnceCell<UnitGram>>,
) -> Result<DMatrix<f64>, EkpError> {
    let n = u.ncols();
    let weights = variances.map(|v| dt / v);
    let stats = gram(&GramInput {
        g: outputs.g,
        rows: outputs.rows,
        cols: outputs.cols,
        weights: &weights,
        y,
        perturbation: None,
    });
    UnitGram::offer(unit_gram, &outputs.rows, &weights, &stats);
    let scale = 1.0 / ((n - 1) as f64).sqrt();
    // Y = A/√(n−1): Δt Yᵀ Γ⁻¹ Y = m/(n−1), Δt Yᵀ Γ⁻¹ (y − ḡ) = c/√(n−1).
    let s = stats.m * (scale * scale);
    let rhs = stats.c * scale;
    finish(u, s, rhs, dt, prior)
}

/// One ETKI update of the members `u` with outputs `g` against the data.
pub(crate) fn update(
    u: &DMatrix<f64>,
    g: &DMatrix<f64>,
    obs: &Observation,
    dt: f64,
    prior: Option<PriorBlock<'_>>,
) -> Result<DMatrix<f64>, EkpError> {
    let n = u.ncols();
    let scale = 1.0 / ((n - 1) as f64).sqrt();
    let (g_mean, ga) = anomalies(g);
    let y_data = ga * scale;
    // Δt Γ⁻¹ Y for the data block (and Δt Σ₀⁻¹ X for the prior block).
    let gy = obs.noise().solve(&y_data) * dt;
    let s = y_data.transpose() * &gy;
    let rhs: DVector<f64> = gy.transpose() * (obs.values() - &g_mean);
    finish(u, s, rhs, dt, prior)
}

/// The rest of the update, from `s = Δt Yᵀ Γ⁻¹ Y` and
/// `rhs = Δt Yᵀ Γ⁻¹ (y − ḡ)` of the data block: the prior block, `Ω`, `w`
/// and the new ensemble.
fn finish(
    u: &DMatrix<f64>,
    mut s: DMatrix<f64>,
    mut rhs: DVector<f64>,
    dt: f64,
    prior: Option<PriorBlock<'_>>,
) -> Result<DMatrix<f64>, EkpError> {
    let n = u.ncols();
    let scale = 1.0 / ((n - 1) as f64).sqrt();
    let (u_mean, ua) = anomalies(u);
    let x = ua * scale;
    if let Some(pb) = prior {
        // The prior block: "outputs" u (anomalies X), data the prior mean.
        let mut gy_u = x.clone();
        for (k, v) in pb.variances.iter().enumerate() {
            let mut row = gy_u.row_mut(k);
            row *= dt / v;
        }
        s += x.transpose() * &gy_u;
        rhs += gy_u.transpose() * (pb.mean - &u_mean);
    }
    // No √ε on the diagonal: `I + Δt Yᵀ Γ⁻¹ Y` has every eigenvalue ≥ 1, and
    // EKP.jl's `add_diagonal_regularization!` acts on a copy of it, so it adds
    // none either (see the module documentation).
    for i in 0..n {
        s[(i, i)] += 1.0;
    }
    let (omega, omega_sqrt) = sym_inverse_and_sqrt(s).ok_or(EkpError::Singular {
        what: "I + Δt Yᵀ Γ⁻¹ Y",
    })?;
    let w = &omega * rhs;
    let mut t = omega_sqrt * ((n - 1) as f64).sqrt();
    for mut col in t.column_iter_mut() {
        col += &w;
    }
    let mut out = x * t;
    for mut col in out.column_iter_mut() {
        col += &u_mean;
    }
    Ok(out)
}
