//! EKP.jl's sinusoid example with reproducible phases.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

use ekp_core::ForwardModel;
use ekp_models::{Ensemble, Execution, MemberModel, ModelsError, Sinusoid, SinusoidConfig};
use nalgebra::DMatrix;

#[test]
fn outputs_are_range_and_mean() {
    let model = Sinusoid::new(SinusoidConfig::default()).expect("sinusoid");
    assert_eq!(model.times().len(), 630, "EKP.jl's 0:0.01:(2π+0.01)");
    assert_eq!(model.parameter_names(), vec!["amplitude", "vert_shift"]);
    for member in 0..50 {
        let g = model.evaluate_single(member, &[1.0, 7.0]).expect("ok");
        // The samples cover a full period, so the range is ≈ 2A and the mean ≈ v.
        assert!((g[0] - 2.0).abs() < 1e-3, "member {member}: range {}", g[0]);
        assert!((g[1] - 7.0).abs() < 0.01, "member {member}: mean {}", g[1]);
        // Linear in A and v: G(2A, v) range doubles exactly (up to rounding).
        let g2 = model.evaluate_single(member, &[2.0, 7.0]).expect("ok");
        assert!((g2[0] - 2.0 * g[0]).abs() < 1e-12);
    }
}

#[test]
fn phases_are_reproducible_per_seed_and_member() {
    let a = Sinusoid::new(SinusoidConfig::default()).expect("sinusoid");
    let b = Sinusoid::new(SinusoidConfig::default()).expect("sinusoid");
    let phases: Vec<f64> = (0..20).map(|j| a.phase(j)).collect();
    assert_eq!(phases, (0..20).map(|j| b.phase(j)).collect::<Vec<_>>());
    assert!(
        phases
            .iter()
            .all(|p| (0.0..2.0 * std::f64::consts::PI).contains(p))
    );
    // Members get different phases.
    let mut sorted = phases.clone();
    sorted.sort_by(f64::total_cmp);
    sorted.dedup();
    assert_eq!(sorted.len(), phases.len());
    // Another seed, other phases.
    let c = a.clone().with_seed(7);
    assert_ne!(c.phase(0), a.phase(0));

    // The mean depends on the phase (the samples overlap by one step), so the
    // outputs of a member depend only on (seed, member): the order of
    // evaluation does not matter.
    let params = DMatrix::from_fn(2, 10, |i, _| if i == 0 { 3.0 } else { 1.0 });
    let forward = Ensemble::new(&a, Execution::Serial)
        .evaluate(&params)
        .expect("ok");
    for j in (0..10).rev() {
        let single = a.evaluate_single(j, &[3.0, 1.0]).expect("ok");
        assert_eq!(forward.column(j).as_slice(), single.as_slice());
    }
    let other_seed = Ensemble::new(&c, Execution::Serial)
        .evaluate(&params)
        .expect("ok");
    assert_ne!(forward, other_seed);
}

#[test]
fn bad_dt_is_named() {
    let e = Sinusoid::new(SinusoidConfig {
        dt: 0.0,
        ..SinusoidConfig::default()
    })
    .expect_err("dt = 0");
    assert!(
        matches!(e, ModelsError::InvalidConfig { field: "dt", .. }),
        "{e}"
    );
}
