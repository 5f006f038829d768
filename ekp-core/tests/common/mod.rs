//! A linear-Gaussian test problem with closed-form answers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic
#![allow(dead_code, missing_docs)]

use ekp_core::{NoiseCovariance, Observation, ParameterPrior, Prior};
use nalgebra::{DMatrix, DVector};

/// `y = G θ + η`, `η ~ N(0, Γ)`, prior `θ ~ N(m0, Σ0)` (unbounded).
pub struct LinearProblem {
    pub g: DMatrix<f64>,
    pub gamma: DMatrix<f64>,
    pub y: DVector<f64>,
    pub m0: DVector<f64>,
    pub s0: DVector<f64>,
}

impl LinearProblem {
    /// p = 3 parameters, d = 6 observations, a well-conditioned G, a diagonal Γ
    /// whose noise is comparable to the prior's spread so prior and data both matter.
    pub fn new() -> Self {
        let g = DMatrix::from_row_slice(
            6,
            3,
            &[
                1.0, 0.5, 0.0, //
                0.2, 1.0, -0.3, //
                0.0, 0.4, 1.2, //
                -0.7, 0.0, 0.5, //
                0.3, -0.6, 0.2, //
                1.1, 0.2, 0.8,
            ],
        );
        let sd = [0.3, 0.5, 0.4, 0.6, 0.35, 0.45];
        let gamma = DMatrix::from_diagonal(&DVector::from_iterator(6, sd.iter().map(|s| s * s)));
        let truth = DVector::from_column_slice(&[1.0, -2.0, 0.5]);
        // A fixed "noise realisation" so the data are not exactly G θ.
        let eta = DVector::from_column_slice(&[0.21, -0.4, 0.1, 0.55, -0.3, 0.05]);
        let y = &g * truth + eta;
        Self {
            g,
            gamma,
            y,
            m0: DVector::from_column_slice(&[0.0, 0.0, 0.0]),
            s0: DVector::from_column_slice(&[1.5, 1.5, 1.5]),
        }
    }

    pub fn prior(&self) -> Prior {
        Prior::new(
            (0..self.m0.len())
                .map(|i| {
                    ParameterPrior::gaussian(&format!("t{i}"), self.m0[i], self.s0[i], 1)
                        .expect("valid prior")
                })
                .collect(),
        )
        .expect("valid prior")
    }

    pub fn observation(&self) -> Observation {
        let noise =
            NoiseCovariance::diagonal_variances(self.gamma.diagonal().as_slice()).expect("valid Γ");
        Observation::new(self.y.clone(), noise).expect("valid observation")
    }

    pub fn forward(&self, u: &DMatrix<f64>) -> DMatrix<f64> {
        &self.g * u
    }

    fn gamma_inv(&self) -> DMatrix<f64> {
        self.gamma.clone().try_inverse().expect("invertible")
    }

    /// Posterior covariance `(Gᵀ Γ⁻¹ G + Σ0⁻¹)⁻¹`.
    pub fn posterior_cov(&self) -> DMatrix<f64> {
        let s0_inv = DMatrix::from_diagonal(&self.s0.map(|s| 1.0 / (s * s)));
        (self.g.transpose() * self.gamma_inv() * &self.g + s0_inv)
            .try_inverse()
            .expect("invertible")
    }

    /// Posterior mean.
    pub fn posterior_mean(&self) -> DVector<f64> {
        let s0_inv = DMatrix::from_diagonal(&self.s0.map(|s| 1.0 / (s * s)));
        self.posterior_cov() * (self.g.transpose() * self.gamma_inv() * &self.y + s0_inv * &self.m0)
    }

    /// Weighted least squares `(Gᵀ Γ⁻¹ G)⁻¹ Gᵀ Γ⁻¹ y`.
    pub fn least_squares(&self) -> DVector<f64> {
        let gi = self.gamma_inv();
        (self.g.transpose() * &gi * &self.g)
            .try_inverse()
            .expect("invertible")
            * (self.g.transpose() * gi * &self.y)
    }
}
