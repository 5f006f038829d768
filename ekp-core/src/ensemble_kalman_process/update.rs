//! One update, in the order the module docs give: the outputs are judged
//! (shape, failed members, imputation), the step chosen, the ensemble updated
//! (UKI/UTKI as a whole; the others group by group, then the accelerator and
//! inflation), and only then is anything stored. On any error nothing
//! changes, the RNG included: the RNG, the momentum and the unscented state
//! are updated on copies that are committed last.

use std::borrow::Cow;
use std::cell::OnceCell;

use nalgebra::{DMatrix, DVector};
use rand_chacha::ChaCha20Rng;

use super::group::GroupStep;
use super::{EnsembleKalmanProcess, ErrorMetrics, HistoryPolicy, UpdateOutcome, UpdateReport};
use crate::accelerator::Momentum;
use crate::error::EkpError;
use crate::failure::{FailurePolicy, ImputedValue, impute_lazy};
use crate::linalg::{column_mean, select_columns};
use crate::lowrank::UnitGram;
use crate::process::{Process, Unscented, UnscentedState};
use crate::scheduler::{Step, member_misfits};
use crate::warnings::{self, Warning};

/// The told outputs, judged: what was imputed, who failed, who takes part.
struct Judged {
    /// The outputs with imputed values (`None`: nothing was imputed).
    imputed_g: Option<DMatrix<f64>>,
    /// Failed members (0-based).
    failed: Vec<usize>,
    /// The imputed values.
    imputed: Vec<ImputedValue>,
    /// The other members (0-based).
    successful: Vec<usize>,
    /// Warnings about the outputs.
    warnings: Vec<Warning>,
}

/// What an update computed, before it is stored.
struct Computed {
    /// The new ensemble.
    u: DMatrix<f64>,
    /// Metrics of the told outputs.
    metrics: ErrorMetrics,
    /// UKI/UTKI's new state.
    unscented: Option<UnscentedState>,
}

impl EnsembleKalmanProcess {
    /// Tell the outputs `g` (`d × N`, column `j` = member `j` of
    /// [`ensemble`](Self::ensemble), rows those of the current minibatch's
    /// [`observation`](Self::observation)) and apply one update with the
    /// scheduler's step. On error nothing changes, the RNG included.
    pub fn update(&mut self, g: &DMatrix<f64>) -> Result<UpdateOutcome, EkpError> {
        self.update_inner(Cow::Borrowed(g), None, None)
    }

    /// Like [`update`](Self::update), taking the outputs by value: the
    /// history keeps them without a copy (for a large `d × N` output matrix
    /// that saves its size in memory and the time to copy it). On error the
    /// outputs are dropped and nothing else changes.
    pub fn update_owned(&mut self, g: DMatrix<f64>) -> Result<UpdateOutcome, EkpError> {
        self.update_inner(Cow::Owned(g), None, None)
    }

    /// Like [`update`](Self::update), but this one update uses the step `dt`
    /// whatever the scheduler says.
    pub fn update_with_dt(&mut self, g: &DMatrix<f64>, dt: f64) -> Result<UpdateOutcome, EkpError> {
        if !(dt.is_finite() && dt > 0.0) {
            return Err(EkpError::InvalidDt { dt });
        }
        self.update_inner(Cow::Borrowed(g), Some(dt), None)
    }

    /// Like [`update`](Self::update), with the outputs for *every* observation
    /// of the series (rows as in
    /// [`ObservationSeries::all_stacked`](crate::ObservationSeries::all_stacked)):
    /// the rows of the current minibatch are picked. Without minibatching this is [`update`](Self::update). The
    /// [`g_history`](Self::g_history) then keeps all the rows told (the
    /// minibatch's with their imputed values).
    pub fn update_from_all_outputs(
        &mut self,
        g_all: &DMatrix<f64>,
    ) -> Result<UpdateOutcome, EkpError> {
        let total = self.observations.total_dim();
        if g_all.nrows() != total || g_all.ncols() != self.ensemble_size() {
            return Err(EkpError::OutputShape {
                rows: g_all.nrows(),
                cols: g_all.ncols(),
                expected_rows: total,
                expected_cols: self.ensemble_size(),
            });
        }
        let rows = self.observations.current_rows();
        let g = g_all.select_rows(rows.iter());
        self.update_inner(Cow::Owned(g), None, Some((g_all, &rows)))
    }

    /// One update with the minibatch's outputs `g`; `all` holds the outputs of
    /// every observation and the minibatch's rows in them, when they were told.
    fn update_inner(
        &mut self,
        g_in: Cow<'_, DMatrix<f64>>,
        dt_override: Option<f64>,
        all: Option<(&DMatrix<f64>, &[usize])>,
    ) -> Result<UpdateOutcome, EkpError> {
        let judged = self.judge(&g_in)?;
        let g: &DMatrix<f64> = judged.imputed_g.as_ref().unwrap_or(&g_in);
        let obs = self.observations.current();
        let g_ok: Cow<'_, DMatrix<f64>> = if judged.failed.is_empty() {
            Cow::Borrowed(g)
        } else {
            Cow::Owned(select_columns(g, &judged.successful))
        };
        let misfits = member_misfits(&g_ok, obs);
        let dt = match dt_override {
            Some(dt) => dt,
            None => match self
                .scheduler
                .next_step_with(&self.dt, &g_ok, obs, Some(&misfits))
            {
                Step::Dt(dt) => dt,
                Step::Terminate => return Ok(UpdateOutcome::Terminated),
            },
        };
        if !(dt.is_finite() && dt > 0.0) {
            return Err(EkpError::InvalidDt { dt });
        }

        // Work on copies of the RNG and the momentum: they are committed only
        // if the update succeeds.
        let mut rng = self.rng.clone();
        let mut momentum = self.momentum.clone();
        let computed = if let Some(settings) = self.process.unscented() {
            self.unscented_update(settings, g, &g_ok, &judged.successful, dt)?
        } else {
            // A low-rank step with a scalar Γ leaves the unweighted Gram
            // statistics of exactly these outputs here: the CRPS reuses them.
            let unit_gram = OnceCell::new();
            let u = self.ensemble_update(g, &judged, dt, &unit_gram, &mut rng, &mut momentum)?;
            let prior_var = self.prior.std().map(|s| s * s);
            let metrics = ErrorMetrics::compute_inner(
                &g_ok,
                &column_mean(&g_ok),
                obs,
                true,
                Some(&misfits),
                unit_gram.into_inner(),
            )
            .with_prior(
                obs.dim(),
                &self.run_mean(&judged.successful),
                &self.prior.mean(),
                &prior_var,
            );
            Computed {
                u,
                metrics,
                unscented: None,
            }
        };
        drop(g_ok);
        self.rng = rng;
        self.momentum = momentum;
        Ok(UpdateOutcome::Updated(
            self.record(g_in, judged, all, dt, computed),
        ))
    }

    /// Checks the shape of `g`, finds failed members and imputes isolated
    /// non-finite values; an error with fewer than two successful members, or
    /// with failed members under [`FailurePolicy::Ignore`].
    fn judge(&self, g: &DMatrix<f64>) -> Result<Judged, EkpError> {
        let n = self.ensemble_size();
        let obs = self.observations.current();
        let d = obs.dim();
        if g.nrows() != d || g.ncols() != n {
            return Err(EkpError::OutputShape {
                rows: g.nrows(),
                cols: g.ncols(),
                expected_rows: d,
                expected_cols: n,
            });
        }
        let warnings: Vec<Warning> = warnings::repeated_outputs(g).into_iter().collect();
        // No copy of `g` unless values are imputed.
        let (imputed_g, failed, imputed) = impute_lazy(g, self.nan_tolerance, obs.values());
        let successful: Vec<usize> = (0..n)
            .filter(|j| failed.binary_search(j).is_err())
            .collect();
        if successful.len() < 2 {
            return Err(EkpError::TooFewSuccessful {
                successful: successful.len(),
                total: n,
                failed: failed.iter().map(|j| j + 1).collect(),
            });
        }
        if !failed.is_empty() && self.failure == FailurePolicy::Ignore {
            return Err(EkpError::FailedMembers {
                members: failed.iter().map(|j| j + 1).collect(),
            });
        }
        Ok(Judged {
            imputed_g,
            failed,
            imputed,
            successful,
            warnings,
        })
    }

    /// UKI/UTKI: the process's Gaussian is analysed and predicted as a whole
    /// from the sigma points' outputs `g` (`g_ok`: the successful ones).
    fn unscented_update(
        &self,
        settings: &Unscented,
        g: &DMatrix<f64>,
        g_ok: &DMatrix<f64>,
        successful: &[usize],
        dt: f64,
    ) -> Result<Computed, EkpError> {
        let obs = self.observations.current();
        let transform = matches!(self.process, Process::TransformUnscented(_));
        let mut state = self.unscented.clone().ok_or_else(|| {
            EkpError::InvalidSetting(format!(
                "the {} process has no unscented state (built without the builder?)",
                self.process.kind()
            ))
        })?;
        let (sigma, g_mean) =
            state.update(settings, transform, self.ensemble(), g, successful, obs, dt)?;
        // EKP.jl's loss of UKI is at the weighted output mean, its RMSE √loss.
        let metrics = ErrorMetrics::compute_unscented(g_ok, &g_mean, obs).with_prior(
            obs.dim(),
            &self.run_mean(successful),
            &self.prior.mean(),
            &self.prior.std().map(|s| s * s),
        );
        Ok(Computed {
            u: sigma,
            metrics,
            unscented: Some(state),
        })
    }

    /// The other processes: every update group in turn (failed members
    /// redrawn), then the accelerator, then inflation.
    fn ensemble_update(
        &self,
        g: &DMatrix<f64>,
        judged: &Judged,
        dt: f64,
        unit_gram: &OnceCell<UnitGram>,
        rng: &mut ChaCha20Rng,
        momentum: &mut Option<Momentum>,
    ) -> Result<DMatrix<f64>, EkpError> {
        let prior_mean = self.prior.mean();
        let prior_var = self.prior.std().map(|s| s * s);
        let step = GroupStep {
            process: &self.process,
            localizer: &self.localizer,
            perturb: self.perturbs_observations(),
            dt,
            successful: &judged.successful,
            failed: &judged.failed,
            prior_mean: &prior_mean,
            prior_var: &prior_var,
            unit_gram,
        };
        let obs = self.observations.current();
        let mut new_u = if self.update_groups.is_empty() {
            step.run_whole(self.ensemble(), g, obs, rng)?
        } else {
            step.run_groups(
                &self.update_groups,
                self.observations.current_minibatch().len(),
                self.ensemble(),
                g,
                obs,
                rng,
            )?
        };
        if let Some(m) = momentum.as_mut() {
            new_u = m.accelerate(&self.accelerator, new_u, self.dt.len());
        }
        self.inflate(&mut new_u, dt, &prior_var, rng)?;
        Ok(new_u)
    }

    /// The user's inflation, or else the process's multiplicative inflation
    /// `u ← ū + (1 − s_eff Δt)^{-½} (u − ū)`, `s_eff = s · min(1, 1/Δt)`.
    fn inflate(
        &self,
        new_u: &mut DMatrix<f64>,
        dt: f64,
        prior_var: &DVector<f64>,
        rng: &mut ChaCha20Rng,
    ) -> Result<(), EkpError> {
        let s = self.process.multiplicative_inflation();
        if let Some(inflation) = &self.inflation {
            inflation.apply(new_u, dt, prior_var, rng)?;
        } else if s > 0.0 {
            let s_eff = s * (1.0f64).min(1.0 / dt);
            if s_eff * dt >= 1.0 {
                return Err(EkpError::InflationUnstable { s: s_eff, dt });
            }
            let factor = (1.0 / (1.0 - s_eff * dt)).sqrt();
            let mean = column_mean(new_u);
            for mut col in new_u.column_iter_mut() {
                let dev = &col - &mean;
                col.copy_from(&(&mean + dev * factor));
            }
        }
        Ok(())
    }

    /// Stores a successful update (nothing here can fail) and moves the
    /// observation series on; returns its report.
    fn record(
        &mut self,
        g_in: Cow<'_, DMatrix<f64>>,
        judged: Judged,
        all: Option<(&DMatrix<f64>, &[usize])>,
        dt: f64,
        computed: Computed,
    ) -> UpdateReport {
        let minibatch = self.observations.current_minibatch().to_vec();
        if self.history == HistoryPolicy::Last {
            // Free the previous outputs before copying the new ones.
            self.g.clear();
        }
        let stored = stored_outputs(g_in, judged.imputed_g, all);
        if computed.unscented.is_some() {
            self.unscented = computed.unscented;
        }
        self.u.push(computed.u);
        self.g.push(stored);
        self.dt.push(dt);
        self.metrics.push(computed.metrics);
        self.failed.push(judged.failed.clone());
        self.imputed.push(judged.imputed.clone());
        self.minibatches.push(minibatch.clone());
        self.observations.advance();
        UpdateReport {
            dt,
            failed: judged.failed,
            imputed: judged.imputed,
            minibatch,
            metrics: computed.metrics,
            warnings: judged.warnings,
        }
    }
}

/// The outputs the history keeps: the told ones (imputed), without a copy
/// where they were given by value; with `all`, every observation's outputs
/// with the minibatch's `rows` replaced by the imputed ones.
fn stored_outputs(
    g_in: Cow<'_, DMatrix<f64>>,
    imputed_g: Option<DMatrix<f64>>,
    all: Option<(&DMatrix<f64>, &[usize])>,
) -> DMatrix<f64> {
    match all {
        None => match imputed_g {
            Some(imputed_g) => imputed_g,
            None => match g_in {
                Cow::Owned(m) => m,
                Cow::Borrowed(b) => crate::lowrank::par_clone(b),
            },
        },
        Some((g_all, rows)) => {
            let g = imputed_g.as_ref().unwrap_or(&g_in);
            let mut stored = g_all.clone();
            for (k, &r) in rows.iter().enumerate() {
                stored.set_row(r, &g.row(k));
            }
            stored
        }
    }
}
