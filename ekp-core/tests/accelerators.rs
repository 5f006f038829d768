//! Accelerators on a linear problem: each converges, and Nesterov momentum
//! converges in fewer iterations than none.
//!
//! "Converged after k updates": from update k on, for at least 50 more
//! updates, the ensemble mean stays within 0.05 standard deviations of the
//! least-squares estimate (σ_i = √((GᵀΓ⁻¹G)⁻¹)_ii, component by component) of
//! the least-squares solution, the minimiser of the data misfit that EKI
//! without a prior approaches. All runs: EKI without localization, fixed
//! Δt = 0.5, 20 members, the same seed; without an accelerator, observations
//! unperturbed too, as they are under every accelerator (EKP.jl switches
//! perturbation off under acceleration), so the comparison is like for like.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

mod common;

use common::LinearProblem;
use ekp_core::{Accelerator, EnsembleKalmanProcess, Inversion, Localizer, Process, Scheduler};

const MAX_ITERATIONS: usize = 2000;
const HOLD: usize = 50;

fn ls_sd(lp: &LinearProblem) -> nalgebra::DVector<f64> {
    let gi = lp.gamma.clone().try_inverse().expect("invertible");
    (lp.g.transpose() * gi * &lp.g)
        .try_inverse()
        .expect("invertible")
        .diagonal()
        .map(f64::sqrt)
}

fn build(lp: &LinearProblem, accelerator: Accelerator, perturb: bool) -> EnsembleKalmanProcess {
    let mut settings = Inversion::new(false);
    settings.perturb_observations = perturb;
    EnsembleKalmanProcess::builder(lp.prior(), lp.observation(), Process::Inversion(settings))
        .ensemble_size(20)
        .seed(21)
        .scheduler(Scheduler::Fixed { dt: 0.5 })
        .localizer(Localizer::None)
        .accelerator(accelerator)
        .build()
        .expect("valid")
}

/// The first update count `k` after which the mean stays converged (see the
/// top) for `HOLD` more updates; `None` if that never happens.
fn iterations_to_converge(accelerator: Accelerator) -> Option<usize> {
    let lp = LinearProblem::new();
    let ls = lp.least_squares();
    let sd = ls_sd(&lp);
    let mut ekp = build(&lp, accelerator, false);
    let mut inside_since: Option<usize> = None;
    for k in 0..MAX_ITERATIONS {
        let z = (ekp.unconstrained_mean() - &ls).component_div(&sd).amax();
        if z < 0.05 {
            let since = *inside_since.get_or_insert(k);
            if k - since >= HOLD {
                return Some(since);
            }
        } else {
            inside_since = None;
        }
        let g = lp.forward(ekp.ensemble());
        ekp.update(&g).expect("update");
        assert!(
            ekp.ensemble().iter().all(|v| v.is_finite()),
            "{accelerator:?} diverged"
        );
    }
    None
}

#[test]
fn every_accelerator_converges_and_nesterov_beats_none() {
    let none = iterations_to_converge(Accelerator::None).expect("plain EKI converges");
    let mut counts = Vec::new();
    for acc in [
        Accelerator::Nesterov,
        Accelerator::first_order_nesterov(),
        Accelerator::constant_nesterov(),
        Accelerator::ConstantNesterov { lambda: 0.5 },
    ] {
        let k = iterations_to_converge(acc).unwrap_or_else(|| panic!("{acc:?} did not converge"));
        println!("{:>22}: {k} updates (none: {none})", acc.kind());
        counts.push((acc, k));
    }
    let nesterov = counts[0].1;
    assert!(
        nesterov < none,
        "Nesterov took {nesterov} updates, none {none}"
    );
}

#[test]
fn accelerators_switch_observation_perturbation_off() {
    let lp = LinearProblem::new();
    let plain = build(&lp, Accelerator::None, true);
    assert!(plain.perturbs_observations());
    let accelerated = build(&lp, Accelerator::Nesterov, true);
    assert!(!accelerated.perturbs_observations());
    // So two accelerated runs with different seeds but the same initial
    // ensemble move identically: no random draws at all.
    let u0 = plain.ensemble().clone();
    let run = |seed: u64| {
        let mut ekp = EnsembleKalmanProcess::builder(
            lp.prior(),
            lp.observation(),
            Process::Inversion(Inversion::new(false)),
        )
        .initial_ensemble(u0.clone())
        .seed(seed)
        .scheduler(Scheduler::Fixed { dt: 0.5 })
        .localizer(Localizer::None)
        .accelerator(Accelerator::Nesterov)
        .build()
        .expect("valid");
        for _ in 0..5 {
            let g = lp.forward(ekp.ensemble());
            ekp.update(&g).expect("update");
        }
        ekp.ensemble().clone()
    };
    assert_eq!(run(1), run(2));
}

#[test]
fn the_first_update_carries_no_momentum() {
    // Nesterov's and first-order Nesterov's (r = 3) first coefficients are 0:
    // the first update equals the unaccelerated one.
    let lp = LinearProblem::new();
    let mut plain = build(&lp, Accelerator::None, false);
    for acc in [Accelerator::Nesterov, Accelerator::first_order_nesterov()] {
        let mut ekp = build(&lp, acc, false);
        let g = lp.forward(ekp.ensemble());
        ekp.update(&g).expect("update");
        let mut reference = plain.clone();
        reference.update(&g).expect("update");
        assert!(
            (ekp.ensemble() - reference.ensemble()).amax() < 1e-14,
            "{acc:?}"
        );
        assert_eq!(ekp.momentum().expect("state").u_prev, *reference.ensemble());
    }
    let g = lp.forward(plain.ensemble());
    plain.update(&g).expect("update");
    assert!(plain.momentum().is_none());
}

#[test]
fn accelerator_settings_are_validated() {
    let lp = LinearProblem::new();
    for bad in [
        Accelerator::ConstantNesterov { lambda: 1.0 },
        Accelerator::FirstOrderNesterov { r: f64::NAN },
    ] {
        let err = EnsembleKalmanProcess::builder(
            lp.prior(),
            lp.observation(),
            Process::Inversion(Inversion::new(false)),
        )
        .accelerator(bad)
        .build()
        .expect_err("invalid");
        assert!(err.to_string().contains("accelerator."), "{bad:?}: {err}");
    }
}
