//! What a person reads: significant digits, what "±" is, colour (`--color`,
//! `NO_COLOR`), `-q`, timestamps only with `-vv`, `--version`, shell
//! completions and the man page, `--json` for `status` and `prior`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{ekp, ok, text};

/// A linear model whose two parameters are 2e-5 and 3e4: neither may print
/// as `0.0000` or with a meaningless string of digits.
const TINY: &str = r#"
[process]
kind = "inversion"
ensemble_size = 20
iterations = 3
seed = 5

[[parameters]]
name = "tiny"
prior = { kind = "gaussian", mean = 2e-5, std = 1e-5 }

[[parameters]]
name = "huge"
prior = { kind = "gaussian", mean = 3e4, std = 1e3 }

[observations]
values = [2.1e-5, 3.05e4]
noise_std = [1e-6, 10.0]

[model]
kind = "linear"
matrix = [[1.0, 0.0], [0.0, 1.0]]
"#;

#[test]
fn estimates_keep_their_significant_digits_and_say_what_the_spread_is() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    std::fs::write(t.join("tiny.toml"), TINY).unwrap();
    let out = ok(&ekp(&["run", "--config", "tiny.toml", "--output", "o"], t));
    assert!(!out.contains("0.0000 ±"), "{out}");
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with("tiny ="))
        .unwrap();
    // `2.0xxxe-5 ± y.yye-6`: the estimate with 5 significant digits.
    let value = line
        .split('=')
        .nth(1)
        .unwrap()
        .split('±')
        .next()
        .unwrap()
        .trim();
    assert!(value.contains("e-5"), "{line}");
    let v: f64 = value.parse().unwrap();
    assert!((1.9e-5..2.2e-5).contains(&v), "{line}");
    assert!(out.contains("tiny (mean ± spread)"), "{out}");
    assert!(out.contains("is the ensemble's spread"), "{out}");
    // The prior table too.
    let prior = ok(&ekp(&["prior", "--config", "tiny.toml"], t));
    assert!(
        prior.contains("2.0000e-5") && prior.contains("30000"),
        "{prior}"
    );
    // A sampler's "±" is a posterior std.
    let sampler = TINY.replace("kind = \"inversion\"", "kind = \"sampler\"");
    std::fs::write(t.join("s.toml"), sampler).unwrap();
    let out = ok(&ekp(&["run", "--config", "s.toml", "--output", "s"], t));
    assert!(
        out.contains("tiny (mean ± std)") && out.contains("posterior standard deviation"),
        "{out}"
    );
}

/// A calibration that warns (20 members recommended for 2 parameters: 10 given).
fn warning_config(dir: &std::path::Path) {
    std::fs::write(
        dir.join("w.toml"),
        TINY.replace("ensemble_size = 20", "ensemble_size = 10"),
    )
    .unwrap();
}

#[test]
fn colour_follows_color_and_no_color_and_logs_carry_no_timestamp_by_default() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    warning_config(t);
    // `init` warns (10 members for 2 parameters); each call a new folder.
    let counter = std::cell::Cell::new(0);
    let args = |extra: &[&'static str]| {
        counter.set(counter.get() + 1);
        let mut a = vec![
            "init".to_string(),
            "--config".into(),
            "w.toml".into(),
            "--dir".into(),
            format!("d{}", counter.get()),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let run = |a: Vec<String>, no_color: bool| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_ekp-cli"));
        c.args(&a).current_dir(t);
        if no_color {
            c.env("NO_COLOR", "1");
        } else {
            c.env_remove("NO_COLOR");
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", text(&o.stderr));
        text(&o.stderr)
    };
    let always = run(args(&["--color", "always"]), false);
    assert!(
        always.contains("WARN") && always.contains('\u{1b}'),
        "{always:?}"
    );
    let never = run(args(&["--color", "never"]), false);
    assert!(
        never.contains("WARN") && !never.contains('\u{1b}'),
        "{never:?}"
    );
    let no_color = run(args(&[]), true);
    assert!(
        no_color.contains("WARN") && !no_color.contains('\u{1b}'),
        "{no_color:?}"
    );
    // No timestamp (2026-12-07T05:56:50.140488Z) unless -vv.
    let has_stamp = |s: &str| {
        s.lines().any(|l| {
            l.len() > 20
                && l.as_bytes()[4] == b'-'
                && l.contains('T')
                && l[..30.min(l.len())].contains('Z')
        })
    };
    assert!(!has_stamp(&never), "{never}");
    assert!(has_stamp(&run(args(&["--color", "never", "-vv"]), false)));
    // -q: nothing on stderr at all.
    assert_eq!(run(args(&["-q"]), false), "");
}

#[test]
fn quiet_silences_notes_of_the_file_workflow() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    std::fs::write(t.join("tiny.toml"), TINY).unwrap();
    ok(&ekp(&["init", "--config", "tiny.toml", "--dir", "d"], t));
    ok(&ekp(&["forward", "--dir", "d", "--members", "1-20"], t));
    ok(&ekp(&["update", "--dir", "d"], t));
    // Iteration 0 again: a note says it was already used; -q silences it.
    let o = ekp(
        &[
            "forward",
            "--dir",
            "d",
            "--iteration",
            "0",
            "--member",
            "1",
            "--member-timeout",
            "5",
        ],
        t,
    );
    assert!(
        text(&o.stderr).contains("note: iteration 0 was already used"),
        "{}",
        text(&o.stderr)
    );
    assert!(
        text(&o.stderr).contains("note: --member-timeout"),
        "{}",
        text(&o.stderr)
    );
    let o = ekp(
        &[
            "-q",
            "forward",
            "--dir",
            "d",
            "--iteration",
            "0",
            "--member",
            "1",
            "--member-timeout",
            "5",
        ],
        t,
    );
    assert!(o.status.success());
    assert_eq!(text(&o.stderr), "");
}

#[test]
fn version_completions_and_man_page() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let v = ok(&ekp(&["--version"], t));
    assert!(
        v.starts_with("ekp-cli ") && v.contains("commit ") && v.contains("features: gpu, plots"),
        "{v}"
    );
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let c = ok(&ekp(&["completions", shell], t));
        assert!(
            c.contains("ekp-cli") && c.contains("members-per-task"),
            "{shell}: {}",
            &c[..c.len().min(200)]
        );
    }
    let bash = ok(&ekp(&["completions", "bash"], t));
    let check = std::process::Command::new("bash")
        .arg("-n")
        .stdin(std::process::Stdio::piped())
        .spawn();
    if let Ok(mut child) = check {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(bash.as_bytes())
            .unwrap();
        assert!(
            child.wait().unwrap().success(),
            "the bash completion script is not valid bash"
        );
    }
    let man = ok(&ekp(&["man"], t));
    assert!(
        man.contains(".TH ekp-cli 1") && man.contains("completions"),
        "{}",
        &man[..300]
    );
    assert_eq!(ekp(&["completions", "tcsh"], t).status.code(), Some(2));
}

#[test]
fn status_and_prior_speak_json() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    std::fs::write(t.join("tiny.toml"), TINY).unwrap();
    ok(&ekp(&["init", "--config", "tiny.toml", "--dir", "d"], t));
    ok(&ekp(&["forward", "--dir", "d", "--members", "1-5"], t));
    let s: serde_json::Value =
        serde_json::from_str(&ok(&ekp(&["status", "--dir", "d", "--json"], t))).unwrap();
    assert_eq!(s["process"], "inversion");
    assert_eq!(s["updates"], 0);
    assert_eq!(s["complete"], false);
    let members = s["members"].as_array().unwrap();
    assert_eq!(members.len(), 20);
    let count = |state: &str| members.iter().filter(|m| m["state"] == state).count();
    assert_eq!((count("done"), count("missing")), (5, 15));
    let p: serde_json::Value =
        serde_json::from_str(&ok(&ekp(&["prior", "--config", "tiny.toml", "--json"], t))).unwrap();
    let tiny = &p["parameters"][0];
    assert_eq!(tiny["name"], "tiny");
    assert_eq!(tiny["mean"], 2e-5);
    assert!(tiny["lower"].is_null() && tiny["upper"].is_null());
}

#[test]
fn named_data_name_the_output_columns_and_bad_labels_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let named = TINY.replace(
        "noise_std = [1e-6, 10.0]",
        "noise_std = [1e-6, 10.0]\nnames = [\"small one\", \"big, one\"]\ncoordinates = [0.5, 2.5]",
    );
    std::fs::write(t.join("n.toml"), &named).unwrap();
    ok(&ekp(
        &["run", "-q", "--config", "n.toml", "--output", "o"],
        t,
    ));
    let csv = std::fs::read_to_string(t.join("o/outputs.csv")).unwrap();
    assert!(
        csv.starts_with("iteration,member,small one,\"big, one\"\n"),
        "{}",
        &csv[..80]
    );
    for (bad, key) in [
        ("names = [\"a\"]", "observations.names"),
        ("names = [\"a\", \"a\"]", "observations.names"),
        ("names = [\"a\", \"b\\u0007\"]", "observations.names"),
        ("coordinates = [1.0, 2.0, 3.0]", "observations.coordinates"),
        ("coordinates = [1.0, nan]", "observations.coordinates"),
    ] {
        let cfg = TINY.replace(
            "noise_std = [1e-6, 10.0]",
            &format!("noise_std = [1e-6, 10.0]\n{bad}"),
        );
        std::fs::write(t.join("b.toml"), cfg).unwrap();
        let o = ekp(&["prior", "--config", "b.toml"], t);
        assert_eq!(o.status.code(), Some(2), "{bad}");
        assert!(text(&o.stderr).contains(key), "{bad}: {}", text(&o.stderr));
    }
}

#[test]
fn the_report_summary_says_why_the_run_stopped_and_shows_the_estimates() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    std::fs::write(t.join("tiny.toml"), TINY).unwrap();
    ok(&ekp(
        &["run", "-q", "--config", "tiny.toml", "--output", "o"],
        t,
    ));
    let html = std::fs::read_to_string(t.join("o/report.html")).unwrap();
    let summary = &html[html.find("<section id=\"summary\">").unwrap()
        ..html.find("<section id=\"plots\">").unwrap()];
    assert!(summary.contains("complete: all 3 updates"), "{summary}");
    assert!(
        summary.contains("± spread") && summary.contains("not an error bar"),
        "{summary}"
    );
    // The tiny parameter's estimate in significant digits, not 0.00000.
    let row = summary
        .lines()
        .find(|l| l.contains("<td>tiny</td>"))
        .unwrap();
    assert!(row.contains("e-5"), "{row}");
    // No number printed as `8.33344e0`, and numbers never wrap.
    assert!(!html.contains("e0<"), "a number in e0 notation");
    assert!(html.contains("white-space:nowrap"));
}
