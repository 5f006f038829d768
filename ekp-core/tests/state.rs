//! Every option together: deterministic from the seed, and save → load →
//! continue (through TOML) equal to an uninterrupted run — momentum,
//! minibatch position, imputation history and RNG included.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

use ekp_core::{
    Accelerator, EnsembleKalmanProcess, FailurePolicy, Inversion, Localizer, Minibatcher,
    NoiseCovariance, Observation, ObservationSeries, OnTerminate, ParameterPrior, Prior, Process,
    Remainder, Scheduler, TransformInversion, UpdateGroup,
};
use nalgebra::{DMatrix, DVector};

const K: usize = 5; // observations
const L: usize = 4; // values per observation
const P: usize = 4;
const N: usize = 12;

fn model() -> DMatrix<f64> {
    DMatrix::from_fn(K * L, P, |i, j| {
        ((i * 7 + j * 3) as f64 * 0.29).sin() + if i % P == j { 1.0 } else { 0.0 }
    })
}

fn series(mb: Minibatcher) -> ObservationSeries {
    let g = model();
    let y = &g * DVector::from_column_slice(&[1.0, -1.0, 0.5, 2.0]);
    let obs = (0..K)
        .map(|k| {
            Observation::new(
                y.rows(k * L, L).into_owned(),
                NoiseCovariance::scalar_std(0.1, L).expect("Γ"),
            )
            .expect("obs")
        })
        .collect();
    ObservationSeries::with_minibatcher(obs, mb).expect("series")
}

fn prior() -> Prior {
    Prior::new(vec![
        ParameterPrior::gaussian("a", 0.0, 1.0, 2).expect("prior"),
        ParameterPrior::constrained_gaussian("b", 1.0, 0.5, Some(0.0), None, 1).expect("prior"),
        ParameterPrior::gaussian("c", 0.5, 1.0, 1).expect("prior"),
    ])
    .expect("prior")
}

/// Outputs of the current minibatch, with failures injected by iteration: a
/// lost member every third update, an isolated NaN every other.
fn outputs(ekp: &EnsembleKalmanProcess) -> DMatrix<f64> {
    let rows = ekp.observation_series().current_rows();
    let mut g = (model() * ekp.constrained_ensemble()).select_rows(rows.iter());
    let it = ekp.iterations();
    if it % 3 == 1 {
        g.column_mut(it % N).fill(f64::NAN);
    }
    if it & 1 == 0 {
        g[(1, (it + 5) % N)] = f64::NAN;
    }
    g
}

fn configurations() -> Vec<EnsembleKalmanProcess> {
    let build = |process: Process, mb: Minibatcher, seed: u64| {
        EnsembleKalmanProcess::builder(prior(), series(mb), process)
            .ensemble_size(N)
            .seed(seed)
            .nan_tolerance(0.25) // one NaN in 4–8 outputs is imputed
    };
    vec![
        // EKI: Nesterov, random dropout, random-order minibatches, groups, continue.
        build(
            Process::Inversion(Inversion::new(true)),
            Minibatcher::Fixed {
                batches: vec![vec![0, 1], vec![2, 3], vec![4, 0]],
                random_order: true,
            },
            31,
        )
        .scheduler(Scheduler::DataMisfit {
            terminate_at: 0.3,
            on_terminate: OnTerminate::Continue,
        })
        .localizer(Localizer::BernoulliDropout { prob: 0.4 })
        .accelerator(Accelerator::Nesterov)
        .update_groups(vec![
            UpdateGroup::new(vec![0, 1], vec![0, 1, 2]),
            UpdateGroup::new(vec![2, 3], vec![1, 2, 3]),
        ])
        .build()
        .expect("valid"),
        // EKI: perturbed, sec-nice, random-fixed-size minibatches, EKS-stable.
        build(
            Process::Inversion(Inversion::new(false)),
            Minibatcher::RandomFixedSize {
                size: 2,
                remainder: Remainder::Trim,
            },
            32,
        )
        .scheduler(Scheduler::eks_stable())
        .accelerator(Accelerator::None)
        .build()
        .expect("valid"),
        // ETKI: constant Nesterov, continue-fixed.
        build(
            Process::TransformInversion(TransformInversion::new(false)),
            Minibatcher::RandomFixedSize {
                size: 3,
                remainder: Remainder::Extend,
            },
            33,
        )
        .scheduler(Scheduler::DataMisfit {
            terminate_at: 0.2,
            on_terminate: OnTerminate::ContinueFixed,
        })
        .accelerator(Accelerator::constant_nesterov())
        .failure_policy(FailurePolicy::SampleSuccessGauss)
        .build()
        .expect("valid"),
    ]
}

#[test]
fn save_load_continue_is_exact_with_every_option() {
    for start in configurations() {
        let mut straight = start.clone();
        let mut resumed = start;
        for _ in 0..4 {
            let g = outputs(&straight);
            straight.update(&g).expect("update");
            resumed.update(&g).expect("update");
        }
        let text = toml::to_string(&resumed).expect("serialise");
        let mut resumed: EnsembleKalmanProcess = toml::from_str(&text).expect("deserialise");
        for _ in 0..7 {
            let g = outputs(&straight);
            straight.update(&g).expect("update");
            let g = outputs(&resumed);
            resumed.update(&g).expect("update");
        }
        let kind = straight.process().kind();
        assert_eq!(straight.u_history(), resumed.u_history(), "{kind}");
        assert_eq!(straight.dt_history(), resumed.dt_history(), "{kind}");
        assert_eq!(
            straight.minibatch_history(),
            resumed.minibatch_history(),
            "{kind}"
        );
        assert_eq!(
            straight.failed_history(),
            resumed.failed_history(),
            "{kind}"
        );
        assert_eq!(
            straight.imputed_history(),
            resumed.imputed_history(),
            "{kind}"
        );
        assert_eq!(straight.momentum(), resumed.momentum(), "{kind}");
        assert_eq!(
            straight.observation_series(),
            resumed.observation_series(),
            "{kind}"
        );
        // The injected failures were seen.
        assert!(
            straight.failed_history().iter().any(|f| !f.is_empty()),
            "{kind}"
        );
        assert!(
            straight.imputed_history().iter().any(|f| !f.is_empty()),
            "{kind}"
        );
    }
}

#[test]
fn everything_is_deterministic_given_the_seed() {
    let run = || {
        configurations()
            .into_iter()
            .map(|mut ekp| {
                for _ in 0..8 {
                    let g = outputs(&ekp);
                    ekp.update(&g).expect("update");
                }
                ekp
            })
            .collect::<Vec<_>>()
    };
    let (a, b) = (run(), run());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.u_history(), y.u_history());
        assert_eq!(x.minibatch_history(), y.minibatch_history());
        assert_eq!(
            toml::to_string(x).expect("ser"),
            toml::to_string(y).expect("ser")
        );
    }
}
