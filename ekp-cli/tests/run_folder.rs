//! `run` writes a calibration folder that survives interruption: killed
//! with SIGKILL at random points and continued with `run --resume`, it ends
//! with exactly the uninterrupted result; a folder holding something else
//! is refused before any model runs; `status`, `plot` and `update` work on
//! a `run` folder.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{ekp, fails, ok, snapshot};

/// The files whose bytes must not depend on interruptions.
const RESULT_FILES: [&str; 7] = [
    "result.toml",
    "history.csv",
    "ensembles.csv",
    "outputs.csv",
    "final_ensemble.csv",
    "state.toml",
    "observations.toml",
];

#[track_caller]
fn bad_input(o: &Output, words: &[&str]) -> String {
    fails(o, 2, words)
}

#[track_caller]
fn same_files(a: &Path, b: &Path) {
    for n in RESULT_FILES {
        let (x, y) = (std::fs::read(a.join(n)), std::fs::read(b.join(n)));
        assert!(
            x.as_ref().ok() == y.as_ref().ok() && x.is_ok(),
            "{n} differs between {} and {}",
            a.display(),
            b.display()
        );
    }
}

/// Kill delays, drawn from the clock (printed, so a failure can be replayed
/// with EKP_KILL_DELAYS="0.3 1.2 ...").
fn kill_delays(count: usize, max_seconds: f64) -> Vec<f64> {
    if let Ok(s) = std::env::var("EKP_KILL_DELAYS") {
        return s
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
    }
    let mut x = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(7, |d| d.as_nanos() as u64)
        | 1;
    (0..count)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Spread over the run: one delay in each slice, at a random place.
            let slice = max_seconds / count as f64;
            slice * (i as f64 + (x % 1000) as f64 / 1000.0)
        })
        .collect()
}

/// Start `ekp-cli args` in `dir`, SIGKILL it after `delay` seconds.
fn run_and_kill(args: &[&str], dir: &Path, delay: f64) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ekp-cli"))
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs_f64(delay));
    let _ = child.kill(); // SIGKILL (it may have finished already)
    let _ = child.wait();
}

/// A small Lorenz 96 calibration (the default's model, fewer members).
fn lorenz(dir: &Path) -> PathBuf {
    let text = include_str!("../src/config/default_config.toml")
        .replace("ensemble_size = 20", "ensemble_size = 12")
        .replace("iterations = 5", "iterations = 4");
    let path = dir.join("l96.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_built_in_run_killed_anywhere_resumes_to_the_uninterrupted_result() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let cfg = lorenz(t);
    let cfg = cfg.to_str().unwrap();
    let started = std::time::Instant::now();
    ok(&ekp(&["run", "-q", "--config", cfg, "--output", "ref"], t));
    let full = started.elapsed().as_secs_f64();
    let delays = kill_delays(5, full * 1.1);
    eprintln!("kill delays (s): {delays:?}");
    let mut interrupted = 0;
    for (i, delay) in delays.iter().enumerate() {
        let out = format!("k{i}");
        run_and_kill(&["run", "-q", "--config", cfg, "--output", &out], t, *delay);
        interrupted += usize::from(!t.join(&out).join("final_ensemble.csv").exists());
        // `--resume` continues whatever the kill left (or starts, if it
        // left nothing to continue).
        ok(&ekp(
            &["run", "-q", "--resume", "--config", cfg, "--output", &out],
            t,
        ));
        same_files(&t.join("ref"), &t.join(&out));
    }
    assert!(
        interrupted >= 2,
        "only {interrupted} kills interrupted a run"
    );
}

/// A command model that records each run in `runs.log` next to the
/// calibration folder's parent, and takes a little time.
const MODEL: &str = r#"#!/bin/sh
set -eu
a=$(sed -n 's/^a = //p' "$EKP_PARAMETERS")
b=$(sed -n 's/^b = //p' "$EKP_PARAMETERS")
echo "$EKP_ITERATION $EKP_MEMBER" >> "$EKP_DIR/../runs.log"
sleep 0.05
awk -v a="$a" -v b="$b" 'BEGIN { printf "values = [%.17g, %.17g, %.17g]\n", a + b, a - b, 2 * a + b }' > "$EKP_OUTPUT.part"
mv "$EKP_OUTPUT.part" "$EKP_OUTPUT"
"#;

const COMMAND: &str = r#"
[process]
kind = "inversion"
ensemble_size = 8
iterations = 3
seed = 5
scheduler = { kind = "fixed", dt = 0.5 }

[[parameters]]
name = "a"
prior = { kind = "gaussian", mean = 0.0, std = 1.0 }

[[parameters]]
name = "b"
prior = { kind = "gaussian", mean = 0.0, std = 1.0 }

[observations]
values = [1.0, 0.2, 1.6]
noise_std = 0.1

[model]
kind = "command"
program = "./model.sh"
"#;

fn command_setup(t: &Path) -> PathBuf {
    let model = t.join("model.sh");
    std::fs::write(&model, MODEL).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&model, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let cfg = t.join("c.toml");
    std::fs::write(&cfg, COMMAND).unwrap();
    cfg
}

/// `(iteration, member)` pairs with a recorded outcome in `dir`.
fn recorded(dir: &Path) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for it in 0..=3 {
        for m in 1..=8 {
            let p = dir.join(format!("iteration_{it:03}/member_{m:03}/status.toml"));
            if p.is_file() {
                out.push((it, m));
            }
        }
    }
    out
}

#[test]
fn a_command_run_killed_anywhere_resumes_without_rerunning_finished_members() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let cfg = command_setup(t);
    let cfg = cfg.to_str().unwrap();
    let reference = t.join("reference");
    std::fs::create_dir(&reference).unwrap();
    let started = std::time::Instant::now();
    ok(&ekp(
        &[
            "run", "-q", "--config", cfg, "--output", "ref", "--jobs", "2",
        ],
        &reference,
    ));
    let full = started.elapsed().as_secs_f64();
    let delays = kill_delays(4, full);
    eprintln!("kill delays (s): {delays:?}");
    let (mut interrupted, mut resumed_midway) = (0, 0);
    for (i, delay) in delays.iter().enumerate() {
        let work = t.join(format!("w{i}"));
        std::fs::create_dir(&work).unwrap();
        let args = ["run", "-q", "--config", cfg, "--output", "o", "--jobs", "2"];
        run_and_kill(&args, &work, *delay);
        let done_before = recorded(&work.join("o"));
        interrupted += usize::from(!work.join("o/final_ensemble.csv").exists());
        resumed_midway += usize::from(!done_before.len().is_multiple_of(8));
        // Model processes of the killed run may still be running: the
        // resumed run stops them before it runs those members again.
        let mut resume = args.to_vec();
        resume.push("--resume");
        ok(&ekp(&resume, &work));
        same_files(&reference.join("ref"), &work.join("o"));
        // Members recorded before the kill were not run again.
        let log = std::fs::read_to_string(work.join("runs.log")).unwrap_or_default();
        for (it, m) in done_before {
            let runs = log.lines().filter(|l| *l == format!("{it} {m}")).count();
            assert_eq!(
                runs, 1,
                "delay {delay}: iteration {it} member {m} ran {runs} times"
            );
        }
    }
    assert!(
        interrupted >= 2,
        "only {interrupted} kills interrupted a run"
    );
    eprintln!("{resumed_midway} kills fell inside an iteration");
}

#[test]
fn a_folder_holding_something_else_is_refused_before_any_model_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let cfg = command_setup(t);
    let cfg = cfg.to_str().unwrap();
    let runs = || std::fs::read_to_string(t.join("runs.log")).unwrap_or_default();

    // An `init` folder: run would destroy that calibration.
    ok(&ekp(&["init", "--config", cfg, "--dir", "wf"], t));
    let before = snapshot(&t.join("wf"));
    let err = bad_input(
        &ekp(
            &["run", "--config", cfg, "--output", "wf", "--seed", "9"],
            t,
        ),
        &[
            "wf",
            "another calibration",
            "--overwrite",
            "Nothing was changed",
        ],
    );
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(snapshot(&t.join("wf")), before);

    // The same calibration, unfinished: --resume or --overwrite.
    bad_input(
        &ekp(&["run", "--config", cfg, "--output", "wf"], t),
        &[
            "unfinished run of this calibration",
            "--resume",
            "--overwrite",
        ],
    );
    assert_eq!(snapshot(&t.join("wf")), before);

    // A folder with the user's own files in it.
    std::fs::create_dir(t.join("mine")).unwrap();
    std::fs::write(t.join("mine/notes.txt"), "keep me").unwrap();
    bad_input(
        &ekp(&["run", "--config", cfg, "--output", "mine"], t),
        &["mine", "notes.txt"],
    );
    bad_input(
        &ekp(
            &["run", "--config", cfg, "--output", "mine", "--overwrite"],
            t,
        ),
        &["notes.txt"],
    );
    assert_eq!(
        std::fs::read_to_string(t.join("mine/notes.txt")).unwrap(),
        "keep me"
    );

    // A file.
    std::fs::write(t.join("afile"), "x").unwrap();
    bad_input(
        &ekp(&["run", "--config", cfg, "--output", "afile"], t),
        &["afile", "not a folder"],
    );
    assert_eq!(std::fs::read_to_string(t.join("afile")).unwrap(), "x");

    // A folder that cannot be written (as root, permissions do not stop
    // writes: a folder under /proc stands in).
    let ro = t.join("ro");
    std::fs::create_dir(&ro).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    let unwritable = if std::fs::write(ro.join("probe"), "").is_ok() {
        let _ = std::fs::remove_file(ro.join("probe"));
        PathBuf::from("/proc/self/ekp-output")
    } else {
        ro.join("out")
    };
    let o = ekp(
        &[
            "run",
            "--config",
            cfg,
            "--output",
            unwritable.to_str().unwrap(),
        ],
        t,
    );
    bad_input(&o, &[unwritable.to_str().unwrap()]);

    // No refused run started a model.
    assert_eq!(runs(), "", "a model ran");

    // --overwrite replaces the init folder's calibration.
    ok(&ekp(
        &[
            "run",
            "-q",
            "--config",
            cfg,
            "--output",
            "wf",
            "--overwrite",
            "--seed",
            "9",
        ],
        t,
    ));
    let config = std::fs::read_to_string(t.join("wf/config.toml")).unwrap();
    assert!(
        config.contains("seed = 9"),
        "the seed that ran is recorded: {config}"
    );
}

#[test]
fn status_plot_update_and_rerun_work_on_a_run_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let cfg = command_setup(t);
    let cfg = cfg.to_str().unwrap();
    ok(&ekp(&["run", "-q", "--config", cfg, "--output", "o"], t));
    let status = ok(&ekp(&["status", "--dir", "o"], t));
    assert!(status.contains("complete: 3 updates applied"), "{status}");
    assert!(status.contains("member_008  done"), "{status}");
    let said = ok(&ekp(&["update", "--dir", "o"], t));
    assert!(said.contains("nothing to do"), "{said}");
    std::fs::remove_dir_all(t.join("o/plots")).unwrap();
    let plotted = ok(&ekp(&["plot", "--dir", "o"], t));
    assert!(plotted.contains("report.html"), "{plotted}");
    assert!(t.join("o/plots/misfit.svg").is_file());

    // Running the same command again replaces the finished run (same bytes);
    // --resume of a finished run changes nothing.
    let before = snapshot(&t.join("o"));
    let again = ok(&ekp(&["run", "--config", cfg, "--output", "o"], t));
    assert!(again.contains("replacing"), "{again}");
    let result = |dir: &str| std::fs::read(t.join(dir).join("result.toml")).unwrap();
    assert_eq!(
        result("o"),
        before
            .iter()
            .find(|(p, _)| p.ends_with("o/result.toml"))
            .map(|(_, b)| b.clone())
            .unwrap()
    );
    let resumed = ok(&ekp(&["run", "--resume", "--output", "o"], t));
    assert!(resumed.contains("complete; nothing to run"), "{resumed}");

    // A run killed at once: `run --resume` finishes it, `status` agrees.
    run_and_kill(&["run", "-q", "--config", cfg, "--output", "p"], t, 0.05);
    ok(&ekp(
        &["run", "-q", "--resume", "--config", cfg, "--output", "p"],
        t,
    ));
    same_files(&t.join("o"), &t.join("p"));
    let status = ok(&ekp(&["status", "--dir", "p"], t));
    assert!(status.contains("complete"), "{status}");
}

/// The record (`workflow.toml`) is the last file `RunFolder::create`
/// writes: when writing it fails (here a folder is in its way), everything
/// else is already there, and without the record the folder is an
/// `Occupant::Partial` that `run` starts again — never a calibration missing
/// its state (a `run` killed between the record and the state once left one).
#[test]
fn the_record_is_written_last() {
    use ekp_cli::config::Calibration;
    use ekp_cli::folder::{self, MadeBy, Occupant, RunFolder};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cal");
    std::fs::create_dir_all(dir.join(folder::META_FILE).join("in-the-way")).unwrap();
    let cal = Calibration::embedded_default().unwrap();
    let observation = ekp_cli::models::observation(&cal).unwrap();
    let ekp = ekp_cli::driver::start(&cal, observation).unwrap();
    assert!(RunFolder::create(&dir, cal, None, MadeBy::Run, &ekp).is_err());
    for file in [folder::CONFIG_FILE, folder::STATE_FILE, "observations.toml"] {
        assert!(
            dir.join(file).is_file(),
            "{file} is written before the record"
        );
    }
    assert!(dir.join("iteration_000").is_dir());
    std::fs::remove_dir_all(dir.join(folder::META_FILE)).unwrap();
    assert!(matches!(folder::inspect(&dir).unwrap(), Occupant::Partial));
}
