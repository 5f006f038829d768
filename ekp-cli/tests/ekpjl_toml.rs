//! EKP.jl's parameter TOML files: `prior --ekp-toml FILE` and
//! `parameters_from = { ekp_toml = "FILE" }`, on the examples of EKP.jl's
//! documentation (its sinusoid example's `priors.toml`, and entries of its
//! TOML interface test file).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

mod common;

use common::ekp;

use std::path::Path;

use ekp_cli::config::ekpjl::priors_from_str;
use ekp_core::Constraint;

/// EKP.jl's `examples/SinusoidInterface/priors.toml` (descriptions shortened).
const SINUSOID_PRIORS: &str = r#"
[amplitude]
prior = "Parameterized(Normal(0.5815754049028404, 0.47238072707743883))"
constraint = "bounded_below(0.0)"
description = """
The amplitude of the sine curve: log-normal with (mean, sd) ≈ (2, 1)
"""

[vert_shift]
prior = "Parameterized(Normal(0,5))"
constraint = "no_constraint()"
description = """
The vertical shift of the sine curve.
"""
"#;

/// The entries of EKP.jl's `test/TOMLInterface/toml/uq_test_parameters.toml`
/// that ekp reads (Normal-based priors), and its non-UQ parameters.
const UQ_SUPPORTED: &str = r#"
[uq_param_1]
prior = "Parameterized(Normal(-100.0, 20.0))"
constraint = "no_constraint()"
L1 = 1.5

[uq_param_7]
prior = "Parameterized(MvNormal(3, 2.0))"
constraint = "repeat([no_constraint()], 3)"

[uq_param_9]
prior = "constrained_gaussian(uq_param_9, 55.47802418037957, 10, 0, Inf)"

[uq_param_10]
prior = "constrained_gaussian(uq_param_10, 55.47802418037957, 10, 0, Inf; repeats = 3)"

[uq_param_11]
prior = "constrained_gaussian(uq_param_11, 55.47802418037957, 10, 0, Inf, repeats = 3)"

[mean_sea_level_pressure]
alias = "MSLP"
value = 101325

[already_calibrated_param]
prior = "fixed"
constraint = "bounded_above(5.0)"
value = "0.64"
"#;

#[test]
fn the_sinusoid_example_priors_are_read() {
    let p = priors_from_str(SINUSOID_PRIORS, "priors.toml").unwrap();
    assert_eq!(p.len(), 2);
    assert_eq!(p[0].name(), "amplitude");
    assert_eq!(p[0].constraint(), Constraint::BoundedBelow { lower: 0.0 });
    // The example's comment: a log-normal with (mean, sd) ≈ (2, 1).
    assert!((p[0].constrained_mean() - 2.0).abs() < 1e-6);
    assert!((p[0].constrained_std() - 1.0).abs() < 1e-6);
    assert_eq!(p[1].name(), "vert_shift");
    assert_eq!(p[1].constraint(), Constraint::Unbounded);
    assert_eq!(p[1].unconstrained_std(), 5.0);
}

#[test]
fn the_test_file_entries_ekp_supports_are_read() {
    let p = priors_from_str(UQ_SUPPORTED, "uq.toml").unwrap();
    let names: Vec<&str> = p.iter().map(|x| x.name()).collect();
    // Tables without a prior and `prior = "fixed"` are not calibrated.
    assert_eq!(
        names,
        [
            "uq_param_1",
            "uq_param_10",
            "uq_param_11",
            "uq_param_7",
            "uq_param_9"
        ]
    );
    let by = |n: &str| p.iter().find(|x| x.name() == n).unwrap();
    assert_eq!(by("uq_param_1").unconstrained_mean(), -100.0);
    assert_eq!(by("uq_param_7").size(), 3);
    assert_eq!(by("uq_param_7").unconstrained_std(), 2.0);
    for n in ["uq_param_9", "uq_param_10", "uq_param_11"] {
        let x = by(n);
        assert!(
            (x.constrained_mean() - 55.47802418037957).abs() < 1e-6,
            "{n}"
        );
        assert!((x.constrained_std() - 10.0).abs() < 1e-6, "{n}");
        assert_eq!(x.constraint(), Constraint::BoundedBelow { lower: 0.0 });
    }
    assert_eq!(by("uq_param_9").size(), 1);
    assert_eq!(by("uq_param_10").size(), 3);
    assert_eq!(by("uq_param_11").size(), 3);
}

#[test]
fn what_ekp_cannot_represent_is_an_error_naming_the_parameter() {
    let cases = [
        (
            "Parameterized(Gamma(5.0, 2.0))",
            "bounded_below(6.0)",
            "Gamma",
        ),
        (
            "Parameterized(MvNormal(4, 1.0))",
            "[no_constraint(), bounded_below(-100.0), bounded_above(10.0), bounded(-42.0, 42.0)]",
            "differ",
        ),
        (
            "Samples([5.0 3.2 4.8 3.6; -5.4 -4.7 -3.9 -4.5])",
            "[bounded(0.0, 15.0), bounded_below(-10.0)]",
            "prior",
        ),
        (
            "VectorOfParameterized([Gamma(2.0, 3.0), LogNormal(0.1, 0.1), Normal(0.0, 10.0)])",
            "[no_constraint(), no_constraint(), bounded_below(-5.0)]",
            "Gamma",
        ),
        (
            "Parameterized(Normal(0, 1))",
            "bounded_sideways(1)",
            "bounded_sideways",
        ),
        ("Parameterized(Normal(0, 1)", "no_constraint()", "expected"),
    ];
    for (prior, constraint, want) in cases {
        let text = format!("[p]\nprior = \"{prior}\"\nconstraint = \"{constraint}\"\n");
        let e = priors_from_str(&text, "bad.toml").unwrap_err().to_string();
        assert!(e.starts_with("bad.toml: `p`"), "{e}");
        assert!(e.contains(want), "{prior}: {e}");
    }
    // Equal components make a vector parameter.
    let text = "[v]\nprior = \"VectorOfParameterized(repeat([Normal(1.0, 2.0)], 4))\"\n\
                constraint = \"repeat([bounded_above(9.0)], 4)\"\n";
    let p = priors_from_str(text, "v.toml").unwrap();
    assert_eq!(p[0].size(), 4);
    assert_eq!(p[0].constraint(), Constraint::BoundedAbove { upper: 9.0 });
}

#[test]
fn prior_command_and_parameters_from_use_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("priors")).unwrap();
    std::fs::write(tmp.path().join("priors/priors.toml"), SINUSOID_PRIORS).unwrap();
    let o = ekp(&["prior", "--ekp-toml", "priors/priors.toml"], tmp.path());
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("amplitude") && out.contains("vert_shift"),
        "{out}"
    );

    // EKP.jl's sinusoid example, calibrated with its priors; the path is
    // relative to the calibration file.
    let cal = r#"parameters_from = { ekp_toml = "priors/priors.toml" }
[process]
kind = "inversion"
ensemble_size = 10
iterations = 2
[observations]
truth = { amplitude = 3.0, vert_shift = 7.0 }
noise_std = 0.1
[model]
kind = "sinusoid"
"#;
    std::fs::write(tmp.path().join("cal.toml"), cal).unwrap();
    let o = ekp(
        &["run", "--config", "cal.toml", "--output", "out", "-q"],
        tmp.path(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let result = std::fs::read_to_string(tmp.path().join("out/result.toml")).unwrap();
    assert!(
        result.contains("[parameters.amplitude]") && result.contains("[parameters.vert_shift]")
    );

    // The file workflow resolves the path as `init` did.
    let o = ekp(&["init", "--config", "cal.toml", "--dir", "wf"], tmp.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = ekp(&["status", "--dir", "wf"], tmp.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // Both [[parameters]] and parameters_from: bad input, naming the key.
    let both = format!(
        "{cal}\n[[parameters]]\nname = \"x\"\nprior = {{ kind = \"gaussian\", mean = 0.0, std = 1.0 }}\n"
    );
    std::fs::write(tmp.path().join("both.toml"), both).unwrap();
    let o = ekp(&["run", "--config", "both.toml", "-q"], tmp.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("parameters_from"));
    // A missing file names itself.
    let missing = cal.replace("priors/priors.toml", "nope.toml");
    std::fs::write(tmp.path().join("missing.toml"), missing).unwrap();
    let o = ekp(&["prior", "--config", "missing.toml"], tmp.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nope.toml"));
}

/// The values of every member's parameters.toml of `iteration` in `dir`, by
/// layout: flat `name = v`, or EKP.jl's `[name]` tables with `value`.
fn member_values(dir: &Path, iteration: usize, members: usize, ekp_layout: bool) -> Vec<Vec<f64>> {
    (1..=members)
        .map(|j| {
            let p = dir.join(format!(
                "iteration_{iteration:03}/member_{j:03}/parameters.toml"
            ));
            let t: toml::Table = toml::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            ["amplitude", "vert_shift"]
                .iter()
                .map(|n| {
                    let v = if ekp_layout { &t[*n]["value"] } else { &t[*n] };
                    v.as_float().unwrap()
                })
                .collect()
        })
        .collect()
}

#[test]
fn member_files_in_ekp_jl_layout_keep_the_file_and_change_no_number() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("priors.toml"),
        format!("# Priors of the sinusoid example\n{SINUSOID_PRIORS}"),
    )
    .unwrap();
    let cal = |layout: &str| {
        format!(
            r#"parameters_from = {{ ekp_toml = "priors.toml" }}
parameter_files = "{layout}"
[process]
kind = "inversion"
ensemble_size = 10
iterations = 2
[observations]
truth = {{ amplitude = 3.0, vert_shift = 7.0 }}
noise_std = 0.1
[model]
kind = "sinusoid"
"#
        )
    };
    let mut values = Vec::new();
    for layout in ["flat", "ekp"] {
        std::fs::write(tmp.path().join(format!("{layout}.toml")), cal(layout)).unwrap();
        let dir = format!("wf-{layout}");
        let cfg = format!("{layout}.toml");
        let o = ekp(&["init", "--config", &cfg, "--dir", &dir], tmp.path());
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        for j in 1..=10 {
            let o = ekp(
                &["forward", "--dir", &dir, "--member", &j.to_string()],
                tmp.path(),
            );
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
        let o = ekp(&["update", "--dir", &dir], tmp.path());
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let root = tmp.path().join(&dir);
        values.push([0, 1].map(|k| member_values(&root, k, 10, layout == "ekp")));
    }
    // The layout changes how numbers are written, never which.
    assert_eq!(values[0], values[1]);
    // amplitude is bounded below by 0: the files hold constrained values.
    assert!(values[1][0].iter().all(|m| m[0] > 0.0));
    // EKP.jl's layout keeps the file's own entries beside each value.
    let text = std::fs::read_to_string(
        tmp.path()
            .join("wf-ekp/iteration_001/member_004/parameters.toml"),
    )
    .unwrap();
    let t: toml::Table = toml::from_str(&text).unwrap();
    assert_eq!(
        t["amplitude"]["constraint"].as_str(),
        Some("bounded_below(0.0)")
    );
    assert!(
        t["vert_shift"]["prior"]
            .as_str()
            .unwrap()
            .contains("Normal(0,5)")
    );
    assert!(t["vert_shift"]["description"].as_str().is_some());
    // ... as written there: its comments, key order and multi-line strings.
    assert!(
        text.contains("# Priors of the sinusoid example\n"),
        "{text}"
    );
    assert!(
        text.contains("description = \"\"\"\nThe vertical shift"),
        "{text}"
    );
    assert!(text.find("[amplitude]").unwrap() < text.find("[vert_shift]").unwrap());

    // An unknown layout is bad input naming the key.
    std::fs::write(tmp.path().join("bad.toml"), cal("julia")).unwrap();
    let o = ekp(&["run", "--config", "bad.toml", "-q"], tmp.path());
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("parameter_files") && err.contains("bad.toml"),
        "{err}"
    );
}

#[test]
fn lognormal_is_a_gaussian_in_log_space_and_every_problem_is_reported_at_once() {
    // LogNormal(μ, σ): the constrained mean is exp(μ + σ²/2), the std
    // sqrt((exp(σ²) − 1)·exp(2μ + σ²)): the same physical prior, exactly.
    let (mu, sigma) = (0.5_f64, 0.3_f64);
    let text = format!(
        "[k]\nprior = \"Parameterized(LogNormal({mu}, {sigma}))\"\nconstraint = \"no_constraint()\"\n"
    );
    let p = &priors_from_str(&text, "ln.toml").unwrap()[0];
    assert_eq!(p.constraint(), Constraint::BoundedBelow { lower: 0.0 });
    assert_eq!(p.unconstrained_mean(), mu);
    assert_eq!(p.unconstrained_std(), sigma);
    let mean = (mu + sigma * sigma / 2.0).exp();
    let std = (((sigma * sigma).exp() - 1.0) * (2.0 * mu + sigma * sigma).exp()).sqrt();
    assert!(
        (p.constrained_mean() - mean).abs() < 1e-12 * mean,
        "{}",
        p.constrained_mean()
    );
    assert!(
        (p.constrained_std() - std).abs() < 1e-9 * std,
        "{}",
        p.constrained_std()
    );
    // A LogNormal with another constraint is refused (it has its own bound).
    let bad = "[k]\nprior = \"Parameterized(LogNormal(0, 1))\"\nconstraint = \"bounded(0, 1)\"\n";
    assert!(
        priors_from_str(bad, "b.toml")
            .unwrap_err()
            .to_string()
            .contains("LogNormal")
    );
    // Three unsupported priors: one error listing all three.
    let many = "[a]\nprior = \"Parameterized(Gamma(1, 2))\"\n\
                [b]\nprior = \"Parameterized(Normal(0, 1))\"\nconstraint = \"no_constraint()\"\n\
                [c]\nprior = \"Samples([1.0 2.0])\"\n\
                [d]\nprior = \"Parameterized(Beta(1, 2))\"\n";
    let e = priors_from_str(many, "m.toml").unwrap_err().to_string();
    assert!(e.contains("3 parameters cannot be read"), "{e}");
    for name in ["`a`", "`c`", "`d`"] {
        assert!(e.contains(name), "{name} missing: {e}");
    }
    assert!(!e.contains("`b`"), "{e}");
}

#[test]
fn parameters_from_takes_a_subset_by_name_and_says_where_it_belongs() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    // A ClimaParams-style file: one Gamma prior would block the whole file.
    std::fs::write(
        t.join("params.toml"),
        "[gamma_one]\nprior = \"Parameterized(Gamma(2, 1))\"\n\
         [rate]\nprior = \"Parameterized(LogNormal(-0.7, 0.5))\"\nconstraint = \"no_constraint()\"\n\
         [initial]\nprior = \"constrained_gaussian(initial, 8.0, 3.0, -Inf, Inf)\"\n\
         [regular]\nvalue = 3\n",
    )
    .unwrap();
    let decay = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/python/command.toml"),
    )
    .unwrap();
    let body = decay.split("[[parameters]]").next().unwrap().to_string()
        + &decay[decay.find("[observations]").unwrap()..];
    let with = |from: &str| format!("{from}\n{body}");
    std::fs::write(
        t.join("all.toml"),
        with("parameters_from = { ekp_toml = \"params.toml\" }"),
    )
    .unwrap();
    let o = ekp(&["prior", "--config", "all.toml"], t);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("gamma_one"));
    std::fs::write(
        t.join("some.toml"),
        with("parameters_from = { ekp_toml = \"params.toml\", names = [\"rate\", \"initial\"] }"),
    )
    .unwrap();
    let o = ekp(&["prior", "--config", "some.toml", "--json"], t);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = j["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["rate", "initial"], "in the order of `names`");
    assert_eq!(j["parameters"][0]["lower"], 0.0);
    // A name the file lacks, or one without a prior, is refused by name.
    for bad in ["missing", "regular"] {
        std::fs::write(
            t.join("bad.toml"),
            with(&format!(
                "parameters_from = {{ ekp_toml = \"params.toml\", names = [\"{bad}\"] }}"
            )),
        )
        .unwrap();
        let o = ekp(&["prior", "--config", "bad.toml"], t);
        assert_eq!(o.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&o.stderr).contains(bad));
    }
    // Written after a [table] header, it belongs to that table: the error
    // says where it must go.
    let misplaced = format!(
        "{}\nparameters_from = {{ ekp_toml = \"params.toml\" }}\n{}",
        &body[..body.find("[observations]").unwrap()],
        &body[body.find("[observations]").unwrap()..]
    );
    std::fs::write(t.join("misplaced.toml"), misplaced).unwrap();
    let o = ekp(&["prior", "--config", "misplaced.toml"], t);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("process.parameters_from") && err.contains("top-level key"),
        "{err}"
    );
}
