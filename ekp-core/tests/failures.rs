//! Failure handling: NaN imputation (EKP.jl's `impute_over_nans`), failed
//! members under `ignore` and `sample-success-gauss`, and the errors.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

use ekp_core::{
    EkpError, EnsembleKalmanProcess, FailurePolicy, ImputedValue, Inversion, Localizer,
    NoiseCovariance, Observation, ParameterPrior, Prior, Process, Scheduler, UpdateOutcome,
};
use nalgebra::{DMatrix, DVector};

const D: usize = 20;
const P: usize = 3;
const N: usize = 12;
const ITERS: usize = 100;

/// A linear problem with d = 20 outputs (so the 10 % tolerance allows two
/// non-finite outputs per member).
struct Problem {
    g: DMatrix<f64>,
    y: DVector<f64>,
    sd: f64,
}

impl Problem {
    fn new() -> Self {
        let g = DMatrix::from_fn(D, P, |i, j| {
            ((i * P + j) as f64 * 0.7 + 0.3).sin() + if i % P == j { 1.0 } else { 0.0 }
        });
        let truth = DVector::from_column_slice(&[1.0, -0.5, 2.0]);
        let eta = DVector::from_fn(D, |i, _| 0.05 * ((i as f64) * 1.7).cos());
        Self {
            y: &g * truth + eta,
            g,
            sd: 0.1,
        }
    }
    fn prior(&self) -> Prior {
        Prior::new(vec![
            ParameterPrior::gaussian("theta", 0.0, 2.0, P).expect("prior"),
        ])
        .expect("prior")
    }
    fn observation(&self) -> Observation {
        Observation::new(
            self.y.clone(),
            NoiseCovariance::scalar_std(self.sd, D).expect("Γ"),
        )
        .expect("obs")
    }
    fn forward(&self, u: &DMatrix<f64>) -> DMatrix<f64> {
        &self.g * u
    }
    fn least_squares(&self) -> DVector<f64> {
        (self.g.transpose() * &self.g)
            .try_inverse()
            .expect("invertible")
            * self.g.transpose()
            * &self.y
    }
    fn process(&self, failure: FailurePolicy, seed: u64) -> EnsembleKalmanProcess {
        // EKP.jl's `Inversion()` defaults (Nesterov) with a fixed step and no
        // localization (which moves the fixed point of EKI off least squares).
        EnsembleKalmanProcess::builder(
            self.prior(),
            self.observation(),
            Process::Inversion(Inversion::default()),
        )
        .ensemble_size(N)
        .localizer(Localizer::None)
        .seed(seed)
        .scheduler(Scheduler::Fixed { dt: 1.0 })
        .failure_policy(failure)
        .build()
        .expect("valid")
    }
}

/// Sets `g[rows, member] = value`.
fn poison(g: &mut DMatrix<f64>, member: usize, rows: &[usize], value: f64) {
    for &i in rows {
        g[(i, member)] = value;
    }
}

#[test]
fn failures_at_chosen_iterations_are_reported_and_the_run_converges() {
    let pb = Problem::new();
    let all_rows: Vec<usize> = (0..D).collect();
    // iteration → (member, rows, value): whole members lost, ±∞ too, and a
    // member with 3 of 20 outputs NaN (over the 10 % tolerance).
    let schedule = |it: usize| -> Vec<(usize, Vec<usize>, f64)> {
        match it {
            1 => vec![
                (2, all_rows.clone(), f64::NAN),
                (7, all_rows.clone(), f64::NAN),
            ],
            4 => vec![(0, vec![3, 9, 15], f64::NAN)],
            6 => vec![
                (5, all_rows.clone(), f64::INFINITY),
                (11, vec![0], f64::NEG_INFINITY),
                (11, vec![1, 2], f64::NAN),
            ],
            _ => vec![],
        }
    };
    let expected_failed = |it: usize| -> Vec<usize> {
        match it {
            1 => vec![2, 7],
            4 => vec![0],
            6 => vec![5, 11],
            _ => vec![],
        }
    };
    let mut ekp = pb.process(FailurePolicy::SampleSuccessGauss, 3);
    let mut clean = pb.process(FailurePolicy::SampleSuccessGauss, 3);
    for it in 0..ITERS {
        let mut g = pb.forward(ekp.ensemble());
        for (member, rows, value) in schedule(it) {
            poison(&mut g, member, &rows, value);
        }
        let UpdateOutcome::Updated(report) = ekp.update(&g).expect("update with failures") else {
            panic!("a fixed scheduler never terminates");
        };
        assert_eq!(report.failed, expected_failed(it), "iteration {it}");
        assert!(report.imputed.is_empty());
        assert!(
            ekp.ensemble().iter().all(|v| v.is_finite()),
            "iteration {it}"
        );
        let g = pb.forward(clean.ensemble());
        clean.update(&g).expect("update");
    }
    for it in 0..ITERS {
        assert_eq!(ekp.failed_history()[it], expected_failed(it));
    }
    // Converged: the mean ends within a fifth of the least-squares estimate's
    // own standard deviation (σ √diag((GᵀG)⁻¹) ≥ 0.05 here) of it; measured
    // 1.7e-3 with the failures, 7e-4 without, after 100 updates.
    let ls = pb.least_squares();
    let sd = (pb.g.transpose() * &pb.g)
        .try_inverse()
        .expect("invertible")
        .diagonal()
        .map(|v| pb.sd * v.sqrt())
        .min();
    let err = (ekp.unconstrained_mean() - &ls).amax();
    let err_clean = (clean.unconstrained_mean() - &ls).amax();
    println!("error with failures {err:.2e}, without {err_clean:.2e}, sd {sd:.2e}");
    assert!(err_clean < 0.2 * sd);
    assert!(
        err < 0.2 * sd,
        "with failures the mean ended {err} from least squares"
    );
}

#[test]
fn isolated_nans_take_the_row_mean_and_whole_nan_rows_take_the_data() {
    let pb = Problem::new();
    let mut ekp = pb.process(FailurePolicy::SampleSuccessGauss, 5);
    let clean = pb.forward(ekp.ensemble());
    let mut g = clean.clone();
    poison(&mut g, 3, &[5], f64::NAN); // one NaN: imputed
    poison(&mut g, 8, &[1, 2, 3], f64::NAN); // three NaN: failed
    for j in 0..N {
        g[(10, j)] = f64::NAN; // a whole row: the datum y_10
    }
    poison(&mut g, 9, &[12], f64::INFINITY); // ±∞ counts as non-finite
    let UpdateOutcome::Updated(report) = ekp.update(&g).expect("update") else {
        panic!("fixed never terminates");
    };
    assert_eq!(report.failed, vec![8]);
    // Row 5's mean over every member with a finite value there — the failed
    // member 8 included, as in EKP.jl.
    let row5: Vec<f64> = (0..N).filter(|&j| j != 3).map(|j| clean[(5, j)]).collect();
    let mean5 = row5.iter().sum::<f64>() / row5.len() as f64;
    let row12: Vec<f64> = (0..N).filter(|&j| j != 9).map(|j| clean[(12, j)]).collect();
    let mean12 = row12.iter().sum::<f64>() / row12.len() as f64;
    let mut expected: Vec<ImputedValue> = Vec::new();
    for j in 0..N {
        if j == 8 {
            continue;
        }
        if j == 3 {
            expected.push(ImputedValue {
                row: 5,
                member: 3,
                value: mean5,
            });
        }
        expected.push(ImputedValue {
            row: 10,
            member: j,
            value: pb.y[10],
        });
        if j == 9 {
            expected.push(ImputedValue {
                row: 12,
                member: 9,
                value: mean12,
            });
        }
    }
    assert_eq!(report.imputed.len(), expected.len());
    for (got, want) in report.imputed.iter().zip(&expected) {
        assert_eq!((got.row, got.member), (want.row, want.member));
        assert!(
            (got.value - want.value).abs() < 1e-12,
            "{got:?} vs {want:?}"
        );
    }
    assert_eq!(ekp.imputed_history(), std::slice::from_ref(&report.imputed));
    // The stored outputs carry the imputed values; the failed member's column is as told.
    let stored = &ekp.g_history()[0];
    assert!((stored[(5, 3)] - mean5).abs() < 1e-12);
    assert_eq!(stored[(10, 0)], pb.y[10]);
    assert!(stored[(1, 8)].is_nan());
}

#[test]
fn ignore_refuses_failed_members_but_accepts_imputed_values() {
    let pb = Problem::new();
    let mut ekp = pb.process(FailurePolicy::Ignore, 6);
    let before = ekp.clone();
    let mut g = pb.forward(ekp.ensemble());
    poison(&mut g, 4, &[0, 1, 2], f64::NAN);
    match ekp.update(&g) {
        Err(EkpError::FailedMembers { members }) => assert_eq!(members, vec![5]),
        other => panic!("expected FailedMembers, got {other:?}"),
    }
    assert_eq!(ekp.u_history(), before.u_history());
    assert!(ekp.failed_history().is_empty());
    // Two NaN of 20 are within the tolerance: imputed, not a failure.
    let mut g = pb.forward(ekp.ensemble());
    poison(&mut g, 4, &[0, 1], f64::NAN);
    let UpdateOutcome::Updated(report) = ekp.update(&g).expect("imputed values are no failure")
    else {
        panic!("fixed never terminates");
    };
    assert!(report.failed.is_empty());
    assert_eq!(report.imputed.len(), 2);
    // sample-success-gauss takes the member that `ignore` refused.
    let mut ssg = pb.process(FailurePolicy::SampleSuccessGauss, 6);
    let mut g = pb.forward(ssg.ensemble());
    poison(&mut g, 4, &[0, 1, 2], f64::NAN);
    let UpdateOutcome::Updated(report) = ssg.update(&g).expect("update") else {
        panic!("fixed never terminates");
    };
    assert_eq!(report.failed, vec![4]);
    assert!(ssg.ensemble().column(4).iter().all(|v| v.is_finite()));
}

#[test]
fn all_members_failing_is_a_clear_error_that_changes_nothing() {
    let pb = Problem::new();
    for failure in [FailurePolicy::Ignore, FailurePolicy::SampleSuccessGauss] {
        let mut ekp = pb.process(failure, 7);
        let before = ekp.clone();
        let g = DMatrix::from_element(D, N, f64::NAN);
        let err = ekp.update(&g).expect_err("no member succeeded");
        match &err {
            EkpError::TooFewSuccessful {
                successful,
                total,
                failed,
            } => {
                assert_eq!((*successful, *total), (0, N));
                assert_eq!(failed, &(1..=N).collect::<Vec<_>>());
            }
            other => panic!("expected TooFewSuccessful, got {other:?}"),
        }
        let msg = err.to_string();
        assert!(msg.contains("only 0 of 12 members"), "{msg}");
        assert_eq!(ekp.u_history(), before.u_history());
        assert_eq!(ekp.iterations(), 0);
        // And a good update afterwards is the one we would have had.
        let g = pb.forward(ekp.ensemble());
        let mut reference = before;
        ekp.update(&g).expect("update");
        reference.update(&g).expect("update");
        assert_eq!(ekp.ensemble(), reference.ensemble());
    }
}

#[test]
fn nan_tolerance_is_configurable_and_validated() {
    let pb = Problem::new();
    let build = |tol: f64| {
        EnsembleKalmanProcess::builder(
            pb.prior(),
            pb.observation(),
            Process::Inversion(Inversion::default()),
        )
        .ensemble_size(N)
        .nan_tolerance(tol)
        .scheduler(Scheduler::Fixed { dt: 0.5 })
        .build()
    };
    // Tolerance 0: a single NaN fails the member.
    let mut strict = build(0.0).expect("valid");
    let mut g = pb.forward(strict.ensemble());
    poison(&mut g, 2, &[7], f64::NAN);
    let UpdateOutcome::Updated(report) = strict.update(&g).expect("update") else {
        panic!("fixed never terminates");
    };
    assert_eq!(report.failed, vec![2]);
    assert!(build(-0.1).is_err());
    assert!(build(1.5).is_err());
}
