//! Observation series and minibatching (EKP.jl's `ObservationSeries`,
//! `FixedMinibatcher`, `RandomFixedSizeMinibatcher`): epochs, reproducible
//! random minibatches, and updates that fit one minibatch at a time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

use ekp_core::{
    EkpError, EnsembleKalmanProcess, Inversion, Minibatcher, NoiseCovariance, Observation,
    ObservationSeries, ParameterPrior, Prior, Process, Remainder, Scheduler, TransformInversion,
};
use nalgebra::{DMatrix, DVector};

const P: usize = 3;
const PER_OBS: usize = 2;

/// `k` observations of 2 values each from one linear model `G` (`2k × 3`).
struct Series {
    g: DMatrix<f64>,
    y: DVector<f64>,
    k: usize,
}

impl Series {
    fn new(k: usize) -> Self {
        let g = DMatrix::from_fn(PER_OBS * k, P, |i, j| {
            ((i * 5 + j * 3) as f64 * 0.37).cos() + if i % P == j { 1.5 } else { 0.0 }
        });
        let truth = DVector::from_column_slice(&[0.5, -1.0, 1.5]);
        let y = &g * truth + DVector::from_fn(PER_OBS * k, |i, _| 0.02 * (i as f64 * 2.3).sin());
        Self { g, y, k }
    }
    fn observations(&self) -> Vec<Observation> {
        (0..self.k)
            .map(|o| {
                let values = self.y.rows(PER_OBS * o, PER_OBS).into_owned();
                Observation::new(
                    values,
                    NoiseCovariance::scalar_std(0.05, PER_OBS).expect("Γ"),
                )
                .expect("obs")
            })
            .collect()
    }
    fn series(&self, mb: Minibatcher) -> ObservationSeries {
        ObservationSeries::with_minibatcher(self.observations(), mb).expect("valid series")
    }
    fn prior() -> Prior {
        Prior::new(vec![
            ParameterPrior::gaussian("theta", 0.0, 2.0, P).expect("prior"),
        ])
        .expect("prior")
    }
    fn process(&self, mb: Minibatcher, seed: u64) -> EnsembleKalmanProcess {
        EnsembleKalmanProcess::builder(
            Self::prior(),
            self.series(mb),
            Process::Inversion(Inversion::default()),
        )
        .ensemble_size(15)
        .seed(seed)
        .scheduler(Scheduler::Fixed { dt: 0.5 })
        .build()
        .expect("valid")
    }
    /// Outputs for every observation.
    fn forward_all(&self, u: &DMatrix<f64>) -> DMatrix<f64> {
        &self.g * u
    }
    /// Outputs for the current minibatch, stacked in minibatch order.
    fn forward_minibatch(&self, ekp: &EnsembleKalmanProcess) -> DMatrix<f64> {
        let rows = ekp.observation_series().current_rows();
        self.forward_all(ekp.ensemble()).select_rows(rows.iter())
    }
    fn run(&self, ekp: &mut EnsembleKalmanProcess, updates: usize) {
        for _ in 0..updates {
            let g = self.forward_minibatch(ekp);
            ekp.update(&g).expect("update");
        }
    }
}

fn sorted(mut v: Vec<Vec<usize>>) -> Vec<Vec<usize>> {
    for b in &mut v {
        b.sort_unstable();
    }
    v.sort();
    v
}

#[test]
fn fixed_minibatches_in_order_repeat_every_epoch() {
    let s = Series::new(6);
    let batches = vec![vec![0, 1], vec![2, 3], vec![4, 5]];
    let mut ekp = s.process(
        Minibatcher::Fixed {
            batches: batches.clone(),
            random_order: false,
        },
        1,
    );
    s.run(&mut ekp, 9);
    let expected: Vec<Vec<usize>> = batches.iter().cycle().take(9).cloned().collect();
    assert_eq!(ekp.minibatch_history(), expected.as_slice());
    // Three epochs done, the fourth drawn and positioned at its start.
    let series = ekp.observation_series();
    assert_eq!(series.epochs().len(), 4);
    assert_eq!((series.position().epoch, series.position().batch), (3, 0));
    for epoch in series.epochs() {
        assert_eq!(epoch, &batches);
    }
}

#[test]
fn each_epoch_visits_every_batch_once_and_random_orders_follow_the_seed() {
    let s = Series::new(6);
    let batches = vec![vec![0], vec![1, 2], vec![3], vec![4, 5]];
    let mb = Minibatcher::Fixed {
        batches: batches.clone(),
        random_order: true,
    };
    let mut a = s.process(mb.clone(), 5);
    s.run(&mut a, 20);
    let history = a.minibatch_history();
    for epoch in history.chunks(batches.len()) {
        assert_eq!(
            sorted(epoch.to_vec()),
            sorted(batches.clone()),
            "an epoch is a permutation of the batches"
        );
    }
    assert!(
        history.chunks(4).any(|e| e != batches.as_slice()),
        "random order never shuffled in 5 epochs"
    );
    let mut b = s.process(mb.clone(), 5);
    s.run(&mut b, 20);
    assert_eq!(
        a.minibatch_history(),
        b.minibatch_history(),
        "same seed, same minibatches"
    );
    let mut c = s.process(mb, 6);
    s.run(&mut c, 20);
    assert_ne!(
        a.minibatch_history(),
        c.minibatch_history(),
        "another seed, other minibatches"
    );
}

#[test]
fn random_fixed_size_epochs_partition_the_observations() {
    let s = Series::new(7);
    // extend: sizes 2, 2, 3 — every observation exactly once per epoch.
    let mut ekp = s.process(
        Minibatcher::RandomFixedSize {
            size: 2,
            remainder: Remainder::Extend,
        },
        3,
    );
    s.run(&mut ekp, 15);
    let epochs = &ekp.observation_series().epochs()[..5];
    for epoch in epochs {
        assert_eq!(
            epoch.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![2, 2, 3]
        );
        let mut all: Vec<usize> = epoch.concat();
        all.sort_unstable();
        assert_eq!(all, (0..7).collect::<Vec<_>>());
    }
    assert_eq!(ekp.minibatch_history(), epochs.concat().as_slice());
    assert!(
        epochs.windows(2).any(|w| w[0] != w[1]),
        "epochs are redrawn"
    );
    // trim: three minibatches of 2, disjoint, one observation sitting out.
    let mut trim = s.process(
        Minibatcher::RandomFixedSize {
            size: 2,
            remainder: Remainder::Trim,
        },
        3,
    );
    s.run(&mut trim, 9);
    for epoch in &trim.observation_series().epochs()[..3] {
        assert!(epoch.iter().all(|b| b.len() == 2));
        let mut all: Vec<usize> = epoch.concat();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 6);
    }
    // Reproducible from the seed, and the minibatcher's own stream leaves the
    // process's draws (here: the initial ensemble) alone.
    let mut again = s.process(
        Minibatcher::RandomFixedSize {
            size: 2,
            remainder: Remainder::Extend,
        },
        3,
    );
    s.run(&mut again, 15);
    assert_eq!(again.minibatch_history(), ekp.minibatch_history());
    assert_eq!(again.u_history(), ekp.u_history());
    let unbatched = s.process(Minibatcher::all(7), 3);
    assert_eq!(unbatched.u_history()[0], ekp.u_history()[0]);
}

#[test]
fn an_update_fits_the_current_minibatch_only() {
    let s = Series::new(4);
    let mb = Minibatcher::Fixed {
        batches: vec![vec![2, 0], vec![1], vec![3]],
        random_order: false,
    };
    let mut ekp = s.process(mb, 9);
    // Minibatch [2, 0]: y = [y_2; y_0] (0-based), Γ block diagonal.
    let obs = ekp.observation().clone();
    assert_eq!(obs.dim(), 2 * PER_OBS);
    assert_eq!(obs.values().rows(0, 2), s.y.rows(4, 2));
    assert_eq!(obs.values().rows(2, 2), s.y.rows(0, 2));
    assert_eq!(ekp.observation_series().current_rows(), vec![4, 5, 0, 1]);
    // Outputs for every observation are not the minibatch's.
    let all = s.forward_all(ekp.ensemble());
    assert!(matches!(
        ekp.update(&all),
        Err(EkpError::OutputShape { .. })
    ));
    // update_from_all_outputs picks the rows: the same as telling them.
    let mut picked = ekp.clone();
    picked.update_from_all_outputs(&all).expect("update");
    let g = s.forward_minibatch(&ekp);
    let report = ekp.update(&g).expect("update");
    assert_eq!(picked.ensemble(), ekp.ensemble());
    assert!(matches!(report, ekp_core::UpdateOutcome::Updated(r) if r.minibatch == vec![2, 0]));
    // ... and keeps every row it was told.
    assert_eq!(picked.g_history()[0], all);
    assert_eq!(ekp.observation().dim(), PER_OBS, "now minibatch [1]");
}

#[test]
fn minibatched_calibrations_converge() {
    let s = Series::new(8);
    let ls = (s.g.transpose() * &s.g).try_inverse().expect("invertible") * s.g.transpose() * &s.y;
    for process in [
        Process::Inversion(Inversion::default()),
        Process::TransformInversion(TransformInversion::default()),
    ] {
        let mut ekp = EnsembleKalmanProcess::builder(
            Series::prior(),
            s.series(Minibatcher::RandomFixedSize {
                size: 3,
                remainder: Remainder::Extend,
            }),
            process.clone(),
        )
        .ensemble_size(15)
        .seed(4)
        .scheduler(Scheduler::Fixed { dt: 0.5 })
        .build()
        .expect("valid");
        let err0 = (ekp.unconstrained_mean() - &ls).amax();
        for _ in 0..60 {
            let g = s.forward_all(ekp.ensemble());
            ekp.update_from_all_outputs(&g).expect("update");
        }
        let err = (ekp.unconstrained_mean() - &ls).amax();
        println!("{}: error {err0:.3} → {err:.2e}", process.kind());
        assert!(err < 0.02 * err0, "{}: {err0} → {err}", process.kind());
    }
}

#[test]
fn bad_series_are_refused() {
    let s = Series::new(3);
    for mb in [
        Minibatcher::Fixed {
            batches: vec![vec![0, 3]],
            random_order: false,
        },
        Minibatcher::Fixed {
            batches: vec![vec![]],
            random_order: false,
        },
        Minibatcher::Fixed {
            batches: vec![vec![1, 1]],
            random_order: false,
        },
        Minibatcher::RandomFixedSize {
            size: 4,
            remainder: Remainder::Extend,
        },
        Minibatcher::RandomFixedSize {
            size: 0,
            remainder: Remainder::Trim,
        },
    ] {
        assert!(
            ObservationSeries::with_minibatcher(s.observations(), mb.clone()).is_err(),
            "{mb:?}"
        );
    }
    assert!(ObservationSeries::new(Vec::new()).is_err());
    // Splitting one observation needs a Γ without cross-block terms.
    let full =
        NoiseCovariance::full(DMatrix::from_row_slice(2, 2, &[1.0, 0.5, 0.5, 1.0])).expect("Γ");
    let coupled = Observation::new(DVector::from_column_slice(&[1.0, 2.0]), full).expect("obs");
    assert!(ObservationSeries::split(&coupled, &[1, 1], Minibatcher::all(2)).is_err());
    let diag = Observation::new(
        DVector::from_column_slice(&[1.0, 2.0, 3.0]),
        NoiseCovariance::diagonal_std(&[0.1, 0.2, 0.3]).expect("Γ"),
    )
    .expect("obs");
    let split = ObservationSeries::split(&diag, &[2, 1], Minibatcher::all(2)).expect("split");
    assert_eq!(split.observations()[1].noise().diagonal()[0], 0.09);
    assert!(ObservationSeries::split(&diag, &[2, 2], Minibatcher::all(2)).is_err());
}
