//! The ask/tell loop with your own model, in a few lines.
//!
//! Calibrate `k > 0` and `b` of the line `g_i = k·(i+1) + b` from three noisy
//! points. Run with `cargo run -p ekp-core --example ask_tell`.

use ekp_core::{
    EnsembleKalmanProcess, Inversion, NoiseCovariance, Observation, ParameterPrior, Prior, Process,
    Scheduler, UpdateOutcome,
};
use nalgebra::{DMatrix, DVector};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let prior = Prior::new(vec![
        ParameterPrior::constrained_gaussian("k", 2.0, 1.0, Some(0.0), None, 1)?,
        ParameterPrior::gaussian("b", 0.0, 5.0, 1)?,
    ])?;
    let y = DVector::from_vec(vec![3.1, 5.0, 6.9]);
    let observation = Observation::new(y, NoiseCovariance::scalar_std(0.1, 3)?)?;
    let mut ekp = EnsembleKalmanProcess::builder(
        prior,
        observation,
        Process::Inversion(Inversion::default()),
    )
    .ensemble_size(20)
    .seed(1)
    .scheduler(Scheduler::data_misfit(1.0))
    .build()?;

    for _ in 0..10 {
        // Ask: the members to run, in physical (constrained) units, p × N.
        let theta = ekp.constrained_ensemble();
        // Run your model however you like: here, a line. Outputs are d × N.
        let g = DMatrix::from_fn(3, theta.ncols(), |i, j| {
            theta[(0, j)] * (i as f64 + 1.0) + theta[(1, j)]
        });
        // Tell: one update.
        match ekp.update(&g)? {
            UpdateOutcome::Updated(r) => println!(
                "iteration {}: Δt = {:.3e}, loss = {:.3e}",
                ekp.iterations(),
                r.dt,
                r.metrics.loss
            ),
            UpdateOutcome::Terminated => break,
        }
    }
    let m = ekp.constrained_mean();
    println!(
        "k ≈ {:.3}, b ≈ {:.3}  (data: k = 1.9, b = 1.2 fits them best)",
        m[0], m[1]
    );
    Ok(())
}
