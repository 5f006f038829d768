//! The history of a process: every ensemble `u`, the outputs `g` told (all,
//! or only the latest: [`HistoryPolicy`]), steps, metrics, failed members,
//! imputed values and minibatches, one entry per update.

use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

use super::{EnsembleKalmanProcess, ErrorMetrics};
use crate::failure::ImputedValue;

/// Which outputs `g` an [`EnsembleKalmanProcess`] keeps: with `d` outputs
/// and `N` members each update stores a `d × N` matrix, which for large `d`
/// makes a long calibration grow without bound.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HistoryPolicy {
    /// Keep the outputs of every update (the default).
    #[default]
    All,
    /// Keep only the outputs of the latest update: the previous ones are
    /// dropped before the new ones are stored. The ensembles `u` (`p × N`
    /// each), steps, metrics, failed members and imputed values are still
    /// kept for every update.
    Last,
}

impl EnsembleKalmanProcess {
    /// All unconstrained ensembles, the initial one first (with an
    /// accelerator: the accelerated ensembles, the ones that were run).
    pub fn u_history(&self) -> &[DMatrix<f64>] {
        &self.u
    }
    /// The outputs told to each update, after imputation (failed members'
    /// columns as told). With [`HistoryPolicy::Last`] only the latest update's
    /// (see [`g_history_start`](Self::g_history_start)).
    pub fn g_history(&self) -> &[DMatrix<f64>] {
        &self.g
    }
    /// The update (0-based) whose outputs are the first of
    /// [`g_history`](Self::g_history): 0 with [`HistoryPolicy::All`].
    pub fn g_history_start(&self) -> usize {
        self.dt.len() - self.g.len()
    }
    /// The outputs told to update `k` (0-based), if they are kept.
    pub fn outputs_of_update(&self, k: usize) -> Option<&DMatrix<f64>> {
        k.checked_sub(self.g_history_start())
            .and_then(|i| self.g.get(i))
    }
    /// Which outputs are kept.
    pub fn history_policy(&self) -> HistoryPolicy {
        self.history
    }
    /// The step of each update.
    pub fn dt_history(&self) -> &[f64] {
        &self.dt
    }
    /// Error metrics of the outputs told to each update.
    pub fn metrics_history(&self) -> &[ErrorMetrics] {
        &self.metrics
    }
    /// The failed members (0-based) of each update.
    pub fn failed_history(&self) -> &[Vec<usize>] {
        &self.failed
    }
    /// The imputed outputs of each update.
    pub fn imputed_history(&self) -> &[Vec<ImputedValue>] {
        &self.imputed
    }
    /// The minibatch (observation indices, 0-based) each update fitted.
    pub fn minibatch_history(&self) -> &[Vec<usize>] {
        &self.minibatches
    }
}
