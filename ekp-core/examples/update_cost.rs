//! One update and what the iteration's metrics cost next to it, side by side
//! in one run: one EKI update (perturbed observations, diagonal Γ, no
//! localizer; or ETKI with `transform`) at N members, p = 100 parameters and
//! d outputs (default N = d = 1000, where EKI takes its dense form; with
//! d > N it takes the low-rank form), the metrics of its outputs
//! (`ErrorMetrics::compute`, the fast CRPS) and the CRPS as computed before
//! (`ErrorMetrics::crps_reference`: nalgebra's products and full
//! eigendecomposition; skipped with `noref`).
//!
//! `cargo run --release -p ekp-core --example update_cost [-- N D REPEATS [transform] [noref]]`

use std::time::Instant;

use ekp_core::{
    EnsembleKalmanProcess, ErrorMetrics, Inversion, Localizer, NoiseCovariance, Observation,
    ParameterPrior, Prior, Process, Scheduler, TransformInversion,
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
    let words: Vec<String> = std::env::args().skip(1).collect();
    let transform = words.iter().any(|w| w == "transform");
    let with_reference = !words.iter().any(|w| w == "noref");
    let args: Vec<usize> = words
        .iter()
        .filter(|w| *w != "transform" && *w != "noref")
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
        if transform {
            Process::TransformInversion(TransformInversion::default())
        } else {
            Process::Inversion(Inversion::default())
        },
    )
    .ensemble_size(n)
    .seed(1)
    .localizer(Localizer::None)
    .scheduler(Scheduler::Fixed { dt: 1.0 })
    .build()?;
    println!(
        "{}: N = {n}, p = {p}, d = {d}, {} rayon threads, medians of {repeats}",
        if transform { "ETKI" } else { "EKI" },
        rayon::current_num_threads()
    );
    // As a model hands its outputs over: `update_owned` keeps them without a
    // copy (the copy made here is not timed).
    let mut times = Vec::new();
    for _ in 0..repeats.max(1) {
        let mut e = ekp.clone();
        let owned = g.clone();
        let t = Instant::now();
        let _ = e.update_owned(owned);
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let update = times[times.len() / 2];
    let metrics = median(repeats, || {
        let _ = ErrorMetrics::compute(&g, &obs);
    });
    let reference = if with_reference {
        median(repeats, || {
            let _ = ErrorMetrics::crps_reference(&g, &obs);
        })
    } else {
        f64::NAN
    };
    // The update includes the (fast) metrics; without them it costs:
    let bare = (update - metrics).max(f64::MIN_POSITIVE);
    println!("update (with metrics)         {update:.4} s");
    println!("seconds/update: {update:.4}");
    println!("metrics (fast CRPS)           {metrics:.4} s");
    println!("CRPS as before (reference)    {reference:.4} s");
    println!("metrics / update, now         {:.3}", metrics / bare);
    println!("metrics / update, before      {:.3}", reference / bare);
    Ok(())
}
