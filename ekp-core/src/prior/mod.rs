//! Priors: independent (transformed) Gaussian priors on named parameters.
//!
//! Every scalar component `x` of a parameter is `x = T⁻¹(u)` with `u ~ N(μ_u, σ_u²)`
//! and `T` its [`Constraint`](crate::Constraint)'s map to the real line. The ensemble Kalman processes
//! work with `u` (the *unconstrained* space); models see `x` (the *constrained* space).
//!
//! [`ParameterPrior::constrained_gaussian`] is EnsembleKalmanProcesses.jl's
//! `constrained_gaussian`: it picks `(μ_u, σ_u)` so that the *constrained*
//! distribution has a given mean and standard deviation.
//!
//! - Neither bound: `x = u`, so `μ_u, σ_u` are the targets.
//! - One bound: `x − lb` (or `ub − x`) is lognormal, and the closed form
//!   `μ_u = ln μ' − ½ ln(1 + (σ/μ')²)`, `σ_u = √ln(1 + (σ/μ')²)` (`μ'` the distance of the
//!   mean from the bound) is exact.
//! - Two bounds: `(x − lb)/(ub − lb)` is logistic-normal, whose moments have no closed
//!   form. They are computed by quadrature (`crate::quadrature`) and matched by two
//!   nested, bracketed Newton solves: for a trial `σ_u`, the `μ_u` that gives the target
//!   mean (the mean increases with `μ_u`); then the `σ_u` at which the std along that
//!   curve reaches the target (it increases with `σ_u`, from 0 towards the largest std
//!   possible on the interval, `√((mean − lb)(ub − mean))`, reached when all mass sits
//!   on the bounds). Targets at or above that limit, or that need `σ_u > 100`, are
//!   refused with [`PriorError::MomentMatch`]. (EKP.jl asks for
//!   `lb < mean − std` and `mean + std < ub`, a stricter condition; its optimiser matches
//!   the moments to ~1e-5, ours to ~1e-10.)
//!
//! Files: `distribution` ([`ParameterPrior`], [`Prior`]), `constrained` (the
//! constrained space: moments, quantiles, the maps), `moments` (the moment
//! fitting above), `quantile` ([`standard_normal_quantile`]).

mod constrained;
mod distribution;
mod moments;
mod quantile;

pub use crate::error::PriorError;
pub use distribution::{ParameterPrior, Prior};
pub use quantile::standard_normal_quantile;
