//! Forward model throughput: Lorenz 96 ensembles, serial vs threads.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ekp_benches::{lorenz_params, short_lorenz};
use ekp_core::ForwardModel;
use ekp_models::{Ensemble, Execution};

fn forward(c: &mut Criterion) {
    let mut group = c.benchmark_group("lorenz96_forward");
    group.sample_size(10);
    for &members in &[100usize, 1000] {
        let params = lorenz_params(members, 1);
        for execution in Execution::ALL {
            let model = Ensemble::new(short_lorenz(), execution);
            let steps = model.model.member_steps() as u64;
            group.throughput(Throughput::Elements(steps * members as u64));
            group.bench_with_input(
                BenchmarkId::new(execution.as_str(), members),
                &params,
                |b, p| b.iter(|| model.evaluate(p)),
            );
        }
    }
    group.finish();
}

criterion_group!(benches, forward);
criterion_main!(benches);
