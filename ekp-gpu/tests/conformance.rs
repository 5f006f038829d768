//! The GPU model computes the CPU's function: observables and states against
//! `ekp_models` (f64) in both precisions, on short horizons where rounding
//! differences cannot grow, and past llvmpipe's 65 535-iteration loop cap.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{cpu, gpu, grid, max_rel, short_config};
use ekp_core::ForwardModel;
use ekp_gpu::{Lorenz96Gpu, Precision};
use ekp_models::{Lorenz96, Lorenz96Config};
use nalgebra::DMatrix;

/// f64 on the GPU against the CPU: the kernel does the CPU's operations in the
/// CPU's order — the RK4 steps and the two-pass variance of each sub-window
/// alike — so where the driver does not fuse multiply-adds (the software
/// adapters) the observables are the CPU's, bit for bit. The bound elsewhere
/// leaves room for drivers that do fuse them (a 1-ulp change per operation,
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
    if model.adapter_info().is_software {
        assert_bits_eq(&got, &expected);
    }
}

/// A window that starts at the first step (`t_start = 0`: no spin-up
/// dispatch, the observing kernel starts from the initial state), run with
/// dispatches that end inside sub-windows, in the first pass and in the
/// replay: the CPU's observables (bit for bit in f64 on a software adapter).
#[test]
fn window_from_the_first_step_matches_cpu() {
    let config = Lorenz96Config {
        t_start: 0.0,
        ..short_config()
    };
    let params = grid();
    let expected = cpu(&config, &params);
    for precision in [Precision::F64, Precision::F32] {
        let Some(model) = gpu(&config, precision) else {
            continue;
        };
        assert_eq!(model.cpu_model().first_observed_step(0), 1);
        let software = model.adapter_info().is_software;
        let whole = model.evaluate(&params).unwrap();
        let split = model.with_steps_per_dispatch(5).evaluate(&params).unwrap();
        assert_eq!(whole, split, "{precision}");
        let rel = max_rel(&whole, &expected);
        eprintln!("{precision} window from step 1: max relative difference {rel:.2e}");
        let tol = if precision == Precision::F64 {
            1e-12
        } else {
            1e-4
        };
        assert!(rel <= tol, "{precision}: {rel:e}\n{whole}\n{expected}");
        if precision == Precision::F64 && software {
            assert_bits_eq(&whole, &expected);
        }
    }
}

/// Every entry the same 64 bits.
fn assert_bits_eq(got: &DMatrix<f64>, expected: &DMatrix<f64>) {
    assert_eq!(got.shape(), expected.shape());
    for (k, (g, e)) in got.iter().zip(expected.iter()).enumerate() {
        assert_eq!(
            g.to_bits(),
            e.to_bits(),
            "entry {k}: GPU {g:e} vs CPU {e:e}"
        );
    }
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

/// The observables of `config` for the damped parameters match the CPU's
/// (bit for bit in f64 on a software adapter); `check` runs on each model
/// first (what the configuration is there to exercise).
fn damped_observables_match_cpu(config: &Lorenz96Config, what: &str, check: impl Fn(&Lorenz96Gpu)) {
    let params = damped();
    let expected = cpu(config, &params);
    for (precision, tol) in [(Precision::F64, 1e-9), (Precision::F32, 1e-3)] {
        let Some(model) = gpu(config, precision) else {
            continue;
        };
        check(&model);
        let got = model.evaluate(&params).unwrap();
        let rel = max_rel(&got, &expected);
        eprintln!("{precision} {what}: max relative difference {rel:.2e}");
        assert!(rel <= tol, "{precision}: {rel:e}\n{got}\n{expected}");
        if precision == Precision::F64 && model.adapter_info().is_software {
            assert_bits_eq(&got, &expected);
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
    damped_observables_match_cpu(&config, "window past the loop cap", |model| {
        assert!(model.cpu_model().first_observed_step(0) > 65_535);
    });
}

/// Sub-windows of 2 560 steps: a dispatch of the observing kernel that runs
/// the end of a sub-window and the start of its replay needs the forcing of
/// more steps than its window holds (2 048), so it is cut there; the outputs
/// are still the CPU's.
#[test]
fn long_sub_windows_match_cpu() {
    let config = Lorenz96Config {
        sites: 8,
        t_start: 1.0,
        window: 80.0,
        sub_window: 40.0,
        fit_windows: 1,
        ..Lorenz96Config::default()
    };
    damped_observables_match_cpu(&config, "long sub-windows", |model| {
        assert!(model.cpu_model().steps_per_sub_window() > 2_048);
    });
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
