//! # ekp-core: ensemble Kalman processes
//!
//! Calibrate the parameters θ ∈ ℝᵖ of a model `G: ℝᵖ → ℝᵈ` from data
//! `y = G(θ) + η`, `η ~ N(0, Γ)`, without derivatives of `G`. An ensemble of `N`
//! parameter vectors `u_1 … u_N` (columns of a `p × N` matrix) is run through the
//! model, and a Kalman-type update moves it toward the data. The numerics follow
//! EnsembleKalmanProcesses.jl (EKP.jl); where they deliberately differ, the item's
//! documentation says so.
//!
//! This crate is the update only — pure numerics on nalgebra, no I/O, no threads,
//! no model code. It is *ask/tell*: a driver asks for the ensemble
//! ([`EnsembleKalmanProcess::constrained_ensemble`]), runs the model however it
//! likes (threads, a GPU, a cluster: see `ekp-models` and `ekp-cli`), and tells
//! the outputs back ([`EnsembleKalmanProcess::update`]).
//!
//! ## Priors and constraints ([`prior`], [`constraint`])
//!
//! Each parameter has a Gaussian prior in an *unconstrained* space, mapped to its
//! physical range by a [`Constraint`]: below `lb`: `u = ln(x − lb)`; above `ub`:
//! `u = ln(ub − x)`; both: `u = ln((x − lb)/(ub − x))`. The processes work on `u`;
//! models see `x`. [`ParameterPrior::constrained_gaussian`] picks the
//! unconstrained Gaussian whose constrained mean and std are the ones asked for
//! (closed form for one bound, moment matching by quadrature for two).
//!
//! ## Ensemble Kalman inversion ([`process::inversion`])
//!
//! With the ensemble means `ū`, `ḡ` and the covariances normalised by `1/N`,
//! `C^{ug} = (1/N) Σ_j (u_j − ū)(g_j − ḡ)ᵀ`, `C^{gg} = (1/N) Σ_j (g_j − ḡ)(g_j − ḡ)ᵀ + √ε I`,
//! each member moves by
//!
//! ```text
//! u_j ← u_j + C^{ug} (C^{gg} + Γ/Δt)⁻¹ (y_j − g_j),   y_j = y + ξ_j,  ξ_j ~ N(0, Γ/Δt)
//! ```
//!
//! (`ξ_j = 0` without perturbation). With `impose_prior`, `g` is extended by `u`,
//! `y` by the prior mean `m₀` and `Γ` by the prior covariance `Σ₀`: the iteration
//! then converges to the minimiser of `‖y − G(u)‖²_Γ + ‖u − m₀‖²_{Σ₀}`, the
//! posterior mean for a linear `G`. The system is solved (Cholesky, LU as a
//! fallback), never inverted.
//!
//! ## Ensemble transform Kalman inversion ([`process::transform_inversion`])
//!
//! With anomalies `X = (u − ū)/√(N−1)`, `Y = (g − ḡ)/√(N−1)`:
//!
//! ```text
//! Ω = (I + Δt Yᵀ Γ⁻¹ Y)⁻¹,   w = Δt Ω Yᵀ Γ⁻¹ (y − ḡ),   u ← ū 1ᵀ + X (w 1ᵀ + √(N−1) Ω^{½})
//! ```
//!
//! Only `N × N` matrices are factorised; `Γ` is applied through its own form
//! (scalar, diagonal, full Cholesky: [`NoiseCovariance`]). For a linear model and
//! `Δt = 1` this is exactly the Kalman update of the ensemble's Gaussian.
//!
//! ## Step size ([`Scheduler`])
//!
//! `fixed`: the same `Δt` each update. `data-misfit` (Iglesias & Yang 2021, EKP.jl's
//! `DataMisfitController`): with `Φ_j = ½‖Γ^{-½}(y − g_j)‖²`,
//! `Δt = min(max(d/(2⟨Φ⟩), √(d/(2 var Φ))), T − Σ Δt)`, and the process stops once
//! `Σ Δt = T` (`terminate_at`).
//!
//! ## Failed members ([`FailurePolicy`])
//!
//! A member whose outputs contain NaN or ±∞ has failed. `sample-success-gauss`
//! (EKP.jl's `SampleSuccGauss`) updates the successful members only and redraws
//! the failed ones from the Gaussian of the updated successful members; `ignore`
//! refuses the update ([`EkpError::FailedMembers`]). Fewer than two successful
//! members is always an error; an error never changes the process (its RNG
//! included).
//!
//! ## Reproducibility
//!
//! One seeded ChaCha20 stream draws the initial ensemble and every perturbation,
//! in a fixed order that does not depend on which members failed. The process is
//! serde-serialisable, RNG included: save → load → continue equals an
//! uninterrupted run.
//!
//! ## Example
//!
//! ```
//! use ekp_core::{EnsembleKalmanProcess, Inversion, NoiseCovariance, Observation,
//!                ParameterPrior, Prior, Process, Scheduler};
//! use nalgebra::{DMatrix, DVector};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let prior = Prior::new(vec![ParameterPrior::gaussian("theta", 0.0, 1.0, 2)?])?;
//! let obs = Observation::new(DVector::from_vec(vec![1.0, -1.0]), NoiseCovariance::scalar_std(0.1, 2)?)?;
//! let mut ekp = EnsembleKalmanProcess::builder(prior, obs, Process::Inversion(Inversion::default()))
//!     .ensemble_size(10)
//!     .seed(3)
//!     .scheduler(Scheduler::Fixed { dt: 1.0 })
//!     .build()?;
//! for _ in 0..20 {
//!     let g: DMatrix<f64> = ekp.constrained_ensemble(); // G(θ) = θ
//!     ekp.update(&g)?;
//! }
//! let m = ekp.constrained_mean();
//! assert!((m[0] - 1.0).abs() < 0.05 && (m[1] + 1.0).abs() < 0.05);
//! # Ok(())
//! # }
//! ```

pub mod constraint;
pub mod ensemble_kalman_process;
pub mod error;
pub mod failure;
pub mod linalg;
pub mod model;
pub mod observation;
pub mod prior;
pub mod process;
mod quadrature;
pub mod scheduler;
pub mod serde_nalgebra;

pub use constraint::Constraint;
pub use ensemble_kalman_process::{
    EkpBuilder, EnsembleKalmanProcess, ErrorMetrics, UpdateOutcome, UpdateReport,
};
pub use error::EkpError;
pub use failure::FailurePolicy;
pub use model::{ForwardModel, ModelError};
pub use observation::{NoiseCovariance, Observation, ObservationError};
pub use prior::{ParameterPrior, Prior, PriorError};
pub use process::{Inversion, Process, TransformInversion};
pub use scheduler::Scheduler;
