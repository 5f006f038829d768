//! The low-rank (Woodbury / streaming) EKI and ETKI updates for a diagonal
//! `Γ` against the dense forms: the same `Γ` given as a full matrix takes the
//! dense path (`d × d` solve for EKI, dense products for ETKI), and both must
//! agree to rounding — with `impose_prior`, perturbed observations, failed and
//! imputed members, and update groups. Also the history policy.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

use ekp_core::{
    Accelerator, EnsembleKalmanProcess, ErrorMetrics, HistoryPolicy, Inversion, Localizer,
    NoiseCovariance, Observation, ParameterPrior, Prior, Process, Scheduler, TransformInversion,
    UpdateGroup,
};
use nalgebra::{DMatrix, DVector};

const P: usize = 4;
/// More than one row block (512 rows), the last one partial.
const D: usize = 700;
/// Below the size (16) from which the Gram matrix is formed in three blocks;
/// [`N_LARGE`] is above it.
const N: usize = 12;
const N_LARGE: usize = 24;

/// A fixed linear map with a mild nonlinearity.
fn forward(u: &DMatrix<f64>) -> DMatrix<f64> {
    let a = DMatrix::from_fn(D, P, |i, k| ((i * 7 + k * 13) % 17) as f64 / 8.0 - 1.0);
    let mut g = &a * u;
    for (i, mut row) in g.row_iter_mut().enumerate() {
        if i % 3 == 0 {
            row.apply(|v| *v += 0.05 * *v * *v);
        }
    }
    g
}

fn variances() -> Vec<f64> {
    (0..D).map(|i| 0.05 + 0.01 * (i % 11) as f64).collect()
}

fn observation(full: bool) -> Observation {
    let truth = DMatrix::from_column_slice(P, 1, &[0.5, -1.0, 0.8, 0.2]);
    let y = forward(&truth).column(0).map(|v| v + 0.01);
    let v = variances();
    let noise = if full {
        NoiseCovariance::full(DMatrix::from_diagonal(&DVector::from_vec(v))).unwrap()
    } else {
        NoiseCovariance::diagonal_variances(&v).unwrap()
    };
    Observation::new(y, noise).unwrap()
}

fn prior() -> Prior {
    Prior::new(vec![
        ParameterPrior::gaussian("theta", 0.0, 1.5, P).unwrap(),
    ])
    .unwrap()
}

#[derive(Clone, Copy, Debug)]
struct Case {
    etki: bool,
    impose_prior: bool,
    perturb: bool,
    failures: bool,
    groups: bool,
    fixed_dt: bool,
    members: usize,
}

fn build(case: Case, full: bool, history: HistoryPolicy) -> EnsembleKalmanProcess {
    let process = if case.etki {
        Process::TransformInversion(TransformInversion::new(case.impose_prior))
    } else {
        let mut s = Inversion::new(case.impose_prior);
        s.perturb_observations = case.perturb;
        Process::Inversion(s)
    };
    let mut builder = EnsembleKalmanProcess::builder(prior(), observation(full), process)
        .ensemble_size(case.members)
        .seed(7)
        .localizer(Localizer::None)
        .accelerator(Accelerator::None)
        .history(history);
    if case.fixed_dt {
        builder = builder.scheduler(Scheduler::Fixed { dt: 0.7 });
    }
    if case.groups {
        let evens: Vec<usize> = (0..D).step_by(2).collect();
        let odds: Vec<usize> = (1..D).step_by(2).collect();
        builder = builder.update_groups(vec![
            UpdateGroup::new(vec![0, 2], evens),
            UpdateGroup::new(vec![1, 3], odds),
        ]);
    }
    builder.build().unwrap()
}

/// The outputs of the current ensemble, with member 3 failed and one
/// isolated value of member 7 imputed when `failures`.
fn outputs(ekp: &EnsembleKalmanProcess, failures: bool) -> DMatrix<f64> {
    let mut g = forward(ekp.ensemble());
    if failures {
        g.column_mut(3).fill(f64::NAN);
        g[(5, 7)] = f64::NAN;
    }
    g
}

fn rel_diff(a: &DMatrix<f64>, b: &DMatrix<f64>) -> f64 {
    (a - b).amax() / b.amax().max(1e-300)
}

fn check(case: Case) {
    let mut low = build(case, false, HistoryPolicy::All);
    let mut dense = build(case, true, HistoryPolicy::All);
    for _ in 0..2 {
        if low.is_terminated() {
            break;
        }
        let g = outputs(&low, case.failures);
        let gd = outputs(&dense, case.failures);
        low.update(&g).unwrap();
        dense.update(&gd).unwrap();
    }
    assert!(low.iterations() >= 1, "{case:?}");
    for (a, b) in low.u_history().iter().zip(dense.u_history()) {
        let r = rel_diff(a, b);
        assert!(r < 1e-10, "{case:?}: relative difference {r:e}");
    }
    for (a, b) in low.dt_history().iter().zip(dense.dt_history()) {
        assert!((a - b).abs() <= 1e-10 * b.abs(), "{case:?}: Δt {a} vs {b}");
    }
    for (a, b) in low.metrics_history().iter().zip(dense.metrics_history()) {
        assert!((a.loss - b.loss).abs() <= 1e-10 * b.loss.abs(), "{case:?}");
        assert!(
            (a.avg_rmse - b.avg_rmse).abs() <= 1e-10 * b.avg_rmse.abs(),
            "{case:?}"
        );
    }
}

fn all_cases(etki: bool) -> Vec<Case> {
    let mut cases = Vec::new();
    for impose_prior in [false, true] {
        for perturb in [false, true] {
            if etki && perturb {
                continue;
            }
            for failures in [false, true] {
                for groups in [false, true] {
                    cases.push(Case {
                        etki,
                        impose_prior,
                        perturb,
                        failures,
                        groups,
                        fixed_dt: failures,
                        members: if groups { N_LARGE } else { N },
                    });
                }
            }
        }
    }
    cases
}

#[test]
fn eki_woodbury_equals_the_dense_solve() {
    for case in all_cases(false) {
        check(case);
    }
}

#[test]
fn etki_streaming_equals_the_dense_form() {
    for case in all_cases(true) {
        check(case);
    }
}

#[test]
fn perturbations_are_actually_drawn() {
    // With and without perturbation the low-rank EKI must differ: the
    // perturbed path really uses its draws.
    let case = Case {
        etki: false,
        impose_prior: false,
        perturb: true,
        failures: false,
        groups: false,
        fixed_dt: true,
        members: N,
    };
    let mut a = build(case, false, HistoryPolicy::All);
    let mut b = build(
        Case {
            perturb: false,
            ..case
        },
        false,
        HistoryPolicy::All,
    );
    let g = outputs(&a, false);
    a.update(&g).unwrap();
    b.update(&g).unwrap();
    assert!(rel_diff(a.ensemble(), b.ensemble()) > 1e-6);
}

#[test]
fn streaming_crps_equals_the_dense_crps() {
    let ekp = build(
        Case {
            etki: false,
            impose_prior: false,
            perturb: false,
            failures: false,
            groups: false,
            fixed_dt: true,
            members: N,
        },
        false,
        HistoryPolicy::All,
    );
    let g = outputs(&ekp, false);
    let obs = observation(false);
    // `compute` streams over row blocks; `compute_with_mean` is the dense form.
    let streamed = ErrorMetrics::compute(&g, &obs);
    let mean = g.column_sum() / N as f64;
    let dense = ErrorMetrics::compute_with_mean(&g, &mean, &obs);
    let (a, b) = (streamed.crps.unwrap(), dense.crps.unwrap());
    assert!((a - b).abs() <= 1e-10 * b.abs(), "{a} vs {b}");
}

#[test]
fn history_last_keeps_only_the_latest_outputs() {
    let case = Case {
        etki: true,
        impose_prior: false,
        perturb: false,
        failures: false,
        groups: false,
        fixed_dt: true,
        members: N,
    };
    let mut all = build(case, false, HistoryPolicy::All);
    let mut last = build(case, false, HistoryPolicy::Last);
    for _ in 0..3 {
        let g = outputs(&all, false);
        all.update(&g).unwrap();
        last.update(&g).unwrap();
    }
    assert_eq!(all.u_history(), last.u_history());
    assert_eq!(all.g_history().len(), 3);
    assert_eq!(last.g_history().len(), 1);
    assert_eq!(last.g_history_start(), 2);
    assert_eq!(last.outputs_of_update(2), all.outputs_of_update(2));
    assert!(last.outputs_of_update(1).is_none());
    assert_eq!(all.outputs_of_update(1), Some(&all.g_history()[1]));
    assert_eq!(last.history_policy(), HistoryPolicy::Last);
    // Saved states round-trip the policy; states saved without it keep all.
    let text = toml::to_string(&last).unwrap();
    let back: EnsembleKalmanProcess = toml::from_str(&text).unwrap();
    assert_eq!(back.history_policy(), HistoryPolicy::Last);
    let text = toml::to_string(&all).unwrap();
    let old: String = text
        .lines()
        .filter(|l| !l.starts_with("history ="))
        .collect::<Vec<_>>()
        .join("\n");
    assert_ne!(old.len(), text.trim_end().len(), "the key was present");
    let back: EnsembleKalmanProcess = toml::from_str(&old).unwrap();
    assert_eq!(back.history_policy(), HistoryPolicy::All);
}

#[test]
fn a_localizer_with_too_many_outputs_is_a_clear_error() {
    let d = 20_001;
    let obs = Observation::new(
        DVector::from_element(d, 0.1),
        NoiseCovariance::scalar_std(0.5, d).unwrap(),
    )
    .unwrap();
    let mut ekp =
        EnsembleKalmanProcess::builder(prior(), obs, Process::Inversion(Inversion::default()))
            .ensemble_size(5)
            .localizer(Localizer::sec_nice())
            .scheduler(Scheduler::Fixed { dt: 1.0 })
            .build()
            .unwrap();
    let u = ekp.ensemble().clone();
    let g = DMatrix::from_fn(d, 5, |i, j| u[(i % P, j)] * (1.0 + (i % 7) as f64 / 7.0));
    let err = ekp.update(&g).unwrap_err().to_string();
    assert!(err.contains("localizer"), "{err}");
    assert!(err.contains("\"none\""), "{err}");
    assert_eq!(ekp.iterations(), 0);
    // Without the localizer the same update runs (low-rank).
    let mut ekp = EnsembleKalmanProcess::builder(
        prior(),
        ekp.observation().clone(),
        Process::Inversion(Inversion::default()),
    )
    .ensemble_size(5)
    .localizer(Localizer::None)
    .scheduler(Scheduler::Fixed { dt: 1.0 })
    .build()
    .unwrap();
    ekp.update(&g).unwrap();
    assert!(ekp.ensemble().iter().all(|v| v.is_finite()));
}

#[test]
fn outputs_told_by_value_give_the_same_update_and_history() {
    for failures in [false, true] {
        let case = Case {
            etki: false,
            impose_prior: false,
            perturb: true,
            failures,
            groups: false,
            fixed_dt: false,
            members: N,
        };
        let mut by_ref = build(case, false, HistoryPolicy::All);
        let mut by_value = build(case, false, HistoryPolicy::All);
        for _ in 0..2 {
            let g = outputs(&by_ref, failures);
            let a = by_ref.update(&g).unwrap();
            let b = by_value.update_owned(g).unwrap();
            assert_eq!(a, b);
        }
        assert_eq!(by_ref.u_history(), by_value.u_history());
        // Bit for bit (failed members' outputs are NaN, which `==` rejects).
        let bits = |h: &[DMatrix<f64>]| -> Vec<Vec<u64>> {
            h.iter()
                .map(|g| g.iter().map(|v| v.to_bits()).collect())
                .collect()
        };
        assert!(bits(by_ref.g_history()) == bits(by_value.g_history()));
    }
}

/// With a scalar `Γ` the low-rank EKI and ETKI steps hand their own Gram
/// statistics to the CRPS (no second pass over the outputs): the recorded
/// CRPS is the one [`ErrorMetrics::compute`] computes from the outputs that
/// were told (imputed, failed members left out) — with the prior imposed,
/// perturbed observations and failed members too; and a non-uniform
/// diagonal `Γ` (no reuse) agrees the same way.
#[test]
fn the_crps_from_the_updates_gram_is_the_crps_of_the_outputs() {
    let truth = DMatrix::from_column_slice(P, 1, &[0.5, -1.0, 0.8, 0.2]);
    let y = forward(&truth).column(0).map(|v| v + 0.01);
    let scalar = Observation::new(y.clone(), NoiseCovariance::scalar_std(0.3, D).unwrap()).unwrap();
    let diagonal = observation(false);
    for (etki, impose_prior, perturb, failures, obs) in [
        (false, false, false, false, &scalar),
        (false, true, true, true, &scalar),
        (true, false, false, true, &scalar),
        (true, true, false, false, &scalar),
        (false, false, true, true, &diagonal),
        (true, false, false, true, &diagonal),
    ] {
        let process = if etki {
            Process::TransformInversion(TransformInversion::new(impose_prior))
        } else {
            let mut s = Inversion::new(impose_prior);
            s.perturb_observations = perturb;
            Process::Inversion(s)
        };
        let mut ekp = EnsembleKalmanProcess::builder(prior(), obs.clone(), process)
            .ensemble_size(N_LARGE)
            .seed(11)
            .localizer(Localizer::None)
            .accelerator(Accelerator::None)
            .scheduler(Scheduler::Fixed { dt: 0.7 })
            .build()
            .unwrap();
        for k in 0..2 {
            let g = outputs(&ekp, failures);
            ekp.update(&g).unwrap();
            let told = &ekp.g_history()[k];
            let failed = &ekp.failed_history()[k];
            let ok: Vec<usize> = (0..N_LARGE).filter(|j| !failed.contains(j)).collect();
            assert_eq!(failed.is_empty(), !failures);
            let g_ok = told.select_columns(ok.iter());
            let want = ErrorMetrics::compute(&g_ok, obs).crps.unwrap();
            let got = ekp.metrics_history()[k].crps.unwrap();
            // Both sides differ only in rounding, but the CRPS takes square
            // roots of the Gram's eigenvalues down to √(d ε)·λ_max, whose
            // relative rounding error ε λ_max/λ_i reaches ~1e-7 once these
            // nearly rank-P outputs have contracted (update 1); a wrong
            // weight, column or mean would be off by 1e-2 or more.
            assert!(
                (got - want).abs() <= 1e-6 * want.abs(),
                "etki {etki}, impose_prior {impose_prior}, perturb {perturb}, failures {failures}, update {k}: {got} vs {want}"
            );
        }
    }
}
