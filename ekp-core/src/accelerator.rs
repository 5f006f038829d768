//! Momentum acceleration of the ensemble (EKP.jl's `Accelerators.jl`).
//!
//! After the process has moved the ensemble from `v_k` (the members that were
//! run) to `u_{k+1}`, an accelerator hands out
//!
//! ```text
//! v_{k+1} = u_{k+1} + c_k (u_{k+1} − u_k)
//! ```
//!
//! instead, where `u_k` is the previous *unaccelerated* ensemble (the initial
//! ensemble at the first update). It is applied after the update of every group
//! and after failed members have been redrawn, and before multiplicative
//! inflation, as in EKP.jl. The momentum coefficient `c_k`:
//!
//! | accelerator | `c_k` at update `k = 0, 1, …` |
//! |---|---|
//! | `none` | none: `v_{k+1} = u_{k+1}` |
//! | `nesterov` (EKP.jl's `NesterovAccelerator`, the default for EKI) | `θ_{k+1}(1/θ_k − 1)` with `θ_0 = 1`, `θ_{k+1} = (−θ_k² + √(θ_k⁴ + 4θ_k²))/2` (Su, Boyd & Candès 2014); `c_0 = 0` |
//! | `first-order-nesterov` (`FirstOrderNesterovAccelerator(r)`, default `r = 3`) | `1 − r/(k + 3)` |
//! | `constant-nesterov` (`ConstantNesterovAccelerator(λ)`, default `λ = 0.9`) | `λ` |
//!
//! With any accelerator other than `none`, EKI does **not** perturb the
//! observations, whatever `perturb_observations` says: EKP.jl switches the
//! perturbation off because it "doesn't play well with" momentum. The momentum
//! state (`u_k`, `θ_k`) is part of the serialised process.

use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

/// The momentum method.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "AcceleratorRepr", into = "AcceleratorRepr")]
pub enum Accelerator {
    /// No acceleration (EKP.jl's `DefaultAccelerator`).
    #[default]
    None,
    /// Nesterov momentum with the `θ` recurrence (EKP.jl's `NesterovAccelerator`).
    Nesterov,
    /// Nesterov momentum with coefficient `1 − r/(k + 3)`.
    FirstOrderNesterov {
        /// The decay `r` (EKP.jl's default 3).
        r: f64,
    },
    /// Constant momentum `λ`.
    ConstantNesterov {
        /// The coefficient `λ ∈ [0, 1)` (EKP.jl's default 0.9).
        lambda: f64,
    },
}

fn three() -> f64 {
    3.0
}

fn point_nine() -> f64 {
    0.9
}

/// The serialised form, rejecting unknown keys for every kind.
#[derive(Clone, Copy, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
enum AcceleratorRepr {
    None {},
    Nesterov {},
    FirstOrderNesterov {
        #[serde(default = "three")]
        r: f64,
    },
    ConstantNesterov {
        #[serde(default = "point_nine")]
        lambda: f64,
    },
}

impl From<AcceleratorRepr> for Accelerator {
    fn from(r: AcceleratorRepr) -> Self {
        match r {
            AcceleratorRepr::None {} => Accelerator::None,
            AcceleratorRepr::Nesterov {} => Accelerator::Nesterov,
            AcceleratorRepr::FirstOrderNesterov { r } => Accelerator::FirstOrderNesterov { r },
            AcceleratorRepr::ConstantNesterov { lambda } => {
                Accelerator::ConstantNesterov { lambda }
            }
        }
    }
}

impl From<Accelerator> for AcceleratorRepr {
    fn from(a: Accelerator) -> Self {
        match a {
            Accelerator::None => AcceleratorRepr::None {},
            Accelerator::Nesterov => AcceleratorRepr::Nesterov {},
            Accelerator::FirstOrderNesterov { r } => AcceleratorRepr::FirstOrderNesterov { r },
            Accelerator::ConstantNesterov { lambda } => {
                AcceleratorRepr::ConstantNesterov { lambda }
            }
        }
    }
}

impl Accelerator {
    /// EKP.jl's `FirstOrderNesterovAccelerator()`: `r = 3`.
    pub fn first_order_nesterov() -> Self {
        Accelerator::FirstOrderNesterov { r: 3.0 }
    }

    /// EKP.jl's `ConstantNesterovAccelerator()`: `λ = 0.9`.
    pub fn constant_nesterov() -> Self {
        Accelerator::ConstantNesterov { lambda: 0.9 }
    }

    /// The name used in calibration files (`accelerator.kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            Accelerator::None => "none",
            Accelerator::Nesterov => "nesterov",
            Accelerator::FirstOrderNesterov { .. } => "first-order-nesterov",
            Accelerator::ConstantNesterov { .. } => "constant-nesterov",
        }
    }

    /// Whether this is [`Accelerator::None`].
    pub fn is_none(&self) -> bool {
        matches!(self, Accelerator::None)
    }

    /// Checks the settings; the message names the bad key.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Accelerator::FirstOrderNesterov { r } if !(r.is_finite() && *r >= 0.0) => {
                Err(format!("accelerator.r must be ≥ 0 and finite, got {r}"))
            }
            Accelerator::ConstantNesterov { lambda } if !(0.0..1.0).contains(lambda) => Err(
                format!("accelerator.lambda must be in [0, 1), got {lambda}"),
            ),
            _ => Ok(()),
        }
    }
}

/// The state an accelerator carries between updates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Momentum {
    /// The previous unaccelerated ensemble `u_k`.
    #[serde(with = "crate::serde_nalgebra::matrix")]
    pub u_prev: DMatrix<f64>,
    /// The previous `θ_k` of the Nesterov recurrence (1 initially).
    pub theta_prev: f64,
}

impl Momentum {
    /// The state before the first update, from the initial ensemble.
    pub fn new(initial: &DMatrix<f64>) -> Self {
        Self {
            u_prev: initial.clone(),
            theta_prev: 1.0,
        }
    }

    /// `v = u + c (u − u_prev)` for update number `k` (0-based: the number of
    /// updates applied before this one); records `u` as the new `u_prev`.
    pub fn accelerate(
        &mut self,
        accelerator: &Accelerator,
        u: DMatrix<f64>,
        k: usize,
    ) -> DMatrix<f64> {
        let c = match accelerator {
            Accelerator::None => return u,
            Accelerator::Nesterov => {
                let b = self.theta_prev * self.theta_prev;
                let theta = (-b + (b * b + 4.0 * b).sqrt()) / 2.0;
                let c = theta * (1.0 / self.theta_prev - 1.0);
                self.theta_prev = theta;
                c
            }
            // EKP.jl: k = get_N_iterations(ekp) + 3, before the new ensemble is stored.
            Accelerator::FirstOrderNesterov { r } => 1.0 - r / (k as f64 + 3.0),
            Accelerator::ConstantNesterov { lambda } => *lambda,
        };
        let v = &u + (&u - &self.u_prev) * c;
        self.u_prev = u;
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesterov_coefficients_follow_the_recurrence() {
        let u = DMatrix::from_element(1, 2, 0.0);
        let mut m = Momentum::new(&u);
        let mut coefficients = Vec::new();
        for k in 0..4 {
            let next = DMatrix::from_element(1, 2, (k + 1) as f64);
            let v = m.accelerate(&Accelerator::Nesterov, next.clone(), k);
            coefficients.push(v[(0, 0)] - next[(0, 0)]);
        }
        // c_0 = 0; c_1 = θ_2(1/θ_1 − 1) with θ_1 = (√5 − 1)/2.
        assert_eq!(coefficients[0], 0.0);
        let t1 = (5f64.sqrt() - 1.0) / 2.0;
        let b = t1 * t1;
        let t2 = (-b + (b * b + 4.0 * b).sqrt()) / 2.0;
        assert!((coefficients[1] - t2 * (1.0 / t1 - 1.0)).abs() < 1e-15);
        assert!(coefficients.windows(2).all(|w| w[1] > w[0]));
    }

    #[test]
    fn first_order_nesterov_starts_without_momentum() {
        let mut m = Momentum::new(&DMatrix::from_element(1, 1, 0.0));
        let v = m.accelerate(
            &Accelerator::first_order_nesterov(),
            DMatrix::from_element(1, 1, 1.0),
            0,
        );
        assert_eq!(v[(0, 0)], 1.0);
        let v = m.accelerate(
            &Accelerator::first_order_nesterov(),
            DMatrix::from_element(1, 1, 2.0),
            1,
        );
        assert!((v[(0, 0)] - (2.0 + 0.25)).abs() < 1e-15);
    }
}
