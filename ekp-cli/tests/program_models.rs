//! The user's own program as a `command`, `worker` or `batch` model: the
//! same calibration gives the same result whichever way the members ran;
//! each mode's failure cases (a worker that crashes, hangs or answers
//! garbage; a batch that leaves rows out); input templates; `forward
//! --members`; `slurm --members-per-task`. The test models are Python 3
//! scripts (CI installs python3).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};

use common::{ekp, fails, ok, text};

fn python_examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/python")
}

/// The decay calibration of examples/python with `kind` and its program,
/// written into `dir` (the programs are used where they are).
fn decay_config(dir: &Path, kind: &str, extra: &str) -> PathBuf {
    let src = std::fs::read_to_string(python_examples().join(format!("{kind}.toml"))).unwrap();
    let program = python_examples().join(format!("decay_{kind}.py"));
    let cfg = src.replace(
        &format!("program = \"./decay_{kind}.py\""),
        &format!("program = \"{}\"\n{extra}", program.display()),
    );
    let path = dir.join(format!("{kind}.toml"));
    std::fs::write(&path, cfg).unwrap();
    path
}

fn status_of(member_dir: &Path) -> toml::Table {
    let s = std::fs::read_to_string(member_dir.join("status.toml"))
        .unwrap_or_else(|e| panic!("{}: {e}", member_dir.display()));
    toml::from_str(&s).unwrap()
}

fn reason(member_dir: &Path) -> String {
    let st = status_of(member_dir);
    assert_eq!(st["status"].as_str(), Some("failed"), "{st:?}");
    st["reason"].as_str().unwrap().to_string()
}

fn is_done(member_dir: &Path) -> bool {
    status_of(member_dir)["status"].as_str() == Some("done")
}

/// Every member file that `run` wrote for the results: outputs and parameters.
fn results_of(dir: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    for name in ["result.toml", "state.toml"] {
        files.push((
            name.to_string(),
            std::fs::read_to_string(dir.join(name)).unwrap(),
        ));
    }
    for it in 0..=4 {
        for m in 1..=10 {
            let d = dir.join(format!("iteration_{it:03}/member_{m:03}"));
            let params = d.join("parameters.toml");
            if params.exists() {
                let name = params.strip_prefix(dir).unwrap().display().to_string();
                files.push((name, std::fs::read_to_string(params).unwrap()));
            }
            // Outputs as numbers: a command model writes its own output.toml,
            // ekp writes the others (the same values, another layout).
            let output = d.join("output.toml");
            if output.exists() {
                let name = output.strip_prefix(dir).unwrap().display().to_string();
                let t: toml::Table =
                    toml::from_str(&std::fs::read_to_string(output).unwrap()).unwrap();
                let values: Vec<f64> = t["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_float().unwrap())
                    .collect();
                files.push((name, format!("{values:?}")));
            }
        }
    }
    files
}

#[test]
fn command_worker_and_batch_give_the_same_result() {
    let tmp = tempfile::tempdir().unwrap();
    let mut results = Vec::new();
    for (kind, flags) in [
        ("command", vec!["--jobs", "3"]),
        ("worker", vec!["--jobs", "2"]),
        ("batch", vec![]),
    ] {
        let cfg = decay_config(tmp.path(), kind, "");
        let out = tmp.path().join(format!("out-{kind}"));
        let mut args = vec![
            "run",
            "--config",
            cfg.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ];
        args.extend(flags);
        ok(&ekp(&args, tmp.path()));
        results.push((kind, results_of(&out)));
    }
    let (_, reference) = &results[0];
    assert!(reference.len() > 40, "{} files", reference.len());
    for (kind, files) in &results[1..] {
        assert_eq!(files.len(), reference.len(), "{kind}");
        for ((name, a), (_, b)) in reference.iter().zip(files) {
            assert_eq!(a, b, "{kind}: {name} differs from the command model's");
        }
    }
    // A batch in chunks of 3 members gives the same result too.
    let cfg = decay_config(tmp.path(), "batch", "batch_size = 3");
    let out = tmp.path().join("out-batch3");
    ok(&ekp(
        &[
            "run",
            "--config",
            cfg.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--jobs",
            "2",
        ],
        tmp.path(),
    ));
    assert_eq!(results_of(&out), *reference);
    assert!(
        out.join("iteration_000/batch_010-010/parameters.csv")
            .is_file()
    );
}

/// A worker whose behaviour depends on the member: 3 crashes, 4 hangs,
/// 5 answers garbage, 6 reports an error, 7 prints to stderr; the others
/// answer. Written into `dir`; returns the calibration file.
fn hostile_worker(dir: &Path) -> PathBuf {
    let script = dir.join("hostile_worker.py");
    std::fs::write(
        &script,
        format!(
            r#"#!/usr/bin/env python3
import json, os, sys, time
sys.path.insert(0, {examples:?})
print("worker starting", file=sys.stderr, flush=True)
for line in sys.stdin:
    req = json.loads(line)
    m = req["member"]
    p = req["parameters"]
    if m == 3 and not os.path.exists("crashed-once"):
        open("crashed-once", "w").close()
        os._exit(3)
    if m == 4:
        time.sleep(300)
    if m == 5:
        print("hello", flush=True)
        continue
    if m == 6:
        print(json.dumps({{"error": "diverged"}}), flush=True)
        continue
    if m == 7:
        print("member seven says hi", file=sys.stderr, flush=True)
    from decay import decay
    print(json.dumps({{"values": decay(p["rate"], p["initial"])}}), flush=True)
"#,
            examples = python_examples().display().to_string()
        ),
    )
    .unwrap();
    make_executable(&script);
    let cfg = decay_config(dir, "worker", "");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace(
            &python_examples()
                .join("decay_worker.py")
                .display()
                .to_string(),
            &script.display().to_string(),
        )
        .replace("timeout = 60", "timeout = 3");
    std::fs::write(&cfg, text).unwrap();
    cfg
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Processes whose command line mentions `needle`.
fn processes_with(needle: &str) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(entry.path().join("cmdline"))
            && String::from_utf8_lossy(&cmd).contains(needle)
        {
            n += 1;
        }
    }
    n
}

#[test]
fn a_worker_that_crashes_hangs_or_answers_garbage_fails_that_member_only() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = hostile_worker(tmp.path());
    let dir = tmp.path().join("cal");
    ok(&ekp(
        &[
            "init",
            "--config",
            cfg.to_str().unwrap(),
            "--dir",
            dir.to_str().unwrap(),
        ],
        tmp.path(),
    ));
    let out = ekp(
        &[
            "forward",
            "--dir",
            dir.to_str().unwrap(),
            "--members",
            "1-10",
            "--jobs",
            "2",
        ],
        tmp.path(),
    );
    let stdout = ok(&out);
    assert!(stdout.contains("10 members of iteration 0"), "{stdout}");
    let m = |j: usize| dir.join(format!("iteration_000/member_{j:03}"));
    let crash = reason(&m(3));
    assert!(
        crash.contains("exited with status 3") && crash.contains("restarted"),
        "{crash}"
    );
    let hang = reason(&m(4));
    assert!(hang.contains("timed out after 3 s"), "{hang}");
    let garbage = reason(&m(5));
    assert!(
        garbage.contains("`hello`") && garbage.contains("not a JSON object"),
        "{garbage}"
    );
    assert_eq!(reason(&m(6)), "the worker reported: diverged");
    for j in [1, 2, 7, 8, 9, 10] {
        assert!(is_done(&m(j)), "member {j}: {:?}", status_of(&m(j)));
        let out = std::fs::read_to_string(m(j).join("output.toml")).unwrap();
        assert!(out.starts_with("values = ["), "{out}");
    }
    // The lines a worker wrote while serving member 7 are in its stderr.log;
    // every line is in the worker's own log.
    let log7 = std::fs::read_to_string(m(7).join("stderr.log")).unwrap();
    assert!(log7.contains("member seven says hi"), "{log7}");
    let logs: String = ["worker_001.log", "worker_002.log"]
        .iter()
        .map(|f| std::fs::read_to_string(dir.join("workers").join(f)).unwrap_or_default())
        .collect();
    assert!(logs.contains("member seven says hi"), "{logs}");
    // Broken workers were restarted: more starts than the two workers.
    assert!(logs.matches("worker starting").count() >= 4, "{logs}");
    // No worker outlives ekp.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        processes_with(&tmp.path().join("hostile_worker.py").display().to_string()),
        0
    );
    // The failures are ordinary failed members: the update's policy deals with them.
    let st = ok(&ekp(
        &["status", "--dir", dir.to_str().unwrap()],
        tmp.path(),
    ));
    assert!(
        st.contains("6 done") || st.contains("done: 6") || st.contains('6'),
        "{st}"
    );
    ok(&ekp(
        &["update", "--dir", dir.to_str().unwrap()],
        tmp.path(),
    ));
}

#[test]
fn a_worker_that_cannot_start_stops_the_run_with_its_log() {
    let tmp = tempfile::tempdir().unwrap();
    let script = tmp.path().join("broken.py");
    std::fs::write(&script, "#!/usr/bin/env python3\nimport sys\nprint('no module named physics', file=sys.stderr)\nsys.exit(1)\n").unwrap();
    make_executable(&script);
    let cfg = decay_config(tmp.path(), "worker", "");
    let t = std::fs::read_to_string(&cfg).unwrap().replace(
        &python_examples()
            .join("decay_worker.py")
            .display()
            .to_string(),
        &script.display().to_string(),
    );
    std::fs::write(&cfg, t).unwrap();
    let out_dir = tmp.path().join("out");
    let out = ekp(
        &[
            "run",
            "--config",
            cfg.to_str().unwrap(),
            "--output",
            out_dir.to_str().unwrap(),
            "--jobs",
            "1",
        ],
        tmp.path(),
    );
    let err = fails(&out, 1, ["exited with status 1"].as_slice());
    assert!(err.contains("in a row") || err.contains("broken"), "{err}");
    let log = std::fs::read_to_string(out_dir.join("workers/worker_001.log")).unwrap();
    assert!(log.contains("no module named physics"), "{log}");
    // Not every member was tried: the model is broken, not unlucky.
    let tried = (1..=10)
        .filter(|j| {
            out_dir
                .join(format!("iteration_000/member_{j:03}/status.toml"))
                .exists()
        })
        .count();
    assert!(tried < 10, "{tried} members were tried");
}

#[test]
fn a_batch_that_leaves_rows_out_fails_those_members() {
    let tmp = tempfile::tempdir().unwrap();
    let script = tmp.path().join("partial.py");
    std::fs::write(
        &script,
        r#"#!/usr/bin/env python3
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
with open(sys.argv[2], "w") as f:
    f.write("member,y1,y2,y3,y4,y5\n")
    for r in rows:
        m = int(r["member"])
        if m % 2 == 0:
            continue                      # no row: the member failed
        ys = [1.0, 2.0, 3.0, 4.0, "nan" if m == 3 else 5.0]
        if m == 5:
            ys = ys[:4]                   # a short row
        f.write(",".join([str(m)] + [str(y) for y in ys]) + "\n")
"#,
    )
    .unwrap();
    make_executable(&script);
    let cfg = decay_config(tmp.path(), "batch", "");
    let t = std::fs::read_to_string(&cfg).unwrap().replace(
        &python_examples()
            .join("decay_batch.py")
            .display()
            .to_string(),
        &script.display().to_string(),
    );
    std::fs::write(&cfg, t).unwrap();
    let dir = tmp.path().join("cal");
    ok(&ekp(
        &[
            "init",
            "--config",
            cfg.to_str().unwrap(),
            "--dir",
            dir.to_str().unwrap(),
        ],
        tmp.path(),
    ));
    ok(&ekp(
        &[
            "forward",
            "--dir",
            dir.to_str().unwrap(),
            "--members",
            "1-10",
        ],
        tmp.path(),
    ));
    let m = |j: usize| dir.join(format!("iteration_000/member_{j:03}"));
    for j in [2, 4, 6, 8, 10] {
        assert!(
            reason(&m(j)).contains("no row for this member"),
            "{j}: {}",
            reason(&m(j))
        );
    }
    assert!(reason(&m(3)).contains("non-finite"), "{}", reason(&m(3)));
    assert!(
        reason(&m(5)).contains("4 values, expected 5"),
        "{}",
        reason(&m(5))
    );
    for j in [1, 7, 9] {
        assert!(is_done(&m(j)));
    }
    // A batch process that fails fails all its members, with the cause; in
    // iteration 0 that is a broken model: ekp stops, and the members are
    // left to run again once it is fixed.
    std::fs::write(&script, "#!/bin/sh\necho broken >&2\nexit 4\n").unwrap();
    let out = ekp(
        &[
            "forward",
            "--dir",
            dir.to_str().unwrap(),
            "--members",
            "1-10",
        ],
        tmp.path(),
    );
    fails(&out, 1, &["exited with status 4", "broken"]);
    for j in 1..=10 {
        assert!(!m(j).join("status.toml").exists(), "member {j}");
    }
    let err = std::fs::read_to_string(dir.join("iteration_000/batch_001-010/stderr.log")).unwrap();
    assert_eq!(err, "broken\n");
}

#[test]
fn templates_write_the_models_input_file_and_unknown_names_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    // A command model that reads only its namelist.
    let script = tmp.path().join("nml_model.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nrate=$(sed -n 's/^ *rate *= *\\([^,]*\\),*$/\\1/p' model.nml)\n\
         initial=$(sed -n 's/^ *initial *= *\\([^,]*\\),*$/\\1/p' model.nml)\n\
         awk -v r=\"$rate\" -v a=\"$initial\" 'BEGIN { printf \"values = [\"; for (t = 0; t < 5; t++) printf \"%s%.17g\", (t ? \", \" : \"\"), a * exp(-r * t); print \"]\" }' > \"$2\"\n",
    )
    .unwrap();
    make_executable(&script);
    std::fs::write(
        tmp.path().join("model.nml.in"),
        "&decay\n  rate = {{ rate }},\n  initial = {{initial}},\n/\n",
    )
    .unwrap();
    let cfg_text = std::fs::read_to_string(python_examples().join("command.toml")).unwrap().replace(
        "program = \"./decay_command.py\"",
        "program = \"./nml_model.sh\"\ntemplates = [{ template = \"model.nml.in\", target = \"model.nml\" }]",
    );
    let cfg = tmp.path().join("cal.toml");
    std::fs::write(&cfg, &cfg_text).unwrap();
    let dir = tmp.path().join("cal");
    ok(&ekp(
        &[
            "init",
            "--config",
            cfg.to_str().unwrap(),
            "--dir",
            dir.to_str().unwrap(),
        ],
        tmp.path(),
    ));
    ok(&ekp(
        &[
            "forward",
            "--dir",
            dir.to_str().unwrap(),
            "--members",
            "1-3",
        ],
        tmp.path(),
    ));
    for j in 1..=3 {
        let d = dir.join(format!("iteration_000/member_{j:03}"));
        assert!(is_done(&d), "{:?}", status_of(&d));
        let params: toml::Table =
            toml::from_str(&std::fs::read_to_string(d.join("parameters.toml")).unwrap()).unwrap();
        let nml = std::fs::read_to_string(d.join("model.nml")).unwrap();
        let rate = params["rate"].as_float().unwrap();
        let initial = params["initial"].as_float().unwrap();
        assert_eq!(
            nml,
            format!("&decay\n  rate = {rate:?},\n  initial = {initial:?},\n/\n")
        );
    }
    // An unknown name: exit 2 naming the template and the line, before anything runs.
    std::fs::write(
        tmp.path().join("model.nml.in"),
        "&decay\n  rate = {{rate}},\n  k = {{kappa}},\n/\n",
    )
    .unwrap();
    let out_dir = tmp.path().join("out");
    let out = ekp(
        &[
            "run",
            "--config",
            cfg.to_str().unwrap(),
            "--output",
            out_dir.to_str().unwrap(),
        ],
        tmp.path(),
    );
    fails(
        &out,
        2,
        &["model.nml.in", "line 3", "kappa", "rate, initial"],
    );
    assert!(
        !out_dir.join("iteration_000").exists()
            || !out_dir
                .join("iteration_000/member_001/status.toml")
                .exists()
    );
    let out = ekp(
        &[
            "init",
            "--config",
            cfg.to_str().unwrap(),
            "--dir",
            tmp.path().join("cal2").to_str().unwrap(),
        ],
        tmp.path(),
    );
    fails(&out, 2, &["model.nml.in", "line 3"]);
    // Targets outside the member folder, or ekp's own files, are refused.
    for target in ["../x", "/etc/x", "output.toml"] {
        let bad = cfg_text.replace("target = \"model.nml\"", &format!("target = \"{target}\""));
        std::fs::write(&cfg, bad).unwrap();
        let out = ekp(
            &[
                "init",
                "--config",
                cfg.to_str().unwrap(),
                "--dir",
                tmp.path().join("cal3").to_str().unwrap(),
            ],
            tmp.path(),
        );
        fails(&out, 2, &["model.templates[1].target"]);
    }
}

#[test]
fn forward_members_runs_a_range_like_single_members() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("l96.toml");
    let example = ok(&ekp(&["config", "--example"], tmp.path()));
    let small = example
        .replace("ensemble_size = 20", "ensemble_size = 12")
        .replace("ensemble_size = 100", "ensemble_size = 12");
    std::fs::write(&cfg, small).unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    for d in [&a, &b] {
        ok(&ekp(
            &[
                "init",
                "--config",
                cfg.to_str().unwrap(),
                "--dir",
                d.to_str().unwrap(),
                "--seed",
                "3",
            ],
            tmp.path(),
        ));
    }
    let n = 12;
    assert!(a.join("iteration_000/member_012").is_dir());
    ok(&ekp(
        &[
            "forward",
            "--dir",
            a.to_str().unwrap(),
            "--members",
            &format!("1-{n}"),
            "--backend",
            "threads",
            "--threads",
            "2",
        ],
        tmp.path(),
    ));
    for j in 1..=n {
        ok(&ekp(
            &[
                "forward",
                "--dir",
                b.to_str().unwrap(),
                "--member",
                &j.to_string(),
                "--backend",
                "serial",
            ],
            tmp.path(),
        ));
    }
    for j in 1..=n {
        let f = format!("iteration_000/member_{j:03}/output.toml");
        assert_eq!(
            std::fs::read(a.join(&f)).unwrap(),
            std::fs::read(b.join(&f)).unwrap(),
            "{f}"
        );
    }
    ok(&ekp(&["update", "--dir", a.to_str().unwrap()], tmp.path()));
    ok(&ekp(&["update", "--dir", b.to_str().unwrap()], tmp.path()));
    assert_eq!(
        std::fs::read(a.join("state.toml")).unwrap(),
        std::fs::read(b.join("state.toml")).unwrap()
    );
    // Bad lists are refused with exit 2.
    for bad in ["0-2", "3-1", "1-99", "x"] {
        fails(
            &ekp(
                &["forward", "--dir", a.to_str().unwrap(), "--members", bad],
                tmp.path(),
            ),
            2,
            &["--members"],
        );
    }
    fails(
        &ekp(
            &[
                "forward",
                "--dir",
                a.to_str().unwrap(),
                "--members",
                "1-2",
                "--member",
                "1",
            ],
            tmp.path(),
        ),
        2,
        &["cannot be used with"],
    );
}

#[test]
fn slurm_members_per_task_scripts_run_their_share() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = decay_config(tmp.path(), "worker", "");
    let dir = tmp.path().join("cal");
    ok(&ekp(
        &[
            "init",
            "--config",
            cfg.to_str().unwrap(),
            "--dir",
            dir.to_str().unwrap(),
        ],
        tmp.path(),
    ));
    ok(&ekp(
        &[
            "slurm",
            "--dir",
            dir.to_str().unwrap(),
            "--members-per-task",
            "4",
            "--jobs",
            "2",
            "--iterations",
            "1",
        ],
        tmp.path(),
    ));
    let script = std::fs::read_to_string(dir.join("slurm/forward_000.sbatch")).unwrap();
    assert!(script.contains("#SBATCH --array=1-3\n"), "{script}");
    assert!(
        script.contains("1) MEMBERS=1-4 ;;") && script.contains("3) MEMBERS=9-10 ;;"),
        "{script}"
    );
    assert!(
        script.contains("--members \"$MEMBERS\"") && script.contains("--jobs 2"),
        "{script}"
    );
    // Task 2 of the array, run here as SLURM would run it, runs members 5-8.
    let out = std::process::Command::new("sh")
        .arg(dir.join("slurm/forward_000.sbatch"))
        .env("SLURM_ARRAY_TASK_ID", "2")
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    for j in 1..=10 {
        let st = dir.join(format!("iteration_000/member_{j:03}/status.toml"));
        assert_eq!(st.exists(), (5..=8).contains(&j), "member {j}");
    }
    let out = std::process::Command::new("sh")
        .arg(dir.join("slurm/forward_000.sbatch"))
        .env("SLURM_ARRAY_TASK_ID", "4")
        .output()
        .unwrap();
    assert!(!out.status.success() && text(&out.stderr).contains("has no members"));
    // Flags that do not fit the model are refused before anything is written.
    fails(
        &ekp(
            &["slurm", "--dir", dir.to_str().unwrap(), "--backend", "gpu"],
            tmp.path(),
        ),
        2,
        &["--backend gpu"],
    );
    fails(
        &ekp(
            &[
                "slurm",
                "--dir",
                dir.to_str().unwrap(),
                "--members-per-task",
                "0",
            ],
            tmp.path(),
        ),
        2,
        &["--members-per-task"],
    );
}

#[test]
fn ctrl_c_stops_the_workers_and_resume_finishes_with_the_same_result() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    // A worker that takes its time, so that the run is caught mid-iteration.
    let slow = t.join("slow_worker.py");
    std::fs::write(
        &slow,
        format!(
            "#!/usr/bin/env python3\nimport sys, time\nsys.path.insert(0, {:?})\n\
             from decay import decay\nfrom ekp_worker import serve\n\
             def model(p):\n    time.sleep(0.3)\n    return decay(p['rate'], p['initial'])\n\
             serve(model)\n",
            python_examples().display().to_string()
        ),
    )
    .unwrap();
    make_executable(&slow);
    let cfg = decay_config(t, "worker", "");
    let text_cfg = std::fs::read_to_string(&cfg).unwrap();
    let slow_cfg = text_cfg.replace(
        &python_examples()
            .join("decay_worker.py")
            .display()
            .to_string(),
        &slow.display().to_string(),
    );
    std::fs::write(t.join("slow.toml"), &slow_cfg).unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_ekp-cli"))
        .args([
            "run",
            "-q",
            "--config",
            "slow.toml",
            "--output",
            "out",
            "--jobs",
            "2",
        ])
        .current_dir(t)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until some members of iteration 1 are done, then Ctrl-C.
    let started = std::time::Instant::now();
    while !t.join("out/iteration_001/member_002/status.toml").exists() {
        assert!(
            started.elapsed().as_secs() < 60,
            "the run did not reach iteration 1"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(
        processes_with(&slow.display().to_string()),
        0,
        "a worker outlived ekp"
    );
    // Resume (the same calibration: only the program's speed differs).
    ok(&ekp(&["run", "-q", "--resume", "--output", "out"], t));
    ok(&ekp(
        &["run", "-q", "--config", "slow.toml", "--output", "ref"],
        t,
    ));
    assert_eq!(results_of(&t.join("out")), results_of(&t.join("ref")));
}
