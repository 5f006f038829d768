//! Inflation of the ensemble after an update, as EKP.jl's
//! `multiplicative_inflation!` and `additive_inflation!` (the
//! `multiplicative_inflation`, `additive_inflation` and `s` keywords of its
//! `update_ensemble!`).
//!
//! With `σ = s Δt < 1` (`Δt` the update's step; `σ ≥ 1` is an error):
//! multiplicative `u_j ← ū + (1 − σ)^{-½} (u_j − ū)`, which scales the
//! ensemble covariance by exactly `1/(1 − σ)`; additive
//! `u_j ← u_j + (σ/(1 − σ))^{½} Σ₀^{½} ξ_j`, `ξ_j ~ N(0, I)`, which adds
//! `σ/(1 − σ) Σ₀` to the covariance in expectation (`Σ₀` the prior
//! covariance, EKP.jl's default `additive_inflation_cov`). Both may be on:
//! multiplicative first, as in EKP.jl. When given, this replaces the
//! process's own default inflation (EKI/ETKI with `impose_prior`), as in
//! EKP.jl. Not available for UKI/UTKI, whose ensemble is a set of sigma
//! points of the process's own Gaussian.

use nalgebra::{DMatrix, DVector};
use rand::Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use crate::error::EkpError;
use crate::linalg::column_mean;

/// User inflation after every update.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inflation {
    /// Multiplicative inflation (default false).
    #[serde(default)]
    pub multiplicative: bool,
    /// Additive inflation with the prior covariance (default false).
    #[serde(default)]
    pub additive: bool,
    /// The factor `s` of the step (EKP.jl's default 1): `σ = s Δt`.
    #[serde(default = "one")]
    pub s: f64,
}

fn one() -> f64 {
    1.0
}

impl Inflation {
    /// Checks the settings; the message names the bad key.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.s.is_finite() && self.s > 0.0) {
            return Err(format!(
                "inflation.s must be positive and finite, got {}",
                self.s
            ));
        }
        if !self.multiplicative && !self.additive {
            return Err(
                "inflation needs `multiplicative = true` and/or `additive = true`".to_string(),
            );
        }
        Ok(())
    }

    /// The covariance factor `1/(1 − s Δt)` of multiplicative inflation.
    pub fn multiplicative_factor(&self, dt: f64) -> f64 {
        1.0 / (1.0 - self.s * dt)
    }

    /// Applies the inflation to `u` (`p × n`) after an update with step `dt`;
    /// `prior_var` are the prior variances (diagonal `Σ₀`).
    pub(crate) fn apply<R: Rng + ?Sized>(
        &self,
        u: &mut DMatrix<f64>,
        dt: f64,
        prior_var: &DVector<f64>,
        rng: &mut R,
    ) -> Result<(), EkpError> {
        let sigma = self.s * dt;
        if sigma >= 1.0 {
            return Err(EkpError::InflationUnstable { s: self.s, dt });
        }
        if self.multiplicative {
            let factor = (1.0 / (1.0 - sigma)).sqrt();
            let mean = column_mean(u);
            for mut col in u.column_iter_mut() {
                let dev = &col - &mean;
                col.copy_from(&(&mean + dev * factor));
            }
        }
        if self.additive {
            let (p, n) = u.shape();
            let z = DMatrix::from_fn(p, n, |_, _| rng.sample::<f64, _>(StandardNormal));
            let scale = sigma / (1.0 - sigma);
            for (k, v) in prior_var.iter().enumerate() {
                let sd = (scale * v).sqrt();
                let mut row = u.row_mut(k);
                row += z.row(k) * sd;
            }
        }
        Ok(())
    }
}
