//! Every process runs through `ekp-cli run` on the Lorenz 96 default, on
//! every backend (serial, threads, and gpu when an adapter exists: skipped
//! with a notice otherwise, unless EKP_REQUIRE_GPU=1); and the process keys
//! of the calibration file parse into their core settings.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

mod common;

use common::{ekp, gpu_available, text};

use ekp_cli::config::Calibration;
use ekp_core::{
    GaussNewton, Localizer, Process, Sampler, SamplerType, Scheduler, SigmaPoints, SparseInversion,
    Unscented,
};

const DEFAULT: &str = include_str!("../src/config/default_config.toml");

/// The default calibration with its `[process]` table replaced by `process`.
fn with_process(process: &str) -> String {
    let start = DEFAULT.find("\n[process]\n").expect("[process]") + 1;
    let end = DEFAULT.find("[[parameters]]").expect("[[parameters]]");
    format!("{}{}\n\n{}", &DEFAULT[..start], process, &DEFAULT[end..])
}

/// One `[process]` table per process kind (small ensembles, 3 iterations).
fn processes() -> Vec<(&'static str, String)> {
    vec![
        (
            "inversion",
            "[process]\nkind = \"inversion\"\nensemble_size = 10\niterations = 3\nseed = 5\n\
             scheduler = { kind = \"fixed\", dt = 0.3 }"
                .to_string(),
        ),
        (
            "transform-inversion",
            "[process]\nkind = \"transform-inversion\"\nensemble_size = 10\niterations = 3\n\
             seed = 5\nimpose_prior = true\nscheduler = { kind = \"fixed\", dt = 0.3 }"
                .to_string(),
        ),
        (
            "sampler-eks",
            "[process]\nkind = \"sampler\"\nsampler_type = \"eks\"\nensemble_size = 10\n\
             iterations = 3\nseed = 5"
                .to_string(),
        ),
        (
            "sampler-aldi",
            "[process]\nkind = \"sampler\"\nsampler_type = \"aldi\"\nensemble_size = 10\n\
             iterations = 3\nseed = 5\nscheduler = { kind = \"eks-stable\", numerator = 0.1 }"
                .to_string(),
        ),
        (
            "unscented",
            "[process]\nkind = \"unscented\"\nimpose_prior = true\niterations = 3\nseed = 5\n\
             scheduler = { kind = \"fixed\", dt = 1.0 }"
                .to_string(),
        ),
        (
            "gauss-newton",
            "[process]\nkind = \"gauss-newton\"\nensemble_size = 10\niterations = 3\nseed = 5\n\
             scheduler = { kind = \"fixed\", dt = 0.5 }"
                .to_string(),
        ),
        (
            "sparse-inversion",
            "[process]\nkind = \"sparse-inversion\"\nensemble_size = 10\niterations = 3\nseed = 5\n\
             gamma = 0.5\nthreshold = 0.01\nsparse_parameters = [\"A\"]\n\
             scheduler = { kind = \"fixed\", dt = 0.5 }"
                .to_string(),
        ),
        (
            "transform-unscented",
            "[process]\nkind = \"transform-unscented\"\nsigma_points = \"simplex\"\n\
             alpha_reg = 0.9\nupdate_freq = 1\niterations = 3\nseed = 5\n\
             scheduler = { kind = \"fixed\", dt = 0.5 }"
                .to_string(),
        ),
    ]
}

fn floats(v: &toml::Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_float().expect("float"))
        .collect()
}

#[test]
fn every_process_runs_on_the_lorenz96_default_on_every_backend() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut backends = vec!["serial", "threads"];
    if gpu_available(tmp.path()) {
        backends.push("gpu");
    }
    for (name, process) in processes() {
        let cfg = tmp.path().join(format!("{name}.toml"));
        std::fs::write(&cfg, with_process(&process)).expect("write");
        let mut serial_mean: Option<Vec<f64>> = None;
        for backend in &backends {
            let out_dir = format!("{name}-{backend}");
            let out = ekp(
                &[
                    "run",
                    "-q",
                    "--backend",
                    backend,
                    "--config",
                    cfg.to_str().expect("utf8"),
                    "--output",
                    &out_dir,
                ],
                tmp.path(),
            );
            assert!(
                out.status.success(),
                "{name} on {backend}: {}",
                text(&out.stderr)
            );
            let result: toml::Table = toml::from_str(
                &std::fs::read_to_string(tmp.path().join(&out_dir).join("result.toml"))
                    .expect("result.toml"),
            )
            .expect("toml");
            assert_eq!(
                result["iterations"].as_integer(),
                Some(3),
                "{name} on {backend}"
            );
            let mean = floats(&result["unconstrained"]["mean"]);
            assert_eq!(mean.len(), 2, "{name}");
            assert!(mean.iter().all(|m| m.is_finite()), "{name}: {mean:?}");
            match (*backend, &serial_mean) {
                ("serial", _) => serial_mean = Some(mean),
                // Threads give the serial results exactly.
                ("threads", Some(s)) => assert_eq!(&mean, s, "{name}: threads vs serial"),
                // The GPU integrates in f32: close, not equal.
                (_, Some(s)) => {
                    for (a, b) in mean.iter().zip(s) {
                        assert!(
                            (a - b).abs() < 0.05 * (1.0 + b.abs()),
                            "{name}: gpu {a} vs {b}"
                        );
                    }
                }
                _ => {}
            }
        }
    }
}

#[test]
fn unscented_result_reports_the_process_mean_and_covariance() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_, process) = processes()
        .into_iter()
        .find(|(n, _)| *n == "unscented")
        .expect("unscented");
    let cfg = tmp.path().join("u.toml");
    std::fs::write(&cfg, with_process(&process)).expect("write");
    let out = ekp(
        &[
            "run",
            "-q",
            "--backend",
            "serial",
            "--config",
            cfg.to_str().expect("utf8"),
            "--output",
            "o",
        ],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let result: toml::Table =
        toml::from_str(&std::fs::read_to_string(tmp.path().join("o/result.toml")).expect("result"))
            .expect("toml");
    let state: ekp_core::EnsembleKalmanProcess =
        toml::from_str(&std::fs::read_to_string(tmp.path().join("o/state.toml")).expect("state"))
            .expect("state parses");
    let uki = state.unscented_state().expect("unscented state");
    let mean = floats(&result["unconstrained"]["mean"]);
    for (a, b) in mean.iter().zip(uki.mean().iter()) {
        assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "{a} vs {b}");
    }
    // ... which is not the plain mean of the (predicted) sigma points in general,
    // and the ensemble has 2p + 1 = 5 members.
    assert_eq!(state.ensemble_size(), 5);
    // One distribution behind every number: the constrained mean and std of
    // F and A (bounded below by 0: lognormal) are those of N(m_i, C_ii),
    // not the spread of the sigma points (inflated by Σ_ω Δt).
    for name in ["F", "A"] {
        let p = &result["parameters"][name];
        let (mu, sigma) = (
            p["unconstrained_mean"].as_float().unwrap(),
            p["unconstrained_std"].as_float().unwrap(),
        );
        let (mean, std) = (p["mean"].as_float().unwrap(), p["std"].as_float().unwrap());
        let lognormal_std = (mu + 0.5 * sigma * sigma).exp() * (sigma * sigma).exp_m1().sqrt();
        assert!(
            (mean - mu.exp()).abs() <= 1e-12 * mean,
            "{name}: {mean} vs e^{mu}"
        );
        assert!(
            (std - lognormal_std).abs() <= 1e-10 * std,
            "{name}: std {std}, lognormal std of N({mu}, {sigma}²) {lognormal_std}"
        );
    }
}

const LINEAR: &str = r#"
[process]
{PROCESS}

[[parameters]]
name = "theta"
size = 2
prior = { kind = "gaussian", mean = 0.0, std = 1.0 }

[observations]
values = [1.0, 0.5, -0.3]
noise_std = 0.1

[model]
kind = "linear"
matrix = [[1.0, 0.0], [0.5, 0.2], [0.0, 1.0]]
"#;

fn parse(process: &str) -> Result<Calibration, String> {
    Calibration::parse(&LINEAR.replace("{PROCESS}", process), "t.toml").map_err(|e| e.to_string())
}

#[test]
fn process_keys_parse_into_core_settings() {
    let c = parse("kind = \"sampler\"\nsampler_type = \"aldi\"").unwrap();
    assert_eq!(
        c.process,
        Process::Sampler(Sampler {
            sampler_type: SamplerType::Aldi
        })
    );
    assert_eq!(c.scheduler, Scheduler::eks_stable());
    let c = parse("kind = \"sampler\"").unwrap();
    assert_eq!(c.process, Process::Sampler(Sampler::default()));

    let c = parse(
        "kind = \"unscented\"\nalpha_reg = 0.5\nupdate_freq = 3\nsigma_points = \"simplex\"\nmodified_unscented_transform = false",
    )
    .unwrap();
    let expected = Unscented {
        alpha_reg: 0.5,
        update_freq: 3,
        impose_prior: false,
        sigma_points: SigmaPoints::Simplex,
        modified_unscented_transform: false,
    };
    assert_eq!(c.process, Process::Unscented(expected.clone()));
    assert_eq!(c.ensemble_size, 4); // p + 2, p = 2
    let c = parse("kind = \"gauss-newton\"\nperturb_observations = false").unwrap();
    assert_eq!(
        c.process,
        Process::GaussNewton(GaussNewton {
            perturb_observations: false
        })
    );
    assert_eq!(c.scheduler, Scheduler::Fixed { dt: 1.0 });
    let c = parse("kind = \"transform-unscented\"\nimpose_prior = true").unwrap();
    assert_eq!(c.process, Process::TransformUnscented(Unscented::new(true)));
    assert_eq!(c.ensemble_size, 5); // 2p + 1
    // sparse-inversion: EKP.jl's defaults (Δt = 1, sec-nice, no accelerator).
    let c = parse("kind = \"sparse-inversion\"\ngamma = 1.5").unwrap();
    assert_eq!(
        c.process,
        Process::SparseInversion(SparseInversion::new(1.5))
    );
    assert_eq!(c.scheduler, Scheduler::Fixed { dt: 1.0 });
    assert_eq!(c.localizer, Localizer::sec_nice());
    assert!(c.accelerator.is_none());
    let c = parse(
        "kind = \"sparse-inversion\"\ngamma = 0.5\nthreshold = 0.1\nreg = 1e-4\n\
         perturb_observations = false\nsparse_parameters = [\"theta[2]\"]",
    )
    .unwrap();
    assert_eq!(
        c.process,
        Process::SparseInversion(SparseInversion {
            gamma: 0.5,
            threshold: 0.1,
            reg: 1e-4,
            sparse_indices: Some(vec![1]),
            perturb_observations: false,
        })
    );
    let c =
        parse("kind = \"sparse-inversion\"\ngamma = 0.5\nsparse_parameters = [\"theta\"]").unwrap();
    let Process::SparseInversion(s) = c.process else {
        panic!("sparse-inversion")
    };
    assert_eq!(s.sparse_indices, Some(vec![0, 1]));
}

#[test]
fn bad_process_keys_are_errors_naming_the_key() {
    for (process, key) in [
        (
            "kind = \"unscented\"\nensemble_size = 5",
            "process.ensemble_size",
        ),
        (
            "kind = \"unscented\"\nimpose_prior = true\nalpha_reg = 0.5",
            "alpha_reg",
        ),
        ("kind = \"unscented\"\nalpha_reg = 1.5", "alpha_reg"),
        (
            "kind = \"unscented\"\nsigma_points = \"cube\"",
            "sigma_points",
        ),
        (
            "kind = \"unscented\"\naccelerator = { kind = \"nesterov\" }",
            "process.accelerator",
        ),
        (
            "kind = \"unscented\"\nlocalization = { kind = \"sec-nice\" }",
            "process.localization",
        ),
        (
            "kind = \"unscented\"\nmultiplicative_inflation = 0.1",
            "process.multiplicative_inflation",
        ),
        ("kind = \"sampler\"\nalpha_reg = 0.5", "process.alpha_reg"),
        (
            "kind = \"sampler\"\nimpose_prior = true",
            "process.impose_prior",
        ),
        (
            "kind = \"sampler\"\nsampler_type = \"mala\"",
            "sampler_type",
        ),
        (
            "kind = \"inversion\"\nsampler_type = \"eks\"",
            "process.sampler_type",
        ),
        (
            "kind = \"inversion\"\nsigma_points = \"simplex\"",
            "process.sigma_points",
        ),
        (
            "kind = \"gauss-newton\"\nimpose_prior = true",
            "process.impose_prior",
        ),
        (
            "kind = \"gauss-newton\"\nsampler_type = \"eks\"",
            "process.sampler_type",
        ),
        ("kind = \"sparse-inversion\"", "process.gamma"),
        ("kind = \"sparse-inversion\"\ngamma = -1.0", "process.gamma"),
        (
            "kind = \"sparse-inversion\"\ngamma = 1.0\nthreshold = -0.5",
            "process.threshold",
        ),
        (
            "kind = \"sparse-inversion\"\ngamma = 1.0\nreg = nan",
            "process.reg",
        ),
        (
            "kind = \"sparse-inversion\"\ngamma = 1.0\nsparse_parameters = [\"phi\"]",
            "process.sparse_parameters",
        ),
        (
            "kind = \"sparse-inversion\"\ngamma = 1.0\nsparse_parameters = [\"theta\", \"theta[1]\"]",
            "chosen twice",
        ),
        (
            "kind = \"sparse-inversion\"\ngamma = 1.0\nsparse_parameters = []",
            "process.sparse_parameters",
        ),
        (
            "kind = \"sparse-inversion\"\ngamma = 1.0\nimpose_prior = false",
            "process.impose_prior",
        ),
        (
            "kind = \"sparse-inversion\"\ngamma = 1.0\nalpha_reg = 0.5",
            "process.alpha_reg",
        ),
        (
            "kind = \"sparse-inversion\"\ngamma = 1.0\n\
             update_groups = [{ parameters = [\"theta\"], outputs = [1, 2, 3] }]",
            "process.update_groups",
        ),
        ("kind = \"inversion\"\ngamma = 1.0", "process.gamma"),
        ("kind = \"inversion\"\nthreshold = 1.0", "process.threshold"),
        (
            "kind = \"gauss-newton\"\nsparse_parameters = [\"theta\"]",
            "process.sparse_parameters",
        ),
    ] {
        let err = match parse(process) {
            Ok(_) => panic!("`{process}` should be rejected"),
            Err(e) => e,
        };
        assert!(err.contains(key), "`{process}`: {err}");
    }
}
