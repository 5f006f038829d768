//! Localization on EKP.jl's own test problem (Tong & Morzfeld 2022, §6.1):
//! G(θ) = θ with p = d = 50 parameters and only N = 10 members. Without
//! localization EKI cannot leave the 9-dimensional span of the initial
//! ensemble; every localizer must reach a lower data misfit, through a
//! higher-rank update.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

use ekp_core::linalg::anomalies;
use ekp_core::{
    Accelerator, EnsembleKalmanProcess, Inversion, Localizer, NoiseCovariance, Observation,
    ParameterPrior, Prior, Process, Scheduler,
};
use nalgebra::{DMatrix, DVector};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

const P: usize = 50;
const N: usize = 10;
const ITERATIONS: usize = 20;

fn problem() -> (Prior, Observation) {
    // y = 10 · U[0, 1)^p, Γ = I, prior N(0, 0.5²) per component (as EKP.jl's test).
    let mut rng = ChaCha20Rng::seed_from_u64(42);
    let y = DVector::from_fn(P, |_, _| 10.0 * rng.random::<f64>());
    let prior = Prior::new(
        (0..P)
            .map(|i| ParameterPrior::gaussian(&format!("u{i}"), 0.0, 0.5, 1).expect("prior"))
            .collect(),
    )
    .expect("prior");
    let obs = Observation::new(y, NoiseCovariance::scalar_std(1.0, P).expect("Γ")).expect("obs");
    (prior, obs)
}

/// Runs EKI (EKP.jl's `Inversion()` defaults except the localizer, Δt = 1)
/// and returns the process.
fn run(localizer: Localizer, seed: u64) -> EnsembleKalmanProcess {
    let (prior, obs) = problem();
    let mut ekp =
        EnsembleKalmanProcess::builder(prior, obs, Process::Inversion(Inversion::default()))
            .ensemble_size(N)
            .seed(seed)
            .scheduler(Scheduler::Fixed { dt: 1.0 })
            .localizer(localizer)
            .build()
            .expect("valid");
    assert_eq!(ekp.accelerator(), &Accelerator::Nesterov, "EKI's default");
    for _ in 0..ITERATIONS {
        let g = ekp.ensemble().clone(); // G(θ) = θ
        ekp.update(&g).expect("update");
    }
    ekp
}

/// The data misfit of the final ensemble: `(1/d)(y − ḡ)ᵀΓ⁻¹(y − ḡ)` at its mean.
fn final_misfit(ekp: &EnsembleKalmanProcess) -> f64 {
    let m = ekp.unconstrained_mean();
    (ekp.observation().values() - m).norm_squared() / P as f64
}

fn numerical_rank(m: &DMatrix<f64>) -> usize {
    let sv = m.clone().svd(false, false).singular_values;
    let tol = sv.max() * 1e-9;
    sv.iter().filter(|&&s| s > tol).count()
}

/// The rank of all the moves the ensemble made: `[u_1 − u_0, …, u_K − u_{K−1}]`.
fn update_rank(ekp: &EnsembleKalmanProcess) -> usize {
    let h = ekp.u_history();
    let steps: Vec<DMatrix<f64>> = h.windows(2).map(|w| &w[1] - &w[0]).collect();
    let cols: Vec<_> = steps
        .iter()
        .flat_map(|s| s.column_iter().map(|c| c.into_owned()))
        .collect();
    numerical_rank(&DMatrix::from_columns(&cols))
}

fn localizers() -> Vec<Localizer> {
    vec![
        Localizer::Delta,
        Localizer::Rbf { length_scale: 1.0 },
        Localizer::Rbf { length_scale: 0.1 },
        Localizer::BernoulliDropout { prob: 0.1 },
        Localizer::sec(10.0),
        Localizer::SecFisher,
        Localizer::Sec {
            alpha: 1.0,
            r0: 0.1,
        },
        Localizer::sec_nice(),
    ]
}

#[test]
fn every_localizer_beats_no_localization_with_a_higher_rank_update() {
    let none = run(Localizer::None, 1);
    let none_misfit = final_misfit(&none);
    let none_rank = update_rank(&none);
    // Without localization every move lies in the span of the initial anomalies.
    assert!(none_rank < N, "unlocalized update rank {none_rank}");
    for loc in localizers() {
        let ekp = run(loc.clone(), 1);
        let misfit = final_misfit(&ekp);
        let rank = update_rank(&ekp);
        println!(
            "{:>18}: misfit {misfit:.4} (none {none_misfit:.4}), update rank {rank} (none {none_rank})",
            loc.kind()
        );
        assert!(
            misfit < none_misfit,
            "{loc:?}: misfit {misfit} not below the unlocalized {none_misfit}"
        );
        assert!(
            rank > none_rank,
            "{loc:?}: update rank {rank} ≤ {none_rank}"
        );
        // The ensemble does not blow up (EKP.jl's check).
        let spread0 = ekp_core::linalg::sample_covariance(&ekp.u_history()[0]).trace();
        let spread = ekp.unconstrained_covariance().trace();
        assert!(
            spread < 2.0 * spread0,
            "{loc:?}: spread grew from {spread0} to {spread}"
        );
    }
}

#[test]
fn localized_joint_covariance_has_a_higher_rank_schur_product_theorem() {
    // EKP.jl's test: rank(cov) < rank(localize(cov)) for the final ensemble.
    for loc in localizers() {
        let ekp = run(loc.clone(), 2);
        let u = ekp.ensemble();
        let g = u.clone();
        let joint = DMatrix::from_fn(
            2 * P,
            N,
            |i, j| if i < P { u[(i, j)] } else { g[(i - P, j)] },
        );
        let (_, a) = anomalies(&joint);
        let cov = &a * a.transpose() / N as f64;
        let mut rng = ChaCha20Rng::seed_from_u64(0);
        let localized = loc.localize_joint(&cov, P, N, &mut rng);
        let (r0, r1) = (numerical_rank(&cov), numerical_rank(&localized));
        assert!(r0 < r1, "{loc:?}: rank {r0} → {r1}");
    }
}

#[test]
fn localized_runs_are_reproducible_from_the_seed() {
    // bernoulli-dropout draws its kernels from the process's own RNG.
    let a = run(Localizer::BernoulliDropout { prob: 0.5 }, 7);
    let b = run(Localizer::BernoulliDropout { prob: 0.5 }, 7);
    assert_eq!(a.u_history(), b.u_history());
    let c = run(Localizer::BernoulliDropout { prob: 0.5 }, 8);
    assert_ne!(a.ensemble(), c.ensemble());
}

#[test]
fn transform_inversion_refuses_localization() {
    let (prior, obs) = problem();
    let err = EnsembleKalmanProcess::builder(
        prior,
        obs,
        Process::TransformInversion(ekp_core::TransformInversion::default()),
    )
    .localizer(Localizer::sec_nice())
    .build()
    .expect_err("ETKI with localization");
    assert!(err.to_string().contains("transform-inversion"), "{err}");
}

#[test]
fn localizer_settings_are_validated() {
    for bad in [
        Localizer::Rbf { length_scale: 0.0 },
        Localizer::BernoulliDropout { prob: 1.5 },
        Localizer::Sec {
            alpha: -1.0,
            r0: 0.0,
        },
        Localizer::Sec {
            alpha: 1.0,
            r0: 1.0,
        },
        Localizer::SecNice {
            delta_ug: 0.0,
            delta_gg: 1.0,
        },
    ] {
        let (prior, obs) = problem();
        let err =
            EnsembleKalmanProcess::builder(prior, obs, Process::Inversion(Inversion::default()))
                .localizer(bad.clone())
                .build()
                .expect_err("invalid");
        assert!(err.to_string().contains("localization."), "{bad:?}: {err}");
    }
}
