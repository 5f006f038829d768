//! Global `-v`/`-q`, `RUST_LOG`, and `run --json`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

use std::path::Path;
use std::process::{Command, Output};

fn ekp(args: &[&str], dir: &Path, rust_log: Option<&str>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ekp-cli"));
    c.args(args).current_dir(dir).env_remove("RUST_LOG");
    if let Some(l) = rust_log {
        c.env("RUST_LOG", l);
    }
    c.output().expect("ekp-cli runs")
}

const LINEAR: &str = r#"
[process]
kind = "transform-inversion"
ensemble_size = 6
iterations = 2
[[parameters]]
name = "a"
prior = { kind = "gaussian", mean = 0.0, std = 2.0 }
[[parameters]]
name = "b"
prior = { kind = "gaussian", mean = 0.0, std = 2.0 }
[observations]
truth = { a = 1.0, b = -1.0 }
noise_std = 0.1
[model]
kind = "linear"
matrix = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]
"#;

fn setup() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("c.toml"), LINEAR).unwrap();
    tmp
}

#[test]
fn json_summary_is_the_only_stdout() {
    let tmp = setup();
    let o = ekp(
        &["run", "--config", "c.toml", "--output", "o", "--json"],
        tmp.path(),
        None,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("stdout is one JSON value");
    assert_eq!(v["process"], "transform-inversion");
    assert_eq!(v["iterations"], 2);
    assert_eq!(v["ensemble_size"], 6);
    assert!(v["final_loss"].as_f64().unwrap() >= 0.0);
    // The final metrics are those of history.csv's last row, by column name;
    // the Bayesian loss is (1/p) loss plus a non-negative prior term.
    let history = std::fs::read_to_string(tmp.path().join("o/history.csv")).unwrap();
    let header: Vec<&str> = history.lines().next().unwrap().split(',').collect();
    let last: Vec<&str> = history.lines().last().unwrap().split(',').collect();
    let col = |name: &str| -> f64 {
        let i = header.iter().position(|h| *h == name).unwrap();
        last[i].parse().unwrap()
    };
    for (json, csv) in [
        ("final_loss", "loss"),
        ("final_bayes_loss", "bayes_loss"),
        ("final_avg_rmse", "avg_rmse"),
        ("final_crps", "crps"),
    ] {
        assert_eq!(v[json].as_f64().unwrap(), col(csv), "{json} vs {csv}");
    }
    let p = 2.0;
    assert!(col("bayes_loss") >= col("loss") / p - 1e-15);
    assert!(col("crps") >= 0.0);
    assert_eq!(v["parameters"]["a"]["truth"], 1.0);
    assert!(v["parameters"]["b"]["mean"].as_f64().unwrap().is_finite());
    let files: Vec<&str> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(files.iter().any(|f| f.ends_with("result.toml")));
    assert!(files.iter().any(|f| f.ends_with("report.html")));
}

#[test]
fn verbosity_flags_and_rust_log_control_stderr() {
    let tmp = setup();
    let quiet = ekp(
        &["-q", "run", "--config", "c.toml", "--output", "o"],
        tmp.path(),
        None,
    );
    assert!(quiet.status.success());
    assert!(
        quiet.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&quiet.stderr)
    );
    let stdout = String::from_utf8_lossy(&quiet.stdout);
    assert!(!stdout.contains("iter "), "no table with -q: {stdout}");
    assert!(stdout.contains("update(s) applied"), "the summary stays");

    let v = ekp(
        &["run", "--config", "c.toml", "--output", "o", "-v"],
        tmp.path(),
        None,
    );
    let err = String::from_utf8_lossy(&v.stderr);
    assert!(err.contains("INFO") && err.contains("run starts"), "{err}");
    assert!(!err.contains("DEBUG"), "{err}");

    let vv = ekp(
        &["-vv", "run", "--config", "c.toml", "--output", "o"],
        tmp.path(),
        None,
    );
    let err = String::from_utf8_lossy(&vv.stderr);
    assert!(
        err.contains("DEBUG") && err.contains("ensemble done"),
        "{err}"
    );

    // RUST_LOG wins over the flags.
    let env = ekp(
        &["-q", "run", "--config", "c.toml", "--output", "o"],
        tmp.path(),
        Some("debug"),
    );
    assert!(String::from_utf8_lossy(&env.stderr).contains("ensemble done"));
}

#[test]
fn too_small_ensembles_are_warned_about_as_ekp_jl_does() {
    // 6 members for 2 parameters: EKP.jl recommends at least 10.
    let tmp = setup();
    let o = ekp(
        &["run", "--config", "c.toml", "--output", "o"],
        tmp.path(),
        None,
    );
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("WARN") && err.contains("recommended minimum ensemble size is 10"),
        "{err}"
    );
    // 20 members for 2 parameters: nothing to say.
    let big = LINEAR.replace("ensemble_size = 6", "ensemble_size = 20");
    std::fs::write(tmp.path().join("big.toml"), big).unwrap();
    let o = ekp(
        &["run", "--config", "big.toml", "--output", "o2"],
        tmp.path(),
        None,
    );
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("recommended minimum"), "{err}");
}
