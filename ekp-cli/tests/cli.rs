//! `ekp-cli` end to end: the binary, its files and its exit codes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

mod common;

use common::{ekp, gpu_available, text};

use std::path::{Path, PathBuf};
use std::process::Command;

fn read_toml(path: &Path) -> toml::Table {
    let s = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    toml::from_str(&s).expect("valid TOML")
}

fn param(result: &toml::Table, name: &str, key: &str) -> f64 {
    result["parameters"][name][key]
        .as_float()
        .unwrap_or_else(|| panic!("parameters.{name}.{key} missing"))
}

fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, contents).expect("write");
    p
}

const LORENZ_TRUTH: &str = r#"
[process]
kind = "inversion"
ensemble_size = 20
iterations = 5
seed = 42

[[parameters]]
name = "F"
prior = { kind = "constrained-gaussian", mean = 9.0, std = 2.0, lower = 0.0 }

[[parameters]]
name = "A"
prior = { kind = "constrained-gaussian", mean = 3.0, std = 1.25, lower = 0.0 }

[observations]
truth = { F = 9.0, A = 1.5 }

[model]
kind = "lorenz96"
"#;

#[test]
fn default_run_recovers_the_lorenz_truth_and_writes_its_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = ekp(&["run", "--output", "out"], tmp.path());
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("iter"), "no table: {stdout}");
    let dir = tmp.path().join("out");
    let result = read_toml(&dir.join("result.toml"));
    let (f, a) = (param(&result, "F", "mean"), param(&result, "A", "mean"));
    assert!((f - 8.0).abs() < 0.5, "F = {f}");
    assert!((a - 2.5).abs() < 0.6, "A = {a}");
    assert!(result["iterations"].as_integer().expect("iterations") >= 1);
    // The mean is the constrained transform of the unconstrained mean (F > 0: exp).
    let fu = param(&result, "F", "unconstrained_mean");
    assert!((fu.exp() - f).abs() < 1e-9 * f);
    let cov = result["unconstrained"]["covariance"]
        .as_array()
        .expect("covariance");
    assert_eq!(cov.len(), 2);

    let obs = read_toml(&dir.join("observations.toml"));
    assert_eq!(obs["source"].as_str(), Some("truth"));
    assert_eq!(obs["values"].as_array().map(Vec::len), Some(4));
    assert_eq!(obs["covariance"].as_array().map(Vec::len), Some(4));
    for f in [
        "history.csv",
        "ensembles.csv",
        "outputs.csv",
        "final_ensemble.csv",
        "state.toml",
        "config.toml",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    // history.csv: a header and one row per ensemble (updates + 1).
    let history = std::fs::read_to_string(dir.join("history.csv")).expect("history");
    let updates = result["iterations"].as_integer().expect("iterations") as usize;
    assert_eq!(history.lines().count(), updates + 2);
    // final_ensemble.csv: header + 20 members.
    let fin = std::fs::read_to_string(dir.join("final_ensemble.csv")).expect("final");
    assert_eq!(fin.lines().count(), 21);
}

#[test]
fn another_truth_is_recovered_instead() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = write(tmp.path(), "cal.toml", LORENZ_TRUTH);
    let out = ekp(
        &[
            "run",
            "--config",
            cfg.to_str().expect("utf8"),
            "--output",
            "o",
            "-q",
        ],
        tmp.path(),
    );
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let result = read_toml(&tmp.path().join("o/result.toml"));
    let (f, a) = (param(&result, "F", "mean"), param(&result, "A", "mean"));
    assert!((f - 9.0).abs() < 0.5, "F = {f}");
    assert!((a - 1.5).abs() < 0.6, "A = {a}");
}

#[test]
fn serial_and_threads_give_identical_results() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let runs = [
        vec!["run", "-q", "--backend", "serial", "--output", "s"],
        vec![
            "run",
            "-q",
            "--backend",
            "threads",
            "--threads",
            "2",
            "--output",
            "t2",
        ],
        vec![
            "run",
            "-q",
            "--backend",
            "threads",
            "--threads",
            "3",
            "--output",
            "t3",
        ],
    ];
    for args in &runs {
        let out = ekp(args, tmp.path());
        assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    }
    let s = std::fs::read(tmp.path().join("s/result.toml")).expect("read");
    for d in ["t2", "t3"] {
        assert_eq!(
            s,
            std::fs::read(tmp.path().join(d).join("result.toml")).expect("read"),
            "{d}"
        );
    }
    // A different seed gives a different ensemble.
    let out = ekp(
        &["run", "-q", "--seed", "7", "--output", "seed7"],
        tmp.path(),
    );
    assert!(out.status.success());
    assert_ne!(
        s,
        std::fs::read(tmp.path().join("seed7/result.toml")).expect("read")
    );
}

#[test]
fn a_typo_is_rejected_with_exit_2_naming_the_key_and_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = write(
        tmp.path(),
        "typo.toml",
        &LORENZ_TRUTH.replace("ensemble_size = 20", "ensemble_sise = 20"),
    );
    let out = ekp(
        &[
            "run",
            "--config",
            cfg.to_str().expect("utf8"),
            "--output",
            "o",
        ],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("ensemble_sise"), "{err}");
    assert!(err.contains("typo.toml"), "{err}");
    assert!(
        !tmp.path().join("o").exists(),
        "nothing may be written on bad input"
    );
}

#[test]
fn bad_values_name_their_key() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cases = [
        (
            LORENZ_TRUTH.replace("ensemble_size = 20", "ensemble_size = 1"),
            "process.ensemble_size",
        ),
        (
            LORENZ_TRUTH.replace("std = 2.0", "std = -2.0"),
            "parameters[1]",
        ),
        (
            LORENZ_TRUTH.replace("truth = { F = 9.0, A = 1.5 }", "truth = { F = 9.0 }"),
            "observations.truth.A",
        ),
        (
            // sparse-inversion's gamma has no default.
            LORENZ_TRUTH.replace("kind = \"inversion\"", "kind = \"sparse-inversion\""),
            "process.gamma",
        ),
        (
            LORENZ_TRUTH.replace("kind = \"lorenz96\"", "kind = \"lorenz96\"\nsites = 2"),
            "sites",
        ),
        (LORENZ_TRUTH.replace("name = \"A\"", "name = \"B\""), "B"),
    ];
    for (i, (cfg, key)) in cases.iter().enumerate() {
        let path = write(tmp.path(), &format!("bad{i}.toml"), cfg);
        let out = ekp(
            &["prior", "--config", path.to_str().expect("utf8")],
            tmp.path(),
        );
        let err = text(&out.stderr);
        // `prior` validates the prior only; `run` validates everything.
        let out = if out.status.success() {
            ekp(
                &[
                    "run",
                    "--config",
                    path.to_str().expect("utf8"),
                    "--output",
                    "o",
                ],
                tmp.path(),
            )
        } else {
            out
        };
        let err = if err.is_empty() {
            text(&out.stderr)
        } else {
            err
        };
        assert_eq!(out.status.code(), Some(2), "case {i}: {err}");
        assert!(err.contains(key), "case {i}: `{key}` not in: {err}");
        assert!(
            err.contains(&format!("bad{i}.toml")),
            "case {i}: file not named: {err}"
        );
    }
}

#[test]
fn a_missing_config_file_is_bad_input() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = ekp(&["run", "--config", "nope.toml"], tmp.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("nope.toml"));
}

/// Drivers hidden: wgpu finds no adapter.
const NO_DRIVERS: [(&str, &str); 3] = [
    ("VK_ICD_FILENAMES", "/nonexistent"),
    ("VK_DRIVER_FILES", "/nonexistent"),
    ("__EGL_VENDOR_LIBRARY_FILENAMES", "/nonexistent"),
];

#[test]
fn without_an_adapter_the_gpu_backend_is_a_clear_error_not_a_fallback() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for args in [
        vec!["run", "--backend", "gpu", "--output", "o"],
        vec![
            "bench",
            "--backend",
            "gpu",
            "--members",
            "10",
            "--steps",
            "10",
        ],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_ekp-cli"))
            .args(&args)
            .envs(NO_DRIVERS)
            .current_dir(tmp.path())
            .output()
            .expect("ekp-cli runs");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = text(&out.stderr);
        assert!(err.contains("no GPU adapter"), "{err}");
        assert!(err.contains("mesa-vulkan-drivers"), "{err}");
        assert!(err.contains("--backend threads"), "{err}");
    }
    assert!(!tmp.path().join("o").exists(), "nothing may be written");
}

/// A request the kernel cannot run (here more steps than it counts in 32
/// bits) is the user's to change: exit 2, the reason, the way out.
#[test]
fn a_request_the_gpu_kernel_cannot_run_is_bad_input() {
    let tmp = tempfile::tempdir().expect("tempdir");
    if !gpu_available(tmp.path()) {
        return;
    }
    let out = ekp(
        &[
            "bench",
            "--backend",
            "gpu",
            "--members",
            "1",
            "--steps",
            &u32::MAX.to_string(),
        ],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("32 bits"), "{err}");
    assert!(err.contains("--backend threads"), "{err}");
}

#[test]
fn the_default_calibration_on_the_gpu_recovers_the_truth_as_threads_does() {
    let tmp = tempfile::tempdir().expect("tempdir");
    if !gpu_available(tmp.path()) {
        return;
    }
    for (dir, extra) in [("f32", vec![]), ("f64", vec!["--precision", "f64"])] {
        let mut args = vec!["run", "-q", "--backend", "gpu", "--output", dir];
        args.extend(extra);
        let out = ekp(&args, tmp.path());
        assert!(out.status.success(), "{dir}: {}", text(&out.stderr));
        assert!(text(&out.stdout).contains("gpu on"), "the adapter is named");
        let result = read_toml(&tmp.path().join(dir).join("result.toml"));
        let (f, a) = (param(&result, "F", "mean"), param(&result, "A", "mean"));
        assert!((f - 8.0).abs() < 0.5, "{dir}: F = {f}");
        assert!((a - 2.5).abs() < 0.6, "{dir}: A = {a}");
    }
    // On a software adapter (no FMA contraction) the f64 kernel reproduces the
    // CPU's outputs for the same parameters: here the prior ensemble's
    // outputs; `tests/fidelity.rs` checks that a whole run is bit-identical.
    let out = ekp(
        &[
            "bench",
            "--backend",
            "gpu",
            "--members",
            "4",
            "--steps",
            "4",
        ],
        tmp.path(),
    );
    if text(&out.stdout).contains("software") {
        let out = ekp(
            &["run", "-q", "--backend", "serial", "--output", "cpu"],
            tmp.path(),
        );
        assert!(out.status.success());
        let first = |dir: &str| -> Vec<f64> {
            let csv =
                std::fs::read_to_string(tmp.path().join(dir).join("outputs.csv")).expect("csv");
            csv.lines()
                .skip(1)
                .filter(|l| l.starts_with("0,"))
                .flat_map(|l| {
                    l.split(',')
                        .skip(2)
                        .map(|v| v.parse::<f64>().expect("number"))
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        let (cpu, gpu) = (first("cpu"), first("f64"));
        assert_eq!(cpu.len(), 20 * 4);
        for (c, g) in cpu.iter().zip(&gpu) {
            assert!((c - g).abs() <= 1e-12 * c.abs(), "cpu {c} vs gpu f64 {g}");
        }
    }
}

#[test]
fn bench_prints_member_steps_per_second_last() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut backends = vec!["serial", "threads"];
    if gpu_available(tmp.path()) {
        backends.push("gpu");
    }
    for backend in backends {
        let out = ekp(
            &[
                "bench",
                "--backend",
                backend,
                "--members",
                "64",
                "--steps",
                "50",
            ],
            tmp.path(),
        );
        assert!(out.status.success(), "{backend}: {}", text(&out.stderr));
        let stdout = text(&out.stdout);
        let last = stdout.lines().last().expect("output");
        let rate: f64 = last
            .strip_prefix("member-steps/s: ")
            .unwrap_or_else(|| panic!("{backend}: last line {last:?}"))
            .parse()
            .expect("a number");
        assert!(rate > 0.0 && rate.is_finite());
        if backend == "gpu" {
            assert!(stdout.contains("adapter: "), "{stdout}");
        }
    }
    // The lanes kernel (the default) and the per-member reference integrate
    // the same members to the same bits: the serial checksums are identical.
    let checksum = |args: &[&str]| {
        let mut all = vec![
            "bench",
            "--backend",
            "serial",
            "--members",
            "21",
            "--steps",
            "40",
        ];
        all.extend_from_slice(args);
        let out = ekp(&all, tmp.path());
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        let stdout = text(&out.stdout);
        let line = stdout.lines().find(|l| l.starts_with("checksum: "));
        line.unwrap_or_else(|| panic!("{args:?}: {stdout}"))
            .to_string()
    };
    let reference = checksum(&["--kernel", "per-member"]);
    for lanes in ["4", "8", "16", "32"] {
        assert_eq!(checksum(&["--lanes", lanes]), reference, "--lanes {lanes}");
    }
    // In f32 too: the f32 lanes against the scalar f32 reference.
    let reference = checksum(&["--kernel", "per-member", "--precision", "f32"]);
    for lanes in ["4", "8", "16", "32"] {
        let got = checksum(&["--lanes", lanes, "--precision", "f32"]);
        assert_eq!(got, reference, "--precision f32 --lanes {lanes}");
    }
    let out = ekp(
        &[
            "bench",
            "--backend",
            "threads",
            "--precision",
            "f32",
            "--members",
            "9",
            "--steps",
            "3",
        ],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("f32, lanes kernel, 16 members side by side"));
    let out = ekp(
        &["bench", "--backend", "serial", "--lanes", "5"],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    let out = ekp(
        &["run", "--backend", "threads", "--precision", "f64"],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn members_that_fail_are_handled_by_sample_success_gauss() {
    // A wide prior on F with a divergence limit: members with large F blow past
    // |x| = 25 and fail; the calibration must still recover the truth.
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = LORENZ_TRUTH
        .replace(
            "truth = { F = 9.0, A = 1.5 }",
            "truth = { F = 8.0, A = 2.5 }",
        )
        .replace("mean = 9.0, std = 2.0", "mean = 10.0, std = 6.0")
        .replace(
            "kind = \"lorenz96\"",
            "kind = \"lorenz96\"\nmax_abs_state = 25.0",
        );
    let path = write(tmp.path(), "fail.toml", &cfg);
    let out = ekp(
        &[
            "run",
            "--config",
            path.to_str().expect("utf8"),
            "--output",
            "o",
        ],
        tmp.path(),
    );
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let history = std::fs::read_to_string(tmp.path().join("o/history.csv")).expect("history");
    let first = history.lines().nth(1).expect("row 0");
    let failed = first.split(',').nth(4).expect("failed_members column");
    assert!(
        !failed.is_empty(),
        "the wide prior should make some members fail: {first}"
    );
    assert!(text(&out.stdout).contains("failed members"));
    let result = read_toml(&tmp.path().join("o/result.toml"));
    let f = param(&result, "F", "mean");
    assert!((f - 8.0).abs() < 0.5, "F = {f}");

    // The same with failure = ignore stops with exit 1, naming the members.
    let cfg = cfg.replace("seed = 42", "seed = 42\nfailure = { kind = \"ignore\" }");
    let path = write(tmp.path(), "ignore.toml", &cfg);
    let out = ekp(
        &[
            "run",
            "--config",
            path.to_str().expect("utf8"),
            "--output",
            "i",
        ],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("members"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_linear_calibration_matches_its_closed_form_posterior() {
    // ETKI with the prior imposed and many steps on y = Gθ + η: the mean
    // approaches the posterior mean (GᵀΓ⁻¹G + Σ₀⁻¹)⁻¹(GᵀΓ⁻¹y + Σ₀⁻¹m₀).
    let cfg = r#"
[process]
kind = "transform-inversion"
ensemble_size = 10
iterations = 200
seed = 3
impose_prior = true
scheduler = { kind = "fixed", dt = 1.0 }

[[parameters]]
name = "theta"
size = 2
prior = { kind = "gaussian", mean = 0.0, std = 1.0 }

[observations]
values = [1.0, 2.0, 0.5]
noise_std = 0.5

[model]
kind = "linear"
matrix = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]
"#;
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = write(tmp.path(), "lin.toml", cfg);
    let out = ekp(
        &[
            "run",
            "-q",
            "--config",
            path.to_str().expect("utf8"),
            "--output",
            "o",
        ],
        tmp.path(),
    );
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let result = read_toml(&tmp.path().join("o/result.toml"));
    let mean: Vec<f64> = result["parameters"]["theta"]["mean"]
        .as_array()
        .expect("vector mean")
        .iter()
        .map(|v| v.as_float().expect("float"))
        .collect();
    // Closed form: H = GᵀG/0.25 + I = [[9, 4], [4, 9]], b = Gᵀy/0.25 = [6, 10].
    let (h11, h12, b1, b2) = (9.0, 4.0, 6.0, 10.0);
    let det = h11 * h11 - h12 * h12;
    let exact = [(h11 * b1 - h12 * b2) / det, (h11 * b2 - h12 * b1) / det];
    for i in 0..2 {
        assert!(
            (mean[i] - exact[i]).abs() < 5e-3,
            "θ{} = {} vs {}",
            i + 1,
            mean[i],
            exact[i]
        );
    }
}

#[test]
fn prior_shows_both_spaces() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = ekp(&["prior"], tmp.path());
    assert!(out.status.success());
    let s = text(&out.stdout);
    let row = s
        .lines()
        .find(|l| l.starts_with("F "))
        .expect("a row for F");
    let cols: Vec<&str> = row.split_whitespace().collect();
    // F: constrained mean 9, std 2 (moment matched), 5 % < mean < 95 %.
    let num = |i: usize| cols[i].parse::<f64>().expect("number");
    let n = cols.len();
    let (mean, std, q05, q95) = (num(n - 4), num(n - 3), num(n - 2), num(n - 1));
    assert!(
        (mean - 9.0).abs() < 1e-3 && (std - 2.0).abs() < 1e-3,
        "{row}"
    );
    assert!(q05 < mean && mean < q95, "{row}");
}

#[test]
fn help_explains_the_commands() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = ekp(&["run", "--help"], tmp.path());
    assert!(out.status.success());
    let s = text(&out.stdout);
    for word in ["--config", "--backend", "--output", "--seed", "Lorenz"] {
        assert!(s.contains(word), "`{word}` not in run --help");
    }
    let out = ekp(&["frobnicate"], tmp.path());
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn bench_update_prints_seconds_per_update_last() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for process in ["inversion", "transform-inversion"] {
        for extra in [
            &[][..],
            &["--perturb"][..],
            &["--dense"][..],
            &["--scalar-noise"][..],
        ] {
            if process == "transform-inversion" && extra.contains(&"--perturb") {
                continue;
            }
            let mut args = vec![
                "bench",
                "--update",
                "--process",
                process,
                "--members",
                "8",
                "--parameters",
                "3",
                "--outputs",
                "1500",
                "--repeats",
                "1",
            ];
            args.extend_from_slice(extra);
            let out = ekp(&args, tmp.path());
            assert!(
                out.status.success(),
                "{process} {extra:?}: {}",
                text(&out.stderr)
            );
            let stdout = text(&out.stdout);
            assert!(stdout.contains("localizer none"), "{stdout}");
            let last = stdout.lines().last().expect("output");
            let secs: f64 = last
                .strip_prefix("seconds/update: ")
                .unwrap_or_else(|| panic!("{process}: last line {last:?}"))
                .parse()
                .expect("a number");
            assert!(secs >= 0.0 && secs.is_finite());
        }
    }
    // The dense path is the same update: same checksum as the low-rank one.
    let checksum = |extra: &[&str]| {
        let mut args = vec![
            "bench",
            "--update",
            "--members",
            "8",
            "--parameters",
            "3",
            "--outputs",
            "1500",
            "--repeats",
            "1",
        ];
        args.extend_from_slice(extra);
        let out = ekp(&args, tmp.path());
        let stdout = text(&out.stdout);
        stdout
            .lines()
            .find(|l| l.starts_with("checksum: "))
            .expect("a checksum")
            .to_string()
    };
    assert_eq!(checksum(&[]), checksum(&["--dense"]));
    let out = ekp(
        &["bench", "--update", "--scalar-noise", "--dense"],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    // Bad input is exit code 2; --update needs no --backend, and the forward
    // benchmark still needs one.
    let out = ekp(&["bench", "--update", "--members", "1"], tmp.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = ekp(
        &[
            "bench",
            "--update",
            "--process",
            "transform-inversion",
            "--perturb",
        ],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = ekp(
        &["bench", "--update", "--dense", "--outputs", "50000"],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = ekp(&["bench", "--members", "4"], tmp.path());
    assert_ne!(out.status.code(), Some(0));
}
