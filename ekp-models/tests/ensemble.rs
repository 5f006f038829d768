//! Ensemble evaluation: serial and threaded agree bit for bit; failed members
//! get NaN columns; shape errors are reported.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

use ekp_core::{ForwardModel, ModelError};
use ekp_models::{
    Ensemble, Execution, Linear, Lorenz96, Lorenz96Config, MemberModel, Sinusoid, SinusoidConfig,
};
use nalgebra::{DMatrix, DVector};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A quick Lorenz 96 configuration: 4 unit sub-windows in (10, 14), 2 observables.
fn short_lorenz() -> Lorenz96 {
    Lorenz96::new(Lorenz96Config {
        t_start: 10.0,
        window: 4.0,
        sub_window: 1.0,
        fit_windows: 2,
        truth_samples: 5,
        ..Lorenz96Config::default()
    })
    .expect("valid config")
}

/// `p × n` parameters uniform in the given per-row ranges.
fn random_params(ranges: &[(f64, f64)], n: usize, seed: u64) -> DMatrix<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    DMatrix::from_fn(ranges.len(), n, |i, _| {
        rng.random_range(ranges[i].0..ranges[i].1)
    })
}

fn serial_and_threads<M: MemberModel + Clone>(model: M, params: &DMatrix<f64>) -> DMatrix<f64> {
    let serial = Ensemble::new(model.clone(), Execution::Serial)
        .evaluate(params)
        .expect("serial");
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(4)
        .build()
        .expect("pool");
    let threads = pool
        .install(|| Ensemble::new(model, Execution::Threads).evaluate(params))
        .expect("threads");
    assert_eq!(serial.shape(), threads.shape());
    for (j, (a, b)) in serial.column_iter().zip(threads.column_iter()).enumerate() {
        for (x, y) in a.iter().zip(b.iter()) {
            assert_eq!(x.to_bits(), y.to_bits(), "member {j}: {a:?} vs {b:?}");
        }
    }
    serial
}

#[test]
fn lorenz_serial_and_threads_are_bit_identical() {
    let model = short_lorenz();
    assert_eq!(model.output_dim(), 2);
    let params = random_params(&[(6.0, 10.0), (0.0, 4.0)], 64, 1);
    let out = serial_and_threads(model, &params);
    assert!(out.iter().all(|v| v.is_finite() && *v > 0.0));
    // Different members really differ.
    assert_ne!(out.column(0), out.column(1));
}

#[test]
fn linear_serial_and_threads_are_bit_identical() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let a = DMatrix::from_fn(7, 3, |_, _| rng.random_range(-1.0..1.0));
    let b = DVector::from_fn(7, |_, _| rng.random_range(-1.0..1.0));
    let model = Linear::new(a, Some(b)).expect("linear");
    let params = random_params(&[(-5.0, 5.0); 3], 64, 3);
    serial_and_threads(model, &params);
}

#[test]
fn sinusoid_serial_and_threads_are_bit_identical() {
    let model = Sinusoid::new(SinusoidConfig::default()).expect("sinusoid");
    let params = random_params(&[(0.5, 3.0), (-5.0, 5.0)], 64, 4);
    serial_and_threads(model, &params);
}

#[test]
fn diverging_and_nan_members_get_nan_columns() {
    let model = short_lorenz();
    let mut params = random_params(&[(6.0, 10.0), (0.0, 4.0)], 8, 5);
    params[(0, 2)] = 1e6; // blows up
    params[(1, 5)] = f64::NAN;
    params[(0, 6)] = f64::INFINITY;
    for execution in Execution::ALL {
        let out = Ensemble::new(&model, execution)
            .evaluate(&params)
            .expect("evaluate");
        for j in 0..8 {
            let column = out.column(j);
            if [2, 5, 6].contains(&j) {
                assert!(
                    column.iter().all(|v| v.is_nan()),
                    "{execution}: member {j}: {column:?}"
                );
            } else {
                assert!(
                    column.iter().all(|v| v.is_finite()),
                    "{execution}: member {j}: {column:?}"
                );
            }
        }
    }
}

#[test]
fn non_finite_parameters_give_nan_columns_for_every_model() {
    let linear = Linear::new(DMatrix::identity(2, 2), None).expect("linear");
    let sinusoid = Sinusoid::new(SinusoidConfig::default()).expect("sinusoid");
    let params = DMatrix::from_row_slice(2, 3, &[1.0, f64::NAN, 2.0, 1.0, 1.0, f64::INFINITY]);
    for out in [
        Ensemble::new(linear, Execution::Serial).evaluate(&params),
        Ensemble::new(sinusoid, Execution::Threads).evaluate(&params),
    ] {
        let out = out.expect("evaluate");
        assert!(out.column(0).iter().all(|v| v.is_finite()));
        assert!(out.column(1).iter().all(|v| v.is_nan()));
        assert!(out.column(2).iter().all(|v| v.is_nan()));
    }
}

#[test]
fn wrong_shapes_are_errors() {
    let model = Ensemble::new(short_lorenz(), Execution::Threads);
    let params = DMatrix::from_element(3, 4, 8.0);
    match model.evaluate(&params) {
        Err(ModelError::ParameterCount {
            model,
            expected,
            got,
            ..
        }) => {
            assert_eq!((model.as_str(), expected, got), ("lorenz96", 2, 3));
        }
        other => panic!("expected ParameterCount, got {other:?}"),
    }
    let params = DMatrix::from_element(2, 4, 8.0);
    let mut out = DMatrix::zeros(2, 3);
    assert!(matches!(
        model.evaluate_into(&params, &mut out),
        Err(ModelError::OutputShape { .. })
    ));
    // One member on its own.
    assert!(matches!(
        model.model.evaluate_single(0, &[8.0]),
        Err(ModelError::ParameterCount { .. })
    ));
    // Called directly with a wrong length, a member writes NaN (no panic).
    let mut direct = [0.0; 2];
    model
        .model
        .evaluate_member(0, &[8.0, 2.5, 1.0], &mut direct);
    assert!(direct.iter().all(|v| v.is_nan()));
}

#[test]
fn empty_ensembles_are_fine() {
    let model = Ensemble::new(short_lorenz(), Execution::Threads);
    let out = model.evaluate(&DMatrix::zeros(2, 0)).expect("empty");
    assert_eq!(out.shape(), (2, 0));
}

#[test]
fn boxed_models_work_as_trait_objects() {
    let models: Vec<Box<dyn MemberModel>> = vec![
        Box::new(short_lorenz()),
        Box::new(Linear::new(DMatrix::identity(2, 2), None).expect("linear")),
        Box::new(Sinusoid::new(SinusoidConfig::default()).expect("sinusoid")),
    ];
    for model in models {
        let ensemble = Ensemble::new(model, Execution::Threads);
        let out = ensemble
            .evaluate(&DMatrix::from_element(2, 3, 2.0))
            .expect("evaluate");
        assert!(out.iter().all(|v| v.is_finite()), "{}", ensemble.name());
    }
}

#[test]
fn execution_names_round_trip() {
    for e in Execution::ALL {
        assert_eq!(e.to_string().parse::<Execution>(), Ok(e));
        #[derive(serde::Serialize, serde::Deserialize)]
        struct W {
            e: Execution,
        }
        let text = toml::to_string(&W { e }).expect("serialize");
        assert_eq!(text.trim(), format!("e = \"{e}\""));
        assert_eq!(toml::from_str::<W>(&text).expect("parse").e, e);
    }
    let err = "gpu"
        .parse::<Execution>()
        .expect_err("gpu is not a CPU execution");
    assert!(err.to_string().contains("gpu"));
}

#[test]
fn members_past_max_abs_state_fail_and_the_others_do_not() {
    // F = 8 keeps |x| below ~15; F = 40 drives it past 30.
    let model = Lorenz96::new(Lorenz96Config {
        t_start: 10.0,
        window: 4.0,
        sub_window: 1.0,
        fit_windows: 2,
        truth_samples: 5,
        max_abs_state: 30.0,
        ..Lorenz96Config::default()
    })
    .expect("valid config");
    let params = DMatrix::from_row_slice(2, 3, &[8.0, 40.0, 8.5, 1.0, 1.0, 0.5]);
    let out = Ensemble::new(model, Execution::Serial)
        .evaluate(&params)
        .expect("shapes ok");
    assert!(out.column(0).iter().all(|v| v.is_finite()));
    assert!(out.column(1).iter().all(|v| v.is_nan()));
    assert!(out.column(2).iter().all(|v| v.is_finite()));
}

#[test]
fn progress_reports_every_member_once_per_batch() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let params = random_params(&[(6.0, 10.0), (0.0, 3.0)], 17, 3);
    for execution in Execution::ALL {
        let done = AtomicUsize::new(0);
        let calls = AtomicUsize::new(0);
        let ens = Ensemble::new(short_lorenz(), execution);
        let mut out = DMatrix::zeros(ens.output_dim(), params.ncols());
        ens.evaluate_into_with_progress(&params, &mut out, &|k| {
            done.fetch_add(k, Ordering::SeqCst);
            calls.fetch_add(1, Ordering::SeqCst);
        })
        .expect("shapes ok");
        assert_eq!(done.load(Ordering::SeqCst), 17, "{execution}");
        // Lorenz 96 evaluates its members in batches of `batch_size()`.
        assert_eq!(
            calls.load(Ordering::SeqCst),
            17usize.div_ceil(ens.model.batch_size()),
            "{execution}: one call per batch"
        );
    }
}
