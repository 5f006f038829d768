//! Shared set-ups for the criterion benchmarks of ekp (`cargo bench -p ekp-benches`).

use ekp_core::{NoiseCovariance, Observation, ParameterPrior, Prior};
use ekp_models::{Lorenz96, Lorenz96Config};
use nalgebra::{DMatrix, DVector};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A Lorenz 96 model with a short horizon (observed window 10 < t < 14), so a
/// benchmark iteration takes milliseconds: 36 sites, 64 steps per time unit.
pub fn short_lorenz() -> Lorenz96 {
    let config = Lorenz96Config {
        t_start: 10.0,
        window: 4.0,
        sub_window: 1.0,
        fit_windows: 2,
        truth_samples: 2,
        ..Lorenz96Config::default()
    };
    match Lorenz96::new(config) {
        Ok(m) => m,
        Err(e) => unreachable_config(&e.to_string()),
    }
}

fn unreachable_config(msg: &str) -> ! {
    eprintln!("benchmark configuration is invalid: {msg}");
    std::process::exit(2)
}

/// `2 × n` Lorenz parameters `F ∈ [7, 9]`, `A ∈ [1, 3]`.
pub fn lorenz_params(n: usize, seed: u64) -> DMatrix<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    DMatrix::from_fn(2, n, |i, _| {
        if i == 0 {
            rng.random_range(7.0..9.0)
        } else {
            rng.random_range(1.0..3.0)
        }
    })
}

/// A synthetic update problem: `p` standard-normal parameters, `d` outputs with
/// diagonal Γ, and random outputs for `n` members.
pub fn update_problem(
    p: usize,
    d: usize,
    n: usize,
    seed: u64,
) -> (Prior, Observation, DMatrix<f64>) {
    let prior =
        match ParameterPrior::gaussian("theta", 0.0, 1.0, p).and_then(|pp| Prior::new(vec![pp])) {
            Ok(prior) => prior,
            Err(e) => unreachable_config(&e.to_string()),
        };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let y = DVector::from_fn(d, |_, _| rng.random_range(-1.0..1.0));
    let sd: Vec<f64> = (0..d).map(|_| rng.random_range(0.5..1.5)).collect();
    let obs = match NoiseCovariance::diagonal_std(&sd)
        .map_err(|e| e.to_string())
        .and_then(|n| Observation::new(y, n).map_err(|e| e.to_string()))
    {
        Ok(o) => o,
        Err(e) => unreachable_config(&e),
    };
    let g = DMatrix::from_fn(d, n, |_, _| rng.random_range(-2.0..2.0));
    (prior, obs, g)
}
