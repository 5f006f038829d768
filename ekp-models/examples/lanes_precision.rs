//! f32 against f64 lanes kernel throughput, one thread, several lane widths.
//!
//! `cargo run --release -p ekp-models --example lanes_precision [members] [steps] [reps]`
//! (defaults 4096, 1000, 9): integrates the default Lorenz 96 model (36
//! sites) with `LaneState<L, T>` for f64 at widths 4, 8, 16 and f32 at 8, 16,
//! 32, all widths back to back in each repetition. Prints member-steps per
//! second (best of the repetitions) and, for each width, the median over
//! the repetitions of its throughput divided by that repetition's f64
//! `L = 8` (the default `LANES`) throughput: pairing runs that ran seconds
//! apart keeps the ratio steady on a noisy (shared) machine.
#![allow(clippy::unwrap_used, clippy::expect_used)] // an example may panic

use ekp_models::lanes::{LaneForcing, LaneReal, LaneState};
use ekp_models::{Forcing, Lorenz96, Lorenz96Config};
use std::time::Instant;

/// Member-steps per second of `members` members, `L` at a time, in `T`.
fn run<T: LaneReal, const L: usize>(model: &Lorenz96, members: usize, steps: usize) -> f64 {
    let c = model.config();
    let mut state = LaneState::<L, T>::new(c.sites);
    let mut sum = 0.0;
    let t0 = Instant::now();
    for g in 0..members.div_ceil(L) {
        let forcings: Vec<Forcing> = (g * L..((g + 1) * L).min(members))
            .map(|j| Forcing {
                mean: 7.0 + (j % 7) as f64 * 0.3,
                amplitude: 2.0,
                omega: c.omega,
            })
            .collect();
        let forcing = LaneForcing::<L, T>::gather(&forcings).expect("shared omega");
        state.fill_from_f64(model.initial_state());
        state.integrate(&forcing, c.dt, 0, steps);
        sum += state.state()[0][0].to_f64();
    }
    let secs = t0.elapsed().as_secs_f64();
    std::hint::black_box(sum);
    (members * steps) as f64 / secs
}

fn main() {
    let arg = |i: usize, default: usize| {
        std::env::args()
            .nth(i)
            .map_or(default, |s| s.parse().expect("a number"))
    };
    let (members, steps, reps) = (arg(1, 4096), arg(2, 1000), arg(3, 9).max(1));
    let model = Lorenz96::new(Lorenz96Config::default()).unwrap();
    let names = [
        "f64 L=4", "f64 L=8", "f64 L=16", "f32 L=8", "f32 L=16", "f32 L=32",
    ];
    let mut rates: Vec<[f64; 6]> = Vec::new();
    for _ in 0..reps {
        rates.push([
            run::<f64, 4>(&model, members, steps),
            run::<f64, 8>(&model, members, steps),
            run::<f64, 16>(&model, members, steps),
            run::<f32, 8>(&model, members, steps),
            run::<f32, 16>(&model, members, steps),
            run::<f32, 32>(&model, members, steps),
        ]);
    }
    println!("{members} members x {steps} steps, {reps} repetitions, one thread");
    for (k, name) in names.iter().enumerate() {
        let best = rates.iter().map(|r| r[k]).fold(0.0, f64::max);
        let mut ratios: Vec<f64> = rates.iter().map(|r| r[k] / r[1]).collect();
        ratios.sort_by(f64::total_cmp);
        println!(
            "{name:>8}: {best:.3e} member-steps/s (best), median ratio to f64 L=8: {:.2}",
            ratios[ratios.len() / 2]
        );
    }
}
