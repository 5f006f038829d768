//! The errors of `ekp-core`.

use thiserror::Error;

use crate::observation::ObservationError;
use crate::prior::PriorError;

/// Everything that can go wrong building or updating a process.
#[derive(Debug, Error)]
pub enum EkpError {
    /// The prior is invalid.
    #[error(transparent)]
    Prior(#[from] PriorError),
    /// The observation is invalid.
    #[error(transparent)]
    Observation(#[from] ObservationError),
    /// Fewer than two members.
    #[error("an ensemble needs at least 2 members, got {members}")]
    EnsembleSize {
        /// Members requested.
        members: usize,
    },
    /// An initial ensemble of the wrong shape.
    #[error(
        "initial ensemble is {rows}×{cols}; expected {expected_rows} rows (parameters) and at least 2 columns"
    )]
    InitialEnsembleShape {
        /// Rows given.
        rows: usize,
        /// Columns given.
        cols: usize,
        /// Rows expected.
        expected_rows: usize,
    },
    /// A setting is out of range.
    #[error("invalid setting: {0}")]
    InvalidSetting(String),
    /// The outputs handed to `update` have the wrong shape.
    #[error(
        "outputs are {rows}×{cols}, expected {expected_rows}×{expected_cols} (outputs × members)"
    )]
    OutputShape {
        /// Rows given.
        rows: usize,
        /// Columns given.
        cols: usize,
        /// Output dimension `d`.
        expected_rows: usize,
        /// Members `N`.
        expected_cols: usize,
    },
    /// Fewer than two members succeeded: no update is possible.
    #[error(
        "only {successful} of {total} members have finite outputs (failed members: {failed:?}); at least 2 are needed"
    )]
    TooFewSuccessful {
        /// Members with finite outputs.
        successful: usize,
        /// All members.
        total: usize,
        /// The failed members (1-based).
        failed: Vec<usize>,
    },
    /// Members failed and the failure policy is `ignore`.
    #[error(
        "members {members:?} (1-based) have non-finite outputs and the failure policy is `ignore`; use `sample-success-gauss` to continue past failed members"
    )]
    FailedMembers {
        /// The failed members (1-based).
        members: Vec<usize>,
    },
    /// A linear system of the update could not be solved.
    #[error("the matrix {what} is singular; the ensemble may have collapsed")]
    Singular {
        /// Which matrix.
        what: &'static str,
    },
    /// Multiplicative inflation would be unstable (`s Δt ≥ 1`).
    #[error("multiplicative inflation s = {s} with Δt = {dt} gives s·Δt ≥ 1")]
    InflationUnstable {
        /// The factor.
        s: f64,
        /// The step.
        dt: f64,
    },
    /// `update` was called after the scheduler terminated the process.
    #[error(
        "the process has terminated (the scheduler's terminal time was reached after {updates} updates)"
    )]
    Terminated {
        /// Updates applied.
        updates: usize,
    },
    /// The step handed to a one-step override is not positive and finite.
    #[error("Δt must be positive and finite, got {dt}")]
    InvalidDt {
        /// The step.
        dt: f64,
    },
    /// The ℓ1 projection of sparse EKI failed (the solver's status, or the
    /// step that failed).
    #[error(
        "the ℓ1 projection of sparse-inversion failed{}: {status}",
        member.map(|m| format!(" for member {m} (1-based)")).unwrap_or_default()
    )]
    SparseProjection {
        /// The member (1-based), when the projection was part of an update.
        member: Option<usize>,
        /// What went wrong: clarabel's status or the failing step.
        status: String,
    },
}
