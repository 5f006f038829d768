//! The raw Lorenz 96 integrator: RK4 order, fixed point, energy decay.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

use ekp_models::lorenz96::{Forcing, Rk4Workspace, integrate, rk4_step, tendency};

/// A non-trivial initial state on `n` sites.
fn initial(n: usize, level: f64) -> Vec<f64> {
    (0..n)
        .map(|i| {
            let s = i as f64 / n as f64;
            level + (2.0 * std::f64::consts::PI * s).sin() + 0.5 * (7.0 * s).cos() + 0.1 * i as f64
        })
        .collect()
}

/// Integrate from t = 0 to `t_end` with `steps` steps.
fn solve(x0: &[f64], forcing: &Forcing, t_end: f64, steps: usize) -> Vec<f64> {
    let mut x = x0.to_vec();
    let mut ws = Rk4Workspace::new(x.len());
    integrate(&mut x, &mut ws, forcing, t_end / steps as f64, 0, steps);
    x
}

fn distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt()
}

#[test]
fn tendency_matches_the_periodic_formula() {
    for n in [1usize, 2, 3, 4, 5, 36] {
        let x: Vec<f64> = (0..n)
            .map(|i| 0.3 * i as f64 - 1.0 + (i * i) as f64 * 0.01)
            .collect();
        let mut d = vec![0.0; n];
        tendency(&x, 8.0, &mut d);
        for i in 0..n {
            let at = |k: isize| x[(i as isize + k).rem_euclid(n as isize) as usize];
            let expected = (at(1) - at(-2)) * at(-1) - at(0) + 8.0;
            assert_eq!(d[i], expected, "n = {n}, site {i}");
        }
    }
}

#[test]
fn rk4_is_fourth_order_for_constant_forcing() {
    let forcing = Forcing::constant(8.0);
    // Start on the attractor: spin up a perturbed state for 10 time units.
    let x0 = solve(&initial(36, 0.0), &forcing, 10.0, 10 * 1024);
    let t = 2.0;
    let reference = solve(&x0, &forcing, t, 128 * 64); // dt = 1/4096
    let errors: Vec<f64> = [32usize, 64, 128, 256]
        .iter()
        .map(|&steps_per_unit| distance(&solve(&x0, &forcing, t, 2 * steps_per_unit), &reference))
        .collect();
    // dt = 1/64 (the model's step) is accurate.
    assert!(errors[1] < 2e-2, "error at dt = 1/64: {}", errors[1]);
    for w in errors.windows(2) {
        let ratio = w[0] / w[1];
        assert!(
            (12.0..20.0).contains(&ratio),
            "halving dt cut the error by {ratio:.2} (errors {errors:?}); 4th order gives 16"
        );
    }
}

#[test]
fn held_forcing_is_first_order_in_its_time_variation() {
    // EKP.jl holds F(t) at the end-of-step time for all four stages: a
    // first-order error in the forcing's variation (documented behaviour).
    let x0 = solve(&initial(36, 0.0), &Forcing::constant(8.0), 10.0, 10 * 1024);
    let forcing = Forcing {
        mean: 8.0,
        amplitude: 2.5,
        omega: 2.0,
    };
    let t = 1.0;
    let reference = solve(&x0, &forcing, t, 1 << 16);
    let e1 = distance(&solve(&x0, &forcing, t, 64), &reference);
    let e2 = distance(&solve(&x0, &forcing, t, 128), &reference);
    let ratio = e1 / e2;
    assert!(
        (1.8..2.2).contains(&ratio),
        "ratio {ratio} (errors {e1}, {e2})"
    );
}

#[test]
fn uniform_state_is_a_fixed_point_of_constant_forcing() {
    for f in [8.0, 2.5, -3.0, 0.0] {
        let mut x = vec![f; 36];
        let mut ws = Rk4Workspace::new(36);
        let forcing = Forcing {
            mean: f,
            amplitude: 0.0,
            omega: 2.0 * std::f64::consts::PI / 72.0,
        };
        integrate(&mut x, &mut ws, &forcing, 1.0 / 64.0, 0, 10_000);
        for (i, v) in x.iter().enumerate() {
            assert!((v - f).abs() <= 1e-12, "F = {f}: site {i} moved to {v}");
        }
    }
}

#[test]
fn unforced_energy_decays_as_exp_minus_2t() {
    // The quadratic term conserves Σx², so d/dt Σx² = −2 Σx².
    let x0 = initial(36, 0.0);
    let e0: f64 = x0.iter().map(|v| v * v).sum();
    let forcing = Forcing::constant(0.0);
    let dt = 1.0 / 64.0;
    let mut x = x0.clone();
    let mut ws = Rk4Workspace::new(36);
    let mut worst: f64 = 0.0;
    for unit in 1..=4 {
        integrate(&mut x, &mut ws, &forcing, dt, (unit - 1) * 64, 64);
        let t = unit as f64;
        let e: f64 = x.iter().map(|v| v * v).sum();
        let exact = e0 * (-2.0 * t).exp();
        worst = worst.max(((e - exact) / exact).abs());
    }
    assert!(worst < 1e-7, "relative energy error {worst:e}");
    // And it is a real test: the state did change shape, not just scale.
    let scale =
        (x0.iter().map(|v| v * v).sum::<f64>() / x.iter().map(|v| v * v).sum::<f64>()).sqrt();
    let shape_change = distance(&x.iter().map(|v| v * scale).collect::<Vec<_>>(), &x0);
    assert!(shape_change > 0.1, "shape change {shape_change}");
}

#[test]
fn integrate_is_repeated_rk4_step_with_end_of_step_forcing() {
    let forcing = Forcing {
        mean: 8.0,
        amplitude: 2.5,
        omega: 0.3,
    };
    let dt = 1.0 / 64.0;
    let mut a = initial(36, 1.0);
    let mut b = a.clone();
    let mut ws = Rk4Workspace::new(36);
    integrate(&mut a, &mut ws, &forcing, dt, 10, 50);
    for j in 11..=60 {
        rk4_step(
            &mut b,
            &mut ws,
            8.0 + 2.5 * (0.3 * (dt * j as f64)).sin(),
            dt,
        );
    }
    assert_eq!(a, b);
}

#[test]
fn integrate_f32_is_repeated_rk4_step_f32_with_the_f32_forcing() {
    use ekp_models::lorenz96::{Rk4Workspace32, integrate_f32, rk4_step_f32, tendency_f32};
    let forcing = Forcing {
        mean: 8.0,
        amplitude: 2.5,
        omega: 0.3,
    };
    let dt = 1.0 / 64.0;
    let mut a: Vec<f32> = initial(36, 1.0).iter().map(|&v| v as f32).collect();
    let mut b = a.clone();
    let mut ws = Rk4Workspace32::new(36);
    integrate_f32(&mut a, &mut ws, &forcing, dt, 10, 50);
    for j in 11..=60 {
        // sin in f64, rounded to f32; F + A·s in f32.
        let s = (0.3 * (dt * j as f64)).sin() as f32;
        rk4_step_f32(&mut b, &mut ws, 8.0f32 + 2.5f32 * s, dt);
    }
    assert_eq!(a, b);
    // One step by hand: dt, dt/2, dt/6 computed in f64 and rounded to f32.
    let x: Vec<f32> = initial(5, 1.0).iter().map(|&v| v as f32).collect();
    let (f, h, half, sixth) = (7.5f32, dt as f32, (dt / 2.0) as f32, (dt / 6.0) as f32);
    let tend = |x: &[f32]| {
        let mut d = vec![0.0f32; x.len()];
        tendency_f32(x, f, &mut d);
        d
    };
    let stage =
        |k: &[f32], c: f32| -> Vec<f32> { x.iter().zip(k).map(|(&xi, &ki)| xi + ki * c).collect() };
    let k1 = tend(&x);
    let k2 = tend(&stage(&k1, half));
    let k3 = tend(&stage(&k2, half));
    let k4 = tend(&stage(&k3, h));
    let want: Vec<f32> = (0..5)
        .map(|i| x[i] + sixth * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]))
        .collect();
    let mut got = x.clone();
    rk4_step_f32(&mut got, &mut Rk4Workspace32::new(5), f, dt);
    assert_eq!(
        got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        want.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
}
