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
