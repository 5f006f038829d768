//! Several SLURM nodes: `run --launcher srun` inside a 3-node allocation,
//! and a SLURM chain that loses a node mid-iteration. They run on the
//! 3-node cluster of `scripts/slurm-local.sh start --nodes 3`: at
//! `$EKP_SLURM_PREFIX` when that is set (CI's `scripts/test.sh` starts it
//! there for every SLURM test), else at /tmp/ekp-slurm-nodes (port 6917),
//! beside the one-node cluster the other tests use. Without a cluster the
//! tests say so and pass — unless EKP_REQUIRE_SLURM=1 (as in CI).
//!
//! The tests take turns (one lock): one of them stops a node.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static TURN: Mutex<()> = Mutex::new(());

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repository root")
}

/// The cluster's prefix and controller port: `$EKP_SLURM_PREFIX` (and
/// `$EKP_SLURM_PORT`) when set, else a 3-node cluster of its own.
fn prefix() -> (String, String) {
    match std::env::var("EKP_SLURM_PREFIX") {
        Ok(p) if !p.is_empty() => (p, std::env::var("EKP_SLURM_PORT").unwrap_or_default()),
        _ => ("/tmp/ekp-slurm-nodes".into(), "6917".into()),
    }
}

fn script(args: &[&str]) -> std::io::Result<Output> {
    let (prefix, port) = prefix();
    let mut c = Command::new("bash");
    c.arg(repo().join("scripts/slurm-local.sh"))
        .args(args)
        .env("EKP_SLURM_PREFIX", prefix);
    if !port.is_empty() {
        c.env("EKP_SLURM_PORT", port);
    }
    c.output()
}

/// Start (installing if needed and allowed) the 3-node cluster; its
/// SLURM_CONF.
fn cluster() -> Option<String> {
    let required = std::env::var("EKP_REQUIRE_SLURM").as_deref() == Ok("1");
    let out = script(&["start", "--install", "--nodes", "3"]);
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
        "EKP_REQUIRE_SLURM=1 but slurm-local.sh start --nodes 3 failed: {why}"
    );
    eprintln!("NOTICE: SKIPPING this multi-node SLURM test: no 3-node local cluster ({why})");
    None
}

fn ekp(args: &[&str], dir: &Path, conf: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ekp-cli"))
        .args(args)
        .current_dir(dir)
        .env("SLURM_CONF", conf)
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("SLURM_JOB_ID")
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

/// The example command model, wrapped: each member writes the SLURM node
/// it ran on to `node.txt` in its folder, and in iteration 0 takes
/// `slow` seconds (so that a node can be stopped while members run).
fn setup(t: &Path, members: usize, iterations: usize, slow: f64) {
    let model = repo().join("examples/command-model/model.sh");
    let wrapper = t.join("model.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho \"${{SLURMD_NODENAME:-none}}\" > node.txt\n\
             echo \"${{EKP_TEST_SETUP:-}}\" > setup.txt\n\
             if [ \"$EKP_ITERATION\" = 0 ]; then sleep {slow}; fi\nexec '{}' \"$@\"\n",
            model.display()
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let cfg = std::fs::read_to_string(repo().join("examples/command-model/calibration.toml"))
        .unwrap()
        .replace("ensemble_size = 10", &format!("ensemble_size = {members}"))
        .replace("iterations = 4", &format!("iterations = {iterations}"))
        .replace(
            "program = \"./model.sh\"",
            &format!("program = \"{}\"", wrapper.display()),
        );
    std::fs::write(t.join("cal.toml"), cfg).unwrap();
}

/// The node each member of `dir` ran on, per iteration folder.
fn nodes_used(dir: &Path) -> BTreeSet<String> {
    let mut nodes = BTreeSet::new();
    for it in std::fs::read_dir(dir).unwrap().flatten() {
        if !it.file_name().to_string_lossy().starts_with("iteration_") {
            continue;
        }
        for m in std::fs::read_dir(it.path()).unwrap().flatten() {
            if let Ok(n) = std::fs::read_to_string(m.path().join("node.txt")) {
                nodes.insert(n.trim().to_string());
            }
        }
    }
    nodes
}

#[track_caller]
fn same_results(a: &Path, b: &Path) {
    for f in ["result.toml", "history.csv", "ensembles.csv", "outputs.csv"] {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
            "{f}: {} and {} differ",
            a.display(),
            b.display()
        );
    }
}

#[test]
fn run_with_the_srun_launcher_uses_every_node_and_matches_the_local_run() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let Some(conf) = cluster() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    setup(t, 6, 2, 0.5);
    ok(&ekp(
        &["run", "-q", "--config", "cal.toml", "--output", "local"],
        t,
        &conf,
    ));
    // One task on each of the 3 nodes; `run` itself runs where salloc does.
    let out = Command::new("salloc")
        .args(["-N", "3", "--time", "5", "--job-name", "ekp-srun-test"])
        .arg(env!("CARGO_BIN_EXE_ekp-cli"))
        .args(["run", "--config", "cal.toml", "--output", "alloc"])
        .args(["--launcher", "srun", "--members-per-task", "2"])
        .current_dir(t)
        .env("SLURM_CONF", &conf)
        .output()
        .expect("salloc runs");
    let said = ok(&out);
    assert!(said.contains("srun job steps"), "{said}");
    same_results(&t.join("alloc"), &t.join("local"));
    assert_eq!(
        nodes_used(&t.join("alloc")),
        ["n1", "n2", "n3"].map(String::from).into(),
        "the members did not run on every node of the allocation"
    );
    assert_eq!(nodes_used(&t.join("local")), ["none".to_string()].into());
}

#[test]
fn the_srun_launcher_outside_an_allocation_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    setup(t, 4, 1, 0.0);
    let out = ekp(
        &[
            "run",
            "--config",
            "cal.toml",
            "--output",
            "o",
            "--launcher",
            "srun",
        ],
        t,
        "/nonexistent",
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("SLURM_JOB_ID"),
        "{}",
        text(&out.stderr)
    );
    assert!(!t.join("o").exists(), "nothing is written");
    let out = ekp(
        &[
            "run",
            "--config",
            "cal.toml",
            "--output",
            "o",
            "--retries",
            "2",
        ],
        t,
        "/nonexistent",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--retries"),
        "{}",
        text(&out.stderr)
    );
}

/// The process ids of everything node `node` runs for the cluster at
/// `conf`: job processes (by their environment) and the slurmstepd of
/// `jobs`.
fn node_processes(node: &str, conf: &str, jobs: &[String]) -> Vec<u32> {
    let mut pids = Vec::new();
    let me = std::process::id();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let env = std::fs::read(e.path().join("environ")).unwrap_or_default();
        let env = String::from_utf8_lossy(&env);
        let vars: Vec<&str> = env.split('\0').collect();
        let on_node = vars.contains(&format!("SLURMD_NODENAME={node}").as_str())
            && vars.contains(&format!("SLURM_CONF={conf}").as_str());
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd);
        let stepd =
            cmd.starts_with("slurmstepd") && jobs.iter().any(|j| cmd.contains(&format!("[{j}.")));
        if on_node || stepd {
            pids.push(pid);
        }
    }
    pids
}

/// Node `node` fails: its slurmd and everything it runs are killed, and the
/// controller is told it is down (as its health check would, after
/// SlurmdTimeout).
fn kill_node(node: &str, conf: &str) {
    let (prefix, _) = prefix();
    let squeue = Command::new("squeue")
        .args(["-h", "-w", node, "-o", "%A"])
        .env("SLURM_CONF", conf)
        .output()
        .unwrap();
    let jobs: Vec<String> = text(&squeue.stdout)
        .split_whitespace()
        .map(String::from)
        .collect();
    let slurmd = std::fs::read_to_string(format!("{prefix}/run/slurmd-{node}.pid")).unwrap();
    let mut pids = vec![slurmd.trim().parse::<u32>().unwrap()];
    pids.extend(node_processes(node, conf, &jobs));
    for pid in &pids {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    let down = Command::new("scontrol")
        .args([
            "update",
            &format!("nodename={node}"),
            "state=down",
            "reason=ekp-test",
        ])
        .env("SLURM_CONF", conf)
        .status()
        .unwrap();
    assert!(down.success());
}

/// Wait until a member of iteration 0 of `dir` runs on `node`.
fn wait_for_member_on(dir: &Path, node: &str) -> usize {
    let started = Instant::now();
    loop {
        let it = dir.join("iteration_000");
        for m in std::fs::read_dir(&it).into_iter().flatten().flatten() {
            let running = std::fs::read_to_string(m.path().join("node.txt"))
                .is_ok_and(|n| n.trim() == node)
                && !m.path().join("status.toml").exists();
            if running {
                let name = m.file_name().to_string_lossy().into_owned();
                return name.trim_start_matches("member_").parse().unwrap();
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no member ran on {node} within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A chain that loses node n2 while members of iteration 0 run on it;
/// `retries`: `slurm --retries`. Returns the folder's status of iteration 0
/// and the member that was running on n2.
fn chain_losing_a_node(t: &Path, conf: &str, retries: &str) -> (String, usize) {
    setup(t, 8, 2, 4.0);
    let submit = ok(&ekp(
        &[
            "slurm",
            "--dir",
            "cluster",
            "--config",
            "cal.toml",
            "--time",
            "5",
            "--retries",
            retries,
            "--setup",
            "export EKP_TEST_SETUP='it'\\''s set'",
            "--submit",
        ],
        t,
        conf,
    ));
    assert!(submit.contains("job ids:"), "{submit}");
    let lost = wait_for_member_on(&t.join("cluster"), "n2");
    kill_node("n2", conf);
    let waited = ekp(
        &["slurm", "--dir", "cluster", "--wait", "--poll", "0.3"],
        t,
        conf,
    );
    // Bring n2 back for the tests after this one, whatever happened.
    let restart = script(&["start"]).unwrap();
    let said = ok(&waited);
    assert!(restart.status.success(), "{}", text(&restart.stderr));
    assert!(said.contains("calibration complete"), "{said}");
    let setup = std::fs::read_to_string(t.join("cluster/iteration_001/member_001/setup.txt"));
    assert_eq!(
        setup.unwrap().trim(),
        "it's set",
        "--setup did not run before the model"
    );
    let status = ok(&ekp(
        &["status", "--dir", "cluster", "--iteration", "0"],
        t,
        conf,
    ));
    (status, lost)
}

#[test]
fn a_node_lost_mid_iteration_is_survived_its_members_run_again() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let Some(conf) = cluster() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (status, lost) = chain_losing_a_node(t, &conf, "1");
    // The lost members ran again elsewhere: every member is done, and the
    // result is the local run's.
    assert!(status.contains("8 done, 0 failed, 0 missing"), "{status}");
    let node =
        std::fs::read_to_string(t.join(format!("cluster/iteration_000/member_{lost:03}/node.txt")))
            .unwrap();
    assert_ne!(
        node.trim(),
        "n2",
        "member {lost} was not run again elsewhere"
    );
    ok(&ekp(
        &["run", "-q", "--config", "cal.toml", "--output", "local"],
        t,
        &conf,
    ));
    same_results(&t.join("cluster"), &t.join("local"));
}

#[test]
fn a_node_lost_with_no_retries_left_fails_its_members_as_node_failures() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let Some(conf) = cluster() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (status, lost) = chain_losing_a_node(t, &conf, "0");
    let line = status
        .lines()
        .find(|l| l.contains(&format!("member_{lost:03}")))
        .unwrap_or_default();
    assert!(
        line.contains("failed") && line.contains("node failure"),
        "{status}"
    );
    // Only members the node took are failed, and none as a model failure.
    let members: Vec<&str> = status
        .lines()
        .filter(|l| l.trim_start().starts_with("member_"))
        .collect();
    assert_eq!(members.len(), 8, "{status}");
    for l in &members {
        assert!(
            l.contains("  done") || l.contains("failed   node failure"),
            "{status}"
        );
    }
    assert!(members.iter().any(|l| l.contains("  done")), "{status}");
}
