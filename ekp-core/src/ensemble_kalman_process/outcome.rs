//! What an update did ([`UpdateOutcome`], [`UpdateReport`]) and what it would
//! make of a set of outputs ([`Assessment`], without updating).

use nalgebra::DMatrix;

use super::{EnsembleKalmanProcess, ErrorMetrics};
use crate::error::EkpError;
use crate::failure::{ImputedValue, impute_over_nonfinite};
use crate::linalg::select_columns;
use crate::warnings::Warning;

/// What one call to [`EnsembleKalmanProcess::update`] did.
#[derive(Clone, Debug, PartialEq)]
pub enum UpdateOutcome {
    /// The ensemble was updated.
    Updated(UpdateReport),
    /// The scheduler's terminal time had been reached: nothing changed.
    Terminated,
}

/// Details of an applied update.
#[derive(Clone, Debug, PartialEq)]
pub struct UpdateReport {
    /// The step used.
    pub dt: f64,
    /// Members (0-based) that failed: more than the tolerated fraction of
    /// their outputs non-finite.
    pub failed: Vec<usize>,
    /// Isolated non-finite outputs of the other members, and the values
    /// imputed in their place.
    pub imputed: Vec<ImputedValue>,
    /// The observations (0-based) of the minibatch this update fitted.
    pub minibatch: Vec<usize>,
    /// Metrics of the outputs that were told (successful members, imputed).
    pub metrics: ErrorMetrics,
    /// Warnings about the outputs (members with exactly equal outputs).
    pub warnings: Vec<Warning>,
}

/// How a set of outputs fares (see [`EnsembleKalmanProcess::assess_all_outputs`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Assessment {
    /// Members (0-based) that would fail.
    pub failed: Vec<usize>,
    /// Values that would be imputed.
    pub imputed: Vec<ImputedValue>,
    /// Metrics over the other members (imputed), against all the data.
    pub metrics: ErrorMetrics,
}

impl EnsembleKalmanProcess {
    /// Failed members, imputed values and error metrics of outputs for *every*
    /// observation of the series (rows as in
    /// [`ObservationSeries::all_stacked`](crate::ObservationSeries::all_stacked);
    /// without a series, the outputs an update takes), judged as an update
    /// would judge them (same NaN tolerance and imputation), against all the
    /// data. Changes nothing: for reports, e.g. of a final ensemble that is
    /// not updated. Panics never; a wrong row count gives an error.
    pub fn assess_all_outputs(&self, g_all: &DMatrix<f64>) -> Result<Assessment, EkpError> {
        let all = self.observations.all_stacked();
        if g_all.nrows() != all.dim() {
            return Err(EkpError::OutputShape {
                rows: g_all.nrows(),
                cols: g_all.ncols(),
                expected_rows: all.dim(),
                expected_cols: g_all.ncols(),
            });
        }
        let imputation = impute_over_nonfinite(g_all, self.nan_tolerance, all.values());
        let ok = imputation.successful();
        let g_ok = select_columns(&imputation.outputs, &ok);
        // UKI/UTKI: at the weighted mean of the sigma points, as an update.
        let weighted = self
            .process
            .unscented()
            .and_then(|s| s.successful_mean(self.ensemble().nrows(), &imputation.outputs, &ok));
        let metrics = match weighted {
            Some(g_mean) => ErrorMetrics::compute_unscented(&g_ok, &g_mean, &all),
            None => ErrorMetrics::compute(&g_ok, &all),
        }
        .with_prior(
            all.dim(),
            &self.run_mean(&ok),
            &self.prior.mean(),
            &self.prior.std().map(|s| s * s),
        );
        Ok(Assessment {
            failed: imputation.failed,
            imputed: imputation.imputed,
            metrics,
        })
    }
}
