//! Helpers shared by the GPU tests.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ekp_core::ForwardModel;
use ekp_gpu::{GpuError, Lorenz96Gpu, Precision};
use ekp_models::{Ensemble, Execution, Lorenz96, Lorenz96Config};
use nalgebra::DMatrix;

/// Whether a missing adapter must fail the test (`EKP_REQUIRE_GPU=1`, set by CI).
pub fn require_gpu() -> bool {
    std::env::var("EKP_REQUIRE_GPU").is_ok_and(|v| v.trim() == "1")
}

/// The GPU model, or `None` (with a visible note) when there is no adapter
/// for `precision` and `EKP_REQUIRE_GPU` is not set.
pub fn gpu(config: &Lorenz96Config, precision: Precision) -> Option<Lorenz96Gpu> {
    match Lorenz96Gpu::new(config.clone(), precision) {
        Ok(model) => Some(model),
        Err(e @ (GpuError::NoAdapter { .. } | GpuError::F64Unsupported { .. })) => {
            if require_gpu() {
                panic!("EKP_REQUIRE_GPU=1, but: {e}");
            }
            skipped(&format!("no GPU adapter for {precision} ({e})"));
            None
        }
        Err(e) => panic!("could not set up the GPU model: {e}"),
    }
}

/// Say on the real stderr (not the test harness's captured one, so that it
/// shows in a normal `cargo test` run) that a test was skipped.
pub fn skipped(why: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "skipped: {why}");
}

/// A short horizon on which trajectories computed with different rounding
/// still agree pointwise: 8 sub-windows of 15 steps in [0.5, 2.5], averaged in
/// pairs into 4 observables, from an initial state with unit perturbations, so
/// that the dynamics is nonlinear from the start. (From the default 0.01
/// perturbations of zero the state first grows along the unstable uniform
/// solution, which amplifies rounding differences ×1e6 by t = 5; from N(0, 1)
/// they grow ~30× by t = 2.5: f32 differs from f64 by 2e-6 there.)
pub fn short_config() -> Lorenz96Config {
    Lorenz96Config {
        t_start: 0.5,
        window: 2.0,
        sub_window: 0.25,
        fit_windows: 2,
        perturbation_std: 1.0,
        ..Lorenz96Config::default()
    }
}

/// `[F, A]` columns: F in {6, 7, 8, 9}, A in {0, 2.5}.
pub fn grid() -> DMatrix<f64> {
    let mut p = DMatrix::zeros(2, 8);
    for k in 0..8 {
        p[(0, k)] = 6.0 + (k % 4) as f64;
        p[(1, k)] = if k < 4 { 0.0 } else { 2.5 };
    }
    p
}

/// The CPU reference: `ekp_models::Ensemble<Lorenz96>`, serial, f64.
pub fn cpu(config: &Lorenz96Config, params: &DMatrix<f64>) -> DMatrix<f64> {
    Ensemble::new(Lorenz96::new(config.clone()).unwrap(), Execution::Serial)
        .evaluate(params)
        .unwrap()
}

/// The largest |a − b| / |b| over all entries (NaN in the same places counts
/// as equal; NaN in one only is infinite).
pub fn max_rel(a: &DMatrix<f64>, b: &DMatrix<f64>) -> f64 {
    assert_eq!(a.shape(), b.shape());
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| match (x.is_nan(), y.is_nan()) {
            (true, true) => 0.0,
            (false, false) => ((x - y) / y).abs(),
            _ => f64::INFINITY,
        })
        .fold(0.0, f64::max)
}
