//! One update per process at a few (N, d).
#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use ekp_benches::update_problem;
use ekp_core::{EnsembleKalmanProcess, Inversion, Process, Scheduler, TransformInversion};

fn update(c: &mut Criterion) {
    let mut group = c.benchmark_group("update");
    group.sample_size(10);
    let p = 10;
    for &(n, d) in &[(20usize, 100usize), (100, 1000)] {
        let (prior, obs, g) = update_problem(p, d, n, 3);
        for process in [
            Process::Inversion(Inversion::default()),
            Process::TransformInversion(TransformInversion::default()),
        ] {
            let built = EnsembleKalmanProcess::builder(prior.clone(), obs.clone(), process.clone())
                .ensemble_size(n)
                .seed(1)
                .scheduler(Scheduler::Fixed { dt: 1.0 })
                .build();
            let Ok(ekp) = built else { continue };
            group.bench_function(
                BenchmarkId::new(process.kind(), format!("N{n}_d{d}")),
                |b| {
                    b.iter_batched(
                        || ekp.clone(),
                        |mut e| e.update(&g).map(|_| ()),
                        criterion::BatchSize::LargeInput,
                    )
                },
            );
        }
    }
    group.finish();
}

criterion_group!(benches, update);
criterion_main!(benches);
