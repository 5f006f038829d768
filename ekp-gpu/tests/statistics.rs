//! Long horizons: Lorenz 96 at F = 8 is chaotic, so after the default 800 time
//! units of spin-up an f32 trajectory has nothing pointwise in common with the
//! f64 one; its statistics — what a calibration fits — must still agree within
//! their sampling noise.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{cpu, gpu};
use ekp_core::ForwardModel;
use ekp_gpu::Precision;
use ekp_models::{Lorenz96, Lorenz96Config};
use nalgebra::DMatrix;

/// The default configuration at F = 8, A = 2.5: the GPU's f32 observables of
/// 8 members (F perturbed by 1e-4·k, which decorrelates the trajectories but
/// moves the statistics by ~1e-4) against the truth data y, Γ of
/// `Lorenz96::truth` (20 windows of one long CPU run) and against the CPU's
/// own members. Every member lies within 5 √Γᵢᵢ of y, and the mean of the 8
/// within 4 standard errors (√(Γᵢᵢ/8 + Γᵢᵢ/20): the members' mean and y are
/// both sample means).
#[test]
fn f32_default_statistics_match_truth() {
    let config = Lorenz96Config::default();
    let Some(model) = gpu(&config, Precision::F32) else {
        return;
    };
    let members = 8;
    let params = DMatrix::from_fn(
        2,
        members,
        |i, k| {
            if i == 0 { 8.0 + 1e-4 * k as f64 } else { 2.5 }
        },
    );
    let got = model.evaluate(&params).unwrap();
    let (y, gamma) = Lorenz96::new(config.clone())
        .unwrap()
        .truth(&[8.0, 2.5])
        .unwrap();
    let cpu_got = cpu(&config, &params);
    let gpu_mean = got.column_mean();
    let cpu_mean = cpu_got.column_mean();
    for i in 0..y.len() {
        let sd = gamma[(i, i)].sqrt();
        let se = (gamma[(i, i)] / members as f64 + gamma[(i, i)] / 20.0).sqrt();
        eprintln!(
            "observable {i}: y {:.3} ± {sd:.3}; GPU f32 mean {:.3} (z {:+.2}); CPU f64 mean {:.3} (z {:+.2})",
            y[i],
            gpu_mean[i],
            (gpu_mean[i] - y[i]) / se,
            cpu_mean[i],
            (cpu_mean[i] - y[i]) / se,
        );
        for k in 0..members {
            assert!(
                (got[(i, k)] - y[i]).abs() <= 5.0 * sd,
                "member {k} observable {i}: {} vs y {} ± {sd}",
                got[(i, k)],
                y[i]
            );
        }
        assert!(
            (gpu_mean[i] - y[i]).abs() <= 4.0 * se,
            "observable {i}: GPU mean {} vs y {} (standard error {se})",
            gpu_mean[i],
            y[i]
        );
        // The GPU and CPU means: independent samples of the same statistic.
        let se_pair = (2.0 * gamma[(i, i)] / members as f64).sqrt();
        assert!(
            (gpu_mean[i] - cpu_mean[i]).abs() <= 4.0 * se_pair,
            "observable {i}: GPU mean {} vs CPU mean {} (standard error {se_pair})",
            gpu_mean[i],
            cpu_mean[i]
        );
    }
}

/// f64 on the GPU over the default 55 736 steps reproduces the CPU member bit
/// for bit on lavapipe, which does not fuse multiply-adds (the kernel does the
/// CPU's operations in the CPU's order, the window statistics included);
/// drivers that do fuse them change the trajectory's rounding and, after 800
/// chaotic time units, the trajectory itself, so the bound is the statistical
/// one there.
#[test]
fn f64_default_run() {
    let config = Lorenz96Config::default();
    let Some(model) = gpu(&config, Precision::F64) else {
        return;
    };
    let params = DMatrix::from_column_slice(2, 1, &[8.0, 2.5]);
    let got = model.evaluate(&params).unwrap();
    let expected = cpu(&config, &params);
    let rel = common::max_rel(&got, &expected);
    eprintln!(
        "f64 default run on {}: max relative difference {rel:.2e}",
        model.adapter_info()
    );
    if model.adapter_info().is_software {
        for (g, e) in got.iter().zip(expected.iter()) {
            assert_eq!(
                g.to_bits(),
                e.to_bits(),
                "GPU {g:e} vs CPU {e:e}\n{got}\n{expected}"
            );
        }
    } else {
        let (_, gamma) = Lorenz96::new(config).unwrap().truth(&[8.0, 2.5]).unwrap();
        for i in 0..got.nrows() {
            assert!((got[i] - expected[i]).abs() <= 6.0 * gamma[(i, i)].sqrt());
        }
    }
}
