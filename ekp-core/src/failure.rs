//! Failure handling: what an update does with members whose model run failed
//! (an output column containing NaN or ±∞).

use serde::{Deserialize, Serialize};

/// The policy for failed members.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum FailurePolicy {
    /// No failure handling: every member takes part in the update. EKP.jl's
    /// `IgnoreFailures` then propagates NaN through the whole ensemble; we stop
    /// instead with [`EkpError::FailedMembers`](crate::EkpError::FailedMembers),
    /// naming the members, and leave the process unchanged.
    Ignore,
    /// EKP.jl's `SampleSuccGauss`: update the successful members only, then
    /// replace each failed member by a draw from the Gaussian with the updated
    /// successful members' mean and sample covariance.
    #[default]
    SampleSuccessGauss,
}

/// Indices of the members (columns) whose output contains a non-finite value.
pub fn failed_members(g: &nalgebra::DMatrix<f64>) -> Vec<usize> {
    g.column_iter()
        .enumerate()
        .filter(|(_, c)| c.iter().any(|v| !v.is_finite()))
        .map(|(j, _)| j)
        .collect()
}
