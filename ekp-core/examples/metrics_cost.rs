//! What the iteration's metrics cost next to the update, side by side in one
//! run: one EKI update (perturbed observations, diagonal Γ, no localizer) at
//! N members, p = 100 parameters and d outputs (default N = d = 1000, where
//! EKI takes its dense form), the metrics of its outputs
//! (`ErrorMetrics::compute`, the fast CRPS) and the CRPS as computed before
//! (`ErrorMetrics::crps_reference`: nalgebra's full eigendecomposition).
//!
//! `cargo run --release -p ekp-core --example metrics_cost [-- N D REPEATS]`

use std::time::Instant;

use ekp_core::{
    EnsembleKalmanProcess, ErrorMetrics, Inversion, Localizer, NoiseCovariance, Observation,
    ParameterPrior, Prior, Process, Scheduler,
};
use nalgebra::{DMatrix, DVector};
use rand::{Rng, SeedableRng};

/// The median of `repeats` timings of `f`, in seconds.
fn median<F: FnMut()>(repeats: usize, mut f: F) -> f64 {
    let mut times: Vec<f64> = (0..repeats.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let n = args.first().copied().unwrap_or(1000);
    let d = args.get(1).copied().unwrap_or(1000);
    let repeats = args.get(2).copied().unwrap_or(5);
    let p = 100;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let prior = Prior::new(vec![ParameterPrior::gaussian("theta", 0.0, 1.0, p)?])?;
    let y = DVector::from_fn(d, |_, _| rng.random_range(-1.0..1.0));
    let sd: Vec<f64> = (0..d).map(|_| rng.random_range(0.5..1.5)).collect();
    let obs = Observation::new(y, NoiseCovariance::diagonal_std(&sd)?)?;
    let g = DMatrix::from_fn(d, n, |_, _| rng.random_range(-1.0..1.0));
    let ekp = EnsembleKalmanProcess::builder(
        prior,
        obs.clone(),
        Process::Inversion(Inversion::default()),
    )
    .ensemble_size(n)
    .seed(1)
    .localizer(Localizer::None)
    .scheduler(Scheduler::Fixed { dt: 1.0 })
    .build()?;
    println!(
        "N = {n}, p = {p}, d = {d}, {} rayon threads, medians of {repeats}",
        rayon::current_num_threads()
    );
    let update = median(repeats, || {
        let mut e = ekp.clone();
        let _ = e.update(&g);
    });
    let metrics = median(repeats, || {
        let _ = ErrorMetrics::compute(&g, &obs);
    });
    let reference = median(repeats, || {
        let _ = ErrorMetrics::crps_reference(&g, &obs);
    });
    // The update includes the (fast) metrics; without them it costs:
    let bare = (update - metrics).max(f64::MIN_POSITIVE);
    println!("update (with metrics)         {update:.4} s");
    println!("metrics (fast CRPS)           {metrics:.4} s");
    println!("CRPS as before (reference)    {reference:.4} s");
    println!("metrics / update, now         {:.3}", metrics / bare);
    println!("metrics / update, before      {:.3}", reference / bare);
    Ok(())
}
