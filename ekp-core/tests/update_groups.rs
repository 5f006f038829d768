//! Update groups (EKP.jl's `UpdateGroup`): parameters updated from chosen
//! subsets of the outputs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

use ekp_core::{
    Accelerator, EnsembleKalmanProcess, Inversion, Localizer, Minibatcher, NoiseCovariance,
    Observation, ObservationSeries, ParameterPrior, Prior, Process, Scheduler, TransformInversion,
    UpdateGroup,
};
use nalgebra::{DMatrix, DVector};

/// A block-diagonal model: θ_0 drives outputs 0–2, (θ_1, θ_2) outputs 3–5.
fn model() -> DMatrix<f64> {
    DMatrix::from_row_slice(
        6,
        3,
        &[
            1.0, 0.0, 0.0, //
            0.5, 0.0, 0.0, //
            -0.8, 0.0, 0.0, //
            0.0, 1.0, 0.3, //
            0.0, -0.2, 1.1, //
            0.0, 0.7, 0.4,
        ],
    )
}

fn data() -> DVector<f64> {
    DVector::from_column_slice(&[0.9, 0.6, -0.7, 1.2, 0.1, 0.8])
}

fn prior(p: usize) -> Prior {
    Prior::new(vec![
        ParameterPrior::gaussian("theta", 0.0, 1.5, p).expect("prior"),
    ])
    .expect("prior")
}

fn noise(d: usize) -> NoiseCovariance {
    NoiseCovariance::diagonal_std(&(0..d).map(|i| 0.1 + 0.02 * i as f64).collect::<Vec<_>>())
        .expect("Γ")
}

fn groups() -> Vec<UpdateGroup> {
    vec![
        UpdateGroup::new(vec![0], vec![0, 1, 2]),
        UpdateGroup::new(vec![1, 2], vec![3, 4, 5]),
    ]
}

fn deterministic(process: &Process) -> Process {
    match process {
        Process::Inversion(_) => {
            let mut s = Inversion::new(true);
            s.perturb_observations = false;
            Process::Inversion(s)
        }
        Process::TransformInversion(_) => {
            Process::TransformInversion(TransformInversion::new(true))
        }
        other => other.clone(),
    }
}

#[test]
fn groups_of_a_block_diagonal_model_update_as_separate_problems() {
    let g = model();
    let y = data();
    let gamma = noise(6);
    for kind in [
        Process::Inversion(Inversion::default()),
        Process::TransformInversion(TransformInversion::default()),
    ] {
        let process = deterministic(&kind);
        let obs = Observation::new(y.clone(), gamma.clone()).expect("obs");
        let mut grouped = EnsembleKalmanProcess::builder(prior(3), obs, process.clone())
            .ensemble_size(16)
            .seed(2)
            .scheduler(Scheduler::Fixed { dt: 0.7 })
            .localizer(Localizer::None)
            .accelerator(Accelerator::None)
            .update_groups(groups())
            .build()
            .expect("valid");
        // The two sub-problems, from the same initial members.
        let u0 = grouped.ensemble().clone();
        let sub = |params: &[usize], outputs: &[usize]| {
            let obs = Observation::new(
                y.select_rows(outputs.iter()),
                gamma.restrict(outputs).expect("Γ block"),
            )
            .expect("obs");
            EnsembleKalmanProcess::builder(prior(params.len()), obs, process.clone())
                .initial_ensemble(u0.select_rows(params.iter()))
                .scheduler(Scheduler::Fixed { dt: 0.7 })
                .localizer(Localizer::None)
                .accelerator(Accelerator::None)
                .build()
                .expect("valid")
        };
        let mut first = sub(&[0], &[0, 1, 2]);
        let mut second = sub(&[1, 2], &[3, 4, 5]);
        let g1 = g.view((0, 0), (3, 1)).into_owned();
        let g2 = g.view((3, 1), (3, 2)).into_owned();
        for _ in 0..5 {
            let out = &g * grouped.ensemble();
            grouped.update(&out).expect("update");
            first.update(&(&g1 * first.ensemble())).expect("update");
            second.update(&(&g2 * second.ensemble())).expect("update");
        }
        let u = grouped.ensemble();
        assert!(
            (u.rows(0, 1) - first.ensemble()).amax() < 1e-12,
            "{}",
            kind.kind()
        );
        assert!(
            (u.rows(1, 2) - second.ensemble()).amax() < 1e-12,
            "{}",
            kind.kind()
        );
        // Without groups the coupled update differs (it uses spurious cross-covariances).
        let mut whole = EnsembleKalmanProcess::builder(
            prior(3),
            Observation::new(y.clone(), gamma.clone()).expect("obs"),
            process.clone(),
        )
        .initial_ensemble(u0.clone())
        .scheduler(Scheduler::Fixed { dt: 0.7 })
        .localizer(Localizer::None)
        .accelerator(Accelerator::None)
        .build()
        .expect("valid");
        whole.update(&(&g * &u0)).expect("update");
        assert!((whole.ensemble() - &grouped.u_history()[1]).amax() > 1e-6);
    }
}

#[test]
fn groups_repeat_over_the_observations_of_a_minibatch() {
    // Two observations of the same 6 outputs (say, two years of data), both in
    // every minibatch: group outputs {0, 1, 2} become rows {0, 1, 2, 6, 7, 8}.
    let g = model();
    let y = data();
    let y2 = &y * 1.1;
    let gamma = noise(6);
    let series = ObservationSeries::new(vec![
        Observation::new(y.clone(), gamma.clone()).expect("obs"),
        Observation::new(y2.clone(), gamma.clone()).expect("obs"),
    ])
    .expect("series");
    let process = deterministic(&Process::Inversion(Inversion::default()));
    let mut grouped = EnsembleKalmanProcess::builder(prior(3), series, process.clone())
        .ensemble_size(16)
        .seed(3)
        .scheduler(Scheduler::Fixed { dt: 1.0 })
        .localizer(Localizer::None)
        .accelerator(Accelerator::None)
        .update_groups(groups())
        .build()
        .expect("valid");
    let u0 = grouped.ensemble().clone();
    let rows = [0usize, 1, 2];
    let stacked = DVector::from_iterator(
        6,
        rows.iter()
            .map(|&i| y[i])
            .chain(rows.iter().map(|&i| y2[i])),
    );
    let gamma_rows = gamma.restrict(&rows).expect("Γ");
    let sub_noise = NoiseCovariance::block_diagonal(&[&gamma_rows, &gamma_rows]);
    let mut first = EnsembleKalmanProcess::builder(
        prior(1),
        Observation::new(stacked, sub_noise).expect("obs"),
        process,
    )
    .initial_ensemble(u0.rows(0, 1).into_owned())
    .scheduler(Scheduler::Fixed { dt: 1.0 })
    .localizer(Localizer::None)
    .accelerator(Accelerator::None)
    .build()
    .expect("valid");
    let out = &g * &u0;
    let both = DMatrix::from_fn(12, 16, |i, j| out[(i % 6, j)]);
    grouped.update(&both).expect("update");
    let g1 = g.view((0, 0), (3, 1)).into_owned();
    let o1 = &g1 * first.ensemble();
    first
        .update(&DMatrix::from_fn(6, 16, |i, j| o1[(i % 3, j)]))
        .expect("update");
    assert!((grouped.ensemble().rows(0, 1) - first.ensemble()).amax() < 1e-12);
}

#[test]
fn perturbed_grouped_runs_are_reproducible() {
    let g = model();
    let run = |seed| {
        let obs = Observation::new(data(), noise(6)).expect("obs");
        let mut ekp = EnsembleKalmanProcess::builder(
            prior(3),
            obs,
            Process::Inversion(Inversion::new(false)),
        )
        .ensemble_size(10)
        .seed(seed)
        .scheduler(Scheduler::Fixed { dt: 0.5 })
        .accelerator(Accelerator::None) // perturbation on
        .update_groups(groups())
        .build()
        .expect("valid");
        assert!(ekp.perturbs_observations());
        for _ in 0..4 {
            let out = &g * ekp.ensemble();
            ekp.update(&out).expect("update");
        }
        ekp.ensemble().clone()
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1), run(2));
}

#[test]
fn groups_must_partition_the_parameters_and_name_real_outputs() {
    let bad = [
        vec![UpdateGroup::new(vec![0], vec![0, 1])], // 1, 2 missing
        vec![
            UpdateGroup::new(vec![0, 1], vec![0]),
            UpdateGroup::new(vec![1, 2], vec![1]),
        ], // 1 twice
        vec![UpdateGroup::new(vec![0, 1, 2], vec![6])], // output 6 of 6
        vec![UpdateGroup::new(vec![0, 1, 2], vec![])], // no outputs
        vec![UpdateGroup::new(vec![0, 1, 3], vec![0])], // parameter 3 of 3
    ];
    for groups in bad {
        let obs = Observation::new(data(), noise(6)).expect("obs");
        let err =
            EnsembleKalmanProcess::builder(prior(3), obs, Process::Inversion(Inversion::default()))
                .update_groups(groups.clone())
                .build()
                .expect_err("invalid groups");
        assert!(
            err.to_string().contains("update_groups"),
            "{groups:?}: {err}"
        );
    }
    // Groups over observations of different lengths are refused (EKP.jl assumes one length).
    let series = ObservationSeries::with_minibatcher(
        vec![
            Observation::new(data(), noise(6)).expect("obs"),
            Observation::new(data().rows(0, 3).into_owned(), noise(3)).expect("obs"),
        ],
        Minibatcher::all(2),
    )
    .expect("series");
    assert!(
        EnsembleKalmanProcess::builder(prior(3), series, Process::Inversion(Inversion::default()))
            .update_groups(groups())
            .build()
            .is_err()
    );
}
