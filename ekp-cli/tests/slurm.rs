//! `ekp-cli slurm` against a real SLURM cluster: the one-node cluster of
//! `scripts/slurm-local.sh` (installed with Debian's packages when run as
//! root). Without one, the tests say so and pass — unless EKP_REQUIRE_SLURM=1
//! (as in CI), which makes a missing cluster a failure.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repository root")
}

/// Start (installing if needed and allowed) the local cluster; its SLURM_CONF.
fn cluster() -> Option<String> {
    let required = std::env::var("EKP_REQUIRE_SLURM").as_deref() == Ok("1");
    let script = repo().join("scripts/slurm-local.sh");
    let out = Command::new("bash")
        .arg(&script)
        .args(["start", "--install"])
        .output();
    let why = match &out {
        Ok(o) if o.status.success() => {
            let stdout = String::from_utf8_lossy(&o.stdout);
            if let Some(conf) = stdout.lines().find_map(|l| l.strip_prefix("SLURM_CONF=")) {
                return Some(conf.trim().to_string());
            }
            format!("no SLURM_CONF in its output: {stdout}")
        }
        Ok(o) => format!(
            "exit {:?}: {}",
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => e.to_string(),
    };
    assert!(
        !required,
        "EKP_REQUIRE_SLURM=1 but {} start failed: {why}",
        script.display()
    );
    eprintln!(
        "NOTICE: SKIPPING this SLURM test: no local SLURM cluster ({} start: {why})",
        script.display()
    );
    None
}

fn ekp(args: &[&str], dir: &Path, conf: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ekp-cli"))
        .args(args)
        .current_dir(dir)
        .env("SLURM_CONF", conf)
        .env_remove("SLURM_ARRAY_TASK_ID")
        .output()
        .expect("ekp-cli runs")
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

/// The example model, except that member 2 crashes in iteration 0.
fn setup(t: &Path) {
    let model = repo().join("examples/command-model/model.sh");
    let flaky = t.join("flaky.sh");
    std::fs::write(
        &flaky,
        format!(
            "#!/bin/sh\nif [ \"$EKP_ITERATION\" = 0 ] && [ \"$EKP_MEMBER\" = 2 ]; then\n  echo crash >&2; exit 3\nfi\nexec '{}' \"$@\"\n",
            model.display()
        ),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&flaky, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let cfg = std::fs::read_to_string(repo().join("examples/command-model/calibration.toml"))
        .unwrap()
        .replace("ensemble_size = 10", "ensemble_size = 6")
        .replace("iterations = 4", "iterations = 3")
        .replace("program = \"./model.sh\"", "program = \"./flaky.sh\"");
    std::fs::write(t.join("cal.toml"), cfg).unwrap();
}

#[test]
fn a_slurm_chain_completes_resumes_and_matches_the_local_run() {
    let Some(conf) = cluster() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    setup(t);
    ok(&ekp(
        &["run", "-q", "--config", "cal.toml", "--output", "local"],
        t,
        &conf,
    ));

    // A first chain of two updates (init, forward 0, update 0, forward 1,
    // update 1); member 2 of iteration 0 fails and the chain goes on.
    let said = ok(&ekp(
        &[
            "slurm",
            "--dir",
            "cluster",
            "--config",
            "cal.toml",
            "--iterations",
            "2",
            "--throttle",
            "4",
            "--time",
            "5",
            "--submit",
            "--wait",
            "--poll",
            "0.3",
        ],
        t,
        &conf,
    ));
    assert!(said.contains("job ids:"), "{said}");
    assert!(said.contains("calibration at iteration 2 of 3"), "{said}");
    let status = ok(&ekp(
        &["status", "--dir", "cluster", "--iteration", "0"],
        t,
        &conf,
    ));
    assert!(
        status.contains("member_002  failed   exited with status 3"),
        "{status}"
    );

    // Resume: the rest of the chain, to the end.
    let said = ok(&ekp(
        &[
            "slurm", "--dir", "cluster", "--submit", "--wait", "--poll", "0.3",
        ],
        t,
        &conf,
    ));
    assert!(said.contains("calibration complete"), "{said}");
    assert!(
        !said.contains("init"),
        "a resumed chain has no init job: {said}"
    );
    for f in ["result.toml", "history.csv", "ensembles.csv", "outputs.csv"] {
        assert_eq!(
            std::fs::read(t.join("cluster").join(f)).unwrap(),
            std::fs::read(t.join("local").join(f)).unwrap(),
            "{f}: the SLURM chain and the local run differ"
        );
    }
    // Nothing left to submit.
    let said = ok(&ekp(&["slurm", "--dir", "cluster", "--submit"], t, &conf));
    assert!(said.contains("complete; nothing to submit"), "{said}");
}

#[test]
fn a_failing_job_stops_the_chain_and_is_reported() {
    let Some(conf) = cluster() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    setup(t);
    ok(&ekp(
        &["init", "--config", "cal.toml", "--dir", "d"],
        t,
        &conf,
    ));
    // Jobs that run a broken ekp-cli: the forward array fails, and
    // --kill-on-invalid-dep cancels the update instead of leaving it pending.
    let out = ekp(
        &[
            "slurm",
            "--dir",
            "d",
            "--iterations",
            "1",
            "--ekp-cli",
            "/bin/false",
            "--submit",
            "--wait",
            "--poll",
            "0.3",
        ],
        t,
        &conf,
    );
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}\n{}", text(&out.stderr));
    assert!(said.contains("did not complete"), "{said}");
    assert!(said.contains("FAILED"), "{said}");
    assert!(said.contains("CANCELLED"), "{said}");
    assert!(said.contains("calibration at iteration 0"), "{said}");
}

#[test]
fn a_chain_with_several_members_per_task_runs_a_worker_model_to_the_local_result() {
    let Some(conf) = cluster() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let examples = repo().join("examples/python");
    let cfg = std::fs::read_to_string(examples.join("worker.toml"))
        .unwrap()
        .replace("ensemble_size = 10", "ensemble_size = 7")
        .replace("iterations = 4", "iterations = 2")
        .replace(
            "program = \"./decay_worker.py\"",
            &format!(
                "program = \"{}\"",
                examples.join("decay_worker.py").display()
            ),
        );
    std::fs::write(t.join("cal.toml"), cfg).unwrap();
    ok(&ekp(
        &["run", "-q", "--config", "cal.toml", "--output", "local"],
        t,
        &conf,
    ));
    // 7 members, 3 per task: tasks 1-3 run 1-3, 4-6 and 7, two workers each.
    let said = ok(&ekp(
        &[
            "slurm",
            "--dir",
            "cluster",
            "--config",
            "cal.toml",
            "--members-per-task",
            "3",
            "--jobs",
            "2",
            "--time",
            "5",
            "--submit",
            "--wait",
            "--poll",
            "0.3",
        ],
        t,
        &conf,
    ));
    assert!(said.contains("calibration complete"), "{said}");
    let script = std::fs::read_to_string(t.join("cluster/slurm/forward_000.sbatch")).unwrap();
    assert!(script.contains("--array=1-3"), "{script}");
    for f in ["result.toml", "history.csv", "ensembles.csv", "outputs.csv"] {
        assert_eq!(
            std::fs::read(t.join("cluster").join(f)).unwrap(),
            std::fs::read(t.join("local").join(f)).unwrap(),
            "{f}: the SLURM chain and the local run differ"
        );
    }
}

#[test]
fn status_shows_the_jobs_and_each_members_slurm_state() {
    let Some(conf) = cluster() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    setup(t);
    // A model slow enough to be seen running.
    let slow = t.join("slow.sh");
    std::fs::write(
        &slow,
        format!(
            "#!/bin/sh\nsleep 2\nexec '{}' \"$@\"\n",
            repo().join("examples/command-model/model.sh").display()
        ),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&slow, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let cfg = std::fs::read_to_string(t.join("cal.toml"))
        .unwrap()
        .replace("./flaky.sh", "./slow.sh");
    std::fs::write(t.join("cal.toml"), cfg).unwrap();
    ok(&ekp(
        &["init", "--config", "cal.toml", "--dir", "d"],
        t,
        &conf,
    ));
    // 6 members, 2 per task: tasks 1, 2, 3 run members 1-2, 3-4, 5-6.
    let said = ok(&ekp(
        &[
            "slurm",
            "--dir",
            "d",
            "--iterations",
            "1",
            "--members-per-task",
            "2",
            "--jobs",
            "1",
            "--time",
            "5",
            "--submit",
        ],
        t,
        &conf,
    ));
    let ids: Vec<String> = said
        .lines()
        .find_map(|l| l.strip_prefix("job ids: "))
        .expect("job ids")
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(ids.len(), 2, "forward 0 and update 0: {said}");

    // While the chain runs, each member shows its task's state, the same
    // for the members of one task.
    let json = |args: &[&str]| -> serde_json::Value {
        serde_json::from_str(&ok(&ekp(args, t, &conf))).expect("status --json is JSON")
    };
    let v = json(&["status", "--dir", "d", "--json"]);
    let jobs = v["slurm"]["jobs"].as_array().expect("slurm.jobs");
    let listed: Vec<&str> = jobs.iter().map(|j| j["id"].as_str().unwrap()).collect();
    assert_eq!(listed, ids.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(jobs[0]["job"], "forward of iteration 0");
    assert_eq!(jobs[1]["job"], "update of iteration 0");
    let members = v["members"].as_array().unwrap();
    let state = |m: usize| members[m - 1]["slurm_state"].as_str().map(String::from);
    for m in 1..=6 {
        let s = state(m).unwrap_or_else(|| panic!("member {m} has no SLURM state: {v}"));
        assert!(
            [
                "PENDING",
                "RUNNING",
                "COMPLETING",
                "COMPLETED",
                "CONFIGURING"
            ]
            .iter()
            .any(|k| s.starts_with(k)),
            "member {m}: {s}"
        );
    }
    for (a, b) in [(1, 2), (3, 4), (5, 6)] {
        assert_eq!(state(a), state(b), "members {a} and {b} share a task: {v}");
    }

    let said = ok(&ekp(
        &["slurm", "--dir", "d", "--wait", "--poll", "0.3"],
        t,
        &conf,
    ));
    assert!(said.contains("calibration at iteration 1"), "{said}");
    let v = json(&["status", "--dir", "d", "--json", "--iteration", "0"]);
    // `COMPLETED 3`: the array's three tasks; `COMPLETED`: the update.
    let states: Vec<&str> = v["slurm"]["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["COMPLETED 3", "COMPLETED"], "{v}");
    for m in v["members"].as_array().unwrap() {
        assert_eq!(m["slurm_state"], "COMPLETED", "{v}");
        assert_eq!(m["state"], "done", "{v}");
    }
    let text = ok(&ekp(
        &["status", "--dir", "d", "--iteration", "0"],
        t,
        &conf,
    ));
    assert!(text.contains("SLURM chain submitted"), "{text}");
    assert!(
        text.contains("member_001  done   (SLURM task COMPLETED)"),
        "{text}"
    );
    assert!(
        text.contains(&format!("job {:<8}  forward of iteration 0", ids[0])),
        "{text}"
    );
}
