//! The GPU model computes the CPU's function: observables and states against
//! `ekp_models` (f64) in both precisions, on short horizons where rounding
//! differences cannot grow, and past llvmpipe's 65 535-iteration loop cap.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{cpu, gpu, grid, max_rel, short_config};
use ekp_core::ForwardModel;
use ekp_gpu::Precision;
use ekp_models::{Lorenz96, Lorenz96Config};
use nalgebra::DMatrix;

/// f64 on the GPU against the CPU: the kernel does the CPU's operations in the
/// CPU's order, so only the variance algorithm (running mean/M2 merged step by
/// step on the GPU, two passes on the CPU) differs: ~1e-15. The bound leaves
/// room for drivers that fuse multiply-adds (a 1-ulp change per operation,
/// amplified ~30× by t = 2.5 from this initial state; see `short_config`).
#[test]
fn f64_observables_match_cpu() {
    let config = short_config();
    let Some(model) = gpu(&config, Precision::F64) else {
        return;
    };
    let params = grid();
    let expected = cpu(&config, &params);
    let got = model.evaluate(&params).unwrap();
    let rel = max_rel(&got, &expected);
    eprintln!("f64 short horizon: max relative difference {rel:.2e}");
    assert!(rel <= 1e-12, "f64 GPU vs CPU: {rel:e}\n{got}\n{expected}");
}

/// f32 on the GPU against the CPU's f64: f32 rounds at 6e-8 (relative), the
/// initial state is rounded to f32, and on [0, 2.5] the dynamics amplify a
/// perturbation ~30× (measured as the f32/f64 difference: 2e-6); the bound
/// 1e-4 is that with a margin of ~50, still far below a real error (the
/// forcing taken one step late changes the observables by 2.5e-3).
#[test]
fn f32_observables_match_cpu() {
    let config = short_config();
    let Some(model) = gpu(&config, Precision::F32) else {
        return;
    };
    let params = grid();
    let expected = cpu(&config, &params);
    let got = model.evaluate(&params).unwrap();
    let rel = max_rel(&got, &expected);
    eprintln!("f32 short horizon: max relative difference {rel:.2e}");
    assert!(rel <= 1e-4, "f32 GPU vs CPU: {rel:e}\n{got}\n{expected}");
}

/// The state and the statistics are carried between dispatches (a sub-window
/// straddles them); the number of steps per dispatch must not change a bit.
#[test]
fn dispatch_size_does_not_change_results() {
    let config = short_config();
    for precision in [Precision::F32, Precision::F64] {
        let Some(model) = gpu(&config, precision) else {
            continue;
        };
        let params = grid();
        let whole = model.evaluate(&params).unwrap();
        let model = model.with_steps_per_dispatch(7);
        assert_eq!(model.steps_per_dispatch(), 7);
        let split = model.evaluate(&params).unwrap();
        assert_eq!(whole, split, "{precision}");
    }
}

/// Lorenz 96 with F(t) = 0.4 + 0.3 sin(ωt) ∈ [0.1, 0.7] (below the uniform
/// state's instability at F ≈ 0.89) is damped: rounding errors decay, so
/// trajectories of different precisions stay comparable over any horizon.
fn damped() -> DMatrix<f64> {
    DMatrix::from_column_slice(2, 3, &[0.4, 0.3, 0.3, 0.2, 0.5, 0.35])
}

/// 70 000 steps in one member's integration: past llvmpipe's silent stop of
/// shader loops at 65 535 iterations per invocation. States are compared with
/// `Lorenz96::final_state`; the forcing's phase makes the state at 70 000
/// steps differ from that at 65 535 by far more than the tolerance, so a
/// truncated integration cannot pass.
#[test]
fn integration_past_loop_cap_matches_cpu() {
    const STEPS: usize = 70_000;
    let config = Lorenz96Config {
        sites: 8,
        ..Lorenz96Config::default()
    };
    let cpu_model = Lorenz96::new(config.clone()).unwrap();
    let params = damped();
    for (precision, tol) in [(Precision::F64, 1e-12), (Precision::F32, 1e-5)] {
        let Some(model) = gpu(&config, precision) else {
            continue;
        };
        let got = model.final_states(&params, STEPS).unwrap();
        for k in 0..params.ncols() {
            let theta = [params[(0, k)], params[(1, k)]];
            let expected = cpu_model.final_state(&theta, STEPS).unwrap();
            let early = cpu_model.final_state(&theta, 65_535).unwrap();
            let mut worst: f64 = 0.0;
            for i in 0..config.sites {
                let rel = ((got[(i, k)] - expected[i]) / expected[i]).abs();
                worst = worst.max(rel);
                assert!(
                    ((early[i] - expected[i]) / expected[i]).abs() > 100.0 * tol,
                    "the test cannot tell 65 535 steps from 70 000"
                );
            }
            eprintln!("{precision} member {k}: 70 000 steps, max relative difference {worst:.2e}");
            assert!(worst <= tol, "{precision} member {k}: {worst:e}");
        }
    }
}

/// The observables of a window past 65 535 steps (t_start = 1100: steps
/// 70 401–71 424), in the damped regime.
#[test]
fn observables_past_loop_cap_match_cpu() {
    let config = Lorenz96Config {
        sites: 8,
        t_start: 1100.0,
        window: 16.0,
        sub_window: 8.0,
        fit_windows: 1,
        ..Lorenz96Config::default()
    };
    let params = damped();
    let expected = cpu(&config, &params);
    for (precision, tol) in [(Precision::F64, 1e-9), (Precision::F32, 1e-3)] {
        let Some(model) = gpu(&config, precision) else {
            continue;
        };
        assert!(model.cpu_model().first_observed_step(0) > 65_535);
        let got = model.evaluate(&params).unwrap();
        let rel = max_rel(&got, &expected);
        eprintln!("{precision} window past the loop cap: max relative difference {rel:.2e}");
        assert!(rel <= tol, "{precision}: {rel:e}\n{got}\n{expected}");
    }
}

/// Zero steps: the initial state, the CPU's `initial_state`.
#[test]
fn zero_steps_is_the_initial_state() {
    let config = short_config();
    let Some(model) = gpu(&config, Precision::F64) else {
        return;
    };
    let states = model.final_states(&grid(), 0).unwrap();
    let x0 = Lorenz96::new(config).unwrap().initial_state().to_vec();
    for col in states.column_iter() {
        assert_eq!(col.as_slice(), x0.as_slice());
    }
}
