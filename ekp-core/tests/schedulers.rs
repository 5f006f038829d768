//! Learning-rate schedulers: one Δt per update, data-misfit termination and
//! its `on_terminate` modes (EKP.jl semantics), EKS-stable steps, and the
//! one-step override.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

mod common;

use common::LinearProblem;
use ekp_core::scheduler::{eks_stable_matrix, member_misfits};
use ekp_core::{
    Accelerator, EnsembleKalmanProcess, Inversion, Localizer, OnTerminate, Process, Scheduler,
    UpdateOutcome,
};

fn eki(lp: &LinearProblem, scheduler: Scheduler) -> EnsembleKalmanProcess {
    EnsembleKalmanProcess::builder(
        lp.prior(),
        lp.observation(),
        Process::Inversion(Inversion::new(false)),
    )
    .ensemble_size(12)
    .seed(11)
    .scheduler(scheduler)
    .build()
    .expect("valid")
}

/// The uncapped data-misfit step of outputs `g`.
fn data_misfit_q(
    lp: &LinearProblem,
    ekp: &EnsembleKalmanProcess,
    g: &nalgebra::DMatrix<f64>,
) -> f64 {
    let phi = member_misfits(g, ekp.observation());
    let n = phi.len() as f64;
    let mean = phi.mean();
    let var = phi.iter().map(|p| (p - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let d = lp.y.len() as f64;
    (d / (2.0 * mean)).max((d / (2.0 * var)).sqrt())
}

#[test]
fn every_scheduler_records_one_step_per_update() {
    let lp = LinearProblem::new();
    for scheduler in [
        Scheduler::Fixed { dt: 0.3 },
        Scheduler::data_misfit(1e6),
        Scheduler::DataMisfit {
            terminate_at: 0.5,
            on_terminate: OnTerminate::Continue,
        },
        Scheduler::DataMisfit {
            terminate_at: 0.5,
            on_terminate: OnTerminate::ContinueFixed,
        },
        Scheduler::eks_stable(),
    ] {
        let mut ekp = eki(&lp, scheduler.clone());
        for k in 1..=8 {
            let g = lp.forward(ekp.ensemble());
            let UpdateOutcome::Updated(report) = ekp.update(&g).expect("update") else {
                panic!("{scheduler:?} terminated");
            };
            assert_eq!(ekp.dt_history().len(), k, "{scheduler:?}");
            assert_eq!(ekp.u_history().len(), k + 1);
            assert_eq!(ekp.metrics_history().len(), k);
            assert_eq!(ekp.dt_history()[k - 1], report.dt);
            assert!(report.dt > 0.0 && report.dt.is_finite());
        }
    }
}

#[test]
fn data_misfit_with_stop_never_passes_its_terminal_time() {
    let lp = LinearProblem::new();
    for t in [0.25, 1.0, 3.0] {
        let mut ekp = eki(&lp, Scheduler::data_misfit(t));
        let mut updates = 0;
        loop {
            let g = lp.forward(ekp.ensemble());
            match ekp.update(&g).expect("update") {
                UpdateOutcome::Updated(_) => updates += 1,
                UpdateOutcome::Terminated => break,
            }
            let elapsed: f64 = ekp.dt_history().iter().sum();
            assert!(elapsed <= t * (1.0 + 1e-12), "T = {t}: passed to {elapsed}");
            assert!(updates < 500, "never terminated");
        }
        assert!(ekp.is_terminated());
        let elapsed: f64 = ekp.dt_history().iter().sum();
        assert!(
            (elapsed - t).abs() < 1e-12 * t,
            "stopped at {elapsed}, not {t}"
        );
        // Further calls change nothing.
        let before = ekp.u_history().len();
        let g = lp.forward(ekp.ensemble());
        assert_eq!(ekp.update(&g).expect("no error"), UpdateOutcome::Terminated);
        assert_eq!(ekp.u_history().len(), before);
    }
}

#[test]
fn continue_and_continue_fixed_behave_as_ekp_jl() {
    let lp = LinearProblem::new();
    let t = 0.5;
    let mut stop = eki(&lp, Scheduler::data_misfit(t));
    let mut cont = eki(
        &lp,
        Scheduler::DataMisfit {
            terminate_at: t,
            on_terminate: OnTerminate::Continue,
        },
    );
    let mut fixed = eki(
        &lp,
        Scheduler::DataMisfit {
            terminate_at: t,
            on_terminate: OnTerminate::ContinueFixed,
        },
    );
    // Up to the terminal time, all three take the same steps.
    let mut reached = 0;
    loop {
        let g = lp.forward(stop.ensemble());
        match stop.update(&g).expect("update") {
            UpdateOutcome::Terminated => break,
            UpdateOutcome::Updated(_) => {
                cont.update(&g).expect("update");
                fixed.update(&g).expect("update");
                reached += 1;
            }
        }
    }
    assert_eq!(cont.dt_history(), stop.dt_history());
    assert_eq!(fixed.dt_history(), stop.dt_history());
    assert!(!cont.is_terminated() && !fixed.is_terminated());
    let last = stop.dt_history()[reached - 1];
    for _ in 0..5 {
        // continue: the uncapped data-misfit step of the current outputs.
        let g = lp.forward(cont.ensemble());
        let q = data_misfit_q(&lp, &cont, &g);
        let UpdateOutcome::Updated(r) = cont.update(&g).expect("update") else {
            panic!("continue terminated");
        };
        assert!((r.dt - q).abs() < 1e-12 * q, "{} vs {q}", r.dt);
        // continue-fixed: the step that reached T, again and again.
        let g = lp.forward(fixed.ensemble());
        let UpdateOutcome::Updated(r) = fixed.update(&g).expect("update") else {
            panic!("continue-fixed terminated");
        };
        assert_eq!(r.dt, last);
    }
    let elapsed: f64 = cont.dt_history().iter().sum();
    assert!(elapsed > t);
}

#[test]
fn eks_stable_step_is_the_numerator_over_the_norm_of_d() {
    let lp = LinearProblem::new();
    let mut ekp = eki(
        &lp,
        Scheduler::EksStable {
            numerator: 0.1,
            nugget: 1e-3,
        },
    );
    for _ in 0..3 {
        let g = lp.forward(ekp.ensemble());
        // D = (1/J)(g − ḡ)ᵀ Γ⁻¹ (g − y), computed independently.
        let j = g.ncols() as f64;
        let gbar = ekp_core::linalg::column_mean(&g);
        let gamma_inv = lp.gamma.clone().try_inverse().expect("invertible");
        let mut a = g.clone();
        let mut r = g.clone();
        for k in 0..g.ncols() {
            a.set_column(k, &(g.column(k) - &gbar));
            r.set_column(k, &(g.column(k) - &lp.y));
        }
        let d = a.transpose() * gamma_inv * r / j;
        assert!((&d - eks_stable_matrix(&g, ekp.observation())).amax() < 1e-9 * d.amax());
        let expected = 0.1 / (d.norm() + 1e-3);
        let UpdateOutcome::Updated(report) = ekp.update(&g).expect("update") else {
            panic!("eks-stable never terminates");
        };
        assert!((report.dt - expected).abs() < 1e-12 * expected);
    }
}

#[test]
fn one_step_override_applies_once_with_every_scheduler() {
    let lp = LinearProblem::new();
    for scheduler in [
        Scheduler::Fixed { dt: 0.5 },
        Scheduler::data_misfit(100.0),
        Scheduler::eks_stable(),
    ] {
        let mut with = eki(&lp, scheduler.clone());
        let g = lp.forward(with.ensemble());
        with.update_with_dt(&g, 0.0625).expect("update");
        assert_eq!(with.dt_history(), &[0.0625]);
        // The next step is the scheduler's own again.
        let g = lp.forward(with.ensemble());
        let UpdateOutcome::Updated(r) = with.update(&g).expect("update") else {
            panic!("terminated");
        };
        assert_ne!(r.dt, 0.0625, "{scheduler:?}");
        if let Scheduler::Fixed { dt } = scheduler {
            assert_eq!(r.dt, dt);
        }
        assert_eq!(with.dt_history().len(), 2);
    }
    // An override counts toward a data-misfit terminal time.
    let mut ekp = eki(&lp, Scheduler::data_misfit(1.0));
    let g = lp.forward(ekp.ensemble());
    ekp.update_with_dt(&g, 1.0).expect("update");
    assert!(ekp.is_terminated());
}

#[test]
fn scheduler_settings_are_validated() {
    let lp = LinearProblem::new();
    for bad in [
        Scheduler::Fixed { dt: f64::NAN },
        Scheduler::data_misfit(0.0),
        Scheduler::EksStable {
            numerator: -1.0,
            nugget: 0.0,
        },
    ] {
        let err = EnsembleKalmanProcess::builder(
            lp.prior(),
            lp.observation(),
            Process::Inversion(Inversion::new(false)),
        )
        .scheduler(bad.clone())
        .localizer(Localizer::None)
        .accelerator(Accelerator::None)
        .build()
        .expect_err("invalid scheduler");
        assert!(err.to_string().contains("scheduler."), "{bad:?}: {err}");
    }
}
