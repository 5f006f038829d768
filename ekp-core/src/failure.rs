//! Failure handling: what an update does with model outputs that are not
//! finite (EKP.jl's `impute_over_nans`, `SampleSuccGauss`, `IgnoreFailures`).
//!
//! Every update first classifies the members (EKP.jl's `impute_over_nans`,
//! with its `nan_tolerance = 0.1`):
//!
//! 1. a member with *more than* `⌊tolerance · d⌋` non-finite outputs has
//!    **failed** (with `d = 4` outputs that is any non-finite value; with 36, four
//!    or more);
//! 2. every other non-finite output is **imputed**: it takes the mean of the
//!    finite values of its row over all members (failed members' finite values
//!    included, as in EKP.jl), or — when the whole row is non-finite — the
//!    observed value `y` of that row;
//! 3. the failed members are then handled by the [`FailurePolicy`].
//!
//! *Deliberate difference:* EKP.jl looks for NaN only; we treat ±∞ like NaN
//! (an infinite output is as unusable as a NaN). The imputation and the failed
//! members of each update are reported ([`UpdateReport`](crate::UpdateReport))
//! and kept in the process's history.

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

/// EKP.jl's default `nan_tolerance`: a member with more than 10 % non-finite
/// outputs has failed.
pub const DEFAULT_NAN_TOLERANCE: f64 = 0.1;

/// The policy for failed members.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "FailurePolicyRepr", into = "FailurePolicyRepr")]
pub enum FailurePolicy {
    /// No failure handling: every member takes part in the update. EKP.jl's
    /// `IgnoreFailures` then propagates NaN through the whole ensemble; we stop
    /// instead with [`EkpError::FailedMembers`](crate::EkpError::FailedMembers),
    /// naming the members, and leave the process unchanged. Imputed (isolated)
    /// non-finite values are not failures: they never stop an update.
    Ignore,
    /// EKP.jl's `SampleSuccGauss`: update the successful members only, then
    /// replace each failed member by a draw from the Gaussian with the updated
    /// successful members' mean and sample covariance (per update group).
    #[default]
    SampleSuccessGauss,
}

/// The serialised form, rejecting unknown keys (serde ignores extra keys of
/// internally tagged unit variants).
#[derive(Clone, Copy, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
enum FailurePolicyRepr {
    Ignore {},
    SampleSuccessGauss {},
}

impl From<FailurePolicyRepr> for FailurePolicy {
    fn from(r: FailurePolicyRepr) -> Self {
        match r {
            FailurePolicyRepr::Ignore {} => FailurePolicy::Ignore,
            FailurePolicyRepr::SampleSuccessGauss {} => FailurePolicy::SampleSuccessGauss,
        }
    }
}

impl From<FailurePolicy> for FailurePolicyRepr {
    fn from(f: FailurePolicy) -> Self {
        match f {
            FailurePolicy::Ignore => FailurePolicyRepr::Ignore {},
            FailurePolicy::SampleSuccessGauss => FailurePolicyRepr::SampleSuccessGauss {},
        }
    }
}

impl FailurePolicy {
    /// The name used in calibration files (`failure.kind`).
    pub fn kind(self) -> &'static str {
        match self {
            FailurePolicy::Ignore => "ignore",
            FailurePolicy::SampleSuccessGauss => "sample-success-gauss",
        }
    }
}

/// An output value that was imputed.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImputedValue {
    /// The output row (0-based, within the outputs told to the update).
    pub row: usize,
    /// The member (0-based).
    pub member: usize,
    /// The value put in its place.
    pub value: f64,
}

/// The outputs after [`impute_over_nonfinite`].
#[derive(Clone, Debug, PartialEq)]
pub struct Imputation {
    /// The outputs with the imputed values in place; failed members' columns
    /// are left as they were.
    pub outputs: DMatrix<f64>,
    /// The failed members (0-based, ascending).
    pub failed: Vec<usize>,
    /// The imputed values, column by column.
    pub imputed: Vec<ImputedValue>,
}

impl Imputation {
    /// The members that did not fail (0-based, ascending).
    pub fn successful(&self) -> Vec<usize> {
        (0..self.outputs.ncols())
            .filter(|j| self.failed.binary_search(j).is_err())
            .collect()
    }
}

/// [`impute_over_nonfinite`] without the copy when nothing is imputed: the
/// outputs with the imputed values (`None` when `g` needs none: use `g`
/// itself), the failed members and the imputed values. The scan for
/// non-finite values reads `g` column by column, in parallel.
pub(crate) fn impute_lazy(
    g: &DMatrix<f64>,
    tolerance: f64,
    row_values: &DVector<f64>,
) -> (Option<DMatrix<f64>>, Vec<usize>, Vec<ImputedValue>) {
    use rayon::prelude::*;
    let (d, n) = g.shape();
    let allowed = (tolerance * d as f64).floor();
    let counts: Vec<usize> = (0..n)
        .into_par_iter()
        .map(|j| g.column(j).iter().filter(|v| !v.is_finite()).count())
        .collect();
    let failed: Vec<usize> = (0..n).filter(|&j| counts[j] as f64 > allowed).collect();
    let any_isolated = (0..n).any(|j| counts[j] > 0 && counts[j] as f64 <= allowed);
    if !any_isolated {
        return (None, failed, Vec::new());
    }
    let imputation = impute_over_nonfinite(g, tolerance, row_values);
    (
        Some(imputation.outputs),
        imputation.failed,
        imputation.imputed,
    )
}

/// EKP.jl's `impute_over_nans(g, nan_tolerance, nan_row_values)`, with
/// non-finite in place of NaN: classify the members of `g` (`d × N`) as failed
/// or not, and impute the isolated non-finite values of the others (see the
/// [module documentation](self)). `row_values` (length `d`) are the values for
/// rows with no finite entry at all (EKP.jl uses the observation `y`).
pub fn impute_over_nonfinite(
    g: &DMatrix<f64>,
    tolerance: f64,
    row_values: &DVector<f64>,
) -> Imputation {
    let (d, n) = g.shape();
    let allowed = (tolerance * d as f64).floor();
    let failed: Vec<usize> = (0..n)
        .filter(|&j| g.column(j).iter().filter(|v| !v.is_finite()).count() as f64 > allowed)
        .collect();
    let mut outputs = g.clone();
    let mut imputed = Vec::new();
    let needs_row = |i: usize| (0..n).any(|j| !g[(i, j)].is_finite() && !failed.contains(&j));
    let mut row_fill = vec![None; d];
    for (i, fill) in row_fill.iter_mut().enumerate() {
        if needs_row(i) {
            let (sum, count) = g
                .row(i)
                .iter()
                .filter(|v| v.is_finite())
                .fold((0.0, 0usize), |(s, c), v| (s + v, c + 1));
            *fill = Some(if count == 0 {
                row_values[i]
            } else {
                sum / count as f64
            });
        }
    }
    for j in 0..n {
        if failed.contains(&j) {
            continue;
        }
        for (i, fill) in row_fill.iter().enumerate() {
            if let Some(value) = fill
                && !g[(i, j)].is_finite()
            {
                outputs[(i, j)] = *value;
                imputed.push(ImputedValue {
                    row: i,
                    member: j,
                    value: *value,
                });
            }
        }
    }
    Imputation {
        outputs,
        failed,
        imputed,
    }
}

/// Indices of the members (columns) whose output contains any non-finite
/// value: the failed members with a tolerance of 0.
pub fn failed_members(g: &DMatrix<f64>) -> Vec<usize> {
    g.column_iter()
        .enumerate()
        .filter(|(_, c)| c.iter().any(|v| !v.is_finite()))
        .map(|(j, _)| j)
        .collect()
}
