//! The ensemble Kalman sampler (EKS) and ALDI, as EKP.jl's `Sampler`.
//!
//! Over the `J` (successful) members, with `U = u − ū`, `E = g − ḡ`,
//! `R = g − y`, `C = (1/J) U Uᵀ + √ε I` and `D = (1/J) Eᵀ Γ⁻¹ R` (`J × J`),
//! one step of size `Δt` is the semi-implicit
//!
//! ```text
//! u* = (I + Δt C Σ₀⁻¹)⁻¹ (u − Δt U D + Δt C Σ₀⁻¹ m₀ [+ Δt (p+1)/J U])
//! ```
//!
//! (the bracket for ALDI only, its finite-sample correction) plus noise:
//! EKS `√(2Δt) C^{½} ξ_j`, `ξ_j ~ N(0, I_p)` per member (`C^{½}` the symmetric
//! square root); ALDI `√(2Δt) J^{-½} U Z`, `Z` a `J × J` standard normal
//! matrix. `m₀`, `Σ₀` are the (unconstrained, diagonal) prior's. EKP.jl's
//! defaults for the sampler: the `eks-stable` scheduler, no localization, no
//! accelerator, failures not tolerated (`ignore`).

use nalgebra::{DMatrix, SymmetricEigen};
use rand::Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use rand_chacha::ChaCha20Rng;

use super::{PriorBlock, ProcessStep, StepInput};
use crate::accelerator::Accelerator;
use crate::error::EkpError;
use crate::failure::FailurePolicy;
use crate::linalg::anomalies;
use crate::localization::Localizer;
use crate::observation::Observation;
use crate::scheduler::Scheduler;

/// Which sampler. The default is ALDI, as EKP.jl's `Sampler(prior)`
/// (`sampler_type = "aldi"`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SamplerType {
    /// The ensemble Kalman sampler (Garbuno-Inigo et al. 2020).
    Eks,
    /// Affine-invariant interacting Langevin dynamics (Garbuno-Inigo,
    /// Nüsken & Reich 2020): a finite-sample correction and ensemble
    /// square-root noise. The default, as in EKP.jl.
    #[default]
    Aldi,
}

impl SamplerType {
    /// The name used in calibration files (`process.sampler_type`).
    pub fn name(self) -> &'static str {
        match self {
            SamplerType::Eks => "eks",
            SamplerType::Aldi => "aldi",
        }
    }
}

/// Settings of the sampler.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sampler {
    /// ALDI (default, as EKP.jl's `Sampler(prior)`) or EKS.
    pub sampler_type: SamplerType,
}

/// EKP.jl's defaults for `Sampler`: `eks-stable`, no localization (the
/// sampler cannot be localized), failures not tolerated (`ignore`), no
/// accelerator.
impl ProcessStep for Sampler {
    fn default_scheduler(&self) -> Scheduler {
        Scheduler::eks_stable()
    }
    fn default_localizer(&self) -> Localizer {
        Localizer::None
    }
    fn supports_localization(&self) -> bool {
        false
    }
    fn default_failure_policy(&self) -> FailurePolicy {
        FailurePolicy::Ignore
    }
    fn default_accelerator(&self) -> Accelerator {
        Accelerator::None
    }
    fn impose_prior(&self) -> bool {
        false
    }
    /// The sampler always takes the prior.
    fn uses_prior_block(&self) -> bool {
        true
    }
    fn perturb_observations(&self) -> bool {
        false
    }
    fn multiplicative_inflation(&self) -> f64 {
        0.0
    }

    /// [`update`], with its noise draws.
    fn step(&self, input: &StepInput<'_>, rng: &mut ChaCha20Rng) -> Result<DMatrix<f64>, EkpError> {
        let pb = input.prior.ok_or(EkpError::InvalidSetting(
            "the sampler needs the prior".to_string(),
        ))?;
        update(
            self,
            input.u,
            &input.dense_outputs(),
            input.obs,
            input.dt,
            pb,
            rng,
        )
    }
}

/// One sampler step of the members `u` with outputs `g`.
pub(crate) fn update<R: Rng + ?Sized>(
    sampler: &Sampler,
    u: &DMatrix<f64>,
    g: &DMatrix<f64>,
    obs: &Observation,
    dt: f64,
    prior: PriorBlock<'_>,
    rng: &mut R,
) -> Result<DMatrix<f64>, EkpError> {
    let (p, j) = u.shape();
    let jf = j as f64;
    let (_, ua) = anomalies(u);
    let (_, ea) = anomalies(g);
    let mut c = (&ua * ua.transpose()) / jf;
    let reg = f64::EPSILON.sqrt();
    for i in 0..p {
        c[(i, i)] += reg;
    }
    let mut r = g.clone();
    for mut col in r.column_iter_mut() {
        col -= obs.values();
    }
    obs.noise().solve_inplace(&mut r);
    let dmat = (ea.transpose() * r) / jf;
    // C Σ₀⁻¹ (Σ₀ diagonal): column k of C divided by σ₀²_k.
    let mut c_s0inv = c.clone();
    for (k, v) in prior.variances.iter().enumerate() {
        let mut col = c_s0inv.column_mut(k);
        col /= *v;
    }
    let drift_prior = &c_s0inv * prior.mean * dt;
    let mut rhs = u - (&ua * dmat) * dt;
    for mut col in rhs.column_iter_mut() {
        col += &drift_prior;
    }
    if sampler.sampler_type == SamplerType::Aldi {
        rhs += &ua * (dt * (p as f64 + 1.0) / jf);
    }
    let mut a = c_s0inv * dt;
    for i in 0..p {
        a[(i, i)] += 1.0;
    }
    let implicit = a.lu().solve(&rhs).ok_or(EkpError::Singular {
        what: "I + Δt C Σ₀⁻¹",
    })?;
    let noise = match sampler.sampler_type {
        SamplerType::Eks => {
            let eig = SymmetricEigen::new(c);
            let s = eig.eigenvalues.map(|l| l.max(0.0).sqrt());
            let sqrt_c =
                &eig.eigenvectors * DMatrix::from_diagonal(&s) * eig.eigenvectors.transpose();
            let z = DMatrix::from_fn(p, j, |_, _| rng.sample::<f64, _>(StandardNormal));
            sqrt_c * z
        }
        SamplerType::Aldi => {
            let z = DMatrix::from_fn(j, j, |_, _| rng.sample::<f64, _>(StandardNormal));
            (&ua * z) / jf.sqrt()
        }
    };
    Ok(implicit + noise * (2.0 * dt).sqrt())
}
