//! # ekp-core: ensemble Kalman processes
//!
//! Calibrate the parameters θ ∈ ℝᵖ of a model `G: ℝᵖ → ℝᵈ` from data
//! `y = G(θ) + η`, `η ~ N(0, Γ)`, without derivatives of `G`. An ensemble of `N`
//! parameter vectors `u_1 … u_N` (columns of a `p × N` matrix) is run through the
//! model, and a Kalman-type update moves it toward the data. The numerics follow
//! EnsembleKalmanProcesses.jl (EKP.jl); where they deliberately differ, the item's
//! documentation says so.
//!
//! This crate is the update only — pure numerics on nalgebra, no I/O, no model
//! code. It is *ask/tell*: a driver asks for the ensemble
//! ([`EnsembleKalmanProcess::constrained_ensemble`]), runs the model however it
//! likes (threads, a GPU, a cluster: see `ekp-models` and `ekp-cli`), and tells
//! the outputs back ([`EnsembleKalmanProcess::update`]).
//!
//! The update itself uses rayon's current thread pool for its own linear
//! algebra: the scan of the outputs for non-finite values, the row-block
//! Gram matrices of the low-rank forms, the copy of large outputs into the
//! history, and sparse EKI's per-member projections. Work is split in
//! fixed-size chunks summed in a fixed order, so results do not depend on the
//! number of threads; a caller that wants the update on one thread runs it
//! inside a one-thread rayon pool (`ThreadPool::install`).
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
//! (`ξ_j = 0` without perturbation, which is always the case under an
//! accelerator, as in EKP.jl). With `impose_prior`, `g` is extended by `u`,
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
//! ## Large outputs: the low-rank form
//!
//! With a diagonal `Γ` (scalar or diagonal [`NoiseCovariance`]), no localizer
//! and more outputs `d` than members `N`, EKI uses the Woodbury identity: with
//! `D = Γ/Δt + √ε I` and `G` the output anomalies,
//!
//! ```text
//! u_j ← u_j + (1/N) U Gᵀ [D⁻¹ − D⁻¹ G (N I + Gᵀ D⁻¹ G)⁻¹ Gᵀ D⁻¹] (y_j − g_j)
//! ```
//!
//! needs only the `N × N` matrices `Gᵀ D⁻¹ G` and `Gᵀ D⁻¹ (y_j − g_j)`,
//! accumulated over blocks of output rows (`O(N² d + N³)`, no `d × d` matrix,
//! no copy of `g`); ETKI streams the same way. Both equal the dense forms to
//! round-off. [`EnsembleKalmanProcess::update_owned`] keeps told outputs
//! without a copy, and [`HistoryPolicy::Last`] keeps only the newest ones.
//!
//! ## The other processes ([`process`])
//!
//! - EKS and ALDI ([`process::sampler`]; ALDI by default, as EKP.jl's
//!   `Sampler(prior)`): the semi-implicit step
//!   `u* = (I + Δt C Σ₀⁻¹)⁻¹ (u − Δt U D + Δt C Σ₀⁻¹ m₀)` plus
//!   `√(2Δt) C^{½} ξ` noise (ALDI: its finite-sample correction and
//!   `J^{-½} U Z` noise), which samples the posterior.
//! - UKI and UTKI ([`process::unscented`]): the process carries its own
//!   Gaussian `N(m, C)`, predicted (`m̂ = α m + (1 − α) m₀`,
//!   `Ĉ = α² C + Δt Σ_ω`) and analysed from `2p + 1` or `p + 2` sigma points
//!   with noise `2Γ/Δt`; UTKI is the Woodbury form of the same analysis.
//! - GNKI ([`process::gauss_newton`]): a Gauss–Newton step with the
//!   ensemble's linearisation `C^{gu} C^{uu}⁻¹` and the prior.
//! - Sparse EKI ([`process::sparse_inversion`]): the EKI step `a_j`, then
//!   `argmin ½ (u − a_j)ᵀ C_post⁻¹ (u − a_j)` subject to `Σ_{i∈S} |u_i| ≤ γ`,
//!   solved per member by clarabel.
//!
//! Each module states its equations, EKP.jl's normalisations and where we
//! deliberately differ (the README's "Differences from EKP.jl" gathers them,
//! with their reasons and sizes). Inflation ([`Inflation`]) scales the ensemble
//! covariance by `1/(1 − sΔt)` (multiplicative) or adds `sΔt/(1 − sΔt) Σ₀`
//! (additive) after an update; [`warnings`] are EKP.jl's warnings, returned
//! rather than printed.
//!
//! ## Step size ([`Scheduler`])
//!
//! `fixed`: the same `Δt` each update. `data-misfit` (Iglesias & Yang 2021, EKP.jl's
//! `DataMisfitController`): with `Φ_j = ½‖Γ^{-½}(y − g_j)‖²`,
//! `Δt = min(max(d/(2⟨Φ⟩), √(d/(2 var Φ))), T − Σ Δt)`; once `Σ Δt = T`
//! (`terminate_at`) the process stops, or goes on (`on_terminate = continue`:
//! uncapped steps; `continue-fixed`: the last step repeated). `eks-stable`:
//! `Δt = α/(‖D‖_F + nugget)`, `D = (1/J)(g − ḡ)ᵀΓ⁻¹(g − y)`.
//! [`EnsembleKalmanProcess::update_with_dt`] overrides the step of one update.
//!
//! ## Localization ([`Localizer`])
//!
//! With few members, EKI's update is confined to the span of the ensemble.
//! Localizers (`delta`, `rbf`, `bernoulli-dropout`, `sec`, `sec-fisher`,
//! `sec-nice`) modify `C^{ug}` and `C^{gg}` as EKP.jl's `localize` does on the
//! joint covariance of `[u; g]`; see [`localization`].
//!
//! ## Failed members ([`FailurePolicy`], [`failure`])
//!
//! A member with more than 10 % (`nan_tolerance`) non-finite outputs has
//! failed; isolated non-finite outputs of the others are imputed with the row
//! mean (EKP.jl's `impute_over_nans`). `sample-success-gauss` (EKP.jl's
//! `SampleSuccGauss`) updates the successful members only and redraws the
//! failed ones from the Gaussian of the updated successful members; `ignore`
//! refuses the update ([`EkpError::FailedMembers`]). Fewer than two successful
//! members is always an error; an error never changes the process (its RNG
//! included). [`UpdateReport`] names the failed members and imputed values.
//!
//! ## Acceleration ([`Accelerator`])
//!
//! Nesterov-type momentum on the ensemble: `nesterov`, `first-order-nesterov`
//! (`r`), `constant-nesterov` (`λ`), as EKP.jl's `Accelerators.jl`; EKI does
//! not perturb the observations when an accelerator is used. See [`accelerator`].
//!
//! ## Observation series and minibatches ([`ObservationSeries`])
//!
//! Several observations, fitted a minibatch at a time (`fixed` or
//! `random-fixed-size` minibatchers, epochs), as EKP.jl's `ObservationSeries`.
//! See [`observation_series`].
//!
//! ## Update groups ([`UpdateGroup`])
//!
//! Parameters updated from chosen subsets of the outputs, one update per group.
//! See [`update_group`].
//!
//! ## Defaults
//!
//! Options a builder is not given take EKP.jl's defaults for the process: for
//! EKI (`Inversion()`) data-misfit with `terminate_at = 1`, `sec-nice`,
//! `sample-success-gauss`, `nesterov`; for ETKI data-misfit,
//! no localization, `sample-success-gauss`, no accelerator.
//!
//! ## Reproducibility
//!
//! One seeded ChaCha20 stream (stream 0) draws the initial ensemble and then,
//! update by update and group by group: the EKI perturbations (for all `N`
//! members, so the draws do not depend on which failed), the
//! `bernoulli-dropout` kernel, the redraws of failed members. The minibatcher
//! draws from stream 1 of the same seed. The process is serde-serialisable —
//! RNG, momentum and minibatch position included: save → load → continue
//! equals an uninterrupted run.
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
//! // EKP.jl's defaults for EKI (sec-nice localization, Nesterov momentum), fixed Δt.
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

pub mod accelerator;
pub mod constraint;
mod dense;
pub mod ensemble_kalman_process;
pub mod error;
pub mod failure;
pub mod inflation;
pub mod linalg;
pub mod localization;
mod lowrank;
pub mod model;
pub mod observation;
pub mod observation_series;
pub mod prior;
pub mod process;
mod quadrature;
pub mod scheduler;
pub mod serde_nalgebra;
pub mod update_group;
pub mod warnings;

pub use accelerator::{Accelerator, Momentum};
pub use constraint::Constraint;
pub use ensemble_kalman_process::{
    Assessment, EkpBuilder, EnsembleKalmanProcess, ErrorMetrics, HistoryPolicy, UpdateOutcome,
    UpdateReport,
};
pub use error::EkpError;
pub use failure::{FailurePolicy, ImputedValue};
pub use inflation::Inflation;
pub use localization::Localizer;
pub use model::{ForwardModel, ModelError};
pub use observation::{NoiseCovariance, Observation, ObservationError};
pub use observation_series::{MinibatchPosition, Minibatcher, ObservationSeries, Remainder};
pub use prior::{ParameterPrior, Prior, PriorError};
pub use process::{
    GaussNewton, Inversion, Process, Sampler, SamplerType, SigmaPoints, SparseInversion,
    TransformInversion, Unscented, UnscentedState,
};
pub use scheduler::{OnTerminate, Scheduler};
pub use update_group::UpdateGroup;
pub use warnings::Warning;
