//! UKI and UTKI against the closed forms of a linear-Gaussian problem.
//!
//! For a linear model the unscented transform is exact, so UKI is the Kalman
//! filter of its artificial dynamics: with `impose_prior` (both blocks scaled
//! by 2, our deliberate difference from EKP.jl) and `Δt = 1` its fixed point is
//! the exact posterior, reached geometrically; only rounding (the `√ε`
//! regularisations, ~1.5e-8) is left, hence the tight tolerances.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

mod common;

use common::LinearProblem;
use ekp_core::{EnsembleKalmanProcess, Process, Scheduler, SigmaPoints, Unscented, UpdateOutcome};

fn run(process: Process, steps: usize) -> EnsembleKalmanProcess {
    let lp = LinearProblem::new();
    let mut ekp = EnsembleKalmanProcess::builder(lp.prior(), lp.observation(), process)
        .seed(3)
        .scheduler(Scheduler::Fixed { dt: 1.0 })
        .build()
        .expect("valid process");
    for _ in 0..steps {
        let g = lp.forward(ekp.ensemble());
        match ekp.update(&g).expect("update") {
            UpdateOutcome::Updated(_) => {}
            UpdateOutcome::Terminated => panic!("fixed scheduler"),
        }
    }
    ekp
}

fn rel(a: &nalgebra::DMatrix<f64>, b: &nalgebra::DMatrix<f64>) -> f64 {
    (a - b).norm() / b.norm()
}

#[test]
fn uki_with_prior_reproduces_the_posterior_mean_and_covariance() {
    let lp = LinearProblem::new();
    for sigma_points in [SigmaPoints::Symmetric, SigmaPoints::Simplex] {
        let mut s = Unscented::new(true);
        s.sigma_points = sigma_points;
        let ekp = run(Process::Unscented(s), 60);
        let mean_err =
            (ekp.unconstrained_mean() - lp.posterior_mean()).norm() / lp.posterior_mean().norm();
        let cov_err = rel(&ekp.unconstrained_covariance(), &lp.posterior_cov());
        eprintln!("UKI {sigma_points:?}: mean rel err {mean_err:.2e}, cov rel err {cov_err:.2e}");
        assert!(mean_err < 1e-6, "{sigma_points:?}: mean rel err {mean_err}");
        assert!(cov_err < 1e-6, "{sigma_points:?}: cov rel err {cov_err}");
        let expected_n = match sigma_points {
            SigmaPoints::Symmetric => 7,
            SigmaPoints::Simplex => 5,
        };
        assert_eq!(ekp.ensemble_size(), expected_n);
    }
}

#[test]
fn uki_without_prior_converges_to_least_squares() {
    let lp = LinearProblem::new();
    let ekp = run(Process::Unscented(Unscented::new(false)), 60);
    let err = (ekp.unconstrained_mean() - lp.least_squares()).norm() / lp.least_squares().norm();
    eprintln!("UKI no prior: mean rel err to least squares {err:.2e}");
    assert!(err < 1e-4, "{err}");
}

#[test]
fn utki_agrees_with_uki() {
    for impose_prior in [true, false] {
        for sigma_points in [SigmaPoints::Symmetric, SigmaPoints::Simplex] {
            let mut s = Unscented::new(impose_prior);
            s.sigma_points = sigma_points;
            let a = run(Process::Unscented(s.clone()), 8);
            let b = run(Process::TransformUnscented(s), 8);
            let dm = (a.unconstrained_mean() - b.unconstrained_mean()).norm()
                / a.unconstrained_mean().norm();
            let dc = rel(&b.unconstrained_covariance(), &a.unconstrained_covariance());
            eprintln!(
                "UKI vs UTKI prior={impose_prior} {sigma_points:?}: mean {dm:.2e}, cov {dc:.2e}"
            );
            // The two differ only by the √ε ≈ 1.5e-8 regularisations.
            assert!(dm < 1e-6 && dc < 1e-6, "mean {dm}, cov {dc}");
        }
    }
}

#[test]
fn uki_initial_ensemble_are_the_prior_sigma_points_and_ensemble_size_is_derived() {
    let lp = LinearProblem::new();
    let ekp = EnsembleKalmanProcess::builder(
        lp.prior(),
        lp.observation(),
        Process::Unscented(Unscented::new(false)),
    )
    .ensemble_size(100) // ignored: derived from p
    .build()
    .unwrap();
    assert_eq!(ekp.ensemble_size(), 7);
    let u = ekp.ensemble();
    // Symmetric: centre at the prior mean, ±√(p+λ)·σ₀ along each axis (a = 1, λ = 0).
    for i in 0..3 {
        assert!((u[(i, 0)] - lp.m0[i]).abs() < 1e-12);
        let off = u[(i, i + 1)] - lp.m0[i];
        assert!((off - 3f64.sqrt() * lp.s0[i]).abs() < 1e-12, "{off}");
        assert!((u[(i, i + 4)] - lp.m0[i] + off).abs() < 1e-12);
    }
    assert!((ekp.unconstrained_covariance() - lp.prior().cov()).norm() < 1e-14);
}

#[test]
fn uki_rejects_conflicting_settings() {
    let lp = LinearProblem::new();
    let mut s = Unscented::new(true);
    s.alpha_reg = 0.5;
    assert!(
        EnsembleKalmanProcess::builder(lp.prior(), lp.observation(), Process::Unscented(s))
            .build()
            .is_err()
    );
    let mut s = Unscented::new(false);
    s.alpha_reg = 0.0;
    assert!(
        EnsembleKalmanProcess::builder(lp.prior(), lp.observation(), Process::Unscented(s))
            .build()
            .is_err()
    );
}

#[test]
fn uki_alpha_reg_and_update_freq_run() {
    let lp = LinearProblem::new();
    let mut s = Unscented::new(false);
    s.alpha_reg = 0.9;
    s.update_freq = 2;
    let ekp = run(Process::Unscented(s), 30);
    // α < 1 pulls toward the prior mean: the mean lies between it and least squares.
    let m = ekp.unconstrained_mean();
    assert!(m.iter().all(|v| v.is_finite()));
    assert!((&m - lp.least_squares()).norm() > 1e-3);
    assert!(m.norm() < lp.least_squares().norm());
}

#[test]
fn uki_state_survives_save_and_load() {
    let lp = LinearProblem::new();
    let mut a = run(Process::Unscented(Unscented::new(true)), 3);
    let text = toml::to_string(&a).unwrap();
    let mut b: EnsembleKalmanProcess = toml::from_str(&text).unwrap();
    for _ in 0..3 {
        let g = lp.forward(a.ensemble());
        a.update(&g).unwrap();
        b.update(&g).unwrap();
    }
    assert_eq!(a.ensemble(), b.ensemble());
    assert_eq!(a.unconstrained_covariance(), b.unconstrained_covariance());
}

#[test]
fn uki_tolerates_a_failed_sigma_point() {
    let lp = LinearProblem::new();
    let mut ekp = EnsembleKalmanProcess::builder(
        lp.prior(),
        lp.observation(),
        Process::Unscented(Unscented::new(true)),
    )
    .scheduler(Scheduler::Fixed { dt: 1.0 })
    .build()
    .unwrap();
    let mut g = lp.forward(ekp.ensemble());
    g.column_mut(2).fill(f64::NAN);
    ekp.update(&g).unwrap();
    for _ in 0..40 {
        let g = lp.forward(ekp.ensemble());
        ekp.update(&g).unwrap();
    }
    let err = (ekp.unconstrained_mean() - lp.posterior_mean()).norm();
    assert!(err < 1e-6, "{err}");
}
