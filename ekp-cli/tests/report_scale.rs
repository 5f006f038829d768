//! Figures of big ensembles stay small and readable: at most
//! `MAX_MEMBERS` members are drawn (evenly spaced), and the figure says so.
//! (report.html reached 82 MB at 10⁵ members when every member was drawn.)

#![cfg(feature = "plots")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

use ekp_cli::report::plot::{FIGURES, MAX_MEMBERS, PlotData, svg};
use nalgebra::DMatrix;

/// A synthetic calibration: `p` parameters, `n` members, `k + 1` ensembles
/// shrinking towards the truth, and `d` outputs of the newest one.
fn synthetic(p: usize, n: usize, k: usize, d: usize) -> PlotData {
    // A cheap deterministic spread in [-1, 1].
    let noise = |a: usize, b: usize| ((a * 7919 + b * 104_729) % 2001) as f64 / 1000.0 - 1.0;
    let ensembles = (0..=k)
        .map(|it| {
            let scale = 1.0 / (1.0 + it as f64);
            DMatrix::from_fn(p, n, |i, j| i as f64 + scale * noise(i + it, j))
        })
        .collect();
    PlotData {
        names: (0..p).map(|i| format!("theta[{}]", i + 1)).collect(),
        loss: (0..=k).map(|it| (it, 10.0 / (1.0 + it as f64))).collect(),
        time: Some((0..=k).map(|it| 0.5 * it as f64).collect()),
        ensembles,
        truth: Some((0..p).map(|i| i as f64).collect()),
        y: (0..d).map(|i| i as f64).collect(),
        y_std: vec![0.1; d],
        outputs: Some((k, DMatrix::from_fn(d, n, |i, j| i as f64 + noise(i, j)))),
        data_labels: Default::default(),
        means: Vec::new(),
        priors: Vec::new(),
    }
}

#[test]
fn a_big_ensembles_figures_are_sampled_and_say_so() {
    let n = 200_000;
    let data = synthetic(3, n, 3, 4);
    let mut total = 0;
    for (stem, _) in FIGURES {
        let text = svg(stem, &data).unwrap();
        total += text.len();
        eprintln!("{stem}.svg: {} bytes", text.len());
        assert!(text.len() < 4_000_000, "{stem}.svg is {} bytes", text.len());
        // The parameter figure shares its 2 000 points among 4 ensembles.
        let note = match stem {
            "misfit" => continue,
            "parameters" => "showing 500 of 200 000 members of each",
            _ => "showing 2 000 of 200 000 members",
        };
        assert!(text.contains(note), "{stem}.svg does not say `{note}`");
    }
    assert!(total < 4_000_000, "the figures take {total} bytes");
}

#[test]
fn many_parameters_and_iterations_stay_within_the_budget() {
    // 12 parameter panels of 11 ensembles, 6 × 6 pairs: each panel draws at
    // most MAX_MEMBERS points.
    let data = synthetic(12, 20_000, 10, 4);
    let params = svg("parameters", &data).unwrap();
    let circles = params.matches("<circle").count();
    assert!(circles <= 12 * MAX_MEMBERS + 50, "{circles}");
    assert!(params.contains("showing 181 of 20 000 members of each"));
    let pairs = svg("pairs", &data).unwrap();
    assert!(
        pairs.len() < 8_000_000,
        "pairs.svg is {} bytes",
        pairs.len()
    );
    eprintln!(
        "12 parameters, 11 ensembles of 20 000: parameters.svg {} bytes, pairs.svg {} bytes",
        params.len(),
        pairs.len()
    );
}

#[test]
fn the_sample_does_not_grow_with_the_ensemble() {
    // Twice the members, the same number of points drawn.
    let small = svg("pairs", &synthetic(2, 100_000, 1, 2)).unwrap();
    let big = svg("pairs", &synthetic(2, 200_000, 1, 2)).unwrap();
    let circles = |s: &str| s.matches("<circle").count();
    assert_eq!(circles(&small), circles(&big));
    // The corner plot's one panel below the diagonal: MAX_MEMBERS points
    // (and no more).
    assert!(circles(&big) >= MAX_MEMBERS, "{}", circles(&big));
    assert!(circles(&big) < MAX_MEMBERS + 50, "{}", circles(&big));
}

#[test]
fn a_small_ensemble_is_drawn_whole_without_a_note() {
    let data = synthetic(2, 50, 2, 3);
    for (stem, _) in FIGURES {
        let text = svg(stem, &data).unwrap();
        assert!(!text.contains("showing"), "{stem}.svg");
    }
    let pairs = svg("pairs", &data).unwrap();
    // Every member in the one scatter panel below the diagonal.
    assert!(pairs.matches("<circle").count() >= 50);
}
