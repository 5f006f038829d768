//! Ctrl-C, SIGTERM and time limits: ekp-cli stops its members' process
//! groups (children of a shell script included), keeps every finished step,
//! says how to continue and exits 128 + the signal; no model process
//! outlives it, and `run --resume` then ends with the uninterrupted result.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{ekp, text};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A slow model: records its own pid and its child's in `pids/`, then
/// waits for a child `sleep` (so stopping only the script would leave the
/// child behind).
const SLOW: &str = r#"#!/bin/sh
mkdir -p "$EKP_DIR/../pids"
echo $$ > "$EKP_DIR/../pids/$EKP_ITERATION-$EKP_MEMBER.sh"
sleep 60 &
echo $! > "$EKP_DIR/../pids/$EKP_ITERATION-$EKP_MEMBER.sleep"
wait
"#;

/// The same model, fast: the calibration file is unchanged.
const FAST: &str = r#"#!/bin/sh
set -eu
a=$(sed -n 's/^a = //p' "$EKP_PARAMETERS")
awk -v a="$a" 'BEGIN { printf "values = [%.17g, %.17g]\n", a, 2 * a }' > "$EKP_OUTPUT"
"#;

const CONFIG: &str = r#"
[process]
kind = "inversion"
ensemble_size = 6
iterations = 2
seed = 3
scheduler = { kind = "fixed", dt = 0.5 }

[[parameters]]
name = "a"
prior = { kind = "gaussian", mean = 0.0, std = 1.0 }

[observations]
values = [0.7, 1.4]
noise_std = 0.1

[model]
kind = "command"
program = "./model.sh"
"#;

fn write_model(dir: &Path, body: &str) {
    let p = dir.join("model.sh");
    std::fs::write(&p, body).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn alive(pid: i32) -> bool {
    // Signal 0 checks for existence; a zombie still counts until reaped,
    // so look at its state too.
    if kill(Pid::from_raw(pid), None).is_err() {
        return false;
    }
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

fn pids(dir: &Path) -> Vec<i32> {
    std::fs::read_dir(dir.join("pids"))
        .map(|it| {
            it.flatten()
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .filter_map(|s| s.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Start a run of the slow model, wait until `jobs` members are running,
/// send `signal`; returns (exit code, stderr, the models' pids, seconds to exit).
fn interrupt(dir: &Path, signal: Signal, jobs: usize) -> (Option<i32>, String, Vec<i32>, f64) {
    write_model(dir, SLOW);
    std::fs::write(dir.join("c.toml"), CONFIG).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_ekp-cli"))
        .args(["run", "-q", "--config", "c.toml", "--output", "o", "--jobs"])
        .arg(jobs.to_string())
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while pids(dir).len() < 2 * jobs && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let running = pids(dir);
    assert_eq!(running.len(), 2 * jobs, "the members did not start");
    let sent = Instant::now();
    kill(Pid::from_raw(child.id() as i32), signal).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        text(&out.stderr),
        running,
        sent.elapsed().as_secs_f64(),
    )
}

#[test]
fn ctrl_c_stops_every_model_process_and_resume_finishes_the_calibration() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (code, err, running, secs) = interrupt(t, Signal::SIGINT, 3);
    assert_eq!(code, Some(130), "{err}");
    assert!(err.contains("SIGINT") && err.contains("--resume"), "{err}");
    assert!(secs < 10.0, "took {secs} s to stop");
    for pid in &running {
        assert!(!alive(*pid), "model process {pid} outlived ekp-cli");
    }
    // The interrupted members left no outcome: they run again on resume.
    for m in 1..=6 {
        let status = t.join(format!("o/iteration_000/member_{m:03}/status.toml"));
        assert!(!status.exists(), "{} was recorded", status.display());
    }
    // Same calibration file, a model that now finishes: resume completes
    // with the result of an uninterrupted run.
    write_model(t, FAST);
    let out = ekp(&["run", "-q", "--resume", "--output", "o"], t);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let reference = t.join("reference");
    std::fs::create_dir(&reference).unwrap();
    write_model(&reference, FAST);
    std::fs::write(reference.join("c.toml"), CONFIG).unwrap();
    let out = ekp(
        &["run", "-q", "--config", "c.toml", "--output", "o"],
        &reference,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    for f in ["result.toml", "history.csv", "outputs.csv", "state.toml"] {
        assert_eq!(
            std::fs::read(t.join("o").join(f)).unwrap(),
            std::fs::read(reference.join("o").join(f)).unwrap(),
            "{f}"
        );
    }
}

#[test]
fn sigterm_stops_the_run_with_exit_143_and_no_survivors() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, err, running, _) = interrupt(tmp.path(), Signal::SIGTERM, 2);
    assert_eq!(code, Some(143), "{err}");
    assert!(err.contains("SIGTERM"), "{err}");
    for pid in &running {
        assert!(!alive(*pid), "model process {pid} outlived ekp-cli");
    }
}

#[test]
fn a_member_past_its_time_limit_is_stopped_even_if_it_ignores_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    // Ignores SIGTERM: only SIGKILL, after the grace period, ends it.
    write_model(
        t,
        "#!/bin/sh\ntrap '' TERM\nmkdir -p \"$EKP_DIR/../pids\"\necho $$ > \"$EKP_DIR/../pids/$EKP_MEMBER\"\nwhile :; do sleep 0.1; done\n",
    );
    std::fs::write(t.join("c.toml"), CONFIG).unwrap();
    ok_init(t);
    let start = Instant::now();
    let out = ekp(
        &[
            "forward",
            "--dir",
            "wf",
            "--member",
            "1",
            "--member-timeout",
            "0.5",
        ],
        t,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(start.elapsed() < Duration::from_secs(15));
    let said = text(&out.stdout);
    assert!(
        said.contains("FAILED") && said.contains("timed out"),
        "{said}"
    );
    for pid in pids(t) {
        assert!(!alive(pid), "model process {pid} outlived its time limit");
    }
}

fn ok_init(t: &Path) {
    let out = ekp(&["init", "--config", "c.toml", "--dir", "wf"], t);
    assert!(out.status.success(), "{}", text(&out.stderr));
}
