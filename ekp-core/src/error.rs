//! The errors of `ekp-core`: [`EkpError`] for building and updating a process,
//! [`PriorError`] for priors and their constraints. `PriorError` lives here
//! (re-exported as `prior::PriorError`) so that imports run one way:
//! [`prior`](crate::prior) → [`constraint`](crate::constraint) → `error`.

use thiserror::Error;

use crate::observation::ObservationError;

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

/// Why a prior could not be built.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum PriorError {
    /// The parameter name is empty.
    #[error("invalid parameter name {name:?}: names must not be empty")]
    InvalidName {
        /// The offending name.
        name: String,
    },
    /// The (constrained or unconstrained) standard deviation is not positive and finite.
    #[error("parameter `{name}`: std must be positive and finite, got {std}")]
    InvalidStd {
        /// Parameter name.
        name: String,
        /// The offending std.
        std: f64,
    },
    /// The mean is NaN or infinite.
    #[error("parameter `{name}`: mean must be finite, got {mean}")]
    InvalidMean {
        /// Parameter name.
        name: String,
        /// The offending mean.
        mean: f64,
    },
    /// The bounds do not describe a non-empty open interval.
    #[error(
        "parameter `{name}`: invalid bounds lower = {lower}, upper = {upper} \
         (need lower < upper, neither NaN)"
    )]
    InvalidBounds {
        /// Parameter name.
        name: String,
        /// Lower bound (`-inf` when absent).
        lower: f64,
        /// Upper bound (`inf` when absent).
        upper: f64,
    },
    /// The requested (constrained) mean is not strictly inside the bounds.
    #[error("parameter `{name}`: mean {mean} is not strictly inside the bounds ({lower}, {upper})")]
    MeanOutsideBounds {
        /// Parameter name.
        name: String,
        /// The requested mean.
        mean: f64,
        /// Lower bound (`-inf` when absent).
        lower: f64,
        /// Upper bound (`inf` when absent).
        upper: f64,
    },
    /// A vector parameter with zero components.
    #[error("parameter `{name}`: size must be at least 1")]
    ZeroSize {
        /// Parameter name.
        name: String,
    },
    /// Two parameters share a name.
    #[error("parameter `{name}` is defined more than once")]
    DuplicateName {
        /// The repeated name.
        name: String,
    },
    /// A prior without parameters.
    #[error("the prior has no parameters")]
    Empty,
    /// No transformed Gaussian on the interval has the requested mean and std.
    #[error(
        "parameter `{name}`: no constrained Gaussian on ({lower}, {upper}) has mean {mean} \
         and std {std}: {reason}"
    )]
    MomentMatch {
        /// Parameter name.
        name: String,
        /// The requested mean.
        mean: f64,
        /// The requested std.
        std: f64,
        /// Lower bound.
        lower: f64,
        /// Upper bound.
        upper: f64,
        /// What went wrong (target unreachable, or the solve did not converge).
        reason: String,
    },
}
