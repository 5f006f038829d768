//! `ekp-cli config --example`: a complete calibration file that parses and runs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

mod common;

use common::ekp;

use ekp_cli::config::Calibration;

const KINDS: [&str; 6] = [
    "inversion",
    "transform-inversion",
    "sampler",
    "unscented",
    "transform-unscented",
    "sparse-inversion",
];

#[test]
fn every_example_parses_and_shows_the_defaults() {
    for kind in KINDS {
        let text = ekp_cli::config::example::example(kind).unwrap();
        let cal = Calibration::parse(&text, "<example>").unwrap();
        assert_eq!(cal.process.kind(), kind);
        // Every key is spelled out: the parsed file equals the minimal one's defaults.
        for key in [
            "scheduler =",
            "localization =",
            "failure =",
            "nan_tolerance =",
            "accelerator =",
            "seed =",
            "iterations =",
        ] {
            assert!(text.contains(key), "{kind}: {key} missing");
        }
        let defaults = Calibration::parse(
            &text
                .lines()
                .filter(|l| {
                    ![
                        "scheduler",
                        "localization",
                        "failure",
                        "nan_tolerance",
                        "accelerator",
                    ]
                    .iter()
                    .any(|k| l.starts_with(k))
                })
                .collect::<Vec<_>>()
                .join("\n"),
            "<defaults>",
        )
        .unwrap();
        assert_eq!(cal.scheduler, defaults.scheduler, "{kind}");
        assert_eq!(cal.localizer, defaults.localizer, "{kind}");
        assert_eq!(cal.accelerator, defaults.accelerator, "{kind}");
        assert_eq!(cal.failure, defaults.failure, "{kind}");
        assert_eq!(cal.process, defaults.process, "{kind}");
    }
}

#[test]
fn the_printed_example_runs() {
    let tmp = tempfile::tempdir().unwrap();
    for kind in ["inversion", "unscented", "sparse-inversion"] {
        let o = ekp(&["config", "--example", "--process", kind], tmp.path());
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        // A short run: one update.
        let text = String::from_utf8(o.stdout)
            .unwrap()
            .replace("iterations = 5", "iterations = 1");
        std::fs::write(tmp.path().join("ex.toml"), text).unwrap();
        let o = ekp(
            &["run", "--config", "ex.toml", "--output", kind, "--quiet"],
            tmp.path(),
        );
        assert!(
            o.status.success(),
            "{kind}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(tmp.path().join(kind).join("result.toml").exists());
    }
}

#[test]
fn an_unknown_process_or_a_missing_flag_is_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let o = ekp(
        &["config", "--example", "--process", "nonsense"],
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nonsense"));
    let o = ekp(&["config"], tmp.path());
    assert_eq!(o.status.code(), Some(2));
}

/// The example with its `[model]` table replaced by `model` (TOML), and
/// the data and parameters that model needs.
fn with_model(example: &str, model: &toml::Table) -> String {
    let start = example.find("\n[model]").unwrap();
    let mut text = example[..start].to_string();
    let kind = model["kind"].as_str().unwrap();
    if kind == "sinusoid" {
        text = text
            .replace("name = \"F\"", "name = \"amplitude\"")
            .replace("name = \"A\"", "name = \"vert_shift\"")
            .replace(
                "truth = { F = 8.0, A = 2.5 }",
                "truth = { amplitude = 3.0, vert_shift = 7.0 }\nnoise_std = 0.1",
            );
    } else if kind == "linear" {
        text = text.replace(
            "truth = { F = 8.0, A = 2.5 }",
            "truth = { F = 8.0, A = 2.5 }\nnoise_std = 0.1",
        );
    } else {
        // A program cannot make synthetic data: the data are given.
        text = text.replace(
            "truth = { F = 8.0, A = 2.5 }",
            "values = [1.0, 2.0]\nnoise_std = 0.1",
        );
    }
    let mut doc = toml::Table::new();
    doc.insert("model".into(), toml::Value::Table(model.clone()));
    format!("{text}\n{}", toml::to_string(&doc).unwrap())
}

#[test]
fn every_commented_model_alternative_parses_as_written() {
    let example = ekp_cli::config::example::example("inversion").unwrap();
    let model_section = &example[example.find("\n[model]").unwrap()..];
    let alternatives: Vec<&str> = model_section
        .lines()
        .filter_map(|l| l.strip_prefix("# kind = "))
        .collect();
    assert!(alternatives.len() >= 6, "{model_section}");
    for alt in alternatives {
        let body = alt.split("   # ").next().unwrap();
        let inline: toml::Table = toml::from_str(&format!("m = {{ kind = {body} }}"))
            .unwrap_or_else(|e| panic!("`# kind = {alt}` is not TOML: {e}"));
        let model = inline["m"].as_table().unwrap();
        let text = with_model(&example, model);
        Calibration::parse(&text, "<example>")
            .unwrap_or_else(|e| panic!("`# kind = {alt}` does not parse: {e}\n{text}"));
    }
    // The command model's alternative gives the default arguments: copied as
    // written, it runs (the old `args = []` failed every member).
    let command = model_section
        .lines()
        .find(|l| l.starts_with("# kind = \"command\", program = \"./model.sh\""))
        .unwrap();
    assert!(
        command.contains(r#"args = ["{parameters}", "{output}"]"#),
        "{command}"
    );
}
