//! The `[process]` options other than the algorithm: scheduler,
//! localization, failure handling, NaN tolerance, accelerator, inflation,
//! minibatching and update groups, with EKP.jl's defaults for the process.

use ekp_core::{
    Accelerator, FailurePolicy, Inflation, Localizer, Minibatcher, Prior, Process, Scheduler,
    UpdateGroup,
};

use super::Ctx;
use super::limits::MAX_DATA_VALUES;
use super::schema::{RawMinibatch, RawOrder, RawProcess, RawUpdateGroup};
use crate::error::InputError;

/// Minibatching as configured: the data values cut into consecutive
/// observations of `observation_sizes`, fitted a minibatch at a time.
#[derive(Debug, Clone, PartialEq)]
pub struct MinibatchSpec {
    /// Sizes of the consecutive observations (`None`: one per data value).
    pub observation_sizes: Option<Vec<usize>>,
    /// The minibatcher (0-based observation indices).
    pub minibatcher: Minibatcher,
}

/// The `[process]` options other than the algorithm, with defaults applied.
pub(super) struct ProcessOptions {
    pub(super) scheduler: Scheduler,
    pub(super) localizer: Localizer,
    pub(super) failure: FailurePolicy,
    pub(super) accelerator: Accelerator,
    pub(super) nan_tolerance: f64,
    pub(super) inflation: Option<Inflation>,
    pub(super) minibatch: Option<MinibatchSpec>,
    pub(super) update_groups: Vec<UpdateGroup>,
}

impl Ctx<'_> {
    /// Scheduler, localization, failure handling, accelerator, minibatching
    /// and update groups; an option not given takes EKP.jl's default for the
    /// process (for `inversion`: data-misfit with `terminate_at = 1`,
    /// `sec-nice`, `sample-success-gauss`, `nesterov`).
    pub(super) fn options(
        &self,
        raw: &RawProcess,
        process: &Process,
        prior: &Prior,
    ) -> Result<ProcessOptions, InputError> {
        let scheduler = raw
            .scheduler
            .clone()
            .unwrap_or_else(|| process.default_scheduler());
        scheduler
            .validate()
            .map_err(|m| self.invalid("process.scheduler", m))?;
        let localizer = self.localizer(raw, process)?;
        let failure = raw
            .failure
            .unwrap_or_else(|| process.default_failure_policy());
        let nan_tolerance = self.nan_tolerance(raw)?;
        let accelerator = self.accelerator(raw, process)?;
        self.check_inflation(raw, process)?;
        self.check_combinations(raw, process, accelerator)?;
        let minibatch = raw
            .minibatch
            .as_ref()
            .map(|m| self.minibatch(m))
            .transpose()?;
        let update_groups = match &raw.update_groups {
            None => Vec::new(),
            Some(groups) => self.update_groups(groups, prior)?,
        };
        Ok(ProcessOptions {
            scheduler,
            localizer,
            failure,
            accelerator,
            nan_tolerance,
            inflation: raw.inflation,
            minibatch,
            update_groups,
        })
    }

    /// `process.localization`, or the process's default; "none" where the
    /// process has no localization.
    fn localizer(&self, raw: &RawProcess, process: &Process) -> Result<Localizer, InputError> {
        let localizer = raw
            .localization
            .clone()
            .unwrap_or_else(|| process.default_localizer());
        localizer
            .validate()
            .map_err(|m| self.invalid("process.localization", m))?;
        if !process.supports_localization() && !localizer.is_none() {
            return Err(self.invalid(
                "process.localization",
                format!(
                    "\"{}\" cannot be used with {}; use \"none\"",
                    localizer.kind(),
                    process.kind()
                ),
            ));
        }
        Ok(localizer)
    }

    /// `process.nan_tolerance`, in `[0, 1]`.
    fn nan_tolerance(&self, raw: &RawProcess) -> Result<f64, InputError> {
        let nan_tolerance = raw
            .nan_tolerance
            .unwrap_or(ekp_core::failure::DEFAULT_NAN_TOLERANCE);
        if !(0.0..=1.0).contains(&nan_tolerance) {
            return Err(self.invalid(
                "process.nan_tolerance",
                format!("must be in [0, 1], got {nan_tolerance}"),
            ));
        }
        Ok(nan_tolerance)
    }

    /// `process.accelerator`, or the process's default; none for sigma points.
    fn accelerator(&self, raw: &RawProcess, process: &Process) -> Result<Accelerator, InputError> {
        let accelerator = raw
            .accelerator
            .unwrap_or_else(|| process.default_accelerator());
        accelerator
            .validate()
            .map_err(|m| self.invalid("process.accelerator", m))?;
        if process.unscented().is_some() && !accelerator.is_none() {
            return Err(self.invalid(
                "process.accelerator",
                format!(
                    "\"{}\" cannot be used with {}: its ensemble is a set of sigma points",
                    accelerator.kind(),
                    process.kind()
                ),
            ));
        }
        Ok(accelerator)
    }

    /// `process.inflation`: valid, not for sigma points, and not together
    /// with `multiplicative_inflation`.
    fn check_inflation(&self, raw: &RawProcess, process: &Process) -> Result<(), InputError> {
        let Some(inflation) = &raw.inflation else {
            return Ok(());
        };
        inflation
            .validate()
            .map_err(|m| self.invalid("process.inflation", m))?;
        if process.unscented().is_some() {
            return Err(self.invalid(
                "process.inflation",
                format!(
                    "cannot be used with {}: its ensemble is a set of sigma points",
                    process.kind()
                ),
            ));
        }
        if raw.multiplicative_inflation.is_some() {
            return Err(self.invalid(
                "process.inflation",
                "give either `inflation = { ... }` or `multiplicative_inflation`, not both \
                 (`inflation` replaces the process's own inflation, as in EKP.jl)",
            ));
        }
        Ok(())
    }

    /// Options that are valid alone but not with this process or each
    /// other: update groups with sigma points or sparse-inversion, perturbed
    /// observations with an accelerator.
    fn check_combinations(
        &self,
        raw: &RawProcess,
        process: &Process,
        accelerator: Accelerator,
    ) -> Result<(), InputError> {
        if (process.unscented().is_some() || matches!(process, Process::SparseInversion(_)))
            && raw.update_groups.is_some()
        {
            return Err(self.invalid(
                "process.update_groups",
                format!("not supported with {} in this version", process.kind()),
            ));
        }
        if raw.perturb_observations == Some(true) && !accelerator.is_none() {
            return Err(self.invalid(
                "process.perturb_observations",
                format!(
                    "observations are never perturbed with an accelerator (\"{}\"), as in EKP.jl; \
                     set `accelerator = {{ kind = \"none\" }}` to perturb them",
                    accelerator.kind()
                ),
            ));
        }
        Ok(())
    }

    pub(super) fn one_based(&self, key: &str, i: usize) -> Result<usize, InputError> {
        i.checked_sub(1)
            .ok_or_else(|| self.invalid(key, "indices count from 1; got 0"))
    }

    pub(super) fn minibatch(&self, raw: &RawMinibatch) -> Result<MinibatchSpec, InputError> {
        let (minibatcher, sizes) = match raw {
            RawMinibatch::Fixed {
                batches,
                order,
                observation_sizes,
            } => {
                let mut zero_based = Vec::with_capacity(batches.len());
                for (b, batch) in batches.iter().enumerate() {
                    let key = format!("process.minibatch.batches[{}]", b + 1);
                    zero_based.push(
                        batch
                            .iter()
                            .map(|&i| self.one_based(&key, i))
                            .collect::<Result<Vec<_>, _>>()?,
                    );
                }
                (
                    Minibatcher::Fixed {
                        batches: zero_based,
                        random_order: *order == RawOrder::Random,
                    },
                    observation_sizes,
                )
            }
            RawMinibatch::RandomFixedSize {
                size,
                remainder,
                observation_sizes,
            } => (
                Minibatcher::RandomFixedSize {
                    size: *size,
                    remainder: *remainder,
                },
                observation_sizes,
            ),
        };
        if let Some(sizes) = sizes {
            if sizes.is_empty() || sizes.contains(&0) {
                return Err(self.invalid(
                    "process.minibatch.observation_sizes",
                    "must list positive sizes",
                ));
            }
            let total = sizes.iter().fold(0usize, |sum, &k| sum.saturating_add(k));
            if total > MAX_DATA_VALUES {
                return Err(self.invalid(
                    "process.minibatch.observation_sizes",
                    format!("add up to {total}; at most {MAX_DATA_VALUES} data values"),
                ));
            }
            minibatcher
                .validate(sizes.len())
                .map_err(|m| self.invalid("process.minibatch", m))?;
        }
        Ok(MinibatchSpec {
            observation_sizes: sizes.clone(),
            minibatcher,
        })
    }

    pub(super) fn update_groups(
        &self,
        raw: &[RawUpdateGroup],
        prior: &Prior,
    ) -> Result<Vec<UpdateGroup>, InputError> {
        if raw.is_empty() {
            return Err(self.invalid(
                "process.update_groups",
                "is empty; leave it out for one group",
            ));
        }
        let ranges = prior.ranges();
        let mut groups = Vec::with_capacity(raw.len());
        for (k, g) in raw.iter().enumerate() {
            let key = format!("process.update_groups[{}]", k + 1);
            let mut parameters = Vec::new();
            for name in &g.parameters {
                let i = prior
                    .parameters()
                    .iter()
                    .position(|p| p.name() == name)
                    .ok_or_else(|| {
                        self.invalid(
                            format!("{key}.parameters"),
                            format!("\"{name}\" is not one of the calibrated parameters"),
                        )
                    })?;
                parameters.extend(ranges[i].clone());
            }
            let outputs = g
                .outputs
                .iter()
                .map(|&o| self.one_based(&format!("{key}.outputs"), o))
                .collect::<Result<Vec<_>, _>>()?;
            groups.push(UpdateGroup::new(parameters, outputs));
        }
        // Output ranges are checked against the data when the process is built;
        // the partition of the parameters can be checked now.
        ekp_core::update_group::validate_groups(&groups, prior.dim(), usize::MAX)
            .map_err(|m| self.invalid("process.update_groups", m))?;
        Ok(groups)
    }

    /// Checks minibatching and update groups against `d` data values, when
    /// the data are given in the file (with `truth`, the process checks them
    /// when it is built).
    pub(super) fn check_against_data(
        &self,
        options: &ProcessOptions,
        d: usize,
    ) -> Result<(), InputError> {
        let obs_dim = match &options.minibatch {
            None => d,
            Some(spec) => match &spec.observation_sizes {
                None => {
                    spec.minibatcher
                        .validate(d)
                        .map_err(|m| self.invalid("process.minibatch", m))?;
                    1
                }
                Some(sizes) => {
                    let total: usize = sizes.iter().sum();
                    if total != d {
                        return Err(self.invalid(
                            "process.minibatch.observation_sizes",
                            format!("add up to {total}, but there are {d} data values"),
                        ));
                    }
                    if !options.update_groups.is_empty() && sizes.iter().any(|&k| k != sizes[0]) {
                        return Err(self.invalid(
                            "process.minibatch.observation_sizes",
                            "update groups need observations of one size (as in EKP.jl)",
                        ));
                    }
                    sizes[0]
                }
            },
        };
        if !options.update_groups.is_empty() {
            let p: usize = options
                .update_groups
                .iter()
                .map(|g| g.parameters.len())
                .sum();
            ekp_core::update_group::validate_groups(&options.update_groups, p, obs_dim)
                .map_err(|m| self.invalid("process.update_groups", m))?;
        }
        Ok(())
    }
}
