//! Inflation scales the ensemble covariance by exactly the stated factor;
//! the error metrics (loss, Bayesian loss, RMSE, CRPS) match their formulas.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

mod common;

use common::LinearProblem;
use ekp_core::linalg::{column_mean, sample_covariance};
use ekp_core::{
    Accelerator, EnsembleKalmanProcess, ErrorMetrics, Inflation, Inversion, Localizer,
    NoiseCovariance, Observation, Process, Scheduler, TransformInversion, Unscented,
};
use nalgebra::{DMatrix, DVector};

/// One deterministic EKI step (dt = 0.4) with the given inflation.
fn one_step(inflation: Option<Inflation>, members: usize) -> EnsembleKalmanProcess {
    let lp = LinearProblem::new();
    // Deterministic EKI (O(N) per update, unlike ETKI's O(N³)).
    let mut eki = Inversion::new(false);
    eki.perturb_observations = false;
    let mut b =
        EnsembleKalmanProcess::builder(lp.prior(), lp.observation(), Process::Inversion(eki))
            .ensemble_size(members)
            .seed(9)
            .scheduler(Scheduler::Fixed { dt: 0.4 })
            .localizer(Localizer::None)
            .accelerator(Accelerator::None);
    if let Some(i) = inflation {
        b = b.inflation(i);
    }
    let mut ekp = b.build().unwrap();
    let g = lp.forward(ekp.ensemble());
    ekp.update(&g).unwrap();
    ekp
}

#[test]
fn multiplicative_inflation_scales_the_covariance_by_exactly_one_over_one_minus_s_dt() {
    let plain = one_step(None, 20);
    let inflation = Inflation {
        multiplicative: true,
        additive: false,
        s: 0.5,
    };
    let inflated = one_step(Some(inflation), 20);
    let factor = inflation.multiplicative_factor(0.4);
    assert!((factor - 1.25).abs() < 1e-15);
    let c0 = sample_covariance(plain.ensemble());
    let c1 = sample_covariance(inflated.ensemble());
    let err = (&c1 - &c0 * factor).norm() / c0.norm();
    assert!(err < 1e-12, "covariance ratio off by {err}");
    let dm = (column_mean(inflated.ensemble()) - column_mean(plain.ensemble())).norm();
    assert!(dm < 1e-12, "mean moved by {dm}");
}

#[test]
fn additive_inflation_adds_the_scaled_prior_covariance() {
    // 4 000 members: the added noise's sample covariance has relative Monte
    // Carlo error ≈ √(2/N) ≈ 2 %, its cross term with the ensemble about as
    // much; the tolerance is 10 % of the added covariance.
    let n = 4_000;
    let plain = one_step(None, n);
    let inflation = Inflation {
        multiplicative: false,
        additive: true,
        s: 0.5,
    };
    let inflated = one_step(Some(inflation), n);
    let lp = LinearProblem::new();
    let sigma: f64 = 0.5 * 0.4;
    let expected = lp.prior().cov() * (sigma / (1.0 - sigma));
    let added = sample_covariance(inflated.ensemble()) - sample_covariance(plain.ensemble());
    let err = (&added - &expected).norm() / expected.norm();
    eprintln!("additive inflation: relative error of the added covariance {err:.3}");
    assert!(err < 0.1, "{err}");
}

#[test]
fn inflation_is_validated_and_unstable_steps_are_errors() {
    let lp = LinearProblem::new();
    let bad = Inflation {
        multiplicative: true,
        additive: false,
        s: -1.0,
    };
    assert!(
        EnsembleKalmanProcess::builder(
            lp.prior(),
            lp.observation(),
            Process::TransformInversion(TransformInversion::new(false))
        )
        .inflation(bad)
        .build()
        .is_err()
    );
    assert!(
        EnsembleKalmanProcess::builder(
            lp.prior(),
            lp.observation(),
            Process::Unscented(Unscented::new(false))
        )
        .inflation(Inflation {
            multiplicative: true,
            additive: false,
            s: 0.1
        })
        .build()
        .is_err()
    );
    let mut ekp = EnsembleKalmanProcess::builder(
        lp.prior(),
        lp.observation(),
        Process::TransformInversion(TransformInversion::new(false)),
    )
    .scheduler(Scheduler::Fixed { dt: 2.0 })
    .inflation(Inflation {
        multiplicative: true,
        additive: false,
        s: 0.5,
    })
    .build()
    .unwrap();
    let before = ekp.ensemble().clone();
    let g = lp.forward(ekp.ensemble());
    assert!(ekp.update(&g).is_err());
    assert_eq!(ekp.ensemble(), &before);
}

#[test]
fn metrics_follow_their_formulas() {
    // d = 1: CRPS is the closed form for a Gaussian N(ḡ, s²) against y.
    let g = DMatrix::from_row_slice(1, 4, &[1.0, 2.0, 4.0, 5.0]);
    let obs = Observation::new(
        DVector::from_element(1, 2.5),
        NoiseCovariance::scalar_std(0.5, 1).unwrap(),
    )
    .unwrap();
    let m = ErrorMetrics::compute(&g, &obs);
    let mean = 3.0;
    let s = (((1.0f64 - 3.0).powi(2) + 1.0 + 1.0 + 4.0) / 3.0).sqrt();
    let w: f64 = (2.5 - mean) / s;
    // Φ(w) for w = −0.5/√(10/3) from a high-precision reference value.
    let phi_cdf = 0.392_095_614_700_809_56_f64; // Φ(−0.273861278752583)
    let pdf = (-0.5 * w * w).exp() / (2.0 * std::f64::consts::PI).sqrt();
    let crps = s * (w * (2.0 * phi_cdf - 1.0) + 2.0 * pdf - 1.0 / std::f64::consts::PI.sqrt());
    assert!(
        (m.crps.unwrap() - crps).abs() < 1e-6,
        "{:?} vs {crps}",
        m.crps
    );
    assert!((m.loss - 0.25 / 0.25).abs() < 1e-14);
    let rmse = [1.5f64, 0.5, 1.5, 2.5].iter().map(|e| e / 0.5).sum::<f64>() / 4.0;
    assert!((m.avg_rmse - rmse).abs() < 1e-14);
    assert!(m.bayes_loss.is_none());
    // Bayesian loss: (1/p) loss + (1/d) (1/p) (ū − m₀)ᵀ Σ₀⁻¹ (ū − m₀).
    let b = m.with_prior(
        1,
        &DVector::from_column_slice(&[1.0, -1.0]),
        &DVector::from_column_slice(&[0.0, 0.0]),
        &DVector::from_column_slice(&[4.0, 1.0]),
    );
    let expected = m.loss / 2.0 + (0.25 + 1.0) / 2.0;
    assert!((b.bayes_loss.unwrap() - expected).abs() < 1e-14);
}

#[test]
fn every_update_records_all_metrics() {
    let lp = LinearProblem::new();
    for process in [
        Process::TransformInversion(TransformInversion::new(true)),
        Process::Unscented(Unscented::new(true)),
    ] {
        let mut ekp = EnsembleKalmanProcess::builder(lp.prior(), lp.observation(), process)
            .scheduler(Scheduler::Fixed { dt: 1.0 })
            .build()
            .unwrap();
        for _ in 0..3 {
            let g = lp.forward(ekp.ensemble());
            ekp.update(&g).unwrap();
        }
        let h = ekp.metrics_history();
        assert_eq!(h.len(), 3);
        for m in h {
            assert!(m.loss.is_finite() && m.avg_rmse.is_finite());
            assert!(m.bayes_loss.unwrap().is_finite() && m.crps.unwrap().is_finite());
        }
        // The loss falls as the ensemble approaches the data.
        assert!(h[2].loss < h[0].loss);
    }
}

/// The CRPS straight from its definition: the thin SVD `A = U S Vᵀ` of the
/// scaled anomalies (nalgebra's SVD, no Gram matrix), `w = S⁻¹ Uᵀ (y − ḡ)`,
/// the mean over the rank of `s_i [w_i (2Φ(w_i) − 1) + 2φ(w_i) − 1/√π]`.
fn crps_by_svd(g: &DMatrix<f64>, y: &DVector<f64>) -> f64 {
    let (d, n) = g.shape();
    let mean = column_mean(g);
    let mut a = g.clone();
    for mut col in a.column_iter_mut() {
        col -= &mean;
    }
    a /= ((n - 1) as f64).sqrt();
    let svd = a.svd(true, false);
    let u = svd.u.unwrap();
    let proj = u.transpose() * (y - &mean);
    let smax = svd.singular_values.max();
    let tol = smax * ((d.max(n) as f64) * f64::EPSILON).sqrt();
    let (mut total, mut rank) = (0.0, 0);
    for (s, p) in svd.singular_values.iter().zip(proj.iter()) {
        if *s <= tol {
            continue;
        }
        let w = p / s;
        let pdf = (-0.5 * w * w).exp() / (2.0 * std::f64::consts::PI).sqrt();
        // Φ by the trapezoid rule on φ (w is moderate here): exact to ~1e-10.
        let steps = 20_000;
        let h = w / steps as f64;
        let mut integral = 0.0;
        for k in 0..=steps {
            let x = k as f64 * h;
            let f = (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
            integral += if k == 0 || k == steps { 0.5 * f } else { f };
        }
        let cdf = 0.5 + integral * h;
        total += s * (w * (2.0 * cdf - 1.0) + 2.0 * pdf - 1.0 / std::f64::consts::PI.sqrt());
        rank += 1;
    }
    total / rank as f64
}

#[test]
fn fast_crps_matches_the_eigendecomposition_and_the_svd_on_random_problems() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(17);
    // d < n, d = n, d > n (streaming), rank-deficient outputs, tiny sizes.
    for &(d, n, rank) in &[
        (3usize, 2usize, 0usize),
        (5, 40, 0),
        (60, 60, 0),
        (120, 30, 0),
        (200, 50, 5),
        (40, 90, 7),
        (700, 20, 0),
    ] {
        let g = if rank == 0 {
            DMatrix::from_fn(d, n, |_, _| rng.random_range(-1.0..1.0))
        } else {
            let l = DMatrix::from_fn(d, rank, |_, _| rng.random_range(-1.0..1.0));
            let r = DMatrix::from_fn(rank, n, |_, _| rng.random_range(-1.0..1.0));
            l * r
        };
        let y = DVector::from_fn(d, |_, _| rng.random_range(-0.5..0.5));
        let sd: Vec<f64> = (0..d).map(|_| rng.random_range(0.5..1.5)).collect();
        let obs = Observation::new(y.clone(), NoiseCovariance::diagonal_std(&sd).unwrap()).unwrap();
        let fast = ErrorMetrics::compute(&g, &obs).crps.unwrap();
        let reference = ErrorMetrics::crps_reference(&g, &obs).unwrap();
        assert!(
            (fast - reference).abs() <= 1e-10 * reference.abs().max(1e-3),
            "d {d}, n {n}: {fast} vs {reference}"
        );
        // The crate's erfc has a relative error below 1.2e-7.
        let svd = crps_by_svd(&g, &y);
        assert!(
            (fast - svd).abs() <= 1e-6 * svd.abs().max(1e-3),
            "d {d}, n {n}: {fast} vs SVD {svd}"
        );
    }
}
