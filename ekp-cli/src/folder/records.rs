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

/// Constrained mean (the transform of the unconstrained mean, EKP.jl's
/// `get_ϕ_mean`) and standard deviation (over the constrained members) of an
/// unconstrained ensemble `u`.
pub fn constrained_summary(
    ekp: &EnsembleKalmanProcess,
    u: &DMatrix<f64>,
) -> (DVector<f64>, DVector<f64>) {
    let prior = ekp.prior();
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

impl IterationRow {
    /// The row of ensemble `record.iteration` of `ekp`'s history.
    pub fn from_record(ekp: &EnsembleKalmanProcess, record: &UpdateRecord) -> Option<Self> {
        let u = ekp.u_history().get(record.iteration)?;
        let (mean, std) = constrained_summary(ekp, u);
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
