//! [`EkpBuilder`]: every setting of an [`EnsembleKalmanProcess`], validated,
//! with EKP.jl's defaults for the process where none is given, and the
//! initial ensemble.

use nalgebra::DMatrix;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

use super::{EnsembleKalmanProcess, HistoryPolicy};
use crate::accelerator::{Accelerator, Momentum};
use crate::error::EkpError;
use crate::failure::{DEFAULT_NAN_TOLERANCE, FailurePolicy};
use crate::inflation::Inflation;
use crate::localization::Localizer;
use crate::observation::Observation;
use crate::observation_series::ObservationSeries;
use crate::prior::Prior;
use crate::process::{Process, UnscentedState};
use crate::scheduler::Scheduler;
use crate::update_group::{UpdateGroup, validate_groups};

/// Builds an [`EnsembleKalmanProcess`], validating every setting. Options not
/// set take EKP.jl's defaults for the process (its `default_options_dict`):
/// for EKI data-misfit (`terminate_at = 1`), `sec-nice`, `sample-success-gauss`
/// and `nesterov`; for ETKI the same scheduler and failure handling, no
/// localization and no accelerator.
#[derive(Clone, Debug)]
pub struct EkpBuilder {
    prior: Prior,
    observations: ObservationSeries,
    process: Process,
    ensemble_size: usize,
    seed: u64,
    scheduler: Option<Scheduler>,
    localizer: Option<Localizer>,
    failure: Option<FailurePolicy>,
    accelerator: Option<Accelerator>,
    nan_tolerance: f64,
    update_groups: Vec<UpdateGroup>,
    initial: Option<DMatrix<f64>>,
    inflation: Option<Inflation>,
    history: HistoryPolicy,
}

impl EnsembleKalmanProcess {
    /// Start building a process for this prior, data (one [`Observation`] or an
    /// [`ObservationSeries`]) and algorithm.
    pub fn builder(
        prior: Prior,
        observations: impl Into<ObservationSeries>,
        process: Process,
    ) -> EkpBuilder {
        EkpBuilder {
            prior,
            observations: observations.into(),
            process,
            ensemble_size: 20,
            seed: 0,
            scheduler: None,
            localizer: None,
            failure: None,
            accelerator: None,
            nan_tolerance: DEFAULT_NAN_TOLERANCE,
            update_groups: Vec::new(),
            initial: None,
            inflation: None,
            history: HistoryPolicy::All,
        }
    }
}

impl EkpBuilder {
    /// Which outputs to keep in [`g_history`](EnsembleKalmanProcess::g_history)
    /// (default: [`HistoryPolicy::All`]).
    pub fn history(mut self, history: HistoryPolicy) -> Self {
        self.history = history;
        self
    }
    /// Number of members `N` drawn from the prior (default 20).
    pub fn ensemble_size(mut self, n: usize) -> Self {
        self.ensemble_size = n;
        self
    }
    /// Seed of every random draw (default 0).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    /// The learning-rate scheduler (default: the process's, see [`Process::default_scheduler`]).
    pub fn scheduler(mut self, scheduler: Scheduler) -> Self {
        self.scheduler = Some(scheduler);
        self
    }
    /// The localizer (default: the process's, see [`Process::default_localizer`]).
    pub fn localizer(mut self, localizer: Localizer) -> Self {
        self.localizer = Some(localizer);
        self
    }
    /// The failure policy (default: sample-success-gauss).
    pub fn failure_policy(mut self, failure: FailurePolicy) -> Self {
        self.failure = Some(failure);
        self
    }
    /// The accelerator (default: the process's, see [`Process::default_accelerator`]).
    pub fn accelerator(mut self, accelerator: Accelerator) -> Self {
        self.accelerator = Some(accelerator);
        self
    }
    /// The fraction of non-finite outputs above which a member has failed
    /// (EKP.jl's `nan_tolerance`, default 0.1; in `[0, 1]`).
    pub fn nan_tolerance(mut self, tolerance: f64) -> Self {
        self.nan_tolerance = tolerance;
        self
    }
    /// Update groups (default: one group, every parameter from every output).
    pub fn update_groups(mut self, groups: Vec<UpdateGroup>) -> Self {
        self.update_groups = groups;
        self
    }
    /// Start from this unconstrained ensemble (`p × N`) instead of prior draws.
    pub fn initial_ensemble(mut self, u: DMatrix<f64>) -> Self {
        self.initial = Some(u);
        self
    }

    /// Inflation after every update (default: none beyond the process's
    /// own, see [`Inflation`]).
    pub fn inflation(mut self, inflation: Inflation) -> Self {
        self.inflation = Some(inflation);
        self
    }

    /// Validates and builds.
    pub fn build(mut self) -> Result<EnsembleKalmanProcess, EkpError> {
        let scheduler = self
            .scheduler
            .take()
            .unwrap_or_else(|| self.process.default_scheduler());
        let localizer = self
            .localizer
            .take()
            .unwrap_or_else(|| self.process.default_localizer());
        let failure = self
            .failure
            .unwrap_or_else(|| self.process.default_failure_policy());
        let accelerator = self
            .accelerator
            .take()
            .unwrap_or_else(|| self.process.default_accelerator());
        scheduler.validate().map_err(EkpError::InvalidSetting)?;
        localizer.validate().map_err(EkpError::InvalidSetting)?;
        accelerator.validate().map_err(EkpError::InvalidSetting)?;
        self.validate(&localizer, &accelerator)?;
        let mut rng = ChaCha20Rng::seed_from_u64(self.seed);
        let initial = self.initial.take();
        let (u0, unscented) = self.first_ensemble(initial, &mut rng)?;
        let mut observations = self.observations;
        observations.reseed(self.seed);
        let momentum = (!accelerator.is_none()).then(|| Momentum::new(&u0));
        Ok(EnsembleKalmanProcess {
            prior: self.prior,
            observations,
            process: self.process,
            scheduler,
            localizer,
            failure,
            nan_tolerance: self.nan_tolerance,
            accelerator,
            momentum,
            update_groups: self.update_groups,
            rng,
            u: vec![u0],
            g: Vec::new(),
            dt: Vec::new(),
            metrics: Vec::new(),
            failed: Vec::new(),
            imputed: Vec::new(),
            minibatches: Vec::new(),
            unscented,
            inflation: self.inflation,
            history: self.history,
        })
    }

    /// The checks of the settings that combine them (each setting has been
    /// validated on its own), in the order their errors are reported.
    fn validate(&self, localizer: &Localizer, accelerator: &Accelerator) -> Result<(), EkpError> {
        if !self.process.supports_localization() && !localizer.is_none() {
            return Err(EkpError::InvalidSetting(format!(
                "localization \"{}\" cannot be used with {}; use \"none\"",
                localizer.kind(),
                self.process.kind()
            )));
        }
        if let Some(inflation) = &self.inflation {
            inflation.validate().map_err(EkpError::InvalidSetting)?;
        }
        if let Some(settings) = self.process.unscented() {
            settings.validate().map_err(EkpError::InvalidSetting)?;
            self.validate_sigma_points(accelerator)?;
        }
        if !(0.0..=1.0).contains(&self.nan_tolerance) {
            return Err(EkpError::InvalidSetting(format!(
                "nan_tolerance must be in [0, 1], got {}",
                self.nan_tolerance
            )));
        }
        let s = self.process.multiplicative_inflation();
        if !(s.is_finite() && s >= 0.0) {
            return Err(EkpError::InvalidSetting(format!(
                "multiplicative_inflation must be ≥ 0 and finite, got {s}"
            )));
        }
        let p = self.prior.dim();
        if let Process::SparseInversion(settings) = &self.process {
            settings.validate(p).map_err(EkpError::InvalidSetting)?;
            if !self.update_groups.is_empty() {
                return Err(EkpError::InvalidSetting(
                    "update groups are not supported with sparse-inversion (EKP.jl's sparse \
                     update ignores them too)"
                        .to_string(),
                ));
            }
        }
        self.validate_update_groups(p)
    }

    /// UKI/UTKI: the ensemble is a set of sigma points, so no inflation, no
    /// accelerator, no update groups and no initial ensemble.
    fn validate_sigma_points(&self, accelerator: &Accelerator) -> Result<(), EkpError> {
        let kind = self.process.kind();
        if self.inflation.is_some() {
            return Err(EkpError::InvalidSetting(format!(
                "inflation cannot be used with {kind}: its ensemble is a set of sigma points"
            )));
        }
        if !accelerator.is_none() {
            return Err(EkpError::InvalidSetting(format!(
                "accelerator \"{}\" cannot be used with {kind}: its ensemble is a set of sigma points",
                accelerator.kind()
            )));
        }
        if !self.update_groups.is_empty() {
            return Err(EkpError::InvalidSetting(format!(
                "update groups are not supported with {kind} in this version"
            )));
        }
        if self.initial.is_some() {
            return Err(EkpError::InvalidSetting(format!(
                "{kind} builds its own sigma-point ensemble from the prior: no initial ensemble can be given"
            )));
        }
        Ok(())
    }

    /// The update groups against `p` parameters and the observations (which
    /// must all have one length).
    fn validate_update_groups(&self, p: usize) -> Result<(), EkpError> {
        if self.update_groups.is_empty() {
            return Ok(());
        }
        let dims: Vec<usize> = self
            .observations
            .observations()
            .iter()
            .map(Observation::dim)
            .collect();
        if dims.iter().any(|&k| k != dims[0]) {
            return Err(EkpError::InvalidSetting(format!(
                "update groups need observations of one length (as in EKP.jl); the series has lengths {dims:?}"
            )));
        }
        validate_groups(&self.update_groups, p, dims[0]).map_err(EkpError::InvalidSetting)
    }

    /// The initial ensemble: UKI/UTKI's sigma points (with the state they
    /// come from), the given one, or `ensemble_size` prior draws.
    fn first_ensemble(
        &self,
        initial: Option<DMatrix<f64>>,
        rng: &mut ChaCha20Rng,
    ) -> Result<(DMatrix<f64>, Option<UnscentedState>), EkpError> {
        let p = self.prior.dim();
        match (initial, self.process.unscented()) {
            (_, Some(settings)) => {
                let mut state = UnscentedState::new(
                    settings,
                    self.prior.mean(),
                    self.prior.std().map(|s| s * s),
                );
                // EKP.jl: the initial ensemble is the prediction with Δt = 0.
                let u0 = state.predict(settings, 0.0);
                Ok((u0, Some(state)))
            }
            (Some(u), None) => {
                if u.nrows() != p || u.ncols() < 2 {
                    return Err(EkpError::InitialEnsembleShape {
                        rows: u.nrows(),
                        cols: u.ncols(),
                        expected_rows: p,
                    });
                }
                Ok((u, None))
            }
            (None, None) => {
                if self.ensemble_size < 2 {
                    return Err(EkpError::EnsembleSize {
                        members: self.ensemble_size,
                    });
                }
                Ok((self.prior.sample(rng, self.ensemble_size), None))
            }
        }
    }
}
