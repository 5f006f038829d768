//! The file workflow (`init`, `forward`, `update`, `status`), `command`
//! models in `run`, and the scripts `slurm` writes — everything that needs no
//! SLURM cluster (see `tests/slurm.rs` for the real one).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::snapshot;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ekp-cli")
}

fn ekp_env(args: &[&str], dir: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .current_dir(dir)
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("EKP_FAULT_INJECTION");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("ekp-cli runs")
}

fn ekp(args: &[&str], dir: &Path) -> Output {
    ekp_env(args, dir, &[])
}

fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).into_owned()
}

#[track_caller]
fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout)
}

/// Exit code 2 (bad input), and the message names every one of `words`.
#[track_caller]
fn bad_input(o: &Output, words: &[&str]) -> String {
    let err = text(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(2),
        "expected exit 2\nstdout: {}\nstderr: {err}",
        text(&o.stdout)
    );
    for w in words {
        assert!(err.contains(w), "`{w}` not in: {err}");
    }
    err
}

fn example_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/command-model/model.sh")
        .canonicalize()
        .expect("examples/command-model/model.sh")
}

fn write_exe(path: &Path, contents: &str) {
    std::fs::write(path, contents).expect("write script");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
}

/// A built-in model with a vector parameter and synthetic data: `forward`
/// evaluates it in-process.
const LINEAR: &str = r#"
[process]
kind = "inversion"
ensemble_size = 8
iterations = 3
seed = 11
scheduler = { kind = "fixed", dt = 0.5 }

[[parameters]]
name = "theta"
size = 2
prior = { kind = "gaussian", mean = 0.0, std = 1.0 }

[[parameters]]
name = "k"
prior = { kind = "constrained-gaussian", mean = 1.0, std = 0.5, lower = 0.0 }

[observations]
truth = { theta = [0.5, -0.3], k = 1.2 }
noise_std = 0.1

[model]
kind = "linear"
matrix = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0]]
"#;

/// LINEAR with the process options that carry state between updates:
/// minibatches in random order, localization, an accelerator.
fn linear_with_options() -> String {
    LINEAR.replace(
        "scheduler = { kind = \"fixed\", dt = 0.5 }",
        "scheduler = { kind = \"fixed\", dt = 0.5 }\n\
         localization = { kind = \"sec\", alpha = 1.0 }\n\
         accelerator = { kind = \"constant-nesterov\" }\n\
         minibatch = { kind = \"fixed\", batches = [[1], [2]], order = \"random\", observation_sizes = [2, 2] }",
    )
}

/// The example command model, with `program` as given.
fn decay(program: &str, members: usize, iterations: usize) -> String {
    format!(
        r#"
[process]
kind = "inversion"
ensemble_size = {members}
iterations = {iterations}
seed = 7

[[parameters]]
name = "rate"
prior = {{ kind = "constrained-gaussian", mean = 1.0, std = 0.5, lower = 0.0 }}

[[parameters]]
name = "initial"
prior = {{ kind = "gaussian", mean = 8.0, std = 3.0 }}

[observations]
values = [10.12, 5.98, 3.74, 2.19, 1.38]
noise_std = 0.2

[model]
kind = "command"
program = "{program}"
"#
    )
}

/// A model whose members 2–5 fail in iterations 0 and 1: 2 exits 3, 3 hangs,
/// 4 writes NaN, 5 writes two values instead of five. The others run the
/// example model.
fn failing_model(dir: &Path) -> PathBuf {
    let path = dir.join("flaky.sh");
    write_exe(
        &path,
        &format!(
            r#"#!/bin/sh
if [ "$EKP_ITERATION" -le 1 ]; then
    case "$EKP_MEMBER" in
    2) echo "member 2 crashes on purpose" >&2; exit 3 ;;
    3) sleep 60 & echo $! > sleep.pid; wait; exit 0 ;;
    4) echo 'values = [nan, 1.0, 1.0, 1.0, 1.0]' > "$EKP_OUTPUT"; exit 0 ;;
    5) echo 'values = [1.0, 2.0]' > "$EKP_OUTPUT"; exit 0 ;;
    esac
fi
exec '{}' "$@"
"#,
            example_model().display()
        ),
    );
    path
}

/// init, then `rounds` times: forward every member, update — a plain shell loop.
fn shell_loop(cwd: &Path, config: &Path, dir: &str, members: usize, rounds: usize) -> Output {
    let script = r#"
set -eu
"$EKP" init --config "$CONFIG" --dir "$DIR"
i=0
while [ "$i" -lt "$ROUNDS" ]; do
    j=1
    while [ "$j" -le "$MEMBERS" ]; do
        "$EKP" forward --dir "$DIR" --iteration "$i" --member "$j"
        j=$((j + 1))
    done
    "$EKP" update --dir "$DIR"
    i=$((i + 1))
done
"#;
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(cwd)
        .env("EKP", bin())
        .env("CONFIG", config)
        .env("DIR", dir)
        .env("MEMBERS", members.to_string())
        .env("ROUNDS", rounds.to_string())
        .env_remove("SLURM_ARRAY_TASK_ID")
        .output()
        .expect("sh runs")
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[track_caller]
fn same_files(a: &Path, b: &Path, names: &[&str]) {
    for n in names {
        assert!(
            read(&a.join(n)) == read(&b.join(n)),
            "{n} differs between {} and {}",
            a.display(),
            b.display()
        );
    }
}

const RUN_FILES: [&str; 7] = [
    "result.toml",
    "history.csv",
    "ensembles.csv",
    "outputs.csv",
    "final_ensemble.csv",
    "state.toml",
    "observations.toml",
];

#[test]
fn a_shell_loop_reproduces_run_bit_for_bit_with_a_built_in_model() {
    let tmp = tempfile::tempdir().unwrap();
    let options = tmp.path().join("options.toml");
    std::fs::write(&options, linear_with_options()).unwrap();
    assert!(
        std::fs::read_to_string(&options)
            .unwrap()
            .contains("minibatch")
    );
    ok(&ekp(
        &[
            "run",
            "-q",
            "--config",
            "options.toml",
            "--output",
            "run-options",
        ],
        tmp.path(),
    ));
    ok(&shell_loop(tmp.path(), &options, "wf-options", 8, 4));
    same_files(
        &tmp.path().join("run-options"),
        &tmp.path().join("wf-options"),
        &RUN_FILES,
    );

    let cfg = tmp.path().join("linear.toml");
    std::fs::write(&cfg, LINEAR).unwrap();
    ok(&ekp(
        &["run", "-q", "--config", "linear.toml", "--output", "run"],
        tmp.path(),
    ));
    // More rounds than needed: the extra forward/update calls are no-ops.
    let out = shell_loop(tmp.path(), &cfg, "wf", 8, 5);
    let stdout = ok(&out);
    assert!(stdout.contains("calibration complete"), "{stdout}");
    assert!(stdout.contains("nothing to"), "{stdout}");
    same_files(&tmp.path().join("run"), &tmp.path().join("wf"), &RUN_FILES);

    // Parameter files hold constrained values by name, vectors as arrays.
    let p: toml::Table = toml::from_str(
        &std::fs::read_to_string(
            tmp.path()
                .join("wf/iteration_002/member_008/parameters.toml"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(p["theta"].as_array().map(Vec::len), Some(2));
    assert!(p["k"].as_float().unwrap() > 0.0);

    let status = ok(&ekp(&["status", "--dir", "wf"], tmp.path()));
    assert!(status.contains("complete: 3 updates applied"), "{status}");
    assert!(status.contains("member_008  done"), "{status}");
    assert!(status.contains("misfit history"), "{status}");
}

#[test]
fn a_shell_loop_reproduces_run_bit_for_bit_with_a_command_model() {
    let tmp = tempfile::tempdir().unwrap();
    // A relative program resolves against the calibration file's folder,
    // wherever ekp-cli is run from (and, after init, against the original's).
    let models = tmp.path().join("models");
    std::fs::create_dir(&models).unwrap();
    std::fs::copy(example_model(), models.join("model.sh")).unwrap();
    let cfg = models.join("decay.toml");
    std::fs::write(&cfg, decay("./model.sh", 6, 3)).unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let out = ekp(
        &[
            "run",
            "-q",
            "--config",
            cfg.to_str().unwrap(),
            "--output",
            "run",
            "--jobs",
            "3",
        ],
        &work,
    );
    ok(&out);
    let out = shell_loop(&work, &cfg, "wf", 6, 4);
    ok(&out);
    same_files(&work.join("run"), &work.join("wf"), &RUN_FILES);
    // Each member ran in its own folder and left its files there.
    let m = work.join("wf/iteration_001/member_006");
    for f in [
        "parameters.toml",
        "output.toml",
        "status.toml",
        "stdout.log",
        "stderr.log",
    ] {
        assert!(m.join(f).is_file(), "{f} missing in {}", m.display());
    }
    let result: toml::Table =
        toml::from_str(&std::fs::read_to_string(work.join("wf/result.toml")).unwrap()).unwrap();
    let rate = result["parameters"]["rate"]["mean"].as_float().unwrap();
    assert!((rate - 0.5).abs() < 0.1, "rate = {rate}");
}

#[test]
fn failed_members_are_recorded_and_the_calibration_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let flaky = failing_model(tmp.path());
    let cfg = tmp.path().join("flaky.toml");
    std::fs::write(&cfg, decay(flaky.to_str().unwrap(), 10, 3)).unwrap();

    let started = Instant::now();
    let out = ekp(
        &[
            "run",
            "-q",
            "--config",
            "flaky.toml",
            "--output",
            "run",
            "--member-timeout",
            "1s",
        ],
        tmp.path(),
    );
    ok(&out);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the hung member was not stopped at its time limit"
    );
    let history = std::fs::read_to_string(tmp.path().join("run/history.csv")).unwrap();
    let failed: Vec<&str> = history
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(4).unwrap())
        .collect();
    assert_eq!(&failed[..3], &["2 3 4 5", "2 3 4 5", ""], "{history}");

    let reason = |root: &str, it: usize, member: usize| -> String {
        let p = tmp.path().join(format!(
            "{root}/iteration_{it:03}/member_{member:03}/status.toml"
        ));
        let t: toml::Table = toml::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        assert_eq!(t["status"].as_str(), Some("failed"), "{}", p.display());
        t["reason"].as_str().unwrap().to_string()
    };
    assert!(reason("run", 0, 2).contains("exited with status 3"));
    assert!(reason("run", 0, 3).contains("timed out"));
    assert!(reason("run", 0, 4).contains("NaN"));
    assert!(reason("run", 0, 5).contains("has 2 entries"));
    // Its stderr is kept.
    let stderr =
        std::fs::read_to_string(tmp.path().join("run/iteration_000/member_002/stderr.log"))
            .unwrap();
    assert!(stderr.contains("crashes on purpose"), "{stderr}");
    // The hung member was killed with its children.
    let pid =
        std::fs::read_to_string(tmp.path().join("run/iteration_000/member_003/sleep.pid")).unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
    assert!(
        stat.is_empty() || stat.contains(") Z "),
        "the hung member's child still runs: {stat}"
    );

    // The file workflow, one member at a time, records the same failures and
    // reaches the same result.
    let out = Command::new("sh")
        .arg("-c")
        .arg(
            r#"set -eu
"$EKP" init --config flaky.toml --dir wf
for i in 0 1 2 3; do
  for j in 1 2 3 4 5 6 7 8 9 10; do "$EKP" forward --dir wf --iteration $i --member $j --member-timeout 1; done
  if [ $i = 0 ]; then "$EKP" status --dir wf > status0.txt; fi
  "$EKP" update --dir wf
done"#,
        )
        .current_dir(tmp.path())
        .env("EKP", bin())
        .env_remove("SLURM_ARRAY_TASK_ID")
        .output()
        .unwrap();
    let stdout = ok(&out);
    assert!(stdout.contains("member_002: FAILED"), "{stdout}");
    assert!(stdout.contains("calibration complete"), "{stdout}");
    assert!(
        text(&out.stderr).contains("4 of 10 members failed"),
        "{}",
        text(&out.stderr)
    );
    let status = std::fs::read_to_string(tmp.path().join("status0.txt")).unwrap();
    assert!(status.contains("6 done, 4 failed, 0 missing"), "{status}");
    assert!(
        status.contains("member_003  failed   timed out"),
        "{status}"
    );
    assert!(status.contains("member_005  failed"), "{status}");
    assert!(reason("wf", 1, 4).contains("NaN"));
    same_files(&tmp.path().join("run"), &tmp.path().join("wf"), &RUN_FILES);
}

#[test]
fn missing_members_count_as_failed() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("linear.toml"), LINEAR).unwrap();
    ok(&ekp(
        &["init", "--config", "linear.toml", "--dir", "wf"],
        tmp.path(),
    ));
    for j in ["1", "2", "3", "5", "8"] {
        ok(&ekp(&["forward", "--dir", "wf", "--member", j], tmp.path()));
    }
    let status = ok(&ekp(&["status", "--dir", "wf"], tmp.path()));
    assert!(status.contains("5 done, 0 failed, 3 missing"), "{status}");
    assert!(status.contains("member_004  missing"), "{status}");
    // Members that have not run stop the update (exit 2, listed) ...
    let out = ekp(&["update", "--dir", "wf"], tmp.path());
    let err = bad_input(&out, &["members 4 6-7", "--allow-missing"]);
    assert!(err.contains("Nothing was changed"), "{err}");
    // ... unless they are counted as failed.
    let out = ekp(&["update", "--dir", "wf", "--allow-missing"], tmp.path());
    ok(&out);
    assert!(text(&out.stderr).contains("member_004: missing"));
    let history = std::fs::read_to_string(tmp.path().join("wf/history.csv")).unwrap();
    assert!(history.contains(",4 6 7,"), "{history}");
}

/// A folder initialised with LINEAR whose iteration 0 has run.
fn ready_for_update(tmp: &Path) {
    std::fs::write(tmp.join("linear.toml"), LINEAR).unwrap();
    ok(&ekp(
        &["init", "--config", "linear.toml", "--dir", "wf"],
        tmp,
    ));
    for j in 1..=8 {
        ok(&ekp(
            &["forward", "--dir", "wf", "--member", &j.to_string()],
            tmp,
        ));
    }
}

#[test]
fn bad_input_is_refused_clearly_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    ready_for_update(t);
    let wf = t.join("wf");
    let before = snapshot(&wf);
    let state = wf.join("state.toml");
    let good_state = read(&state);

    // A missing state.
    std::fs::remove_file(&state).unwrap();
    bad_input(
        &ekp(&["update", "--dir", "wf"], t),
        &["state.toml", "missing"],
    );
    std::fs::write(&state, &good_state).unwrap();

    // A corrupted state: garbage, and a truncated file.
    for broken in [
        b"this is not TOML [[[".to_vec(),
        good_state[..good_state.len() / 2].to_vec(),
    ] {
        std::fs::write(&state, &broken).unwrap();
        bad_input(
            &ekp(&["update", "--dir", "wf"], t),
            &["state.toml", "corrupted"],
        );
        assert_eq!(read(&state), broken, "a bad state must not be replaced");
        assert!(!wf.join("iteration_001").exists());
    }
    std::fs::write(&state, &good_state).unwrap();
    assert_eq!(snapshot(&wf), before);

    // Output files of the wrong shape, from every member: exit 2, naming them.
    let outputs: Vec<PathBuf> = (1..=8)
        .map(|j| wf.join(format!("iteration_000/member_{j:03}/output.toml")))
        .collect();
    let saved: Vec<Vec<u8>> = outputs.iter().map(|p| read(p)).collect();
    for p in &outputs {
        std::fs::write(p, "values = [1.0, 2.0, 3.0]\n").unwrap();
    }
    bad_input(
        &ekp(&["update", "--dir", "wf"], t),
        &[
            "iteration_000/member_001",
            "has 3 entries, the observations have 4",
            "nothing was changed",
        ],
    );
    for p in &outputs {
        std::fs::write(p, "values = [[1.0, 2.0], [3.0, 4.0]]\n").unwrap();
    }
    bad_input(
        &ekp(&["update", "--dir", "wf"], t),
        &["member_008", "array of numbers"],
    );
    for (p, s) in outputs.iter().zip(&saved) {
        std::fs::write(p, s).unwrap();
    }
    assert_eq!(read(&state), good_state);
    assert!(!wf.join("iteration_001").exists());

    // Fewer than two good members (the models failed): exit 1, nothing changed.
    for p in &outputs[1..] {
        std::fs::write(p, "values = [nan, 1.0, 1.0, 1.0]\n").unwrap();
    }
    let out = ekp(&["update", "--dir", "wf"], t);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("only 1 of 8 members"));
    for (p, s) in outputs.iter().zip(&saved) {
        std::fs::write(p, s).unwrap();
    }
    assert_eq!(snapshot(&wf), before);

    // Parameter names that do not match the calibration's.
    let params = wf.join("iteration_000/member_003/parameters.toml");
    let saved_params = read(&params);
    std::fs::write(&params, "theta = [0.1, 0.2]\nkk = 1.0\n").unwrap();
    bad_input(
        &ekp(&["forward", "--dir", "wf", "--member", "3"], t),
        &["member_003/parameters.toml", "kk", "not a parameter"],
    );
    std::fs::write(&params, "theta = [0.1]\nk = 1.0\n").unwrap();
    bad_input(
        &ekp(&["forward", "--dir", "wf", "--member", "3"], t),
        &["parameters.toml", "theta", "size 2"],
    );
    std::fs::write(&params, &saved_params).unwrap();
    // ... and a calibration whose names are not the model's.
    std::fs::write(
        t.join("lorenz.toml"),
        r#"
[process]
kind = "inversion"
[[parameters]]
name = "G"
prior = { kind = "gaussian", mean = 8.0, std = 1.0 }
[observations]
truth = { G = 8.0 }
[model]
kind = "lorenz96"
fixed = { A = 2.5 }
"#,
    )
    .unwrap();
    bad_input(
        &ekp(&["init", "--config", "lorenz.toml", "--dir", "l96"], t),
        &[
            "lorenz.toml",
            "\"G\" is not a parameter of the lorenz96 model",
        ],
    );
    assert!(!t.join("l96").exists());

    // A config edited between iterations: every command refuses.
    let config = wf.join("config.toml");
    let saved_config = read(&config);
    std::fs::write(
        &config,
        String::from_utf8(saved_config.clone())
            .unwrap()
            .replace("seed = 11", "seed = 12"),
    )
    .unwrap();
    for cmd in [
        vec!["update", "--dir", "wf"],
        vec!["forward", "--dir", "wf", "--member", "1"],
        vec!["status", "--dir", "wf"],
        vec!["slurm", "--dir", "wf"],
    ] {
        bad_input(&ekp(&cmd, t), &["config.toml", "was edited after"]);
    }
    std::fs::write(&config, &saved_config).unwrap();

    // Arguments: members out of range, no member outside SLURM, init twice.
    bad_input(
        &ekp(&["forward", "--dir", "wf", "--member", "9"], t),
        &["member 9", "1 to 8"],
    );
    bad_input(&ekp(&["forward", "--dir", "wf"], t), &["--member"]);
    bad_input(
        &ekp(
            &[
                "forward",
                "--dir",
                "wf",
                "--iteration",
                "1",
                "--member",
                "1",
            ],
            t,
        ),
        &["iteration 1 has no parameters yet"],
    );
    bad_input(
        &ekp(&["init", "--config", "linear.toml", "--dir", "wf"], t),
        &["wf", "already a calibration folder"],
    );
    bad_input(&ekp(&["status", "--dir", "nowhere"], t), &["nowhere"]);
    bad_input(&ekp(&["update", "--dir", "."], t), &["workflow.toml"]);
    assert_eq!(snapshot(&wf), before);

    // After all that, the folder still works.
    ok(&ekp(&["update", "--dir", "wf"], t));
    assert!(
        wf.join("iteration_001/member_008/parameters.toml")
            .is_file()
    );
}

#[test]
fn update_twice_concurrently_or_killed_midway_is_safe() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    ready_for_update(t);
    let wf = t.join("wf");
    let state = wf.join("state.toml");
    let before = snapshot(&wf);

    // A second update while one holds the lock (here: this test process,
    // alive, on this host) is locked out.
    let lock = wf.join("update.lock");
    std::fs::write(
        &lock,
        format!(
            "pid = {}\nhost = \"{}\"\nsince = 0\n",
            std::process::id(),
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .unwrap_or_default()
                .trim()
        ),
    )
    .unwrap();
    let out = ekp(&["update", "--dir", "wf"], t);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("another update is running"),
        "{}",
        text(&out.stderr)
    );
    std::fs::remove_file(&lock).unwrap();
    assert_eq!(snapshot(&wf), before);

    // Killed after writing the next iteration's files, before the state is
    // replaced (a fault-injection hook: `abort`, as SIGKILL would): the
    // previous state is intact, and the lock it left is taken over.
    let out = ekp_env(
        &["update", "--dir", "wf"],
        t,
        &[("EKP_FAULT_INJECTION", "update-before-commit")],
    );
    assert!(!out.status.success());
    assert_eq!(out.status.code(), None, "killed by a signal");
    assert_eq!(
        read(&state),
        before
            .iter()
            .find(|(p, _)| *p == state)
            .map(|(_, b)| b.clone())
            .unwrap(),
        "the state changed"
    );
    assert!(lock.exists(), "the killed update's lock is left behind");
    let status = ok(&ekp(&["status", "--dir", "wf"], t));
    assert!(
        status.contains("newest iteration: iteration_000"),
        "{status}"
    );

    let out = ekp(&["update", "--dir", "wf"], t);
    ok(&out);
    assert!(
        text(&out.stderr).contains("stale lock"),
        "{}",
        text(&out.stderr)
    );
    assert!(!lock.exists());
    let after_first = read(&state);

    // The same outputs a second time: nothing happens, and it says so.
    let out = ekp(&["update", "--dir", "wf"], t);
    let said = ok(&out);
    assert!(said.contains("nothing to do"), "{said}");
    assert!(said.contains("already been applied"), "{said}");
    assert_eq!(read(&state), after_first);
    // A job chain's `update --iteration 0` after the fact is a no-op too.
    let said = ok(&ekp(&["update", "--dir", "wf", "--iteration", "0"], t));
    assert!(said.contains("already applied"), "{said}");
    assert_eq!(read(&state), after_first);

    // And the interrupted update reached exactly what an uninterrupted one does.
    let clean = tempfile::tempdir().unwrap();
    ready_for_update(clean.path());
    ok(&ekp(&["update", "--dir", "wf"], clean.path()));
    assert_eq!(read(&clean.path().join("wf/state.toml")), after_first);
}

#[test]
fn any_iteration_can_be_resumed() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let cfg = t.join("linear.toml");
    std::fs::write(&cfg, LINEAR).unwrap();
    ok(&shell_loop(t, &cfg, "wf", 8, 4));
    let wf = t.join("wf");
    let result = read(&wf.join("result.toml"));
    for k in 0..=3 {
        assert!(wf.join(format!("iteration_{k:03}/state.toml")).is_file());
    }
    // Back to iteration 1: its saved state becomes current, later iterations
    // are moved aside, and running on from there gives the same result.
    let said = ok(&ekp(&["update", "--dir", "wf", "--rewind-to", "1"], t));
    assert!(said.contains("rewound to iteration 1"), "{said}");
    assert!(said.contains("update 1 applied"), "{said}");
    let aside: Vec<_> = std::fs::read_dir(&wf)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("rewound_"))
        .collect();
    assert_eq!(aside.len(), 1);
    assert!(aside[0].path().join("iteration_003").is_dir());
    for i in 2..=3 {
        for j in 1..=8 {
            ok(&ekp(
                &[
                    "forward",
                    "--dir",
                    "wf",
                    "--iteration",
                    &i.to_string(),
                    "--member",
                    &j.to_string(),
                ],
                t,
            ));
        }
        ok(&ekp(&["update", "--dir", "wf"], t));
    }
    assert_eq!(read(&wf.join("result.toml")), result);
}

#[test]
fn slurm_writes_a_chain_of_scripts() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    std::fs::copy(example_model(), t.join("model.sh")).unwrap();
    std::fs::write(t.join("decay.toml"), decay("./model.sh", 6, 3)).unwrap();
    let out = ekp(
        &[
            "slurm",
            "--dir",
            "chain",
            "--config",
            "decay.toml",
            "--iterations",
            "2",
            "--partition",
            "debug",
            "--account",
            "proj",
            "--time",
            "10",
            "--mem",
            "1G",
            "--throttle",
            "3",
            "--sbatch-arg=--qos=low",
        ],
        t,
    );
    let said = ok(&out);
    assert!(said.contains("wrote 5 job scripts"), "{said}");
    let s = t.join("chain/slurm");
    let fwd = std::fs::read_to_string(s.join("forward_000.sbatch")).unwrap();
    for line in [
        "#SBATCH --array=1-6%3",
        "#SBATCH --partition=debug",
        "#SBATCH --account=proj",
        "#SBATCH --time=10",
        "#SBATCH --mem=1G",
        "#SBATCH --qos=low",
        "#SBATCH --kill-on-invalid-dep=yes",
        "forward --dir",
        "--iteration 0",
        // A command model stops a minute before the 10-minute task limit.
        "--member-timeout 540s",
    ] {
        assert!(fwd.contains(line), "`{line}` not in:\n{fwd}");
    }
    let upd = std::fs::read_to_string(s.join("update_001.sbatch")).unwrap();
    assert!(
        upd.contains("update --dir") && upd.contains("--iteration 1"),
        "{upd}"
    );
    assert!(!upd.contains("--mem"), "{upd}");
    assert!(
        std::fs::read_to_string(s.join("init.sbatch"))
            .unwrap()
            .contains("init --config")
    );
    // Two updates, not to the end: no scripts for iteration 2.
    assert!(!s.join("forward_002.sbatch").exists());
    let submit = std::fs::read_to_string(s.join("submit.sh")).unwrap();
    assert!(submit.contains("--parsable"), "{submit}");
    assert!(submit.contains("--dependency=afterok:$prev"), "{submit}");
    assert_eq!(submit.matches("sbatch --parsable").count(), 5);

    bad_input(
        &ekp(&["slurm", "--dir", "chain", "--wait"], t),
        &["chain.toml", "no chain was submitted"],
    );
    bad_input(
        &ekp(&["slurm", "--dir", "elsewhere"], t),
        &["not an initialised calibration folder", "--config"],
    );
    bad_input(
        &ekp(
            &[
                "slurm",
                "--dir",
                "x",
                "--config",
                "decay.toml",
                "--time",
                "soon",
            ],
            t,
        ),
        &["--time soon"],
    );
}

#[test]
fn a_chain_resumes_where_the_folder_stands() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let cfg = t.join("linear.toml");
    std::fs::write(&cfg, LINEAR).unwrap();
    // Three rounds: all updates applied, the final ensemble not yet evaluated.
    ok(&shell_loop(t, &cfg, "wf", 8, 3));
    ok(&ekp(&["forward", "--dir", "wf", "--member", "4"], t));
    let said = ok(&ekp(&["slurm", "--dir", "wf", "--throttle", "2"], t));
    assert!(
        said.contains("resuming at iteration 3: 7 of 8 members"),
        "{said}"
    );
    assert!(said.contains("wrote 2 job scripts"), "{said}");
    let s = t.join("wf/slurm");
    let fwd = std::fs::read_to_string(s.join("forward_003.sbatch")).unwrap();
    assert!(fwd.contains("#SBATCH --array=1-3,5-8%2"), "{fwd}");
    assert!(s.join("update_003.sbatch").is_file());
    assert!(!s.join("init.sbatch").exists() && !s.join("forward_002.sbatch").exists());
    // Once complete, there is nothing to submit.
    for j in [1, 2, 3, 5, 6, 7, 8] {
        ok(&ekp(
            &["forward", "--dir", "wf", "--member", &j.to_string()],
            t,
        ));
    }
    ok(&ekp(&["update", "--dir", "wf"], t));
    let said = ok(&ekp(&["slurm", "--dir", "wf"], t));
    assert!(said.contains("complete; nothing to submit"), "{said}");
}

#[test]
fn command_model_options_are_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    std::fs::write(t.join("linear.toml"), LINEAR).unwrap();
    bad_input(
        &ekp(
            &[
                "run",
                "--config",
                "linear.toml",
                "--jobs",
                "2",
                "--output",
                "o",
            ],
            t,
        ),
        &["--jobs", "command, worker and batch models"],
    );
    std::fs::write(t.join("nope.toml"), decay("./no-such-model.sh", 4, 2)).unwrap();
    bad_input(
        &ekp(&["run", "--config", "nope.toml", "--output", "o"], t),
        &["nope.toml", "model.program", "no-such-model.sh"],
    );
    bad_input(
        &ekp(&["init", "--config", "nope.toml", "--dir", "d"], t),
        &["model.program"],
    );
    assert!(!t.join("d").exists() && !t.join("o").exists());
    std::fs::write(
        t.join("typo.toml"),
        decay("./m.sh", 4, 2).replace("program =", "programme ="),
    )
    .unwrap();
    bad_input(
        &ekp(&["run", "--config", "typo.toml"], t),
        &["typo.toml", "programme"],
    );
    std::fs::write(
        t.join("truth.toml"),
        decay("./m.sh", 4, 2).replace(
            "values = [10.12, 5.98, 3.74, 2.19, 1.38]",
            "truth = { rate = 0.5, initial = 10.0 }",
        ),
    )
    .unwrap();
    bad_input(
        &ekp(&["run", "--config", "truth.toml"], t),
        &["observations.truth", "command model"],
    );
}
