//! One update per process at a few (N, d).
//!
//! EKI and ETKI use `localizer = none`, so with the diagonal `Γ` of
//! `update_problem` they take the low-rank (Woodbury / streaming) path; the
//! `inversion-dense` rows give the same EKI update with `Γ` as a full matrix
//! (the dense `d × d` solve) for comparison, and the `-1thread` rows run the
//! low-rank updates on a one-thread rayon pool (side by side with the default
//! pool: the gain of the threaded row blocks). The `metrics` group times the
//! iteration's metrics next to the update at N = d = 1000, and the CRPS as
//! computed before (nalgebra's eigendecomposition).
#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use ekp_benches::update_problem;
use ekp_core::{
    EnsembleKalmanProcess, ErrorMetrics, Inversion, Localizer, NoiseCovariance, Observation,
    Process, Scheduler, TransformInversion,
};

fn update(c: &mut Criterion) {
    let mut group = c.benchmark_group("update");
    group.sample_size(10);
    let p = 10;
    let one_thread = rayon::ThreadPoolBuilder::new().num_threads(1).build().ok();
    for &(n, d) in &[(20usize, 100usize), (100, 1000), (100, 100_000)] {
        let (prior, obs, g) = update_problem(p, d, n, 3);
        let dense_obs = (d <= 1000)
            .then(|| {
                NoiseCovariance::full(obs.noise().dense())
                    .ok()
                    .and_then(|noise| Observation::new(obs.values().clone(), noise).ok())
            })
            .flatten();
        let mut cases = vec![
            (
                "inversion",
                Process::Inversion(Inversion::default()),
                obs.clone(),
                false,
            ),
            (
                "transform-inversion",
                Process::TransformInversion(TransformInversion::default()),
                obs.clone(),
                false,
            ),
        ];
        if let Some(dense) = dense_obs {
            cases.push((
                "inversion-dense",
                Process::Inversion(Inversion::default()),
                dense,
                false,
            ));
        }
        if d >= 100_000 {
            cases.push((
                "inversion-1thread",
                Process::Inversion(Inversion::default()),
                obs.clone(),
                true,
            ));
            cases.push((
                "transform-inversion-1thread",
                Process::TransformInversion(TransformInversion::default()),
                obs.clone(),
                true,
            ));
        }
        for (name, process, obs, single) in cases {
            let built = EnsembleKalmanProcess::builder(prior.clone(), obs, process)
                .ensemble_size(n)
                .seed(1)
                .localizer(Localizer::None)
                .scheduler(Scheduler::Fixed { dt: 1.0 })
                .build();
            let Ok(ekp) = built else { continue };
            let id = BenchmarkId::new(name, format!("N{n}_d{d}"));
            match (&one_thread, single) {
                (Some(pool), true) => {
                    group.bench_function(id, |b| {
                        b.iter_batched(
                            || ekp.clone(),
                            |mut e| pool.install(|| e.update(&g).map(|_| ())),
                            criterion::BatchSize::LargeInput,
                        )
                    });
                }
                (None, true) => {}
                (_, false) => {
                    group.bench_function(id, |b| {
                        b.iter_batched(
                            || ekp.clone(),
                            |mut e| e.update(&g).map(|_| ()),
                            criterion::BatchSize::LargeInput,
                        )
                    });
                }
            }
        }
    }
    group.finish();
}

/// The iteration's metrics next to the update they come with (EKI, N = d =
/// 1000, dense form): `ErrorMetrics::compute` (the fast CRPS) and the CRPS as
/// computed before (`ErrorMetrics::crps_reference`, nalgebra's full
/// eigendecomposition), side by side in one run.
fn metrics(c: &mut Criterion) {
    let mut group = c.benchmark_group("metrics");
    group.sample_size(10);
    let (n, d, p) = (1000usize, 1000usize, 100usize);
    let (prior, obs, g) = update_problem(p, d, n, 3);
    let built = EnsembleKalmanProcess::builder(
        prior,
        obs.clone(),
        Process::Inversion(Inversion::default()),
    )
    .ensemble_size(n)
    .seed(1)
    .localizer(Localizer::None)
    .scheduler(Scheduler::Fixed { dt: 1.0 })
    .build();
    let Ok(ekp) = built else { return };
    let size = format!("N{n}_d{d}");
    group.bench_function(BenchmarkId::new("update", &size), |b| {
        b.iter_batched(
            || ekp.clone(),
            |mut e| e.update(&g).map(|_| ()),
            criterion::BatchSize::LargeInput,
        )
    });
    group.bench_function(BenchmarkId::new("metrics", &size), |b| {
        b.iter(|| ErrorMetrics::compute(&g, &obs))
    });
    group.bench_function(BenchmarkId::new("crps-reference", &size), |b| {
        b.iter(|| ErrorMetrics::crps_reference(&g, &obs))
    });
    group.finish();
}

criterion_group!(benches, update, metrics);
criterion_main!(benches);
