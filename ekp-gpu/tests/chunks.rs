//! Ensembles split into chunks, buffer reuse, progress, failed members and the
//! `ForwardModel` contract.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Mutex;

use common::{cpu, gpu, short_config};
use ekp_core::{ForwardModel, ModelError};
use ekp_gpu::Precision;
use ekp_models::Lorenz96Config;
use nalgebra::DMatrix;

/// 150 members, parameters spread over F ∈ [5, 10), A ∈ [0, 3).
fn spread(members: usize) -> DMatrix<f64> {
    DMatrix::from_fn(2, members, |i, k| {
        let u = (k as f64 * 0.618_033_988_75).fract();
        if i == 0 {
            5.0 + 5.0 * u
        } else {
            3.0 * (1.0 - u)
        }
    })
}

/// More members than one chunk holds: chunks of 64, 64 and 22 give the same
/// bits as one chunk, and progress is reported per chunk.
#[test]
fn chunks_give_the_same_outputs() {
    let config = short_config();
    for precision in [Precision::F32, Precision::F64] {
        let Some(whole) = gpu(&config, precision) else {
            continue;
        };
        assert!(whole.max_members_per_dispatch() >= 150);
        let params = spread(150);
        let expected = whole.evaluate(&params).unwrap();
        let chunked = gpu(&config, precision)
            .unwrap()
            .with_max_members_per_dispatch(64);
        assert_eq!(chunked.max_members_per_dispatch(), 64);
        let calls = Mutex::new(Vec::new());
        let mut got = DMatrix::zeros(chunked.output_dim(), 150);
        chunked
            .evaluate_into_with_progress(&params, &mut got, &|k| calls.lock().unwrap().push(k))
            .unwrap();
        assert_eq!(got, expected, "{precision}");
        assert_eq!(*calls.lock().unwrap(), vec![64, 64, 22]);
        // The same holds for the states.
        assert_eq!(
            chunked.final_states(&params, 300).unwrap(),
            whole.final_states(&params, 300).unwrap()
        );
    }
}

/// The buffers are reused and grown across calls: a small ensemble, a larger
/// one, a small one again, each member as if evaluated alone.
#[test]
fn buffers_are_reused_across_calls() {
    let config = short_config();
    let Some(model) = gpu(&config, Precision::F64) else {
        return;
    };
    let all = spread(200);
    let reference = model.evaluate(&all).unwrap();
    for (start, len) in [(0, 3), (0, 200), (10, 1), (5, 70), (199, 1)] {
        let part = all.columns(start, len).into_owned();
        let got = model.evaluate(&part).unwrap();
        assert_eq!(
            got,
            reference.columns(start, len).into_owned(),
            "{start}+{len}"
        );
    }
    let empty = model.evaluate(&DMatrix::zeros(2, 0)).unwrap();
    assert_eq!(empty.shape(), (4, 0));
}

/// A member whose parameters are not finite, or whose state overflows, gets a
/// NaN column; its neighbours are unaffected.
#[test]
fn failed_members_are_nan_columns() {
    let config = short_config();
    let params = DMatrix::from_column_slice(
        2,
        5,
        &[
            8.0,
            2.5,
            f64::NAN,
            1.0,
            1e200,
            0.0,
            8.0,
            f64::INFINITY,
            7.0,
            1.0,
        ],
    );
    let expected = cpu(&config, &params);
    for precision in [Precision::F32, Precision::F64] {
        let Some(model) = gpu(&config, precision) else {
            continue;
        };
        let got = model.evaluate(&params).unwrap();
        for k in 0..5 {
            let failed = got.column(k).iter().all(|v| v.is_nan());
            let ok = got.column(k).iter().all(|v| v.is_finite());
            assert!(failed || ok, "{precision} member {k}: {got}");
            assert_eq!(
                failed,
                expected.column(k).iter().all(|v| v.is_nan()),
                "{precision} member {k}: {got}\n{expected}"
            );
        }
        assert!(got.column(0).iter().all(|v| v.is_finite()));
        assert!(got.column(1).iter().all(|v| v.is_nan()));
        assert!(got.column(2).iter().all(|v| v.is_nan()));
    }
}

/// `max_abs_state`: the GPU fails exactly the members the CPU fails, at the
/// CPU's check points (every 256th step before the window, every step in it).
#[test]
fn max_abs_state_fails_the_same_members() {
    let config = Lorenz96Config {
        t_start: 6.0,
        window: 2.0,
        sub_window: 0.5,
        fit_windows: 1,
        max_abs_state: 12.0,
        ..Lorenz96Config::default()
    };
    let params = spread(64);
    let expected = cpu(&config, &params);
    let failed_cpu: Vec<bool> = expected.column_iter().map(|c| c[0].is_nan()).collect();
    let n_failed = failed_cpu.iter().filter(|f| **f).count();
    assert!(
        n_failed > 5 && n_failed < 59,
        "{n_failed} failed: pick another limit"
    );
    let Some(mut model) = gpu(&config, Precision::F64) else {
        return;
    };
    eprintln!("{n_failed} of 64 members fail");
    for steps in [1000, 100, 7] {
        model = model.with_steps_per_dispatch(steps);
        let got = model.evaluate(&params).unwrap();
        let failed_gpu: Vec<bool> = got.column_iter().map(|c| c[0].is_nan()).collect();
        assert_eq!(failed_gpu, failed_cpu, "steps per dispatch {steps}");
        assert!(common::max_rel(&got, &expected) <= 1e-12);
    }
}

/// The `ForwardModel` contract: name, dimensions, shape errors.
#[test]
fn forward_model_contract() {
    let config = Lorenz96Config::default();
    let Some(model) = gpu(&config, Precision::F32) else {
        return;
    };
    assert_eq!(model.name(), "lorenz96");
    assert_eq!(model.parameter_dim(), 2);
    assert_eq!(model.output_dim(), 4);
    let mut out = DMatrix::zeros(4, 2);
    match model.evaluate_into(&DMatrix::zeros(3, 2), &mut out) {
        Err(ModelError::ParameterCount {
            expected: 2,
            got: 3,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    match model.evaluate_into(&DMatrix::zeros(2, 3), &mut out) {
        Err(ModelError::OutputShape { .. }) => {}
        other => panic!("{other:?}"),
    }
    let info = model.adapter_info();
    assert!(!info.name.is_empty());
    eprintln!("adapter: {info}");
    if info.device_type == "Cpu" {
        assert!(info.is_software);
        assert!(info.to_string().contains("software"));
    }
}

/// The benchmark entry point counts what it ran.
#[test]
fn integrate_only_reports_its_work() {
    let config = short_config();
    let Some(model) = gpu(&config, Precision::F32) else {
        return;
    };
    let params = spread(100);
    let stats = model.integrate_only(&params, 2500).unwrap();
    assert_eq!(
        (stats.members, stats.steps, stats.chunks, stats.dispatches),
        (100, 2500, 1, 3)
    );
    assert!(stats.elapsed.as_nanos() > 0);
    assert!(stats.member_steps_per_second() > 0.0);
    let model = model.with_max_members_per_dispatch(64);
    let stats = model.integrate_only(&params, 2500).unwrap();
    assert_eq!((stats.chunks, stats.dispatches), (2, 6));
}
