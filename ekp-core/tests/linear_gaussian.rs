//! EKI and ETKI against the closed forms of a linear-Gaussian problem.
//!
//! For a linear model and `N > p` members, the ensemble mean of unperturbed EKI
//! and of ETKI stays in the span of the initial ensemble and converges to the
//! minimiser of the (prior-extended) data misfit as the artificial time
//! `T = Σ Δt` grows. ETKI's covariance follows the exact Kalman recursion
//! (`C ~ 1/T`), so its error decays like `1/T`; unperturbed EKI's covariance
//! collapses twice as fast (`dC/dt = −2 C Gᵀ Γ⁻¹ G C`), so its mean error
//! decays only like `T^{-½}` (measured: 1.2e-2 at T = 400, 6.2e-3 at T = 1600),
//! hence the longer horizon (T = 20 000) used for EKI below. With perturbed
//! observations a Monte Carlo error of order `σ_post / √N` is added.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

mod common;

use common::LinearProblem;
use ekp_core::{
    Accelerator, EnsembleKalmanProcess, Inversion, Localizer, Process, Scheduler,
    TransformInversion, UpdateOutcome,
};
use nalgebra::DVector;

fn run(
    process: Process,
    members: usize,
    steps: usize,
    dt: f64,
    seed: u64,
) -> EnsembleKalmanProcess {
    let lp = LinearProblem::new();
    // The bare algorithms: no localization, no momentum (EKI's defaults are
    // EKP.jl's sec-nice and Nesterov, which these closed forms do not describe).
    let mut ekp = EnsembleKalmanProcess::builder(lp.prior(), lp.observation(), process)
        .ensemble_size(members)
        .seed(seed)
        .scheduler(Scheduler::Fixed { dt })
        .localizer(Localizer::None)
        .accelerator(Accelerator::None)
        .build()
        .expect("valid process");
    for _ in 0..steps {
        let g = lp.forward(ekp.ensemble());
        match ekp.update(&g).expect("update") {
            UpdateOutcome::Updated(_) => {}
            UpdateOutcome::Terminated => panic!("a fixed scheduler never terminates"),
        }
    }
    ekp
}

/// Error of `m` relative to `target`, in units of the posterior standard deviations.
fn z_error(m: &DVector<f64>, target: &DVector<f64>) -> f64 {
    let sd = LinearProblem::new()
        .posterior_cov()
        .diagonal()
        .map(f64::sqrt);
    (m - target).component_div(&sd).amax()
}

fn deterministic_eki(impose_prior: bool) -> Process {
    Process::Inversion(Inversion {
        impose_prior,
        perturb_observations: false,
        multiplicative_inflation: if impose_prior { 1e-3 } else { 0.0 },
    })
}

#[test]
fn eki_with_prior_converges_to_the_posterior_mean() {
    let lp = LinearProblem::new();
    // T = 20 000: the initial-ensemble memory decays like T^{-1/2} (see the top).
    let ekp = run(deterministic_eki(true), 20, 400, 50.0, 1);
    let err = z_error(&ekp.unconstrained_mean(), &lp.posterior_mean());
    assert!(
        err < 0.02,
        "mean off the posterior mean by {err} posterior sds"
    );
    // ... and not the least-squares solution, which is far away in these units.
    assert!(z_error(&lp.least_squares(), &lp.posterior_mean()) > 0.2);
}

#[test]
fn eki_without_prior_converges_to_least_squares() {
    let lp = LinearProblem::new();
    let ekp = run(deterministic_eki(false), 20, 400, 50.0, 2);
    let err = z_error(&ekp.unconstrained_mean(), &lp.least_squares());
    assert!(
        err < 0.02,
        "mean off the least-squares solution by {err} posterior sds"
    );
}

#[test]
fn perturbed_eki_with_prior_approaches_the_posterior_mean() {
    // Perturbed observations add Monte Carlo noise to the mean, at most of order
    // σ_post/√N ≈ 0.07 posterior sds with N = 200 (measured over five seeds:
    // 0.004–0.011, as the noise averages out over the iterations). 0.1 is above
    // that bound, and well below the 0.31 sds that separate the posterior mean
    // from the least-squares solution, so a lost prior term fails this test.
    let lp = LinearProblem::new();
    let ekp = run(Process::Inversion(Inversion::new(true)), 200, 200, 0.5, 3);
    let err = z_error(&ekp.unconstrained_mean(), &lp.posterior_mean());
    assert!(err < 0.1, "perturbed EKI mean off by {err} posterior sds");
}

#[test]
fn etki_with_prior_converges_to_the_posterior_mean() {
    let lp = LinearProblem::new();
    let ekp = run(
        Process::TransformInversion(TransformInversion::new(true)),
        20,
        400,
        1.0,
        4,
    );
    let err = z_error(&ekp.unconstrained_mean(), &lp.posterior_mean());
    assert!(
        err < 0.02,
        "ETKI mean off the posterior mean by {err} posterior sds"
    );
}

#[test]
fn etki_without_prior_converges_to_least_squares() {
    let lp = LinearProblem::new();
    let ekp = run(
        Process::TransformInversion(TransformInversion::new(false)),
        20,
        400,
        1.0,
        5,
    );
    let err = z_error(&ekp.unconstrained_mean(), &lp.least_squares());
    assert!(
        err < 0.02,
        "ETKI mean off the least-squares solution by {err} posterior sds"
    );
}

#[test]
fn one_etki_step_is_the_exact_kalman_update_of_the_ensemble_gaussian() {
    // With Δt = 1 and a linear model, ETKI maps the ensemble's own Gaussian
    // N(ū, C) exactly to its Kalman posterior: mean ū + C Gᵀ (G C Gᵀ + Γ)⁻¹ (y − G ū),
    // covariance C − C Gᵀ (G C Gᵀ + Γ)⁻¹ G C.
    let lp = LinearProblem::new();
    let mut ekp = EnsembleKalmanProcess::builder(
        lp.prior(),
        lp.observation(),
        Process::TransformInversion(TransformInversion::new(false)),
    )
    .ensemble_size(10)
    .seed(9)
    .scheduler(Scheduler::Fixed { dt: 1.0 })
    .build()
    .expect("valid");
    let u0 = ekp.ensemble().clone();
    let m = ekp.unconstrained_mean();
    let c = ekp.unconstrained_covariance();
    let s = &lp.g * &c * lp.g.transpose() + &lp.gamma;
    let k = &c * lp.g.transpose() * s.try_inverse().expect("invertible");
    let mean_exact = &m + &k * (&lp.y - &lp.g * &m);
    let cov_exact = &c - &k * &lp.g * &c;
    ekp.update(&lp.forward(&u0)).expect("update");
    let mean_err = (ekp.unconstrained_mean() - mean_exact).amax();
    let cov_err = (ekp.unconstrained_covariance() - cov_exact).amax();
    // Only the √ε regularisation separates the two.
    assert!(mean_err < 1e-6, "mean error {mean_err}");
    assert!(cov_err < 1e-6, "covariance error {cov_err}");
}

#[test]
fn one_unperturbed_eki_step_moves_the_mean_by_the_ensemble_kalman_gain() {
    // EKI normalises covariances by 1/N: gain K = C_N Gᵀ (G C_N Gᵀ + Γ)⁻¹ with
    // C_N = (N−1)/N · C (up to √ε on the diagonal).
    let lp = LinearProblem::new();
    let n = 8;
    let mut ekp =
        EnsembleKalmanProcess::builder(lp.prior(), lp.observation(), deterministic_eki(false))
            .ensemble_size(n)
            .seed(10)
            .scheduler(Scheduler::Fixed { dt: 1.0 })
            .localizer(Localizer::None)
            .accelerator(Accelerator::None)
            .build()
            .expect("valid");
    let u0 = ekp.ensemble().clone();
    let m = ekp.unconstrained_mean();
    let c = ekp.unconstrained_covariance() * ((n - 1) as f64 / n as f64);
    let s = &lp.g * &c * lp.g.transpose() + &lp.gamma;
    let k = &c * lp.g.transpose() * s.try_inverse().expect("invertible");
    let mean_exact = &m + &k * (&lp.y - &lp.g * &m);
    ekp.update(&lp.forward(&u0)).expect("update");
    assert!((ekp.unconstrained_mean() - mean_exact).amax() < 1e-6);
}
