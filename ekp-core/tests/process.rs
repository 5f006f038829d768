//! The ask/tell process: schedulers, failure handling, errors that change
//! nothing, and exact save → load → continue.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

mod common;

use common::LinearProblem;
use ekp_core::{
    EkpError, EnsembleKalmanProcess, FailurePolicy, Inversion, NoiseCovariance, Observation,
    ObservationError, Process, Scheduler, TransformInversion, UpdateOutcome,
};
use nalgebra::{DMatrix, DVector};

fn eki(lp: &LinearProblem, scheduler: Scheduler, failure: FailurePolicy) -> EnsembleKalmanProcess {
    EnsembleKalmanProcess::builder(
        lp.prior(),
        lp.observation(),
        Process::Inversion(Inversion::new(false)),
    )
    .ensemble_size(12)
    .seed(7)
    .scheduler(scheduler)
    .failure_policy(failure)
    .build()
    .expect("valid")
}

#[test]
fn data_misfit_scheduler_stops_exactly_at_its_terminal_time() {
    let lp = LinearProblem::new();
    let mut ekp = eki(&lp, Scheduler::data_misfit(1.0), FailurePolicy::Ignore);
    let mut updates = 0;
    for _ in 0..200 {
        let g = lp.forward(ekp.ensemble());
        match ekp.update(&g).expect("update") {
            UpdateOutcome::Updated(r) => {
                updates += 1;
                assert!(r.dt > 0.0);
                let t: f64 = ekp.dt_history().iter().sum();
                assert!(t <= 1.0 + 1e-12, "passed the terminal time: {t}");
            }
            UpdateOutcome::Terminated => break,
        }
    }
    assert!(ekp.is_terminated());
    assert_eq!(ekp.dt_history().len(), updates, "one Δt per update");
    assert_eq!(ekp.u_history().len(), updates + 1);
    let t: f64 = ekp.dt_history().iter().sum();
    assert!((t - 1.0).abs() < 1e-12, "stopped at T = {t}, not 1");
    // Terminated: further updates change nothing.
    let before = ekp.ensemble().clone();
    let g = lp.forward(&before);
    assert_eq!(ekp.update(&g).expect("no error"), UpdateOutcome::Terminated);
    assert_eq!(ekp.ensemble(), &before);
}

#[test]
fn data_misfit_first_step_follows_the_iglesias_yang_formula() {
    let lp = LinearProblem::new();
    let mut ekp = eki(&lp, Scheduler::data_misfit(1e9), FailurePolicy::Ignore);
    let g = lp.forward(ekp.ensemble());
    // Φ_j = ½ ‖Γ^{-½}(y − g_j)‖², Δt = max(d/(2 mean Φ), √(d/(2 var Φ))).
    let gamma_inv = lp.gamma.clone().try_inverse().expect("invertible");
    let phi: Vec<f64> = g
        .column_iter()
        .map(|c| {
            let r = &lp.y - c;
            0.5 * (r.transpose() * &gamma_inv * &r)[0]
        })
        .collect();
    let n = phi.len() as f64;
    let mean = phi.iter().sum::<f64>() / n;
    let var = phi.iter().map(|p| (p - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let d = lp.y.len() as f64;
    let expected = (d / (2.0 * mean)).max((d / (2.0 * var)).sqrt());
    let UpdateOutcome::Updated(r) = ekp.update(&g).expect("update") else {
        panic!("not terminated");
    };
    assert!(
        (r.dt - expected).abs() < 1e-12 * expected,
        "{} vs {expected}",
        r.dt
    );
}

#[test]
fn one_step_override_applies_once() {
    let lp = LinearProblem::new();
    let mut ekp = eki(&lp, Scheduler::Fixed { dt: 0.5 }, FailurePolicy::Ignore);
    let g = lp.forward(ekp.ensemble());
    ekp.update_with_dt(&g, 0.125).expect("update");
    let g = lp.forward(ekp.ensemble());
    ekp.update(&g).expect("update");
    assert_eq!(ekp.dt_history(), &[0.125, 0.5]);
    assert!(matches!(
        ekp.update_with_dt(&g, -1.0),
        Err(EkpError::InvalidDt { .. })
    ));
}

fn with_nans(g: &DMatrix<f64>, members: &[usize]) -> DMatrix<f64> {
    let mut g = g.clone();
    for &j in members {
        g[(0, j)] = f64::NAN;
    }
    g
}

#[test]
fn sample_success_gauss_updates_the_good_members_and_redraws_the_failed() {
    let lp = LinearProblem::new();
    let mut ekp = eki(
        &lp,
        Scheduler::Fixed { dt: 1.0 },
        FailurePolicy::SampleSuccessGauss,
    );
    // The good members must move exactly as an update of the good members alone.
    let mut alone = EnsembleKalmanProcess::builder(
        lp.prior(),
        lp.observation(),
        Process::TransformInversion(TransformInversion::new(false)),
    )
    .initial_ensemble(DMatrix::from_columns(
        &[0, 1, 3, 4, 5, 6, 7, 8, 9, 11].map(|j| ekp.ensemble().column(j).into_owned()),
    ))
    .scheduler(Scheduler::Fixed { dt: 1.0 })
    .build()
    .expect("valid");
    let mut etki = EnsembleKalmanProcess::builder(
        lp.prior(),
        lp.observation(),
        Process::TransformInversion(TransformInversion::new(false)),
    )
    .initial_ensemble(ekp.ensemble().clone())
    .scheduler(Scheduler::Fixed { dt: 1.0 })
    .failure_policy(FailurePolicy::SampleSuccessGauss)
    .build()
    .expect("valid");
    let g = with_nans(&lp.forward(etki.ensemble()), &[2, 10]);
    let UpdateOutcome::Updated(report) = etki.update(&g).expect("update") else {
        panic!("fixed never terminates");
    };
    assert_eq!(report.failed, vec![2, 10]);
    assert_eq!(etki.failed_history(), &[vec![2, 10]]);
    let g_alone = lp.forward(alone.ensemble());
    alone.update(&g_alone).expect("update");
    for (k, j) in [0, 1, 3, 4, 5, 6, 7, 8, 9, 11].iter().enumerate() {
        let diff = (etki.ensemble().column(*j) - alone.ensemble().column(k)).amax();
        assert!(diff < 1e-12, "member {j} differs by {diff}");
    }
    // The redrawn members are finite and near the good members' spread.
    for j in [2, 10] {
        assert!(etki.ensemble().column(j).iter().all(|v| v.is_finite()));
    }

    // And EKI with failures keeps going to convergence.
    for it in 0..30 {
        let mut g = lp.forward(ekp.ensemble());
        if it % 3 == 0 {
            g = with_nans(&g, &[it % 12]);
        }
        ekp.update(&g).expect("update with a failed member");
    }
    assert!(ekp.ensemble().iter().all(|v| v.is_finite()));
    let err = (ekp.unconstrained_mean() - lp.least_squares()).amax();
    assert!(
        err < 0.2,
        "EKI with failures ended {err} from the least-squares solution"
    );
}

#[test]
fn ignore_policy_refuses_failed_members_and_changes_nothing() {
    let lp = LinearProblem::new();
    let mut ekp = eki(&lp, Scheduler::Fixed { dt: 1.0 }, FailurePolicy::Ignore);
    let before = ekp.clone();
    let g = with_nans(&lp.forward(ekp.ensemble()), &[4]);
    match ekp.update(&g) {
        Err(EkpError::FailedMembers { members }) => assert_eq!(members, vec![5]),
        other => panic!("expected FailedMembers, got {other:?}"),
    }
    assert_eq!(ekp.u_history(), before.u_history());
    // The RNG is untouched too: the next good update is the one we would have had.
    let mut reference = before.clone();
    let g = lp.forward(ekp.ensemble());
    ekp.update(&g).expect("update");
    reference.update(&g).expect("update");
    assert_eq!(ekp.ensemble(), reference.ensemble());
}

#[test]
fn fewer_than_two_good_members_is_an_error_that_changes_nothing() {
    let lp = LinearProblem::new();
    let mut ekp = eki(
        &lp,
        Scheduler::Fixed { dt: 1.0 },
        FailurePolicy::SampleSuccessGauss,
    );
    let g = with_nans(&lp.forward(ekp.ensemble()), &(1..12).collect::<Vec<_>>());
    match ekp.update(&g) {
        Err(EkpError::TooFewSuccessful {
            successful, total, ..
        }) => {
            assert_eq!((successful, total), (1, 12));
        }
        other => panic!("expected TooFewSuccessful, got {other:?}"),
    }
    assert_eq!(ekp.iterations(), 0);
    let all_bad = DMatrix::from_element(lp.y.len(), 12, f64::INFINITY);
    assert!(matches!(
        ekp.update(&all_bad),
        Err(EkpError::TooFewSuccessful { successful: 0, .. })
    ));
    let wrong = DMatrix::zeros(lp.y.len() + 1, 12);
    assert!(matches!(
        ekp.update(&wrong),
        Err(EkpError::OutputShape { .. })
    ));
}

#[test]
fn save_load_continue_equals_an_uninterrupted_run() {
    let lp = LinearProblem::new();
    for process in [
        Process::Inversion(Inversion::new(true)),
        Process::TransformInversion(TransformInversion::new(false)),
    ] {
        let build = || {
            EnsembleKalmanProcess::builder(lp.prior(), lp.observation(), process.clone())
                .ensemble_size(10)
                .seed(99)
                .scheduler(Scheduler::data_misfit(50.0))
                .build()
                .expect("valid")
        };
        let mut straight = build();
        let mut resumed = build();
        for _ in 0..3 {
            let g = lp.forward(straight.ensemble());
            straight.update(&g).expect("update");
            resumed.update(&g).expect("update");
        }
        let text = toml::to_string(&resumed).expect("serialise");
        let mut resumed: EnsembleKalmanProcess = toml::from_str(&text).expect("deserialise");
        for _ in 0..4 {
            let g = lp.forward(straight.ensemble());
            straight.update(&g).expect("update");
            let g = lp.forward(resumed.ensemble());
            resumed.update(&g).expect("update");
        }
        assert_eq!(
            straight.u_history(),
            resumed.u_history(),
            "{}",
            process.kind()
        );
        assert_eq!(straight.dt_history(), resumed.dt_history());
    }
}

#[test]
fn the_same_seed_gives_the_same_run_and_another_seed_does_not() {
    let lp = LinearProblem::new();
    let run = |seed| {
        let mut ekp = EnsembleKalmanProcess::builder(
            lp.prior(),
            lp.observation(),
            Process::Inversion(Inversion::new(false)),
        )
        .ensemble_size(8)
        .seed(seed)
        .scheduler(Scheduler::Fixed { dt: 0.3 })
        .build()
        .expect("valid");
        for _ in 0..3 {
            let g = lp.forward(ekp.ensemble());
            ekp.update(&g).expect("update");
        }
        ekp.ensemble().clone()
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1), run(2));
}

#[test]
fn builder_rejects_bad_settings() {
    let lp = LinearProblem::new();
    let b = || {
        EnsembleKalmanProcess::builder(
            lp.prior(),
            lp.observation(),
            Process::Inversion(Inversion::new(false)),
        )
    };
    assert!(matches!(
        b().ensemble_size(1).build(),
        Err(EkpError::EnsembleSize { members: 1 })
    ));
    assert!(matches!(
        b().scheduler(Scheduler::Fixed { dt: 0.0 }).build(),
        Err(EkpError::InvalidSetting(_))
    ));
    assert!(matches!(
        b().initial_ensemble(DMatrix::zeros(2, 5)).build(),
        Err(EkpError::InitialEnsembleShape { rows: 2, .. })
    ));
}

#[test]
fn observation_noise_is_validated() {
    let y = DVector::from_column_slice(&[1.0, 2.0]);
    assert!(matches!(
        NoiseCovariance::full(DMatrix::from_row_slice(2, 2, &[1.0, 0.5, 0.4, 1.0])),
        Err(ObservationError::NotSymmetric { .. })
    ));
    assert!(matches!(
        NoiseCovariance::full(DMatrix::from_row_slice(2, 2, &[1.0, 2.0, 2.0, 1.0])),
        Err(ObservationError::NotPositiveDefinite)
    ));
    assert!(matches!(
        NoiseCovariance::diagonal_std(&[1.0, -0.1]),
        Err(ObservationError::BadVariance { index: 1, .. })
    ));
    let three = NoiseCovariance::diagonal_std(&[1.0, 1.0, 1.0]).expect("valid");
    assert!(matches!(
        Observation::new(y.clone(), three),
        Err(ObservationError::DimensionMismatch {
            dim: 2,
            rows: 3,
            ..
        })
    ));
    let nan = DVector::from_column_slice(&[1.0, f64::NAN]);
    let two = NoiseCovariance::scalar_std(0.1, 2).expect("valid");
    assert!(matches!(
        Observation::new(nan, two),
        Err(ObservationError::NonFiniteValue { index: 1, .. })
    ));
}

#[test]
fn every_form_of_gamma_solves_and_samples_alike() {
    // Scalar, diagonal and full forms of the same Γ agree on Γ⁻¹x, on adding
    // sΓ, and draw noise with the right covariance.
    let sd = [0.5, 0.5, 0.5];
    let forms = [
        NoiseCovariance::scalar_std(0.5, 3).expect("valid"),
        NoiseCovariance::diagonal_std(&sd).expect("valid"),
        NoiseCovariance::full(DMatrix::from_diagonal_element(3, 3, 0.25)).expect("valid"),
    ];
    let x = DMatrix::from_row_slice(3, 2, &[1.0, 2.0, -1.0, 0.5, 3.0, 0.0]);
    for f in &forms {
        assert!((f.solve(&x) - &x * 4.0).amax() < 1e-12);
        let mut m = DMatrix::zeros(3, 3);
        f.add_scaled_to(&mut m, 2.0);
        assert!((m - DMatrix::from_diagonal_element(3, 3, 0.5)).amax() < 1e-15);
    }
    // A full, correlated Γ: the sample covariance of many draws approaches it.
    let gamma = DMatrix::from_row_slice(2, 2, &[2.0, 0.6, 0.6, 1.0]);
    let full = NoiseCovariance::full(gamma.clone()).expect("valid");
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(5);
    let draws = full.sample(&mut rng, 100_000, 1.0);
    let cov = ekp_core::linalg::sample_covariance(&draws);
    // Standard error of a covariance entry ≈ √(2/n)·scale ≈ 0.009: allow 0.05.
    assert!((cov - gamma).amax() < 0.05);
}
