//! Bad input and faults, tried as a careless or hostile user would: each
//! gets a clear error (exit 2 for bad input, naming the key, file or
//! member) or is handled as a failed member — never a panic (exit 101),
//! never a half-changed folder.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use common::{ekp, fails, ok, text};

fn exe(path: &Path, body: &str) {
    std::fs::write(path, body).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A command-model calibration of `members` members running `program`.
fn config(program: &str, members: usize) -> String {
    format!(
        r#"
[process]
kind = "inversion"
ensemble_size = {members}
iterations = 2
seed = 1
scheduler = {{ kind = "fixed", dt = 0.5 }}

[[parameters]]
name = "a"
prior = {{ kind = "gaussian", mean = 0.0, std = 1.0 }}

[observations]
values = [0.5, 1.0]
noise_std = 0.1

[model]
kind = "command"
program = "{program}"
"#
    )
}

/// A model: `a` and `2a`, and a line in `runs.log`; member `$BAD` answers
/// `$BAD_VALUE` instead of its second value.
const MODEL: &str = r#"#!/bin/sh
set -eu
echo "$EKP_ITERATION $EKP_MEMBER" >> "$EKP_DIR/../runs.log"
a=$(sed -n 's/^a = //p' "$EKP_PARAMETERS")
second=$(awk -v a="$a" 'BEGIN { printf "%.17g", 2 * a }')
if [ "${BAD:-0}" = "$EKP_MEMBER" ]; then second="$BAD_VALUE"; fi
echo "values = [$a, $second]" > "$EKP_OUTPUT"
"#;

#[test]
fn a_program_that_cannot_run_is_refused_before_any_member_starts() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    std::fs::write(t.join("nopath.toml"), config("no-such-model-xyz", 4)).unwrap();
    fails(
        &ekp(&["run", "--config", "nopath.toml", "--output", "o"], t),
        2,
        &["model.program", "no-such-model-xyz", "not found on PATH"],
    );
    std::fs::write(t.join("model.sh"), MODEL).unwrap(); // no exec bit
    std::fs::write(t.join("noexec.toml"), config("./model.sh", 4)).unwrap();
    fails(
        &ekp(&["run", "--config", "noexec.toml", "--output", "o"], t),
        2,
        &["model.program", "not executable", "chmod +x"],
    );
    fails(
        &ekp(&["init", "--config", "noexec.toml", "--dir", "wf"], t),
        2,
        &["not executable"],
    );
    assert!(!t.join("o").exists() && !t.join("wf").exists());
    assert!(!t.join("runs.log").exists(), "a member started");
}

#[test]
fn a_model_that_always_fails_stops_early_and_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    exe(
        &t.join("broken.sh"),
        "#!/bin/sh\necho \"$EKP_MEMBER\" >> \"$EKP_DIR/../runs.log\"\necho 'boom: cannot open input.nc' >&2\nexit 3\n",
    );
    std::fs::write(t.join("c.toml"), config("./broken.sh", 40)).unwrap();
    let err = fails(
        &ekp(
            &[
                "run", "-q", "--config", "c.toml", "--output", "o", "--jobs", "1",
            ],
            t,
        ),
        1,
        &[
            "all failed the same way",
            "exited with status 3",
            "boom: cannot open input.nc",
            "--resume",
        ],
    );
    let runs = std::fs::read_to_string(t.join("runs.log")).unwrap();
    assert!(runs.lines().count() < 40, "every member ran: {err}");
    // Once the model is fixed, resume runs the calibration, those members included.
    exe(&t.join("broken.sh"), MODEL);
    ok(&ekp(&["run", "-q", "--resume", "--output", "o"], t));

    // Members that all fail (too few to stop early): the error names the
    // most common cause and shows the end of a member's stderr.log.
    std::fs::write(t.join("c3.toml"), config("./broken3.sh", 3)).unwrap();
    exe(
        &t.join("broken3.sh"),
        "#!/bin/sh\necho 'segfault in solver' >&2\nexit 139\n",
    );
    fails(
        &ekp(&["run", "-q", "--config", "c3.toml", "--output", "o3"], t),
        1,
        &[
            "most common cause (3 of 3",
            "exited with status 139",
            "segfault in solver",
        ],
    );
}

#[test]
fn absurd_and_wrong_outputs_fail_their_member_not_the_calibration() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    exe(&t.join("model.sh"), MODEL);
    std::fs::write(t.join("c.toml"), config("./model.sh", 8)).unwrap();
    // One member answers a finite but absurd 1e300: that member fails, named.
    let out = Command::new(env!("CARGO_BIN_EXE_ekp-cli"))
        .args(["run", "-q", "--config", "c.toml", "--output", "o"])
        .env("BAD", "3")
        .env("BAD_VALUE", "1e300")
        .current_dir(t)
        .output()
        .unwrap();
    ok(&out);
    let status = std::fs::read_to_string(t.join("o/iteration_000/member_003/status.toml")).unwrap();
    assert!(status.contains("too large"), "{status}");
    let history = std::fs::read_to_string(t.join("o/history.csv")).unwrap();
    assert!(history.lines().nth(1).unwrap().contains(",3,"), "{history}");
    // Every member writes the wrong number of values: bad input, named.
    exe(
        &t.join("three.sh"),
        "#!/bin/sh\necho 'values = [1.0, 2.0, 3.0]' > \"$EKP_OUTPUT\"\n",
    );
    std::fs::write(t.join("w.toml"), config("./three.sh", 3)).unwrap();
    fails(
        &ekp(&["run", "-q", "--config", "w.toml", "--output", "w"], t),
        2,
        &["has 3 entries, the observations have 2", "member_001"],
    );
}

#[test]
fn a_hand_edited_parameter_file_is_not_paired_with_the_ensemble() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    exe(&t.join("model.sh"), MODEL);
    std::fs::write(t.join("c.toml"), config("./model.sh", 4)).unwrap();
    ok(&ekp(&["init", "--config", "c.toml", "--dir", "wf"], t));
    std::fs::write(
        t.join("wf/iteration_000/member_002/parameters.toml"),
        "a = 42.0\n",
    )
    .unwrap();
    for j in 1..=4 {
        ok(&ekp(
            &["forward", "--dir", "wf", "--member", &j.to_string()],
            t,
        ));
    }
    let state = std::fs::read(t.join("wf/state.toml")).unwrap();
    fails(
        &ekp(&["update", "--dir", "wf"], t),
        2,
        &[
            "members 2 ran with a parameters.toml",
            "Nothing was changed",
        ],
    );
    assert_eq!(std::fs::read(t.join("wf/state.toml")).unwrap(), state);
}

#[test]
fn odd_paths_and_absurd_flags_are_handled() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    exe(&t.join("model.sh"), MODEL);
    std::fs::write(t.join("c.toml"), config("./model.sh", 4)).unwrap();
    // Placeholders are substituted once: a folder named `x{member}` stays so.
    ok(&ekp(
        &[
            "run",
            "-q",
            "--config",
            "c.toml",
            "--output",
            "runs/x{member}",
        ],
        t,
    ));
    assert!(t.join("runs/x{member}/result.toml").is_file());
    for args in [
        vec![
            "run", "--config", "c.toml", "--output", "p", "--jobs", "100000",
        ],
        vec![
            "run",
            "--config",
            "c.toml",
            "--output",
            "p",
            "--member-timeout",
            "1e300",
        ],
        vec!["run", "--config", "c.toml", "--output", "p", "--jobs", "0"],
        vec!["run", "--output", "p", "--threads", "100000"],
        vec!["run", "--output", "p", "--seed", "18446744073709551615"],
        vec![
            "bench",
            "--backend",
            "threads",
            "--members",
            "1000000000000",
            "--steps",
            "1",
        ],
        vec![
            "bench",
            "--update",
            "--members",
            "100000",
            "--outputs",
            "10000000",
        ],
    ] {
        let o = ekp(&args, t);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o.stderr));
    }
    assert!(!t.join("p").exists(), "a refused run wrote its folder");
}

#[test]
fn a_closed_stdout_pipe_ends_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    exe(&t.join("model.sh"), MODEL);
    // 5 000 members: `status` prints far more than a pipe holds (64 KiB).
    std::fs::write(t.join("c.toml"), config("./model.sh", 5000)).unwrap();
    ok(&ekp(&["init", "--config", "c.toml", "--dir", "o"], t));
    for args in [
        vec!["status", "--dir", "o"],
        vec!["config", "--example"],
        vec!["prior"],
    ] {
        // `ekp-cli status | head -1`: a real pipe, closed after one line.
        let mut child = Command::new(env!("CARGO_BIN_EXE_ekp-cli"))
            .args(&args)
            .current_dir(t)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(!first.is_empty());
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

/// The state text with the first value of its first ensemble replaced.
fn with_first_u(state: &str, value: &str) -> String {
    let at = state.find("[[u]]").expect("an ensemble");
    let data = at + state[at..].find("data = [").expect("data") + "data = [".len();
    let end = data + state[data..].find(',').expect("a comma");
    format!("{}{value}{}", &state[..data], &state[end..])
}

#[test]
fn damaged_states_are_refused_by_every_command_and_rewind_still_works() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    exe(&t.join("model.sh"), MODEL);
    std::fs::write(t.join("c.toml"), config("./model.sh", 4)).unwrap();
    ok(&ekp(&["init", "--config", "c.toml", "--dir", "wf"], t));
    for j in 1..=4 {
        ok(&ekp(
            &["forward", "--dir", "wf", "--member", &j.to_string()],
            t,
        ));
    }
    ok(&ekp(&["update", "--dir", "wf"], t));
    let state = t.join("wf/state.toml");
    let good = std::fs::read_to_string(&state).unwrap();
    // A NaN in the ensemble: every command refuses, naming the file and key.
    std::fs::write(&state, with_first_u(&good, "nan")).unwrap();
    for cmd in [
        vec!["status", "--dir", "wf"],
        vec!["update", "--dir", "wf"],
        vec!["plot", "--dir", "wf"],
        vec!["forward", "--dir", "wf", "--member", "1"],
    ] {
        fails(&ekp(&cmd, t), 2, &["state.toml", "non-finite"]);
    }
    // A state of another calibration (other parameters): refused, not a panic.
    std::fs::write(&state, good.replace("name = \"a\"", "name = \"zz\"")).unwrap();
    for cmd in [vec!["status", "--dir", "wf"], vec!["plot", "--dir", "wf"]] {
        fails(&ekp(&cmd, t), 2, &["state.toml"]);
    }
    // Truncated: rewinding works from the per-iteration states alone.
    std::fs::write(&state, &good[..good.len() / 2]).unwrap();
    let said = ok(&ekp(&["update", "--dir", "wf", "--rewind-to", "1"], t));
    assert!(said.contains("rewound to iteration 1"), "{said}");
    ok(&ekp(&["status", "--dir", "wf"], t));
}

#[test]
fn two_runs_into_one_folder_at_once_do_not_mix() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    exe(
        &t.join("slow.sh"),
        "#!/bin/sh\nsleep 0.3\na=$(sed -n 's/^a = //p' \"$EKP_PARAMETERS\")\necho \"values = [$a, $a]\" > \"$EKP_OUTPUT\"\n",
    );
    std::fs::write(t.join("c.toml"), config("./slow.sh", 4)).unwrap();
    let first = Command::new(env!("CARGO_BIN_EXE_ekp-cli"))
        .args(["run", "-q", "--config", "c.toml", "--output", "o"])
        .current_dir(t)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the first run holds the folder.
    let start = std::time::Instant::now();
    while !t.join("o/update.lock").exists() && start.elapsed().as_secs() < 20 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let second = ekp(
        &[
            "run", "-q", "--resume", "--config", "c.toml", "--output", "o",
        ],
        t,
    );
    fails(&second, 1, &["another ekp-cli run is running"]);
    let out = first.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    ok(&ekp(&["status", "--dir", "o"], t));
}
