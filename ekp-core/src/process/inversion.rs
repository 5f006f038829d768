//! Ensemble Kalman inversion (EKI), as EKP.jl's `Inversion`.
//!
//! `u_j ← u_j + C^{ug} (C^{gg} + Γ/Δt)⁻¹ (y_j − g_j)`, with the ensemble
//! covariances normalised by `1/n` and `√ε` added to the diagonal of the joint
//! covariance; `y_j = y + ξ_j`, `ξ_j ~ N(0, Γ/Δt)` when observations are
//! perturbed. With `impose_prior`, `g` is extended by `u`, `y` by the prior mean
//! (unperturbed) and `Γ` by the prior covariance `Σ₀` (both scaled by `1/Δt`).

use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

use super::PriorBlock;
use crate::error::EkpError;
use crate::linalg::{anomalies, solve_spd};
use crate::observation::Observation;

/// Settings of EKI.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inversion {
    /// Extend the system with the prior (EKP.jl's `impose_prior`).
    pub impose_prior: bool,
    /// Perturb the data of each member with `N(0, Γ/Δt)` noise (EKP.jl's
    /// default for a deterministic forward map).
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

/// One EKI update of the members `u` with outputs `g` against the (possibly
/// perturbed) data columns `y`.
pub(crate) fn update(
    u: &DMatrix<f64>,
    g: &DMatrix<f64>,
    y: &DMatrix<f64>,
    obs: &Observation,
    dt: f64,
    prior: Option<PriorBlock<'_>>,
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
    let c_ug = (&ua * ga.transpose()) * inv_n;
    let mut a = (&ga * ga.transpose()) * inv_n;
    let reg = f64::EPSILON.sqrt();
    for i in 0..m {
        a[(i, i)] += reg;
    }
    obs.noise().add_scaled_to(&mut a, 1.0 / dt);
    if let Some(pb) = prior {
        for (k, v) in pb.variances.iter().enumerate() {
            a[(d + k, d + k)] += v / dt;
        }
    }
    let resid = y_ext - g_ext;
    let x = solve_spd(a, &resid).ok_or(EkpError::Singular {
        what: "C^gg + Γ/Δt",
    })?;
    Ok(u + c_ug * x)
}
