//! `[process]`: the algorithm (`kind`) and its own settings, validated into
//! an `ekp_core::Process` and the ensemble size; keys that belong to other
//! processes are refused.

use ekp_core::{
    GaussNewton, Inversion, Prior, Process, Sampler, SparseInversion, TransformInversion, Unscented,
};

use super::Ctx;
use super::limits::{MAX_ENSEMBLE_SIZE, MAX_ITERATIONS};
use super::schema::{ProcessKind, RawProcess};
use crate::error::InputError;

/// `process.ensemble_size` when not given (and not derived).
const DEFAULT_ENSEMBLE_SIZE: usize = 20;

impl Ctx<'_> {
    /// The process and its ensemble size `N`: the algorithm's settings, no
    /// key of another process, `multiplicative_inflation`, `ensemble_size`
    /// and `iterations` checked in this order.
    pub(super) fn process(
        &self,
        raw: &RawProcess,
        prior: &Prior,
    ) -> Result<(Process, usize), InputError> {
        let process = self.algorithm(raw, prior)?;
        self.refuse_foreign_keys(raw, &process)?;
        if let Some(s) = raw.multiplicative_inflation
            && !(s.is_finite() && s >= 0.0)
        {
            return Err(self.invalid(
                "process.multiplicative_inflation",
                format!("must be ≥ 0 and finite, got {s}"),
            ));
        }
        let n = self.ensemble_size(raw, &process, prior)?;
        self.iterations(raw)?;
        Ok((process, n))
    }

    /// The algorithm of `process.kind` with its own settings.
    fn algorithm(&self, raw: &RawProcess, prior: &Prior) -> Result<Process, InputError> {
        let impose_prior = raw.impose_prior.unwrap_or(false);
        let process = match raw.kind {
            ProcessKind::Inversion => {
                let mut settings = Inversion::new(impose_prior);
                if let Some(p) = raw.perturb_observations {
                    settings.perturb_observations = p;
                }
                if let Some(s) = raw.multiplicative_inflation {
                    settings.multiplicative_inflation = s;
                }
                Process::Inversion(settings)
            }
            ProcessKind::TransformInversion => {
                if raw.perturb_observations.is_some() {
                    return Err(self.invalid(
                        "process.perturb_observations",
                        "transform-inversion is deterministic: it never perturbs observations",
                    ));
                }
                let mut settings = TransformInversion::new(impose_prior);
                if let Some(s) = raw.multiplicative_inflation {
                    settings.multiplicative_inflation = s;
                }
                Process::TransformInversion(settings)
            }
            ProcessKind::Sampler => {
                self.refuse_impose_prior(raw, "the sampler always uses the prior; remove the key")?;
                Process::Sampler(Sampler {
                    sampler_type: raw.sampler_type.unwrap_or_default(),
                })
            }
            ProcessKind::Unscented | ProcessKind::TransformUnscented => {
                let settings = self.unscented(raw, prior, impose_prior)?;
                if raw.kind == ProcessKind::Unscented {
                    Process::Unscented(settings)
                } else {
                    Process::TransformUnscented(settings)
                }
            }
            ProcessKind::GaussNewton => {
                self.refuse_impose_prior(
                    raw,
                    "gauss-newton always uses the prior; remove the key",
                )?;
                let mut settings = GaussNewton::default();
                if let Some(p) = raw.perturb_observations {
                    settings.perturb_observations = p;
                }
                Process::GaussNewton(settings)
            }
            ProcessKind::SparseInversion => {
                self.refuse_impose_prior(
                    raw,
                    "sparse-inversion never uses the prior (as EKP.jl's SparseInversion); \
                     remove the key",
                )?;
                Process::SparseInversion(self.sparse_inversion(raw, prior)?)
            }
        };
        Ok(process)
    }

    /// `process.impose_prior` is an error for processes that have no choice.
    fn refuse_impose_prior(&self, raw: &RawProcess, message: &str) -> Result<(), InputError> {
        if raw.impose_prior.is_some() {
            return Err(self.invalid("process.impose_prior", message));
        }
        Ok(())
    }

    /// The settings of `unscented` and `transform-unscented`, whose ensemble
    /// (the sigma points) is derived from the parameters.
    fn unscented(
        &self,
        raw: &RawProcess,
        prior: &Prior,
        impose_prior: bool,
    ) -> Result<Unscented, InputError> {
        let mut settings = Unscented::new(impose_prior);
        if let Some(a) = raw.alpha_reg {
            settings.alpha_reg = a;
        }
        if let Some(f) = raw.update_freq {
            settings.update_freq = f;
        }
        if let Some(sp) = raw.sigma_points {
            settings.sigma_points = sp;
        }
        if let Some(m) = raw.modified_unscented_transform {
            settings.modified_unscented_transform = m;
        }
        settings
            .validate()
            .map_err(|m| self.invalid("process", m))?;
        if raw.ensemble_size.is_some() {
            return Err(self.invalid(
                "process.ensemble_size",
                format!(
                    "{} derives its ensemble from the {} parameters ({} sigma points, \
                     `sigma_points = \"{}\"`); remove the key",
                    match raw.kind {
                        ProcessKind::Unscented => "unscented",
                        _ => "transform-unscented",
                    },
                    prior.dim(),
                    settings.ensemble_size(prior.dim()),
                    settings.sigma_points.name()
                ),
            ));
        }
        Ok(settings)
    }

    /// Keys that belong to other processes are errors, not silently ignored.
    fn refuse_foreign_keys(&self, raw: &RawProcess, process: &Process) -> Result<(), InputError> {
        let sparse = raw.kind == ProcessKind::SparseInversion;
        let unscented = matches!(
            raw.kind,
            ProcessKind::Unscented | ProcessKind::TransformUnscented
        );
        let foreign: [(&str, bool, bool); 10] = [
            (
                "perturb_observations",
                raw.perturb_observations.is_some(),
                matches!(
                    raw.kind,
                    ProcessKind::Inversion
                        | ProcessKind::GaussNewton
                        | ProcessKind::SparseInversion
                ),
            ),
            ("gamma", raw.gamma.is_some(), sparse),
            ("threshold", raw.threshold.is_some(), sparse),
            ("reg", raw.reg.is_some(), sparse),
            ("sparse_parameters", raw.sparse_parameters.is_some(), sparse),
            (
                "multiplicative_inflation",
                raw.multiplicative_inflation.is_some(),
                matches!(
                    raw.kind,
                    ProcessKind::Inversion | ProcessKind::TransformInversion
                ),
            ),
            (
                "sampler_type",
                raw.sampler_type.is_some(),
                raw.kind == ProcessKind::Sampler,
            ),
            ("alpha_reg", raw.alpha_reg.is_some(), unscented),
            ("update_freq", raw.update_freq.is_some(), unscented),
            (
                "sigma_points",
                raw.sigma_points.is_some() || raw.modified_unscented_transform.is_some(),
                unscented,
            ),
        ];
        for (key, given, applies) in foreign {
            if given && !applies {
                return Err(self.invalid(
                    format!("process.{key}"),
                    format!("does not apply to process kind \"{}\"", process.kind()),
                ));
            }
        }
        Ok(())
    }

    /// Members `N`: derived (unscented), `process.ensemble_size`, or 20; at
    /// least 2 and at most [`MAX_ENSEMBLE_SIZE`].
    fn ensemble_size(
        &self,
        raw: &RawProcess,
        process: &Process,
        prior: &Prior,
    ) -> Result<usize, InputError> {
        let derived = process.derived_ensemble_size(prior.dim());
        let n = derived.unwrap_or_else(|| raw.ensemble_size.unwrap_or(DEFAULT_ENSEMBLE_SIZE));
        if n < 2 {
            return Err(self.invalid(
                "process.ensemble_size",
                format!("must be at least 2, got {n}"),
            ));
        }
        if n > MAX_ENSEMBLE_SIZE {
            return Err(match derived {
                None => self.invalid(
                    "process.ensemble_size",
                    format!("must be at most {MAX_ENSEMBLE_SIZE}, got {n}"),
                ),
                Some(_) => self.invalid(
                    "parameters",
                    format!(
                        "{} parameter components make {n} sigma points, more than the \
                         {MAX_ENSEMBLE_SIZE} members ekp runs",
                        prior.dim()
                    ),
                ),
            });
        }
        Ok(n)
    }

    /// `process.iterations`: between 1 and [`MAX_ITERATIONS`] when given.
    fn iterations(&self, raw: &RawProcess) -> Result<(), InputError> {
        match raw.iterations {
            Some(0) => Err(self.invalid("process.iterations", "must be at least 1")),
            Some(k) if k > MAX_ITERATIONS => Err(self.invalid(
                "process.iterations",
                format!("must be at most {MAX_ITERATIONS}, got {k}"),
            )),
            _ => Ok(()),
        }
    }

    /// The settings of `sparse-inversion`: `gamma` (required), `threshold`,
    /// `reg`, `sparse_parameters` (names of parameters, all their components,
    /// or of single components such as `"u[2]"`), `perturb_observations`.
    pub(super) fn sparse_inversion(
        &self,
        raw: &RawProcess,
        prior: &Prior,
    ) -> Result<SparseInversion, InputError> {
        let gamma = raw.gamma.ok_or_else(|| {
            self.invalid(
                "process.gamma",
                "is required for sparse-inversion: the upper limit of the ℓ1 norm of the \
                 sparse parameters (in unconstrained space; EKP.jl's γ has no default)",
            )
        })?;
        let mut settings = SparseInversion::new(gamma);
        if let Some(t) = raw.threshold {
            settings.threshold = t;
        }
        if let Some(r) = raw.reg {
            settings.reg = r;
        }
        if let Some(p) = raw.perturb_observations {
            settings.perturb_observations = p;
        }
        for (key, v) in [
            ("gamma", settings.gamma),
            ("threshold", settings.threshold),
            ("reg", settings.reg),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(self.invalid(
                    format!("process.{key}"),
                    format!("must be ≥ 0 and finite, got {v}"),
                ));
            }
        }
        if let Some(names) = &raw.sparse_parameters {
            let key = "process.sparse_parameters";
            if names.is_empty() {
                return Err(self.invalid(key, "is empty; leave it out to choose every parameter"));
            }
            let ranges = prior.ranges();
            let flat = prior.flat_names();
            let mut indices: Vec<usize> = Vec::new();
            for name in names {
                let found: Vec<usize> =
                    match prior.parameters().iter().position(|p| p.name() == name) {
                        Some(i) => ranges[i].clone().collect(),
                        None => match flat.iter().position(|f| f == name) {
                            Some(i) => vec![i],
                            None => {
                                return Err(self.invalid(
                                    key,
                                    format!(
                                        "\"{name}\" is neither a calibrated parameter nor one \
                                         component of one (such as \"{}\")",
                                        flat.last().map(String::as_str).unwrap_or("u[1]")
                                    ),
                                ));
                            }
                        },
                    };
                for i in found {
                    if indices.contains(&i) {
                        return Err(self.invalid(
                            key,
                            format!("\"{}\" is chosen twice (through \"{name}\")", flat[i]),
                        ));
                    }
                    indices.push(i);
                }
            }
            settings.sparse_indices = Some(indices);
        }
        settings
            .validate(prior.dim())
            .map_err(|m| self.invalid("process", m))?;
        Ok(settings)
    }
}
