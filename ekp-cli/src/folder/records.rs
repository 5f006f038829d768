//! What an iteration's update did: `iteration_NNN/update.toml` (the record
//! written when an update — or the completion — used that iteration's
//! outputs), and the per-iteration row shown in tables, `history.csv`,
//! `status` and the report.

use ekp_core::{EnsembleKalmanProcess, ErrorMetrics};
use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

/// In an iteration folder: what the update of its outputs did.
pub const RECORD_FILE: &str = "update.toml";

/// Whether a record is an update or the completion of the calibration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordKind {
    /// The outputs were used by an update: the next iteration was written.
    Update,
    /// The calibration completed with this iteration (its final ensemble).
    Final,
}

/// `iteration_NNN/update.toml`: what the update of an iteration's outputs did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpdateRecord {
    /// Update or completion.
    pub kind: RecordKind,
    /// The iteration whose outputs were used.
    pub iteration: usize,
    /// How many members had usable outputs.
    pub done: usize,
    /// Members (from 1) that failed, as the process judged them.
    pub failed: Vec<usize>,
    /// Members (from 1) that had not run (among the failed).
    pub missing: Vec<usize>,
    /// The step of the update (absent for the completion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dt: Option<f64>,
    /// When (Unix seconds).
    pub finished_unix: u64,
    /// Error metrics of the outputs against all the data (as `run`'s table).
    pub metrics: ErrorMetrics,
}

/// One row of the per-iteration table: ensemble `iteration` (0 = the prior draw).
#[derive(Debug, Clone)]
pub struct IterationRow {
    /// Which ensemble (0 = initial).
    pub iteration: usize,
    /// The step of the update that followed it (`None` for the last ensemble).
    pub dt: Option<f64>,
    /// Metrics of its outputs.
    pub metrics: ErrorMetrics,
    /// Members (0-based) whose model run failed.
    pub failed: Vec<usize>,
    /// Constrained mean of each flat parameter (transform of the unconstrained mean).
    pub mean: DVector<f64>,
    /// Standard deviation of each flat parameter over the constrained ensemble.
    pub std: DVector<f64>,
}

/// The constrained mean and standard deviation of ensemble `k` (0 = the
/// prior's; past the newest, the newest) — the one definition every output
/// (tables, CSV files, result.toml, report, plots) uses.
///
/// - Ensemble processes (EKI, ETKI, GNKI, sparse EKI, samplers): the mean is
///   the constrained transform of the unconstrained ensemble mean (EKP.jl's
///   `get_ϕ_mean`), the std is over the constrained members.
/// - UKI/UTKI: the members are sigma points spread by the prediction's
///   `Σ_ω Δt`, so both come from the process's own Gaussian `N(m_k, C_k)`
///   (EKP.jl's `get_u_mean`, `get_u_cov`): the mean is `φ(m_k)`, the std that
///   of `φ(u_i)` for `u_i ~ N(m_k,i, C_k,ii)` (closed form with none or one
///   bound, quadrature with two), so `std` and result.toml's
///   `unconstrained_std = √C_k,ii` describe the same distribution.
pub fn constrained_summary(ekp: &EnsembleKalmanProcess, k: usize) -> (DVector<f64>, DVector<f64>) {
    let prior = ekp.prior();
    if let Some(state) = ekp.unscented_state()
        && let (Some(m), Some(c)) = (state.mean_at(k), state.cov_history().get(k))
        && m.len() == prior.dim()
        && c.nrows() == prior.dim()
    {
        return gaussian_summary(prior, &m, c);
    }
    let history = ekp.u_history();
    let u = &history[k.min(history.len() - 1)];
    let mean_u = ekp_core::linalg::column_mean(u);
    let mean = prior.to_constrained(&mean_u);
    let x = prior.to_constrained_matrix(u);
    let (_, a) = ekp_core::linalg::anomalies(&x);
    let n = (u.ncols().max(2) - 1) as f64;
    let std = DVector::from_iterator(
        a.nrows(),
        a.row_iter().map(|r| (r.norm_squared() / n).sqrt()),
    );
    (mean, std)
}

/// The constrained transform of the mean `m`, and each component's
/// constrained std under its marginal `N(m_i, C_ii)`.
fn gaussian_summary(
    prior: &ekp_core::Prior,
    m: &DVector<f64>,
    c: &DMatrix<f64>,
) -> (DVector<f64>, DVector<f64>) {
    let constraints = prior.constraints();
    let std = DVector::from_iterator(
        m.len(),
        constraints.iter().enumerate().map(|(i, &constraint)| {
            let sigma = c[(i, i)].max(0.0).sqrt();
            if sigma == 0.0 {
                return 0.0;
            }
            ekp_core::ParameterPrior::from_unconstrained("u", m[i], sigma, constraint, 1)
                .map_or(f64::NAN, |p| p.constrained_std())
        }),
    );
    (prior.to_constrained(m), std)
}

impl IterationRow {
    /// The row of ensemble `record.iteration` of `ekp`'s history.
    pub fn from_record(ekp: &EnsembleKalmanProcess, record: &UpdateRecord) -> Option<Self> {
        ekp.u_history().get(record.iteration)?;
        let (mean, std) = constrained_summary(ekp, record.iteration);
        Some(Self {
            iteration: record.iteration,
            dt: record.dt,
            metrics: record.metrics,
            failed: record.failed.iter().map(|j| j.saturating_sub(1)).collect(),
            mean,
            std,
        })
    }
}
