//! [`ProcessStep`]: the one trait every process implements — its EKP.jl
//! defaults and its update of one group of members — and [`StepInput`], what
//! an update gives it.
//!
//! [`Process`](super::Process) dispatches to the implementations with one
//! exhaustive `match`; each process's file owns its defaults and its step, as
//! EKP.jl keeps one file per process.

use std::cell::OnceCell;

use nalgebra::DMatrix;
use rand_chacha::ChaCha20Rng;

use super::PriorBlock;
use crate::accelerator::Accelerator;
use crate::error::EkpError;
use crate::failure::FailurePolicy;
use crate::linalg::select_columns;
use crate::localization::Localizer;
use crate::lowrank::{Perturbation, Rows, UnitGram};
use crate::observation::Observation;
use crate::scheduler::Scheduler;

/// The outputs of the members that take part in an update: the `rows` of
/// `g` (`d × N`, every member) and its columns `cols`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OutputSelection<'a> {
    /// Every member's outputs.
    pub g: &'a DMatrix<f64>,
    /// The rows that take part.
    pub rows: Rows<'a>,
    /// The members (columns) that take part, in the order of `u`'s columns.
    pub cols: &'a [usize],
}

/// What one group's update gives a process: the successful members, their
/// outputs, the data of the group's rows and the settings of the update.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StepInput<'a> {
    /// The successful members' parameters (`p_g × n`, `n` successful).
    pub u: &'a DMatrix<f64>,
    /// Their outputs, read in place from every member's outputs.
    pub outputs: OutputSelection<'a>,
    /// The data of the selected rows.
    pub obs: &'a Observation,
    /// The step.
    pub dt: f64,
    /// The prior block, when [`ProcessStep::uses_prior_block`].
    pub prior: Option<PriorBlock<'a>>,
    /// The localizer (`none` for the processes that cannot be localized).
    pub localizer: &'a Localizer,
    /// Whether the data are perturbed (the setting, and no accelerator).
    pub perturb: bool,
    /// Every member `N`, failed ones included: perturbations are drawn for
    /// all of them, so the draws do not depend on which failed.
    pub members: usize,
    /// Where a low-rank step leaves its unweighted Gram statistics for the
    /// iteration's CRPS, when it can ([`UnitGram::offer`]); `None` for update
    /// groups (their rows are not the observation's).
    pub unit_gram: Option<&'a OnceCell<UnitGram>>,
}

impl StepInput<'_> {
    /// The successful members (columns of the outputs).
    pub fn successful(&self) -> &[usize] {
        self.outputs.cols
    }

    /// The successful members' outputs as one matrix, for the dense paths.
    pub fn dense_outputs(&self) -> DMatrix<f64> {
        let OutputSelection { g, rows, cols } = self.outputs;
        match rows {
            Rows::All(_) => select_columns(g, cols),
            Rows::List(r) => DMatrix::from_fn(r.len(), cols.len(), |i, j| g[(r[i], cols[j])]),
        }
    }

    /// The data repeated for every member (`d × N`).
    pub fn data_for_all(&self) -> DMatrix<f64> {
        let y = self.obs.values();
        DMatrix::from_fn(self.obs.dim(), self.members, |i, _| y[i])
    }

    /// The successful members' data columns `y + ξ_j`, `ξ_j ~ N(0, Γ/Δt)`
    /// from `perturbation` (`y` itself without one): EKI's dense path and
    /// sparse EKI.
    pub fn perturbed_data(&self, perturbation: Option<&Perturbation>) -> DMatrix<f64> {
        let y_all = match perturbation {
            Some(pert) => {
                let mut y = self
                    .obs
                    .noise()
                    .color(pert.standard_normals(self.obs.dim()), 1.0 / self.dt);
                for mut col in y.column_iter_mut() {
                    col += self.obs.values();
                }
                y
            }
            None => self.data_for_all(),
        };
        select_columns(&y_all, self.successful())
    }
}

/// One ensemble Kalman process: EKP.jl's defaults for it
/// (`default_options_dict`) and its update of the successful members of one
/// update group.
pub(crate) trait ProcessStep {
    /// The scheduler used when none is given.
    fn default_scheduler(&self) -> Scheduler;
    /// The localizer used when none is given.
    fn default_localizer(&self) -> Localizer;
    /// Whether a localizer other than `none` may be used.
    fn supports_localization(&self) -> bool;
    /// The failure policy used when none is given.
    fn default_failure_policy(&self) -> FailurePolicy;
    /// The accelerator used when none is given.
    fn default_accelerator(&self) -> Accelerator;
    /// Whether the prior is imposed in every update.
    fn impose_prior(&self) -> bool;
    /// Whether the update takes the prior's mean and variances.
    fn uses_prior_block(&self) -> bool {
        self.impose_prior()
    }
    /// Whether the data are perturbed (before the accelerator's veto).
    fn perturb_observations(&self) -> bool;
    /// The multiplicative inflation factor `s` after every update (`0`: none).
    fn multiplicative_inflation(&self) -> f64;
    /// The new parameters of the successful members (`p_g × n`, in the order
    /// of `input.u`'s columns). Draws from `rng` in the process's documented
    /// order.
    fn step(&self, input: &StepInput<'_>, rng: &mut ChaCha20Rng) -> Result<DMatrix<f64>, EkpError>;
}
