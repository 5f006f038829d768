//! Sparse ensemble Kalman inversion (Schneider, Stuart & Wu 2022, eqs. 3.7 and
//! 3.14), as EKP.jl's `SparseInversion`.
//!
//! Each member first takes the EKI step of [`super::inversion`]
//! (`impose_prior = false`),
//!
//! ```text
//! a_j = u_j + C^{ug} (C^{gg} + Γ/Δt)⁻¹ (y_j − g_j),
//! ```
//!
//! and is then projected, in the metric of the ensemble's posterior
//! covariance, onto the ℓ1 ball of radius `γ` in the chosen parameters `S`
//! (EKP.jl's `uc_idx`):
//!
//! ```text
//! u_j = argmin_u ½ (u − a_j)ᵀ C_post⁻¹ (u − a_j)   subject to   Σ_{i∈S} |u_i| ≤ γ,
//! C_post = C^{uu} − C^{ug} (C^{gg} + Γ/Δt)⁻¹ C^{gu}.
//! ```
//!
//! The covariances are those of EKI (normalised by `1/n`, `√ε` added to the
//! diagonal of the joint covariance, `C^{ug}` and `C^{gg}` localized). A
//! localizer can make `C_post` indefinite (and round-off can where the
//! ensemble is rank-deficient): then its eigenvalues are raised to at least
//! `√ε λ_max` (EKP.jl hands such a matrix to its solver as is, declaring it
//! positive semi-definite). Then,
//! as in EKP.jl, the chosen parameters with `|u_i| ≤ threshold` are set to
//! zero, and with `reg > 0` every chosen parameter gets `N(0, reg)` noise.
//!
//! This is EKP.jl's quadratic programme written in fewer variables. EKP.jl's
//! `sparse_qp` minimises, over the joint vector `x = [u; g]`,
//! `½ ‖y_j − g‖²_Γ + ½ ‖x − v_j‖²_{C^{vv}}` (with `v_j = [u_j; g_j]` and
//! `C^{vv}` the joint ensemble covariance) under the same ℓ1 constraint, which
//! involves `u` only. Minimising over `g` first leaves exactly the problem
//! above (the Schur complement of the joint precision is `C_post⁻¹`, and the
//! unconstrained minimiser is the EKI update), so the solutions agree; the
//! problem does not grow with `d`, and no inverse of the (nearly singular)
//! joint covariance is formed: with `C_post = L Lᵀ` (Cholesky), the
//! constraint `u = a_j + L w` and the objective `½ ‖w‖²`. Each member's
//! problem is a convex QP in `(u, w, t)` (`2p + |S|` variables) with `p`
//! equalities and `2|S| + 1` linear inequalities (`t_i ≥ ±u_i`,
//! `Σ t_i ≤ γ`), solved by the interior-point solver
//! [`clarabel`]; members are solved in parallel (rayon), and the answer does
//! not depend on the number of threads.
//!
//! Deliberate differences from EKP.jl:
//! - EKP.jl's `sparse_qp` uses the unscaled `Γ` while its EKI step and data
//!   perturbation use `Γ/Δt`; the QP's unconstrained minimiser is then the
//!   EKI update with `Δt = 1` and the Δt-scaled EKI step is discarded. Here
//!   `Γ/Δt` is used throughout, so the projection is that of the EKI update
//!   actually taken. With EKP.jl's default (fixed `Δt = 1`) the two agree.
//! - When the EKI update already satisfies the constraint
//!   (`Σ_{i∈S} |a_i| ≤ γ`) it is the exact minimiser and is kept as is (no
//!   solver call); with `γ = 0` the minimiser is the closed form
//!   `u = a − C_post[:, S] C_post[S, S]⁻¹ a_S` (exact zeros, no solver call,
//!   whose interior-point method has no strictly feasible point then).
//! - `C^{uu}` is not localized (EKP.jl localizes the whole joint covariance;
//!   here, as for EKI and GNKI, the localizer acts on `C^{ug}` and `C^{gg}`).
//! - EKP.jl solves with SCS (a first-order conic solver, default tolerances
//!   about `1e-4`); clarabel solves to about `1e-8`.
//! - Update groups are not supported (EKP.jl's sparse update ignores them
//!   too: it always updates the whole ensemble).
//!
//! The parameters outside `S` are not constrained, but they move with the
//! projection where `C_post` correlates them with those in `S` (as in
//! EKP.jl); they are unchanged where it does not.
//!
//! EKP.jl's defaults: fixed `Δt = 1`, `sec-nice` localization,
//! `sample-success-gauss`, no accelerator; `threshold = 0`, `reg = 0`,
//! `S` = every parameter. `γ` has no default.

use clarabel::algebra::CscMatrix;
use clarabel::solver::{
    DefaultSettings, DefaultSolver, IPSolver, NonnegativeConeT, SolverStatus, SupportedConeT,
    ZeroConeT,
};
use nalgebra::{DMatrix, DVector, SymmetricEigen};
use rand::Rng;
use rand_distr::StandardNormal;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use rand_chacha::ChaCha20Rng;

use super::{ProcessStep, StepInput, inversion};
use crate::accelerator::Accelerator;
use crate::error::EkpError;
use crate::failure::FailurePolicy;
use crate::linalg::{anomalies, solve_spd};
use crate::localization::Localizer;
use crate::lowrank::Perturbation;
use crate::observation::NoiseCovariance;
use crate::scheduler::Scheduler;

/// Settings of sparse EKI (EKP.jl's `SparseInversion`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SparseInversion {
    /// `γ ≥ 0`: the upper limit of the ℓ1 norm `Σ_{i∈S} |u_i|` of the chosen
    /// parameters of each member (EKP.jl's `γ`, no default). Smaller is
    /// sparser; `0` sets them all to zero.
    pub gamma: f64,
    /// After the projection, chosen parameters with `|u_i| ≤ threshold` are
    /// set to zero (EKP.jl's `threshold_value`, default `0`: no pruning
    /// beyond exact zeros).
    #[serde(default)]
    pub threshold: f64,
    /// Variance of the `N(0, reg)` noise added to every chosen parameter
    /// after pruning (EKP.jl's `reg`, default `0`: none).
    #[serde(default)]
    pub reg: f64,
    /// The chosen parameters `S` (0-based indices into the unconstrained
    /// parameter vector; EKP.jl's `uc_idx`). `None`: all of them (the
    /// default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sparse_indices: Option<Vec<usize>>,
    /// Perturb the data of each member with `N(0, Γ/Δt)` noise (EKP.jl's
    /// default for a deterministic forward map). Ignored (no perturbation)
    /// when an accelerator is used, as for EKI.
    #[serde(default = "default_true")]
    pub perturb_observations: bool,
}

fn default_true() -> bool {
    true
}

impl SparseInversion {
    /// EKP.jl's defaults with the ℓ1 limit `gamma`: `threshold = 0`,
    /// `reg = 0`, every parameter chosen, perturbed observations.
    pub fn new(gamma: f64) -> Self {
        Self {
            gamma,
            threshold: 0.0,
            reg: 0.0,
            sparse_indices: None,
            perturb_observations: true,
        }
    }

    /// Checks the settings for `p` parameters: `γ`, `threshold`, `reg`
    /// finite and `≥ 0`; the indices in `0..p`, without repeats, not empty.
    pub fn validate(&self, p: usize) -> Result<(), String> {
        for (name, v) in [
            ("gamma", self.gamma),
            ("threshold", self.threshold),
            ("reg", self.reg),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!(
                    "sparse-inversion: {name} must be ≥ 0 and finite, got {v}"
                ));
            }
        }
        if let Some(idx) = &self.sparse_indices {
            if idx.is_empty() {
                return Err(
                    "sparse-inversion: the list of sparse parameters is empty; leave it out to \
                     choose every parameter"
                        .to_string(),
                );
            }
            let mut seen = vec![false; p];
            for &i in idx {
                match seen.get_mut(i) {
                    None => {
                        return Err(format!(
                            "sparse-inversion: sparse parameter index {i} is out of range \
                             (there are {p} parameters, indices 0..{p})"
                        ));
                    }
                    Some(true) => {
                        return Err(format!(
                            "sparse-inversion: sparse parameter index {i} is given twice"
                        ));
                    }
                    Some(s) => *s = true,
                }
            }
        }
        Ok(())
    }

    /// The chosen indices `S` for `p` parameters.
    pub fn indices(&self, p: usize) -> Vec<usize> {
        match &self.sparse_indices {
            Some(idx) => idx.clone(),
            None => (0..p).collect(),
        }
    }
}

/// EKP.jl's defaults for `SparseInversion`: fixed `Δt = 1`, `sec-nice`,
/// `sample-success-gauss`, no accelerator.
impl ProcessStep for SparseInversion {
    fn default_scheduler(&self) -> Scheduler {
        Scheduler::Fixed { dt: 1.0 }
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
        Accelerator::None
    }
    fn impose_prior(&self) -> bool {
        false
    }
    fn perturb_observations(&self) -> bool {
        self.perturb_observations
    }
    fn multiplicative_inflation(&self) -> f64 {
        0.0
    }

    /// Draws the EKI step's perturbations exactly as EKI draws them, then
    /// [`update`]'s draws; a failed projection names the member in the whole
    /// ensemble (1-based).
    fn step(&self, input: &StepInput<'_>, rng: &mut ChaCha20Rng) -> Result<DMatrix<f64>, EkpError> {
        let g_ok = input.dense_outputs();
        let perturbation = input
            .perturb
            .then(|| Perturbation::draw(rng, input.members));
        let y_ok = input.perturbed_data(perturbation.as_ref());
        update(
            self,
            input.u,
            &g_ok,
            &y_ok,
            input.obs.noise(),
            input.dt,
            input.localizer,
            rng,
        )
        .map_err(|e| match e {
            EkpError::SparseProjection {
                member: Some(k),
                status,
            } => EkpError::SparseProjection {
                member: k
                    .checked_sub(1)
                    .and_then(|i| input.successful().get(i))
                    .map(|j| j + 1),
                status,
            },
            other => other,
        })
    }
}

/// One sparse EKI update of the members `u` with outputs `g` against the
/// (possibly perturbed) data columns `y`: the EKI step, then the projection
/// of every member, pruning and `reg` noise. Draws, in order: the localizer's
/// (as EKI), the `reg` noise (member by member). A failed projection is
/// reported with the 1-based column of `u`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn update<R: Rng + Clone>(
    settings: &SparseInversion,
    u: &DMatrix<f64>,
    g: &DMatrix<f64>,
    y: &DMatrix<f64>,
    noise: &NoiseCovariance,
    dt: f64,
    localizer: &Localizer,
    rng: &mut R,
) -> Result<DMatrix<f64>, EkpError> {
    let (p, n) = u.shape();
    let d = g.nrows();
    // The localizer's draws (bernoulli-dropout) are replayed from a copy of
    // the generator so that the projection sees the EKI step's kernel.
    let mut rng_localizer = rng.clone();
    let a = inversion::update(u, g, y, noise, dt, None, localizer, rng)?;

    let (_, ua) = anomalies(u);
    let (_, ga) = anomalies(g);
    let inv_n = 1.0 / n as f64;
    let eps = f64::EPSILON.sqrt();
    let mut c_uu = (&ua * ua.transpose()) * inv_n;
    let mut c_ug = (&ua * ga.transpose()) * inv_n;
    let mut c_gg = (&ga * ga.transpose()) * inv_n;
    for i in 0..p {
        c_uu[(i, i)] += eps;
    }
    for i in 0..d {
        c_gg[(i, i)] += eps;
    }
    if !localizer.is_none() {
        let var_u = if localizer.needs_parameter_variances() {
            DVector::from_iterator(p, (0..p).map(|i| c_uu[(i, i)]))
        } else {
            DVector::zeros(0)
        };
        localizer.localize_blocks(&mut c_ug, &mut c_gg, &var_u, n, &mut rng_localizer);
    }
    noise.add_scaled_to(&mut c_gg, 1.0 / dt);
    let gain_t = solve_spd(c_gg, &c_ug.transpose()).ok_or(EkpError::Singular {
        what: "C^gg + Γ/Δt",
    })?;
    let mut c_post = c_uu - &c_ug * gain_t;
    c_post = (&c_post + c_post.transpose()) * 0.5;
    if c_post.clone().cholesky().is_none() {
        c_post = clamp_eigenvalues(c_post);
    }

    let indices = settings.indices(p);
    let projected: Vec<Result<DVector<f64>, String>> = (0..n)
        .into_par_iter()
        .map(|j| project(&a.column(j).into_owned(), &c_post, &indices, settings.gamma))
        .collect();
    let mut out = DMatrix::zeros(p, n);
    for (j, r) in projected.into_iter().enumerate() {
        let col = r.map_err(|status| EkpError::SparseProjection {
            member: Some(j + 1),
            status,
        })?;
        out.set_column(j, &col);
    }
    for j in 0..n {
        for &i in &indices {
            if out[(i, j)].abs() <= settings.threshold {
                out[(i, j)] = 0.0;
            }
        }
        if settings.reg > 0.0 {
            let s = settings.reg.sqrt();
            for &i in &indices {
                out[(i, j)] += s * rng.sample::<f64, _>(StandardNormal);
            }
        }
    }
    Ok(out)
}

/// The projection of `center` (`a`) onto `{u : Σ_{i∈indices} |u_i| ≤ gamma}`
/// in the metric of `covariance` (`C`, symmetric positive definite):
/// `argmin ½ (u − a)ᵀ C⁻¹ (u − a)` subject to the constraint. With `C = c I`
/// this is the Euclidean projection onto the ℓ1 ball (soft thresholding of
/// the chosen components at the level that makes their ℓ1 norm `gamma`).
/// Exact when `a` is feasible (returned as is) or `gamma = 0` (closed form);
/// otherwise solved by clarabel (to about `1e-8`). The error
/// ([`EkpError::SparseProjection`], no member) carries clarabel's status or
/// names the failing step.
pub fn l1_projection(
    center: &DVector<f64>,
    covariance: &DMatrix<f64>,
    indices: &[usize],
    gamma: f64,
) -> Result<DVector<f64>, EkpError> {
    project(center, covariance, indices, gamma).map_err(|status| EkpError::SparseProjection {
        member: None,
        status,
    })
}

/// [`l1_projection`] with the failure as text.
fn project(
    center: &DVector<f64>,
    covariance: &DMatrix<f64>,
    indices: &[usize],
    gamma: f64,
) -> Result<DVector<f64>, String> {
    let p = center.len();
    if covariance.shape() != (p, p) {
        return Err(format!(
            "covariance is {}×{}, expected {p}×{p}",
            covariance.nrows(),
            covariance.ncols()
        ));
    }
    if let Some(&i) = indices.iter().find(|&&i| i >= p) {
        return Err(format!("index {i} out of range for {p} parameters"));
    }
    let l1: f64 = indices.iter().map(|&i| center[i].abs()).sum();
    if l1 <= gamma {
        return Ok(center.clone());
    }
    if gamma <= 0.0 {
        // u = a − C[:, S] C[S, S]⁻¹ a_S: the minimiser with u_S = 0.
        let k = indices.len();
        let c_ss = DMatrix::from_fn(k, k, |r, s| covariance[(indices[r], indices[s])]);
        let c_s = DMatrix::from_fn(p, k, |r, s| covariance[(r, indices[s])]);
        let a_s = DMatrix::from_fn(k, 1, |r, _| center[indices[r]]);
        let x = solve_spd(c_ss, &a_s).ok_or("C[S, S] is singular")?;
        let mut u = center - c_s * x.column(0);
        for &i in indices {
            u[i] = 0.0;
        }
        return Ok(u);
    }
    let l = covariance
        .clone()
        .cholesky()
        .ok_or("the posterior covariance is not positive definite")?
        .l();
    let k = indices.len();
    // Variables x = [u (p); w (p); t (k)]; minimise ½‖w‖² with u = a + L w.
    // u is a variable of its own so that the ℓ1 rows act on it directly (the
    // solver's residuals are then those of u, not amplified by L).
    // Rows (A x + s = b):
    //   zero cone, i < p   : u_i − (L w)_i = a_i
    //   nonnegative cone   : u_i − t_r ≤ 0,  −u_i − t_r ≤ 0  (r-th chosen i),
    //                        Σ t ≤ γ
    let nvar = 2 * p + k;
    let m = p + 2 * k + 1;
    let mut a_dense = DMatrix::<f64>::zeros(m, nvar);
    let mut b = vec![0.0; m];
    for i in 0..p {
        a_dense[(i, i)] = 1.0;
        for c in 0..=i {
            a_dense[(i, p + c)] = -l[(i, c)];
        }
        b[i] = center[i];
    }
    for (r, &i) in indices.iter().enumerate() {
        a_dense[(p + r, i)] = 1.0;
        a_dense[(p + r, 2 * p + r)] = -1.0;
        a_dense[(p + k + r, i)] = -1.0;
        a_dense[(p + k + r, 2 * p + r)] = -1.0;
        a_dense[(p + 2 * k, 2 * p + r)] = 1.0;
    }
    b[p + 2 * k] = gamma;
    let a_csc = dense_to_csc(&a_dense);
    // P = diag(0_p, I_p, 0_k), upper triangular as clarabel wants.
    let p_csc = CscMatrix::new(
        nvar,
        nvar,
        (0..=nvar).map(|c| c.saturating_sub(p).min(p)).collect(),
        (p..2 * p).collect(),
        vec![1.0; p],
    );
    let q = vec![0.0; nvar];
    let cones: [SupportedConeT<f64>; 2] = [ZeroConeT(p), NonnegativeConeT(2 * k + 1)];
    let settings = DefaultSettings {
        verbose: false,
        ..DefaultSettings::default()
    };
    let mut solver = DefaultSolver::new(&p_csc, &q, &a_csc, &b, &cones, settings)
        .map_err(|e| format!("clarabel rejected the problem: {e}"))?;
    solver.solve();
    match solver.solution.status {
        SolverStatus::Solved | SolverStatus::AlmostSolved => {}
        status => return Err(format!("clarabel stopped with status {status:?}")),
    }
    Ok(DVector::from_column_slice(&solver.solution.x[..p]))
}

/// The symmetric `c` with its eigenvalues raised to at least `√ε λ_max`
/// (`λ_max` the largest in magnitude, at least the smallest normal number).
fn clamp_eigenvalues(c: DMatrix<f64>) -> DMatrix<f64> {
    let eig = SymmetricEigen::new(c);
    let scale = eig
        .eigenvalues
        .iter()
        .fold(f64::MIN_POSITIVE, |m, l| m.max(l.abs()));
    let floor = f64::EPSILON.sqrt() * scale;
    let q = &eig.eigenvectors;
    let clamped = eig.eigenvalues.map(|l| l.max(floor));
    let out = q * DMatrix::from_diagonal(&clamped) * q.transpose();
    (&out + out.transpose()) * 0.5
}

/// A dense matrix in clarabel's compressed-column form (zeros dropped).
fn dense_to_csc(m: &DMatrix<f64>) -> CscMatrix<f64> {
    let (rows, cols) = m.shape();
    let mut colptr = Vec::with_capacity(cols + 1);
    let mut rowval = Vec::new();
    let mut nzval = Vec::new();
    colptr.push(0);
    for c in 0..cols {
        for r in 0..rows {
            let v = m[(r, c)];
            if v != 0.0 {
                rowval.push(r);
                nzval.push(v);
            }
        }
        colptr.push(rowval.len());
    }
    CscMatrix::new(rows, cols, colptr, rowval, nzval)
}
