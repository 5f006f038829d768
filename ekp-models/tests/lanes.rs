//! The lanes kernel against the plain per-member RK4 reference: bit for bit,
//! for every lane width, member count, forcing and failure mode.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

use ekp_core::ForwardModel;
use ekp_models::lanes::{LANES, LANES_F32, LaneForcing, LaneForcing32, LaneState, LaneState32};
use ekp_models::lorenz96::{Forcing, Rk4Workspace, Rk4Workspace32, integrate, integrate_f32};
use ekp_models::{Ensemble, Execution, Lorenz96, Lorenz96Config, MemberModel};
use nalgebra::DMatrix;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn short_config() -> Lorenz96Config {
    Lorenz96Config {
        t_start: 10.0,
        window: 4.0,
        sub_window: 1.0,
        fit_windows: 2,
        truth_samples: 5,
        ..Lorenz96Config::default()
    }
}

fn random_forcings(n: usize, seed: u64, omega: f64) -> Vec<Forcing> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| Forcing {
            mean: rng.random_range(6.0..10.0),
            amplitude: rng.random_range(0.0..4.0),
            omega,
        })
        .collect()
}

fn assert_bits(a: &[f64], b: &[f64], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert_eq!(x.to_bits(), y.to_bits(), "{what}: entry {i}: {x} vs {y}");
    }
}

fn assert_bits_f32(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert_eq!(x.to_bits(), y.to_bits(), "{what}: entry {i}: {x} vs {y}");
    }
}

/// Every lane of a width-`L` state equals the per-member integration.
fn lanes_match_reference<const L: usize>(sites: usize, members: usize, steps: usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(sites as u64);
    let x0: Vec<f64> = (0..sites).map(|_| rng.random_range(-1.0..1.0)).collect();
    let forcings = random_forcings(members, 7 + L as u64, 2.0 * std::f64::consts::PI / 5.0);
    let dt = 1.0 / 64.0;
    let mut state = LaneState::<L>::new(sites);
    for (c, group) in forcings.chunks(L).enumerate() {
        let lf = LaneForcing::<L>::gather(group).expect("shared omega");
        state.fill(&x0);
        // Two calls, to check the time origin carries over.
        state.integrate(&lf, dt, 0, steps / 2);
        state.integrate(&lf, dt, steps / 2, steps - steps / 2);
        for (l, forcing) in group.iter().enumerate() {
            let mut x = x0.clone();
            let mut ws = Rk4Workspace::new(sites);
            integrate(&mut x, &mut ws, forcing, dt, 0, steps);
            let mut got = vec![0.0; sites];
            state.copy_lane(l, &mut got);
            assert_bits(
                &got,
                &x,
                &format!("L={L} sites={sites} member {}", c * L + l),
            );
        }
    }
}

#[test]
fn every_lane_width_is_bit_identical_to_the_reference() {
    for sites in [4, 5, 36, 40] {
        lanes_match_reference::<1>(sites, 3, 300);
        lanes_match_reference::<4>(sites, 6, 300);
        lanes_match_reference::<8>(sites, 11, 300);
        lanes_match_reference::<16>(sites, 17, 300);
    }
}

/// Every lane of a width-`L` f32 state equals the scalar f32 integration.
fn f32_lanes_match_reference<const L: usize>(sites: usize, members: usize, steps: usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(sites as u64 + 1000);
    let x0: Vec<f64> = (0..sites).map(|_| rng.random_range(-1.0..1.0)).collect();
    let x0_32: Vec<f32> = x0.iter().map(|&v| v as f32).collect();
    let forcings = random_forcings(members, 70 + L as u64, 2.0 * std::f64::consts::PI / 5.0);
    let dt = 1.0 / 64.0;
    let mut state = LaneState32::<L>::new(sites);
    for (c, group) in forcings.chunks(L).enumerate() {
        let lf = LaneForcing32::<L>::gather(group).expect("shared omega");
        // Alternate the two ways of filling: they agree.
        if c % 2 == 0 {
            state.fill(&x0_32);
        } else {
            state.fill_from_f64(&x0);
        }
        // Two calls, to check the time origin carries over.
        state.integrate(&lf, dt, 0, steps / 2);
        state.integrate(&lf, dt, steps / 2, steps - steps / 2);
        for (l, forcing) in group.iter().enumerate() {
            let mut x = x0_32.clone();
            let mut ws = Rk4Workspace32::new(sites);
            integrate_f32(&mut x, &mut ws, forcing, dt, 0, steps);
            assert!(x.iter().all(|v| v.is_finite()));
            let mut got = vec![0.0f32; sites];
            state.copy_lane(l, &mut got);
            assert_bits_f32(
                &got,
                &x,
                &format!("f32 L={L} sites={sites} member {}", c * L + l),
            );
        }
    }
}

#[test]
fn every_f32_lane_width_is_bit_identical_to_the_f32_reference() {
    for sites in [1, 2, 3, 4, 5, 36, 40] {
        f32_lanes_match_reference::<1>(sites, 3, 300);
        f32_lanes_match_reference::<4>(sites, 7, 300);
        f32_lanes_match_reference::<8>(sites, 11, 300);
        f32_lanes_match_reference::<16>(sites, 21, 300);
        f32_lanes_match_reference::<LANES_F32>(sites, LANES_F32 + 3, 301);
    }
}

#[test]
fn f64_lanes_are_bit_identical_on_tiny_rings() {
    for sites in [1, 2, 3] {
        lanes_match_reference::<4>(sites, 5, 200);
        lanes_match_reference::<8>(sites, 9, 200);
    }
}

#[test]
fn f32_forcing_follows_the_gpu_convention() {
    let forcings = random_forcings(5, 3, 0.7);
    let lf = LaneForcing32::<8>::gather(&forcings).unwrap();
    for j in [0usize, 1, 17, 56_000] {
        let t = (1.0 / 64.0) * j as f64;
        let got = lf.at(t);
        for (l, f) in forcings.iter().enumerate() {
            // sin in f64, rounded to f32; F + A·s in f32.
            let s = (f.omega * t).sin() as f32;
            let want = f.mean as f32 + f.amplitude as f32 * s;
            assert_eq!(got[l].to_bits(), want.to_bits(), "lane {l} step {j}");
            assert_eq!(f.at_f32(t).to_bits(), want.to_bits(), "at_f32, step {j}");
        }
        // Padding lanes repeat the last member.
        assert_eq!(got[7].to_bits(), got[4].to_bits());
    }
    // A shared ω is required, as in f64.
    let mut mixed = forcings.clone();
    mixed[2].omega = 0.5;
    assert!(LaneForcing32::<8>::gather(&mixed).is_none());
}

#[test]
fn f32_trajectories_stay_close_to_f64_over_a_short_horizon() {
    let sites = 36;
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    // Initial states exactly representable in f32, so both start alike.
    let x0_32: Vec<f32> = (0..sites).map(|_| rng.random_range(-1.0..1.0)).collect();
    let x0: Vec<f64> = x0_32.iter().map(|&v| f64::from(v)).collect();
    let forcings = random_forcings(LANES_F32, 12, 2.0 * std::f64::consts::PI / 72.0);
    let dt = 1.0 / 64.0;
    let steps = 50;
    let mut s32 = LaneState32::<LANES_F32>::new(sites);
    s32.fill(&x0_32);
    s32.integrate(&LaneForcing32::gather(&forcings).unwrap(), dt, 0, steps);
    for (l, forcing) in forcings.iter().enumerate() {
        let mut x = x0.clone();
        integrate(&mut x, &mut Rk4Workspace::new(sites), forcing, dt, 0, steps);
        let mut got = vec![0.0f32; sites];
        s32.copy_lane(l, &mut got);
        let diff: f64 = got
            .iter()
            .zip(&x)
            .map(|(&a, &b)| (f64::from(a) - b).powi(2))
            .sum::<f64>()
            .sqrt();
        let norm: f64 = x.iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!(norm > 1.0, "lane {l}: the state moved ({norm})");
        assert!(
            diff / norm < 1e-3,
            "lane {l}: relative difference {}",
            diff / norm
        );
        // And the f32 run really is f32: not the f64 bits rounded.
        assert!(got.iter().zip(&x).any(|(&a, &b)| a != b as f32));
    }
}

#[test]
fn final_states_f32_match_final_state_f32() {
    let model = Lorenz96::new(Lorenz96Config::default()).unwrap();
    let n = model.config().sites;
    for members in [
        1,
        LANES_F32 - 1,
        LANES_F32,
        LANES_F32 + 1,
        2 * LANES_F32 + 5,
    ] {
        let forcings = random_forcings(members, 300 + members as u64, model.config().omega);
        let thetas: Vec<f64> = forcings
            .iter()
            .flat_map(|f| [f.mean, f.amplitude])
            .collect();
        let mut out = vec![0.0f32; n * members];
        model.final_states_into_f32(&thetas, 400, &mut out).unwrap();
        for (j, t) in thetas.chunks(2).enumerate() {
            let reference = model.final_state_f32(t, 400).unwrap();
            assert_bits_f32(&out[j * n..(j + 1) * n], &reference, &format!("member {j}"));
        }
    }
    // Buffers of the wrong size are errors, not panics.
    assert!(model.final_states_into_f32(&[8.0], 10, &mut []).is_err());
    assert!(
        model
            .final_states_into_f32(&[8.0, 1.0], 10, &mut [0.0; 3])
            .is_err()
    );
    assert!(model.final_state_f32(&[8.0], 10).is_err());
}

#[test]
fn final_states_match_final_state() {
    let model = Lorenz96::new(Lorenz96Config::default()).unwrap();
    let n = model.config().sites;
    for members in [1, LANES - 1, LANES, LANES + 1, 3 * LANES + 5] {
        let forcings = random_forcings(members, members as u64, model.config().omega);
        let thetas: Vec<f64> = forcings
            .iter()
            .flat_map(|f| [f.mean, f.amplitude])
            .collect();
        let mut out = vec![0.0; n * members];
        model.final_states_into(&thetas, 500, &mut out).unwrap();
        for (j, t) in thetas.chunks(2).enumerate() {
            let reference = model.final_state(t, 500).unwrap();
            assert_bits(&out[j * n..(j + 1) * n], &reference, &format!("member {j}"));
        }
    }
    // Buffers of the wrong size are errors, not panics.
    assert!(model.final_states_into(&[8.0], 10, &mut []).is_err());
    assert!(
        model
            .final_states_into(&[8.0, 1.0], 10, &mut [0.0; 3])
            .is_err()
    );
}

/// `evaluate_batch` against `evaluate_member`, bit for bit.
fn batch_matches_members(model: &Lorenz96, thetas: &[f64]) -> Vec<f64> {
    let d = model.output_dim();
    let m = thetas.len() / 2;
    let mut batch = vec![0.0; d * m];
    model.evaluate_batch(0, thetas, &mut batch);
    for (j, t) in thetas.chunks(2).enumerate() {
        let mut one = vec![0.0; d];
        model.evaluate_member(j, t, &mut one);
        assert_bits(
            &batch[j * d..(j + 1) * d],
            &one,
            &format!("member {j} at {t:?}"),
        );
    }
    batch
}

#[test]
fn batch_equals_per_member_for_any_ensemble_size() {
    let model = Lorenz96::new(short_config()).unwrap();
    for members in [1, 2, LANES - 1, LANES, LANES + 1, 2 * LANES + 3] {
        let forcings = random_forcings(members, 100 + members as u64, model.config().omega);
        let thetas: Vec<f64> = forcings
            .iter()
            .flat_map(|f| [f.mean, f.amplitude])
            .collect();
        let out = batch_matches_members(&model, &thetas);
        assert!(out.iter().all(|v| v.is_finite() && *v > 0.0));
    }
}

#[test]
fn batch_equals_per_member_with_time_varying_forcing_and_the_default_window() {
    // The default configuration (t_start = 800: a long, checked spin-up) and
    // a fast forcing frequency, so the sin term matters at every step.
    let model = Lorenz96::new(Lorenz96Config {
        omega: 3.0,
        t_start: 20.0,
        ..Lorenz96Config::default()
    })
    .unwrap();
    let forcings = random_forcings(LANES + 2, 5, 3.0);
    let thetas: Vec<f64> = forcings
        .iter()
        .flat_map(|f| [f.mean, f.amplitude])
        .collect();
    batch_matches_members(&model, &thetas);
}

#[test]
fn failing_members_fail_alone() {
    // max_abs_state small enough that strong forcings leave the box while
    // weak ones stay in it; NaN and infinite parameters fail without running.
    let model = Lorenz96::new(Lorenz96Config {
        max_abs_state: 6.0,
        ..short_config()
    })
    .unwrap();
    let thetas = [
        1.0,
        0.5, // stays small
        12.0,
        3.0, // leaves the box
        f64::NAN,
        1.0,
        2.0,
        0.0,
        f64::INFINITY,
        0.0,
        1e300,
        1e300, // overflows to inf/NaN
        1.5,
        0.2,
        9.0,
        0.0,
        0.5,
        0.5,
        3.0,
        1.0,
    ];
    let out = batch_matches_members(&model, &thetas);
    let d = model.output_dim();
    let failed: Vec<bool> = out
        .chunks(d)
        .map(|c| c.iter().all(|v| v.is_nan()))
        .collect();
    assert!(!failed[0] && failed[1] && failed[2] && !failed[3] && failed[4] && failed[5]);
    assert!(failed.iter().any(|&f| !f) && failed.iter().filter(|&&f| f).count() >= 4);
}

#[test]
fn malformed_batches_fill_nan_without_panicking() {
    let model = Lorenz96::new(short_config()).unwrap();
    let d = model.output_dim();
    // Parameters for one member, outputs for two.
    let mut outs = vec![0.0; 2 * d];
    model.evaluate_batch(0, &[8.0, 1.0], &mut outs);
    let mut one = vec![0.0; d];
    model.evaluate_member(0, &[8.0, 1.0], &mut one);
    assert_bits(&outs[..d], &one, "first member");
    assert!(outs[d..].iter().all(|v| v.is_nan()));
    // An output buffer that is not whole members.
    let mut ragged = vec![0.0; d + 1];
    model.evaluate_batch(0, &[8.0, 1.0, 8.0, 1.0], &mut ragged);
}

#[test]
fn ensembles_use_the_batch_kernel_and_stay_bit_identical() {
    let model = Lorenz96::new(short_config()).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let members = 3 * LANES + 3;
    let params = DMatrix::from_fn(2, members, |i, _| {
        if i == 0 {
            rng.random_range(6.0..10.0)
        } else {
            rng.random_range(0.0..4.0)
        }
    });
    let serial = Ensemble::new(model.clone(), Execution::Serial)
        .evaluate(&params)
        .unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap();
    let threads = pool
        .install(|| Ensemble::new(model.clone(), Execution::Threads).evaluate(&params))
        .unwrap();
    assert_bits(serial.as_slice(), threads.as_slice(), "serial vs threads");
    for (j, col) in params.column_iter().enumerate() {
        let theta: Vec<f64> = col.iter().copied().collect();
        let mut one = vec![0.0; model.output_dim()];
        model.evaluate_member(j, &theta, &mut one);
        assert_bits(serial.column(j).as_slice(), &one, &format!("member {j}"));
    }
}
