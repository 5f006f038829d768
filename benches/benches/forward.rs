//! Forward model throughput: Lorenz 96 ensembles on every backend.
//!
//! * `lorenz96_forward/{serial,threads}/N`: the whole forward model (RK4 and
//!   statistics, the short benchmark horizon of [`short_lorenz`]) through
//!   `Ensemble`, as `ekp-cli run` evaluates it.
//! * `lorenz96_integrate/{per-member,serial,serial-f32,threads,threads-f32,gpu-f32,gpu-f64}/N`: the
//!   integration alone (default model, 36 sites) for N = 10², 10⁴ and 10⁶
//!   members, with 1000, 100 and 10 steps respectively (10⁵, 10⁶ and 10⁷
//!   member-steps per iteration, so every size finishes in seconds; criterion
//!   reports member-steps per second). `per-member` is the plain per-member
//!   RK4 reference, `serial`/`threads` the f64 lanes kernel ([`LANES`]
//!   members side by side), `serial-f32`/`threads-f32` the f32 lanes kernel
//!   ([`LANES_F32`] members side by side, `Lorenz96::final_states_into_f32`).
//!   The gpu rows appear
//!   when an adapter exists (on a machine with only Mesa's lavapipe, run with
//!   `NODEVICE_SELECT=1`); they include the upload and read-back.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ekp_benches::{lorenz_params, short_lorenz};
use ekp_core::ForwardModel;
use ekp_models::lanes::{LANES, LANES_F32};
use ekp_models::lorenz96::{Rk4Workspace, integrate};
use ekp_models::{Ensemble, Execution, Lorenz96, Lorenz96Config};
use rayon::prelude::*;
use std::hint::black_box;

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

/// The plain per-member RK4 over all members, on one thread.
fn per_member(model: &Lorenz96, thetas: &[f64], steps: usize, out: &mut [f64]) {
    let n = model.config().sites;
    let mut ws = Rk4Workspace::new(n);
    for (theta, x) in thetas.chunks_exact(2).zip(out.chunks_exact_mut(n)) {
        if let Some(forcing) = model.forcing(theta) {
            x.copy_from_slice(model.initial_state());
            integrate(x, &mut ws, &forcing, model.config().dt, 0, steps);
        }
    }
}

fn integrate_bench(c: &mut Criterion) {
    let Ok(model) = Lorenz96::new(Lorenz96Config::default()) else {
        return;
    };
    let n = model.config().sites;
    let gpu = |precision| ekp_gpu::Lorenz96Gpu::new(Lorenz96Config::default(), precision).ok();
    let gpus = [
        ("gpu-f32", gpu(ekp_gpu::Precision::F32)),
        ("gpu-f64", gpu(ekp_gpu::Precision::F64)),
    ];
    let mut group = c.benchmark_group("lorenz96_integrate");
    group.sample_size(10);
    for &(members, steps) in &[(100usize, 1000usize), (10_000, 100), (1_000_000, 10)] {
        let params = lorenz_params(members, 1);
        let thetas = params.as_slice();
        let mut out = vec![0.0; n * members];
        let mut out32 = vec![0.0f32; n * members];
        group.throughput(Throughput::Elements((members * steps) as u64));
        if members <= 10_000 {
            group.bench_function(BenchmarkId::new("per-member", members), |b| {
                b.iter(|| per_member(&model, thetas, steps, &mut out));
            });
        }
        group.bench_function(BenchmarkId::new("serial", members), |b| {
            b.iter(|| model.final_states_into(thetas, steps, &mut out));
        });
        group.bench_function(BenchmarkId::new("serial-f32", members), |b| {
            b.iter(|| model.final_states_into_f32(thetas, steps, &mut out32));
        });
        group.bench_function(BenchmarkId::new("threads", members), |b| {
            b.iter(|| {
                thetas
                    .par_chunks(2 * LANES)
                    .zip(out.par_chunks_mut(n * LANES))
                    .for_each(|(t, o)| {
                        let _ = model.final_states_into(t, steps, o);
                    });
            });
        });
        group.bench_function(BenchmarkId::new("threads-f32", members), |b| {
            b.iter(|| {
                thetas
                    .par_chunks(2 * LANES_F32)
                    .zip(out32.par_chunks_mut(n * LANES_F32))
                    .for_each(|(t, o)| {
                        let _ = model.final_states_into_f32(t, steps, o);
                    });
            });
        });
        for (name, gpu) in &gpus {
            if let Some(gpu) = gpu {
                group.bench_function(BenchmarkId::new(*name, members), |b| {
                    b.iter(|| black_box(gpu.integrate_only(&params, steps).ok()));
                });
            }
        }
    }
    group.finish();
}

criterion_group!(benches, forward, integrate_bench);
criterion_main!(benches);
