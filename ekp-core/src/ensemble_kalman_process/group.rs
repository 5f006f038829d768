//! The update of the ensemble by update groups: for each group, the
//! process's step on the successful members, then the redraw of the failed
//! ones (`sample-success-gauss`).

use std::cell::OnceCell;

use nalgebra::{DMatrix, DVector};
use rand_chacha::ChaCha20Rng;

use crate::error::EkpError;
use crate::linalg::{sample_empirical_gaussian, select_columns};
use crate::localization::Localizer;
use crate::lowrank::{Rows, UnitGram};
use crate::observation::Observation;
use crate::process::{OutputSelection, PriorBlock, Process, StepInput};
use crate::update_group::{UpdateGroup, minibatch_rows};

/// What every group of one update shares.
pub(super) struct GroupStep<'a> {
    /// The algorithm.
    pub(super) process: &'a Process,
    /// The localizer.
    pub(super) localizer: &'a Localizer,
    /// Whether the data are perturbed.
    pub(super) perturb: bool,
    /// The step.
    pub(super) dt: f64,
    /// The successful members (0-based).
    pub(super) successful: &'a [usize],
    /// The failed members (0-based).
    pub(super) failed: &'a [usize],
    /// The (flat, unconstrained) prior mean.
    pub(super) prior_mean: &'a DVector<f64>,
    /// The (flat, unconstrained) prior variances.
    pub(super) prior_var: &'a DVector<f64>,
    /// Where the whole-ensemble step leaves its unweighted Gram statistics
    /// for the CRPS (see [`UnitGram`]).
    pub(super) unit_gram: &'a OnceCell<UnitGram>,
}

impl GroupStep<'_> {
    /// The update of the whole ensemble `u` (`p × N`) as one group, from
    /// every output of `g` against `obs`.
    pub(super) fn run_whole(
        &self,
        u: &DMatrix<f64>,
        g: &DMatrix<f64>,
        obs: &Observation,
        rng: &mut ChaCha20Rng,
    ) -> Result<DMatrix<f64>, EkpError> {
        let prior_block = self.process.uses_prior_block().then_some(PriorBlock {
            mean: self.prior_mean,
            variances: self.prior_var,
        });
        self.run(u, g, None, obs, prior_block, rng)
    }

    /// The update of `u` (`p × N`) group by group: each group's parameters
    /// from its outputs in each of the minibatch's `count` observations (of
    /// equal length), in the order of `groups`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run_groups(
        &self,
        groups: &[UpdateGroup],
        count: usize,
        u: &DMatrix<f64>,
        g: &DMatrix<f64>,
        obs: &Observation,
        rng: &mut ChaCha20Rng,
    ) -> Result<DMatrix<f64>, EkpError> {
        let (p, n) = u.shape();
        let obs_dim = obs.dim() / count.max(1);
        let mut new_u = DMatrix::zeros(p, n);
        for group in groups {
            let rows = minibatch_rows(group, count, obs_dim);
            let u_g = u.select_rows(group.parameters.iter());
            let obs_g = Observation::new(
                obs.values().select_rows(rows.iter()),
                obs.noise().restrict(&rows)?,
            )?;
            let mean_g = self.prior_mean.select_rows(group.parameters.iter());
            let var_g = self.prior_var.select_rows(group.parameters.iter());
            let prior_block = self.process.uses_prior_block().then_some(PriorBlock {
                mean: &mean_g,
                variances: &var_g,
            });
            let updated = self.run(&u_g, g, Some(&rows), &obs_g, prior_block, rng)?;
            for (k, &i) in group.parameters.iter().enumerate() {
                new_u.set_row(i, &updated.row(k));
            }
        }
        Ok(new_u)
    }

    /// The update of one group: `u` (`p_g × N`) with outputs `rows` of `g`
    /// (`d × N`, every row when `None`) against `obs` (those rows' data);
    /// returns the new `p_g × N` ensemble, failed members redrawn.
    /// Draws, in order: the process's step (perturbations of all `N` members,
    /// so the draws do not depend on which failed, then the localizer's), the
    /// redraws of failed members.
    ///
    /// EKI without a localizer and ETKI take the low-rank path when `Γ` is
    /// diagonal (EKI only when it has more outputs than members, where it is
    /// the cheaper form): the outputs are read in row blocks and never copied.
    fn run(
        &self,
        u: &DMatrix<f64>,
        g: &DMatrix<f64>,
        rows: Option<&[usize]>,
        obs: &Observation,
        prior_block: Option<PriorBlock<'_>>,
        rng: &mut ChaCha20Rng,
    ) -> Result<DMatrix<f64>, EkpError> {
        let (p, n) = u.shape();
        let u_ok = select_columns(u, self.successful);
        let input = StepInput {
            u: &u_ok,
            outputs: OutputSelection {
                g,
                rows: match rows {
                    Some(r) => Rows::List(r),
                    None => Rows::All(obs.dim()),
                },
                cols: self.successful,
            },
            obs,
            dt: self.dt,
            prior: prior_block,
            localizer: self.localizer,
            perturb: self.perturb,
            members: n,
            // The whole ensemble's rows are the observation's: its Gram
            // statistics serve the CRPS (a group's rows do not).
            unit_gram: rows.is_none().then_some(self.unit_gram),
        };
        let updated_ok = self.process.as_step().step(&input, rng)?;
        let mut out = DMatrix::zeros(p, n);
        for (k, &j) in self.successful.iter().enumerate() {
            out.set_column(j, &updated_ok.column(k));
        }
        if !self.failed.is_empty() {
            let draws = sample_empirical_gaussian(rng, &updated_ok, self.failed.len());
            for (k, &j) in self.failed.iter().enumerate() {
                out.set_column(j, &draws.column(k));
            }
        }
        Ok(out)
    }
}
