//! # ekp-models: forward models on the CPU
//!
//! Forward models G(θ) for ensemble Kalman processes, evaluated member by
//! member on the CPU, either serially or on rayon's thread pool. Every model
//! implements [`MemberModel`] (one member at a time); wrapping it in an
//! [`Ensemble`] gives an [`ekp_core::ForwardModel`] that evaluates a whole
//! `p × N` parameter matrix into a `d × N` output matrix.
//!
//! ## Models
//!
//! * [`Lorenz96`] — the default calibration problem, EnsembleKalmanProcesses.jl's
//!   Lorenz example (parameters `F`, `A`; four observables).
//! * [`Linear`] — G(θ) = Aθ + b.
//! * [`Sinusoid`] — EnsembleKalmanProcesses.jl's sinusoid example
//!   (parameters `amplitude`, `vert_shift`; outputs range and mean).
//!
//! ## Lorenz 96
//!
//! `n` sites on a periodic ring (indices mod `n`), with a time-dependent forcing:
//!
//! ```text
//! dx_i/dt = (x_{i+1} − x_{i−2}) x_{i−1} − x_i + F(t),    F(t) = F + A sin(ω t).
//! ```
//!
//! Without forcing the quadratic term conserves the energy Σ x_i², so
//! F = A = 0 gives Σ x_i²(t) = Σ x_i²(0) e^{−2t}; with A = 0, x_i ≡ F is a fixed
//! point.
//!
//! **Time stepping.** Classical fourth-order Runge–Kutta with step `dt`, from
//! t = 0. Step `j` (j = 1, 2, …) advances the state from t = (j−1)·dt to
//! t_j = j·dt; as in EKP.jl, the forcing is evaluated once per step, at the
//! *end-of-step* time t_j, and held for all four stages:
//!
//! ```text
//! k1 = f(x, F_j),  k2 = f(x + k1·dt/2, F_j),  k3 = f(x + k2·dt/2, F_j),  k4 = f(x + k3·dt, F_j)
//! x ← x + dt/6 · (k1 + 2 k2 + 2 k3 + k4),     F_j = F + A sin(ω t_j).
//! ```
//!
//! The scheme is fourth order for constant forcing; holding F(t) fixed over a
//! step makes it first order in the forcing's time variation (an O(A ω dt)
//! effect, tiny for the default ω = 2π/72). The initial state is a small
//! Gaussian perturbation (std 0.01 by default) of zero, drawn once from the
//! configuration's `seed` and shared by every member and the truth run.
//!
//! **Observables** (EKP.jl's `stats_type = 5`). Take the steps with
//! t_start < t_j < t_start + T. Split them, from the first, into `T/Ts`
//! consecutive sub-windows of `Ts/dt − 1` steps (63 with the defaults — EKP.jl's
//! choice; the few trailing steps are unused). For each sub-window take the
//! sample variance (divisor n − 1) of all `sites × (Ts/dt − 1)` values; the
//! observables are the means over consecutive groups of `Tfit` sub-windows,
//! `T / (Ts·Tfit)` of them (4 with the defaults: T = 72, Ts = 1, Tfit = 18).
//!
//! **Truth data** ([`Lorenz96::truth`]). One trajectory from t = 0 to
//! t_start + samples·T; the statistics above for each window
//! [t_start + T(i−1), t_start + T·i], i = 1..samples; y is their mean and Γ their
//! sample covariance (divisor samples − 1).
//!
//! A member whose state or outputs become non-finite (a diverging run, a NaN
//! parameter) gets a column of NaN; nothing panics.
//!
//! ## Serial or threads
//!
//! [`Execution`] picks how an [`Ensemble`] runs its members: `Serial` loops over
//! the columns on the calling thread; `Threads` hands the columns to rayon's
//! current thread pool (run inside `ThreadPool::install` to choose the thread
//! count). Members go to the model in batches of
//! [`MemberModel::batch_size`] consecutive columns through
//! [`MemberModel::evaluate_batch`]; each member's outputs are bit-identical
//! to [`MemberModel::evaluate_member`]'s, with no cross-member reduction, so
//! both executions give bit-identical outputs.
//!
//! ## The Lorenz 96 lanes kernel
//!
//! [`Lorenz96`] evaluates its batches with the [`lanes`] kernel:
//! [`lanes::LANES`] (8) members side by side, the state stored site-major
//! (`[f64; 8]` per site) so each RK4 operation is one SIMD instruction across
//! the members. The time loop is compiled for AVX-512, AVX2+FMA and the
//! baseline target and picked at run time (the `multiversion` crate), so a
//! plain release build uses the CPU's widest vectors. Every lane performs
//! the reference's operations in the reference's order, so results are
//! bit-identical to the per-member [`lorenz96::integrate`] (tested for lane
//! widths 1, 4, 8, 16, ensembles that are not a multiple of the width,
//! diverging members and `max_abs_state`). A member with non-finite
//! parameters fails without taking a lane; a member that diverges fails
//! alone (its lane keeps computing, the others are unaffected). The plain
//! per-member RK4 ([`lorenz96::rk4_step`], [`lorenz96::integrate`],
//! [`MemberModel::evaluate_member`], [`Lorenz96::truth`]) stays the
//! reference implementation.
//!
//! The same kernel runs in f32 ([`lanes::LaneState32`], [`lanes::LANES_F32`]
//! = 16 members side by side, [`Lorenz96::final_states_into_f32`]) with the
//! GPU's f32 conventions (sin in f64 rounded to f32, `F + A·s` in f32);
//! each f32 lane is bit-identical to the scalar f32 reference
//! [`lorenz96::integrate_f32`]. The calibration itself (`evaluate_batch`)
//! stays f64.

mod ensemble;
mod error;
pub mod lanes;
pub mod linear;
pub mod lorenz96;
pub mod sinusoid;

pub use ensemble::{Ensemble, Execution, MemberModel, ParseExecutionError};
pub use error::ModelsError;
pub use linear::Linear;
pub use lorenz96::{Forcing, Lorenz96, Lorenz96Config, Rk4Workspace};
pub use sinusoid::{Sinusoid, SinusoidConfig};
