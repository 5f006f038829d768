//! The Lorenz 96 model: observables against a direct transcription of EKP.jl's
//! recipe, the truth data, the configuration.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

use ekp_models::lorenz96::{Forcing, Rk4Workspace, integrate};
use ekp_models::{Lorenz96, Lorenz96Config, MemberModel, ModelsError};

/// EKP.jl's `lorenz_solve` + `stats` (stats_type 5), written out naively:
/// store every state, select the steps with t_start < t < t_start + T by their
/// times, cut them into sub-windows of Ts/dt − 1 steps, variance of each, mean
/// over groups of Tfit.
fn reference_observables(model: &Lorenz96, theta: [f64; 2], t_start: f64) -> Vec<f64> {
    let c = model.config();
    let forcing = Forcing {
        mean: theta[0],
        amplitude: theta[1],
        omega: c.omega,
    };
    let tend = t_start + c.window;
    let nstep = (tend / c.dt).ceil() as usize;
    let mut x = model.initial_state().to_vec();
    let mut ws = Rk4Workspace::new(x.len());
    let mut states = Vec::new();
    let mut times = Vec::new();
    for j in 1..=nstep {
        integrate(&mut x, &mut ws, &forcing, c.dt, j - 1, 1);
        states.push(x.clone());
        times.push(c.dt * j as f64);
    }
    let indices: Vec<usize> = (0..nstep)
        .filter(|&k| times[k] > t_start && times[k] < t_start + c.window)
        .collect();
    let n_windows = (c.window / c.sub_window).round() as usize;
    let nt = (c.sub_window / c.dt).round() as usize - 1;
    let var_slide: Vec<f64> = (0..n_windows)
        .map(|i| {
            let values: Vec<f64> = indices[i * nt..(i + 1) * nt]
                .iter()
                .flat_map(|&k| states[k].iter().copied())
                .collect();
            let mean = values.iter().sum::<f64>() / values.len() as f64;
            values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (values.len() - 1) as f64
        })
        .collect();
    var_slide
        .chunks(c.fit_windows)
        .map(|g| g.iter().sum::<f64>() / g.len() as f64)
        .collect()
}

fn short_config() -> Lorenz96Config {
    Lorenz96Config {
        t_start: 10.0,
        window: 4.0,
        sub_window: 1.0,
        fit_windows: 2,
        truth_samples: 5,
        ..Lorenz96Config::default()
    }
}

fn assert_close(a: &[f64], b: &[f64], tol: f64) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= tol * y.abs().max(1.0), "{a:?} vs {b:?}");
    }
}

#[test]
fn default_layout_is_ekp_jl_s() {
    let model = Lorenz96::new(Lorenz96Config::default()).expect("default");
    assert_eq!(model.output_dim(), 4);
    assert_eq!(model.parameter_dim(), 2);
    assert_eq!(model.parameter_names(), vec!["F", "A"]);
    assert_eq!(model.steps_per_sub_window(), 63);
    assert_eq!(model.sub_windows(), 72);
    assert_eq!(model.first_observed_step(0), 800 * 64 + 1);
    assert_eq!(model.first_observed_step(1), 872 * 64 + 1);
    assert_eq!(model.member_steps(), 800 * 64 + 72 * 63);
    assert_eq!(model.initial_state().len(), 36);
}

#[test]
fn observables_match_a_direct_transcription_of_ekp_jl() {
    let configs = [
        short_config(),
        // Odd sizes: dt = 1/32, Ts = 0.5 (15 steps), T = 3 (6 sub-windows), Tfit = 3.
        Lorenz96Config {
            sites: 10,
            dt: 1.0 / 32.0,
            t_start: 5.25,
            window: 3.0,
            sub_window: 0.5,
            fit_windows: 3,
            omega: 1.3,
            seed: 9,
            truth_samples: 3,
            ..Lorenz96Config::default()
        },
    ];
    for config in configs {
        let model = Lorenz96::new(config.clone()).expect("valid");
        for theta in [[8.0, 2.5], [6.5, 0.0], [10.0, 4.0]] {
            let got = model.evaluate_single(0, &theta).expect("ok");
            let expected = reference_observables(&model, theta, config.t_start);
            assert_close(&got, &expected, 1e-12);
        }
        // The truth windows too: sample i is window [t_start + T i, t_start + T (i+1)].
        let samples = model.truth_samples(&[8.0, 2.5]).expect("truth");
        assert_eq!(samples.shape(), (model.output_dim(), config.truth_samples));
        for i in 0..config.truth_samples {
            let expected = reference_observables(
                &model,
                [8.0, 2.5],
                config.t_start + config.window * i as f64,
            );
            assert_close(samples.column(i).as_slice(), &expected, 1e-12);
        }
    }
}

#[test]
fn the_forcing_parameters_matter() {
    let model = Lorenz96::new(short_config()).expect("valid");
    let base = model.evaluate_single(0, &[8.0, 2.5]).expect("ok");
    assert_ne!(base, model.evaluate_single(0, &[8.0, 0.0]).expect("ok"));
    assert_ne!(base, model.evaluate_single(0, &[8.5, 2.5]).expect("ok"));
    // The member index does not (same initial state for every member).
    assert_eq!(base, model.evaluate_single(17, &[8.0, 2.5]).expect("ok"));
    // Weak forcing, weak variability: F = 0.5 decays toward the fixed point.
    let calm = model.evaluate_single(0, &[0.5, 0.0]).expect("ok");
    assert!(calm.iter().all(|v| *v < 1e-3), "{calm:?}");
}

#[test]
fn final_state_is_the_plain_integration() {
    let model = Lorenz96::new(short_config()).expect("valid");
    let forcing = Forcing {
        mean: 8.0,
        amplitude: 2.5,
        omega: model.config().omega,
    };
    let mut x = model.initial_state().to_vec();
    let mut ws = Rk4Workspace::new(x.len());
    integrate(&mut x, &mut ws, &forcing, model.config().dt, 0, 1000);
    assert_eq!(model.final_state(&[8.0, 2.5], 1000).expect("ok"), x);
    assert_eq!(
        model.final_state(&[8.0, 2.5], 0).expect("ok"),
        model.initial_state()
    );
    assert!(model.final_state(&[8.0], 10).is_err());
}

#[test]
fn initial_state_is_seeded() {
    let a = Lorenz96::new(Lorenz96Config::default()).expect("valid");
    let b = Lorenz96::new(Lorenz96Config::default()).expect("valid");
    assert_eq!(a.initial_state(), b.initial_state());
    let c = Lorenz96::new(Lorenz96Config {
        seed: 1,
        ..Lorenz96Config::default()
    })
    .expect("valid");
    assert_ne!(a.initial_state(), c.initial_state());
    let rms = (a.initial_state().iter().map(|v| v * v).sum::<f64>() / 36.0).sqrt();
    assert!((0.005..0.02).contains(&rms), "rms {rms}");
}

/// The default calibration's data: ~0.2 s in the test profile.
#[test]
fn default_truth_data_and_the_true_member_agree() {
    let model = Lorenz96::new(Lorenz96Config::default()).expect("default");
    let theta = [8.0, 2.5];
    let samples = model.truth_samples(&theta).expect("truth");
    let (y, gamma) = model.truth(&theta).expect("truth");
    assert_eq!(y.len(), 4);
    assert_eq!(gamma.shape(), (4, 4));
    assert!(y.iter().all(|v| v.is_finite() && *v > 0.0));
    assert_eq!(gamma, gamma.transpose());
    assert!(
        gamma.clone().cholesky().is_some(),
        "Γ not positive definite: {gamma}"
    );
    let eig = gamma.clone().symmetric_eigenvalues();
    assert!(eig.iter().all(|v| *v > 0.0), "{eig}");
    assert_eq!(samples.column_mean(), y);

    // A member at the true parameters runs the truth's first window exactly.
    let g = model.evaluate_single(0, &theta).expect("member");
    assert_eq!(g.as_slice(), samples.column(0).as_slice());
    // ... and so lies within a few standard deviations of y.
    for i in 0..4 {
        let z = (g[i] - y[i]) / gamma[(i, i)].sqrt();
        assert!(
            z.abs() < 4.0,
            "observable {i}: g = {}, y = {}, z = {z}",
            g[i],
            y[i]
        );
    }
    // The observables follow the seasonal forcing: variance is largest where
    // F + A sin(ωt) is largest. Over 800 < t < 872, sin(ωt) is highest in the
    // first quarter (ωt from 69.81 = 11·2π + 0.70): check that ordering.
    assert!(y[0] > y[1] && y[1] > y[3] && y[3] > y[2], "{y}");
}

#[test]
fn truth_errors() {
    let model = Lorenz96::new(short_config()).expect("valid");
    assert!(matches!(
        model.truth(&[8.0]),
        Err(ModelsError::ParameterCount {
            expected: 2,
            got: 1,
            ..
        })
    ));
    let e = model.truth(&[1e6, 0.0]).expect_err("diverges");
    assert!(matches!(e, ModelsError::Diverged { .. }), "{e}");
    assert!(model.truth(&[f64::NAN, 0.0]).is_err());
}

#[test]
fn validation_names_the_bad_field() {
    let cases: Vec<(&str, Lorenz96Config)> = vec![
        (
            "sites",
            Lorenz96Config {
                sites: 3,
                ..Default::default()
            },
        ),
        (
            "dt",
            Lorenz96Config {
                dt: 0.0,
                ..Default::default()
            },
        ),
        (
            "dt",
            Lorenz96Config {
                dt: f64::NAN,
                ..Default::default()
            },
        ),
        (
            "omega",
            Lorenz96Config {
                omega: f64::INFINITY,
                ..Default::default()
            },
        ),
        (
            "t_start",
            Lorenz96Config {
                t_start: -1.0,
                ..Default::default()
            },
        ),
        (
            "window",
            Lorenz96Config {
                window: 0.0,
                ..Default::default()
            },
        ),
        (
            "window",
            Lorenz96Config {
                window: 72.5,
                ..Default::default()
            },
        ),
        (
            "sub_window",
            Lorenz96Config {
                sub_window: 0.01,
                ..Default::default()
            },
        ),
        (
            "sub_window",
            Lorenz96Config {
                sub_window: 1.0 / 64.0,
                ..Default::default()
            },
        ),
        (
            "fit_windows",
            Lorenz96Config {
                fit_windows: 0,
                ..Default::default()
            },
        ),
        (
            "fit_windows",
            Lorenz96Config {
                fit_windows: 5,
                ..Default::default()
            },
        ),
        (
            "perturbation_std",
            Lorenz96Config {
                perturbation_std: -0.1,
                ..Default::default()
            },
        ),
        (
            "truth_samples",
            Lorenz96Config {
                truth_samples: 1,
                ..Default::default()
            },
        ),
    ];
    for (field, config) in cases {
        let e = Lorenz96::new(config.clone()).expect_err(field);
        assert!(
            matches!(&e, ModelsError::InvalidConfig { field: f, model: "lorenz96", .. } if *f == field),
            "{config:?}: expected `{field}`, got {e}"
        );
        assert!(e.to_string().contains(field), "{e}");
        assert_eq!(config.validate(), Err(e));
    }
    assert_eq!(Lorenz96Config::default().validate(), Ok(()));
}

#[test]
fn config_parses_from_toml_with_defaults() {
    let config: Lorenz96Config =
        toml::from_str("t_start = 10.0\nwindow = 4.0\nfit_windows = 2\n").expect("parse");
    assert_eq!(
        config,
        Lorenz96Config {
            t_start: 10.0,
            window: 4.0,
            fit_windows: 2,
            ..Lorenz96Config::default()
        }
    );
    let e = toml::from_str::<Lorenz96Config>("t_strat = 10.0\n").expect_err("typo");
    assert!(e.to_string().contains("t_strat"), "{e}");
    let round: Lorenz96Config =
        toml::from_str(&toml::to_string(&Lorenz96Config::default()).expect("ser")).expect("de");
    assert_eq!(round, Lorenz96Config::default());
}
