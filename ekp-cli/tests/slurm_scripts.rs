//! The job scripts `ekp-cli slurm` writes, against hostile and odd values
//! (no SLURM cluster needed: the scripts are only written, then parsed by
//! `sh -n`, run with stand-ins for `ekp-cli` and `sbatch`, and their
//! `#SBATCH` lines read the way sbatch reads them).
//!
//! A newline in any value written into a script (`--partition $'debug\ntouch
//! PWNED'`) must be refused (exit 2, the flag named, nothing written), and a
//! legal but odd value (spaces, quotes, `$`, `#`, `%`) must arrive intact.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{ekp, text};

const LINEAR: &str = r#"
[process]
kind = "inversion"
ensemble_size = 4
iterations = 2
seed = 7

[[parameters]]
name = "a"
prior = { kind = "gaussian", mean = 0.0, std = 2.0 }

[observations]
values = [1.0, 2.0]
noise_std = 0.1

[model]
kind = "linear"
matrix = [[1.0], [2.0]]
"#;

/// Runs `ekp-cli` with arguments that may not be UTF-8-clean text.
fn ekp_os(args: &[&OsStr], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ekp-cli"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("ekp-cli runs")
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout)
}

fn write_exe(path: &Path, contents: &str) {
    std::fs::write(path, contents).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files(&p));
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_control_character_in_any_script_value_is_refused_and_nothing_is_written() {
    let evil = "debug\ntouch PWNED";
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("--partition", vec!["--partition".into(), evil.into()]),
        ("--account", vec!["--account".into(), evil.into()]),
        ("--mem", vec!["--mem".into(), "1G\ntouch PWNED".into()]),
        ("--update-mem", vec!["--update-mem".into(), "1G\rx".into()]),
        ("--time", vec!["--time".into(), "10\ntouch PWNED".into()]),
        ("--update-time", vec!["--update-time".into(), "10\n".into()]),
        (
            "--sbatch-arg",
            vec!["--sbatch-arg=--qos=low\ntouch PWNED".into()],
        ),
        (
            "--sbatch-arg",
            vec!["--sbatch-arg=--comment=a\u{1b}[2Jb".into()],
        ),
        (
            "--ekp-cli",
            vec!["--ekp-cli".into(), "/bin/ekp\ntouch PWNED".into()],
        ),
        ("--partition", vec!["--partition".into(), "a\tb".into()]),
        (
            "--setup",
            vec!["--setup".into(), "module load x\ntouch PWNED".into()],
        ),
        (
            "--gpus-per-task",
            vec!["--gpus-per-task".into(), "0".into()],
        ),
    ];
    for (flag, extra) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        std::fs::write(t.join("lin.toml"), LINEAR).unwrap();
        let mut args = vec!["slurm", "--dir", "chain", "--config", "lin.toml"];
        args.extend(extra.iter().map(String::as_str));
        let o = ekp(&args, t);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{flag}: {err}");
        assert!(err.contains(flag), "{flag} not named: {err}");
        assert!(!t.join("chain").exists(), "{flag}: something was written");
        assert!(!t.join("PWNED").exists());
    }

    // Paths: --dir and --config (the file exists, with a newline in its name).
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let config = "lin\ntouch PWNED.toml";
    std::fs::write(t.join(config), LINEAR).unwrap();
    std::fs::write(t.join("lin.toml"), LINEAR).unwrap();
    for (flag, dir, cfg) in [
        ("--dir", "chain\ntouch PWNED", "lin.toml"),
        ("--config", "chain", config),
    ] {
        let o = ekp(&["slurm", "--dir", dir, "--config", cfg], t);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{flag}: {err}");
        assert!(err.contains(flag), "{flag} not named: {err}");
        assert!(!t.join(dir).exists() && !t.join("chain").exists(), "{flag}");
    }
    // A path that is not UTF-8 cannot be written into a script faithfully.
    let o = ekp_os(
        &[
            OsStr::new("slurm"),
            OsStr::new("--dir"),
            OsStr::from_bytes(b"chain\xff"),
            OsStr::new("--config"),
            OsStr::new("lin.toml"),
        ],
        t,
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("--dir"), "{}", text(&o.stderr));

    // An initialised folder: refused the same way, its files untouched.
    ok(&ekp(&["init", "--config", "lin.toml", "--dir", "wf"], t));
    let before = files(&t.join("wf"));
    let o = ekp(&["slurm", "--dir", "wf", "--partition", "x\ny"], t);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert_eq!(files(&t.join("wf")), before);
    assert!(!t.join("wf/slurm").exists());
}

#[test]
fn an_sbatch_arg_must_be_an_option() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    std::fs::write(t.join("lin.toml"), LINEAR).unwrap();
    let o = ekp(
        &[
            "slurm",
            "--dir",
            "chain",
            "--config",
            "lin.toml",
            "--sbatch-arg",
            "qos=low",
        ],
        t,
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("--sbatch-arg"));
    assert!(!t.join("chain").exists());
}

/// The arguments sbatch reads from a script's `#SBATCH` lines, parsed the
/// way sbatch does (`_get_argument` in slurm's `src/sbatch/opt.c`): white
/// space separates arguments, `'` and `"` quote, `\` escapes the next
/// character (inside quotes too), an unquoted `#` starts a comment; lines
/// are read up to the first one that is not a comment.
fn sbatch_args(script: &str) -> Vec<String> {
    let mut args = Vec::new();
    for line in script.lines().skip(1) {
        if !line.starts_with('#') {
            break;
        }
        let Some(rest) = line.strip_prefix("#SBATCH") else {
            continue;
        };
        let mut chars = rest.chars().peekable();
        loop {
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            if chars.peek().is_none() {
                break;
            }
            let mut arg = String::new();
            let mut quote: Option<char> = None;
            while let Some(&c) = chars.peek() {
                if quote.is_none() && c.is_whitespace() {
                    break;
                }
                chars.next();
                match (c, quote) {
                    ('\\', _) => arg.extend(chars.next()),
                    (c, Some(q)) if c == q => quote = None,
                    (_, Some(_)) => arg.push(c),
                    ('\'' | '"', None) => quote = Some(c),
                    ('#', None) => {
                        // A comment: the rest of the line is not read.
                        while chars.next().is_some() {}
                        break;
                    }
                    _ => arg.push(c),
                }
            }
            assert!(quote.is_none(), "unmatched quote in {line:?}");
            if !arg.is_empty() {
                args.push(arg);
            }
        }
    }
    args
}

/// `sh -n FILE`: the shell parses it.
fn sh_parses(path: &Path) {
    let o = Command::new("sh").arg("-n").arg(path).output().unwrap();
    assert!(
        o.status.success(),
        "sh -n {}: {}",
        path.display(),
        text(&o.stderr)
    );
}

/// Runs `script` with `sh`, `ekp-cli` and `sbatch` replaced by stand-ins
/// that print their arguments one per line into `args.txt`; returns them
/// and what the script printed.
fn run_with_stand_ins(t: &Path, script: &Path) -> (Vec<String>, String) {
    let log = t.join("args.txt");
    let _ = std::fs::remove_file(&log);
    let o = Command::new("sh")
        .arg(script)
        .env("ARGS_OUT", &log)
        .env(
            "PATH",
            format!(
                "{}:{}",
                t.join("bin").display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let args = std::fs::read_to_string(&log).unwrap();
    (args.lines().map(String::from).collect(), text(&o.stdout))
}

#[test]
fn odd_but_legal_values_are_quoted_and_arrive_intact() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let odd = "it's a \"dir\" $HOME `x` #1 50%";
    std::fs::create_dir_all(t.join(odd)).unwrap();
    let config = t.join(odd).join("my 'lin'.toml");
    std::fs::write(&config, LINEAR).unwrap();
    // Stand-ins: ekp-cli (at an odd path) and sbatch print their arguments.
    let stand_in = "#!/bin/sh\nprintf '%s\\n' \"$@\" >> \"$ARGS_OUT\"\necho 4242\n";
    let exe = t.join(odd).join("ekp cli's");
    write_exe(&exe, stand_in);
    std::fs::create_dir_all(t.join("bin")).unwrap();
    write_exe(&t.join("bin/sbatch"), stand_in);

    let dir = t.join(odd).join("run $1 'x'");
    let account = "my 'proj' \"x\" $y #1 \\z";
    let said = ok(&ekp_os(
        &[
            OsStr::new("slurm"),
            OsStr::new("--dir"),
            dir.as_os_str(),
            OsStr::new("--config"),
            config.as_os_str(),
            OsStr::new("--ekp-cli"),
            exe.as_os_str(),
            OsStr::new("--partition"),
            OsStr::new("debug"),
            OsStr::new("--account"),
            OsStr::new(account),
            OsStr::new("--mem"),
            OsStr::new("1G"),
            OsStr::new("--sbatch-arg=--comment=two words"),
        ],
        t,
    ));
    assert!(said.contains("wrote 7 job scripts"), "{said}");
    let s = dir.join("slurm");
    let dir_text = dir.to_str().unwrap();

    // The forward script: the shell parses it, its #SBATCH lines read back
    // as the values given, and its command gets its arguments intact.
    let fwd_path = s.join("forward_000.sbatch");
    sh_parses(&fwd_path);
    let fwd = std::fs::read_to_string(&fwd_path).unwrap();
    assert!(fwd.contains("#SBATCH --partition=debug\n"), "{fwd}");
    let parsed = sbatch_args(&fwd);
    let log = format!(
        "--output={}/slurm/logs/forward_000_%a.out",
        dir_text.replace('%', "%%")
    );
    for want in [
        "--job-name=ekp-forward-0",
        log.as_str(),
        "--partition=debug",
        &format!("--account={account}"),
        "--mem=1G",
        "--comment=two words",
        "--array=1-4",
        "--kill-on-invalid-dep=yes",
    ] {
        assert!(
            parsed.iter().any(|a| a == want),
            "{want:?} not in {parsed:?}\n{fwd}"
        );
    }
    let (args, _) = run_with_stand_ins(t, &fwd_path);
    assert_eq!(
        args,
        ["forward", "--dir", dir_text, "--iteration", "0"],
        "{fwd}"
    );

    // The init and update scripts likewise.
    let init = s.join("init.sbatch");
    sh_parses(&init);
    let (args, _) = run_with_stand_ins(t, &init);
    let config_text = config.to_str().unwrap();
    assert_eq!(args, ["init", "--config", config_text, "--dir", dir_text]);
    let update = s.join("update_002.sbatch");
    sh_parses(&update);
    let (args, _) = run_with_stand_ins(t, &update);
    assert_eq!(
        args,
        [
            "update",
            "--dir",
            dir_text,
            "--iteration",
            "2",
            "--allow-missing"
        ]
    );
    assert!(
        !sbatch_args(&std::fs::read_to_string(&update).unwrap())
            .iter()
            .any(|a| a.starts_with("--mem"))
    );

    // submit.sh: parses, and hands sbatch each script's path intact, each
    // job after the one before.
    let submit = s.join("submit.sh");
    sh_parses(&submit);
    let (args, printed) = run_with_stand_ins(t, &submit);
    let scripts: Vec<&String> = args.iter().filter(|a| a.ends_with(".sbatch")).collect();
    let want: Vec<String> = [
        "init.sbatch",
        "forward_000.sbatch",
        "update_000.sbatch",
        "forward_001.sbatch",
        "update_001.sbatch",
        "forward_002.sbatch",
        "update_002.sbatch",
    ]
    .iter()
    .filter(|f| s.join(f).exists())
    .map(|f| s.join(f).display().to_string())
    .collect();
    assert_eq!(scripts, want.iter().collect::<Vec<_>>(), "{args:?}");
    assert_eq!(
        args.iter()
            .filter(|a| *a == "--dependency=afterok:4242")
            .count(),
        want.len() - 1
    );
    assert!(printed.contains("init: 4242"), "{printed}");

    // No script has more lines than this program writes: the odd values
    // stayed on theirs.
    for f in files(&s) {
        if f.extension().is_some_and(|e| e == "sbatch") {
            let text = std::fs::read_to_string(&f).unwrap();
            let commands = text.lines().filter(|l| !l.starts_with('#')).count();
            // A forward task: the guard for a task requeued past --retries
            // (`if`, its `exec`, `fi`), then its `exec`.
            let forward = f
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("forward_"));
            assert_eq!(
                commands,
                if forward { 4 } else { 1 },
                "{}:\n{text}",
                f.display()
            );
        }
    }
    assert!(!t.join("PWNED").exists());
}

/// `status` of a folder with a chain (`slurm/chain.toml`) against a
/// stand-in `squeue` on PATH; `squeue_body` is its shell script.
fn status_with_squeue(squeue_body: &str, members_per_task: bool) -> (tempfile::TempDir, Output) {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    std::fs::write(t.join("cal.toml"), LINEAR).unwrap();
    ok(&ekp(&["init", "--config", "cal.toml", "--dir", "d"], t));
    let tasks = if members_per_task {
        "tasks = [\"1-2\", \"3-4\"]\n"
    } else {
        ""
    };
    std::fs::create_dir_all(t.join("d/slurm")).unwrap();
    std::fs::write(
        t.join("d/slurm/chain.toml"),
        format!(
            "submitted_unix = 1\n[[jobs]]\nkind = \"forward\"\niteration = 0\nscript = \"f\"\n\
             log = \"l\"\nid = \"12\"\n{tasks}[[jobs]]\nkind = \"update\"\niteration = 0\n\
             script = \"u\"\nlog = \"l\"\nid = \"13\"\n"
        ),
    )
    .unwrap();
    let bin = t.join("bin");
    std::fs::create_dir(&bin).unwrap();
    write_exe(&bin.join("squeue"), squeue_body);
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let out = Command::new(env!("CARGO_BIN_EXE_ekp-cli"))
        .args(["status", "--dir", "d"])
        .current_dir(t)
        .env("PATH", &path)
        .output()
        .unwrap();
    (tmp, out)
}

#[test]
fn status_maps_squeue_task_states_to_members() {
    // Job 12 is an array of two tasks of two members each: task 1 pending
    // (squeue's bracketed form), task 2 running; job 13 waits on it.
    let squeue = "#!/bin/sh\ncase \"$*\" in\n  *' 12 '*) printf '12_[1]|PENDING\\n12_2|RUNNING\\n' ;;\n  \
                  *' 13 '*) echo '13|PENDING' ;;\nesac\n";
    let (_tmp, out) = status_with_squeue(squeue, true);
    let said = ok(&out);
    for (m, state) in [
        (1, "PENDING"),
        (2, "PENDING"),
        (3, "RUNNING"),
        (4, "RUNNING"),
    ] {
        assert!(
            said.contains(&format!("member_00{m}  missing   (SLURM task {state})")),
            "member {m}: {said}"
        );
    }
    assert!(
        said.contains("forward of iteration 0  PENDING 1, RUNNING 1"),
        "{said}"
    );
    assert!(said.contains("update of iteration 0   PENDING"), "{said}");
    // Without task lists (one member per task) the task id is the member.
    let (_tmp, out) = status_with_squeue(squeue, false);
    let said = ok(&out);
    assert!(
        said.contains("member_001  missing   (SLURM task PENDING)"),
        "{said}"
    );
    assert!(
        said.contains("member_002  missing   (SLURM task RUNNING)"),
        "{said}"
    );
    assert!(said.contains("member_003  missing\n"), "{said}");
}

#[test]
fn status_off_the_cluster_says_squeue_cannot_tell_once() {
    // squeue that cannot reach a controller: several lines on stderr, exit 1.
    let (tmp, out) = status_with_squeue(
        "#!/bin/sh\necho call >> \"$(dirname \"$0\")/calls\"\necho 'squeue: error: DNS SRV lookup failed' >&2\n\
         echo 'squeue: fatal: Could not establish a configuration source' >&2\nexit 1\n",
        false,
    );
    let said = ok(&out);
    assert_eq!(
        said.matches("unknown (squeue: fatal: Could not establish a configuration source)")
            .count(),
        2,
        "{said}"
    );
    assert!(!said.contains("DNS SRV"), "{said}");
    let calls = std::fs::read_to_string(tmp.path().join("bin/calls")).unwrap();
    assert_eq!(calls.lines().count(), 1, "squeue is asked once");
}
