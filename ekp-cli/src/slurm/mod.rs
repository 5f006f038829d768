//! `ekp-cli slurm`: the file workflow as a chain of SLURM jobs.
//!
//! For each iteration, one array job runs `ekp-cli forward` for every member
//! (task id = member number), and one job runs `ekp-cli update` once the whole
//! array has finished (`--dependency=afterok:ARRAY`). A member whose model
//! fails is recorded by `forward`, which still exits 0, so the update runs and
//! its failure policy deals with the member; only a job that itself fails (bad
//! input, a node crash, a SLURM time limit) stops the chain, and
//! `--kill-on-invalid-dep=yes` then cancels the jobs after it instead of
//! leaving them pending forever.
//!
//! Scripts go to `DIR/slurm/` (`init.sbatch`, `forward_NNN.sbatch`,
//! `update_NNN.sbatch`, and `submit.sh`, which submits them in order), job
//! logs to `DIR/slurm/logs/`. With `--submit` ekp submits the chain itself and
//! records the job ids in `DIR/slurm/chain.toml`; `--wait` follows the jobs
//! with `squeue` (no accounting database is needed) until they end.
//!
//! A chain starts from the folder's newest iteration, so running `slurm`
//! again after a chain stopped resumes it; members of that iteration that are
//! already done are not run again.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use serde::{Deserialize, Serialize};

use crate::config::{Calibration, ModelSpec, parse_duration};
use crate::error::{InputError, Result};
use crate::folder::{MemberState, RunFolder};
use crate::io::{content_hash as config_hash, unix_now, write_atomic};

/// Where the chain's progress lines go (the command prints them).
pub type Say<'a> = &'a (dyn Fn(&str) + Sync);

/// Arguments of `slurm`.
#[derive(Debug, clap::Args)]
pub struct SlurmArgs {
    /// The calibration folder. If it has not been initialised, give --config:
    /// the chain then starts with an init job.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// The calibration file, for a folder that is not initialised yet.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// How many updates to chain. Default: to the end of the calibration
    /// (`process.iterations`, then the final ensemble's evaluation).
    #[arg(long, value_name = "K")]
    pub iterations: Option<usize>,
    /// Submit the chain (else only write the scripts and submit.sh).
    #[arg(long)]
    pub submit: bool,
    /// Follow the chain until its jobs end, and report the outcome (exit 1 if
    /// a job failed). Without --submit: the chain submitted last.
    #[arg(long)]
    pub wait: bool,
    /// SLURM partition (`--partition`) of every job.
    #[arg(long, value_name = "P")]
    pub partition: Option<String>,
    /// SLURM account (`--account`) of every job.
    #[arg(long, value_name = "A")]
    pub account: Option<String>,
    /// Time limit of each member's task (`--time`, SLURM's format: MM,
    /// HH:MM:SS, D-HH:MM, ...). A command model is then stopped a little
    /// before it, so that the member is recorded as failed rather than the
    /// task killed (unless --member-timeout says otherwise).
    #[arg(long, value_name = "TIME")]
    pub time: Option<String>,
    /// Time limit of the init and update jobs (default: --time).
    #[arg(long, value_name = "TIME")]
    pub update_time: Option<String>,
    /// Memory of each member's task (`--mem`, e.g. 4G).
    #[arg(long, value_name = "MEM")]
    pub mem: Option<String>,
    /// Memory of the init and update jobs (default: SLURM's).
    #[arg(long, value_name = "MEM")]
    pub update_mem: Option<String>,
    /// Run at most K members of an iteration at once (`--array=...%K`).
    #[arg(long, value_name = "K")]
    pub throttle: Option<usize>,
    /// An extra sbatch option for every job, e.g. --sbatch-arg=--qos=long
    /// (repeatable).
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    pub sbatch_arg: Vec<String>,
    /// Time limit of a command model's run, passed to `forward`.
    #[arg(long, value_name = "T", value_parser = parse_duration)]
    pub member_timeout: Option<Duration>,
    /// The ekp-cli binary the jobs run (default: this one). It must be
    /// reachable from the compute nodes.
    #[arg(long, value_name = "PATH")]
    pub ekp_cli: Option<PathBuf>,
    /// Seconds between squeue polls with --wait.
    #[arg(long, value_name = "S", default_value_t = 5.0)]
    pub poll: f64,
}

/// What a job of the chain does.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChainJob {
    /// `init`, `forward` or `update`.
    pub kind: String,
    /// The iteration (absent for init).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iteration: Option<usize>,
    /// The sbatch script.
    pub script: String,
    /// The job's log (for an array: of task `%a`).
    pub log: String,
    /// The SLURM job id, once submitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl ChainJob {
    fn describe(&self) -> String {
        match self.iteration {
            Some(i) => format!("{} of iteration {i}", self.kind),
            None => self.kind.clone(),
        }
    }
}

/// `DIR/slurm/chain.toml`: the chain submitted last.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Chain {
    /// When (Unix seconds).
    pub submitted_unix: u64,
    /// The jobs, in order; each depends on the one before.
    pub jobs: Vec<ChainJob>,
}

/// Single-quote `s` for a POSIX shell.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Seconds of a SLURM time limit: `MM`, `MM:SS`, `HH:MM:SS`, `D-HH`,
/// `D-HH:MM`, `D-HH:MM:SS`.
pub fn slurm_time_seconds(s: &str) -> Option<u64> {
    let s = s.trim();
    let num = |t: &str| t.parse::<u64>().ok();
    let (days, rest) = match s.split_once('-') {
        Some((d, r)) => (num(d)?, Some(r)),
        None => (0, None),
    };
    let secs = match rest {
        Some(r) => {
            let p: Vec<&str> = r.split(':').collect();
            match p.as_slice() {
                [h] => num(h)? * 3600,
                [h, m] => num(h)? * 3600 + num(m)? * 60,
                [h, m, sec] => num(h)? * 3600 + num(m)? * 60 + num(sec)?,
                _ => return None,
            }
        }
        None => {
            let p: Vec<&str> = s.split(':').collect();
            match p.as_slice() {
                [m] => num(m)? * 60,
                [m, sec] => num(m)? * 60 + num(sec)?,
                [h, m, sec] => num(h)? * 3600 + num(m)? * 60 + num(sec)?,
                _ => return None,
            }
        }
    };
    Some(days * 86_400 + secs)
}

/// `1-3,7,9-10` from sorted member numbers.
fn array_spec(members: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < members.len() {
        let start = members[i];
        let mut end = start;
        while i + 1 < members.len() && members[i + 1] == end + 1 {
            i += 1;
            end = members[i];
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    out.join(",")
}

struct Plan {
    dir: PathBuf,
    cal: Calibration,
    start: usize,
    first_members: Vec<usize>,
    needs_init: bool,
    /// The scheduler has stopped: the next update is the final one.
    terminated: bool,
}

fn sbatch_header(args: &SlurmArgs, name: &str, log: &str, member_job: bool) -> String {
    let mut s = String::from("#!/bin/sh\n");
    let _ = writeln!(s, "#SBATCH --job-name={name}");
    let _ = writeln!(s, "#SBATCH --output={log}");
    let _ = writeln!(s, "#SBATCH --kill-on-invalid-dep=yes");
    let _ = writeln!(s, "#SBATCH --ntasks=1");
    if let Some(p) = &args.partition {
        let _ = writeln!(s, "#SBATCH --partition={p}");
    }
    if let Some(a) = &args.account {
        let _ = writeln!(s, "#SBATCH --account={a}");
    }
    let (time, mem) = if member_job {
        (args.time.as_ref(), args.mem.as_ref())
    } else {
        (
            args.update_time.as_ref().or(args.time.as_ref()),
            args.update_mem.as_ref(),
        )
    };
    if let Some(t) = time {
        let _ = writeln!(s, "#SBATCH --time={t}");
    }
    if let Some(m) = mem {
        let _ = writeln!(s, "#SBATCH --mem={m}");
    }
    for a in &args.sbatch_arg {
        let _ = writeln!(s, "#SBATCH {a}");
    }
    s
}

fn write_scripts(args: &SlurmArgs, plan: &Plan, exe: &Path) -> Result<Vec<ChainJob>> {
    let slurm_dir = plan.dir.join("slurm");
    let logs = slurm_dir.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("{}: cannot create", logs.display()))?;
    let cal = &plan.cal;
    let layout = crate::folder::Layout::new(&plan.dir, cal.ensemble_size, cal.iterations);
    let dir_q = sh_quote(&plan.dir.display().to_string());
    let exe_q = sh_quote(&exe.display().to_string());
    // Updates left; the chain ends with the final ensemble's evaluation when
    // it gets that far.
    let remaining = if plan.terminated {
        0
    } else {
        cal.iterations.saturating_sub(plan.start)
    };
    let k = match args.iterations {
        Some(0) => {
            return Err(InputError::Argument("--iterations must be at least 1".into()).into());
        }
        Some(k) => k,
        None => remaining,
    };
    let end = if k >= remaining {
        plan.start + remaining
    } else {
        plan.start + k - 1
    };
    let member_timeout = args.member_timeout.or_else(|| {
        if !matches!(cal.model, ModelSpec::Command(_)) {
            return None;
        }
        let t = slurm_time_seconds(args.time.as_deref()?)?;
        // Stop the model a little before SLURM would kill the task.
        Some(Duration::from_secs(
            t.saturating_sub((t / 10).min(60)).max(1),
        ))
    });
    let mut jobs = Vec::new();
    if plan.needs_init {
        let config = args
            .config
            .as_ref()
            .ok_or_else(|| anyhow!("--config is needed to initialise the folder"))?;
        let config = std::path::absolute(config).unwrap_or(config.clone());
        let log = logs.join("init.out").display().to_string();
        let mut s = sbatch_header(args, "ekp-init", &log, false);
        let _ = writeln!(
            s,
            "exec {exe_q} init --config {} --dir {dir_q}",
            sh_quote(&config.display().to_string())
        );
        let script = slurm_dir.join("init.sbatch");
        write_atomic(&script, s.as_bytes())?;
        jobs.push(ChainJob {
            kind: "init".into(),
            iteration: None,
            script: script.display().to_string(),
            log,
            id: None,
        });
    }
    for it in plan.start..=end {
        let name = layout.iteration_name(it);
        let members: Vec<usize> = if it == plan.start {
            plan.first_members.clone()
        } else {
            (1..=cal.ensemble_size).collect()
        };
        if !members.is_empty() {
            let log = logs
                .join(format!("forward_{}_%a.out", &name["iteration_".len()..]))
                .display()
                .to_string();
            let mut s = sbatch_header(args, &format!("ekp-forward-{it}"), &log, true);
            let throttle = args.throttle.map(|t| format!("%{t}")).unwrap_or_default();
            let _ = writeln!(s, "#SBATCH --array={}{throttle}", array_spec(&members));
            let timeout = member_timeout
                .map(|t| format!(" --member-timeout {}s", t.as_secs_f64()))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "# the member is $SLURM_ARRAY_TASK_ID\nexec {exe_q} forward --dir {dir_q} --iteration {it}{timeout}"
            );
            let script = slurm_dir.join(format!("forward_{}.sbatch", &name["iteration_".len()..]));
            write_atomic(&script, s.as_bytes())?;
            jobs.push(ChainJob {
                kind: "forward".into(),
                iteration: Some(it),
                script: script.display().to_string(),
                log,
                id: None,
            });
        }
        let log = logs
            .join(format!("update_{}.out", &name["iteration_".len()..]))
            .display()
            .to_string();
        let mut s = sbatch_header(args, &format!("ekp-update-{it}"), &log, false);
        // Members that SLURM killed before they could record anything (a node
        // failure, the task's time limit) count as failed: the chain never stalls.
        let _ = writeln!(
            s,
            "exec {exe_q} update --dir {dir_q} --iteration {it} --allow-missing"
        );
        let script = slurm_dir.join(format!("update_{}.sbatch", &name["iteration_".len()..]));
        write_atomic(&script, s.as_bytes())?;
        jobs.push(ChainJob {
            kind: "update".into(),
            iteration: Some(it),
            script: script.display().to_string(),
            log,
            id: None,
        });
    }
    // submit.sh: the same chain, for submitting by hand.
    let mut s = String::from(
        "#!/bin/sh\n# Submits the job chain written by `ekp-cli slurm`; prints the job ids.\nset -eu\nprev=\n",
    );
    for j in &jobs {
        let _ = writeln!(
            s,
            "id=$(sbatch --parsable --kill-on-invalid-dep=yes ${{prev:+--dependency=afterok:$prev}} {})\nprev=${{id%%;*}}\necho \"{}: $prev\"",
            sh_quote(&j.script),
            j.describe()
        );
    }
    write_atomic(&slurm_dir.join("submit.sh"), s.as_bytes())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(
            slurm_dir.join("submit.sh"),
            std::fs::Permissions::from_mode(0o755),
        );
    }
    Ok(jobs)
}

fn chain_path(dir: &Path) -> PathBuf {
    dir.join("slurm").join("chain.toml")
}

fn read_chain(dir: &Path) -> Option<Chain> {
    toml::from_str(&std::fs::read_to_string(chain_path(dir)).ok()?).ok()
}

/// What squeue says about a job.
#[derive(Debug)]
enum Seen {
    /// `(task, state)` per line (`123`, `123_4`, or `123_[5-20%4]` for
    /// pending array tasks).
    Known(Vec<(String, String)>),
    /// squeue no longer knows the job (purged after `MinJobAge`).
    Gone,
    /// squeue could not be asked (the controller is busy, ...).
    Error(String),
}

fn job_states(id: &str) -> Seen {
    let out = match Command::new("squeue")
        .args(["-h", "-j", id, "-t", "all", "-o", "%i|%T"])
        .output()
    {
        Ok(o) => o,
        Err(e) => return Seen::Error(format!("cannot run squeue: {e}")),
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return if stderr.contains("Invalid job id") {
            Seen::Gone
        } else {
            Seen::Error(format!("squeue failed ({}): {}", out.status, stderr.trim()))
        };
    }
    let lines: Vec<(String, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (task, state) = l.trim().split_once('|')?;
            Some((task.to_string(), state.to_string()))
        })
        .collect();
    if lines.is_empty() {
        Seen::Gone
    } else {
        Seen::Known(lines)
    }
}

/// How many array tasks a squeue `%i` stands for: `123_[5-20%4]` is 16.
fn task_count(task: &str) -> usize {
    let Some(inner) = task.split_once("_[").and_then(|(_, r)| r.strip_suffix(']')) else {
        return 1;
    };
    let inner = inner.split('%').next().unwrap_or("");
    inner
        .split(',')
        .map(|r| match r.split_once('-') {
            Some((a, b)) => match (a.parse::<usize>(), b.parse::<usize>()) {
                (Ok(a), Ok(b)) if b >= a => b - a + 1,
                _ => 1,
            },
            None => 1,
        })
        .sum()
}

const TERMINAL: [&str; 10] = [
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "NODE_FAIL",
    "PREEMPTED",
    "OUT_OF_MEMORY",
    "BOOT_FAIL",
    "DEADLINE",
    "SPECIAL_EXIT",
];

fn is_terminal(state: &str) -> bool {
    TERMINAL.iter().any(|t| state.starts_with(t))
}

/// A summary of one job's tasks: `COMPLETED`, or `RUNNING 3, PENDING 17`.
fn summarise(states: &[(String, String)]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (t, s) in states {
        *counts.entry(s.as_str()).or_default() += task_count(t);
    }
    counts
        .iter()
        .map(|(s, c)| {
            if counts.len() == 1 && *c == 1 {
                s.to_string()
            } else {
                format!("{s} {c}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn is_active(chain: &Chain) -> Vec<String> {
    chain
        .jobs
        .iter()
        .filter_map(|j| {
            let id = j.id.as_ref()?;
            match job_states(id) {
                Seen::Known(states) => states
                    .iter()
                    .any(|(_, s)| !is_terminal(s))
                    .then(|| id.clone()),
                Seen::Gone => None,
                // Cannot tell: assume it may still run.
                Seen::Error(_) => Some(id.clone()),
            }
        })
        .collect()
}

fn submit(jobs: &mut [ChainJob], say: Say<'_>) -> anyhow::Result<()> {
    let mut prev: Option<String> = None;
    let mut submitted: Vec<String> = Vec::new();
    for j in jobs.iter_mut() {
        let mut cmd = Command::new("sbatch");
        cmd.args(["--parsable", "--kill-on-invalid-dep=yes"]);
        if let Some(p) = &prev {
            cmd.arg(format!("--dependency=afterok:{p}"));
        }
        cmd.arg(&j.script);
        let result = cmd.output();
        let id = match result {
            Ok(out) if out.status.success() => {
                let text = String::from_utf8_lossy(&out.stdout);
                let id = text
                    .trim()
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_string();
                if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
                    Err(format!("sbatch printed `{}`, not a job id", text.trim()))
                } else {
                    Ok(id)
                }
            }
            Ok(out) => Err(format!(
                "sbatch failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => Err(format!(
                "cannot run sbatch: {e} (is SLURM installed and on PATH?)"
            )),
        };
        match id {
            Ok(id) => {
                say(&format!("submitted {:<22} job {id}", j.describe()));
                submitted.push(id.clone());
                j.id = Some(id.clone());
                prev = Some(id);
            }
            Err(e) => {
                if !submitted.is_empty() {
                    // Do not leave half a chain behind.
                    let _ = Command::new("scancel").args(&submitted).status();
                    say(&format!(
                        "cancelled the jobs already submitted: {}",
                        submitted.join(" ")
                    ));
                }
                bail!("{}: {e}", j.script);
            }
        }
    }
    Ok(())
}

fn tail(path: &str, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Follow the chain until every job has ended; `Ok(true)` if all completed.
fn wait(dir: &Path, chain: &Chain, poll: Duration, say: Say<'_>) -> anyhow::Result<bool> {
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    let mut finished: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut errors = 0usize;
    loop {
        let mut all_done = true;
        for j in &chain.jobs {
            let Some(id) = &j.id else { continue };
            if finished.contains_key(id) {
                continue;
            }
            match job_states(id) {
                Seen::Error(e) => {
                    errors += 1;
                    // A busy controller is transient; one that stays away is not.
                    if errors > 60 {
                        bail!("cannot follow job {id}: {e}");
                    }
                    say(&format!("warning: {e}; retrying"));
                    all_done = false;
                }
                Seen::Known(states) => {
                    errors = 0;
                    let summary = summarise(&states);
                    if last.get(id) != Some(&summary) {
                        say(&format!("job {id:<8} {:<22} {summary}", j.describe()));
                        last.insert(id.clone(), summary);
                    }
                    if states.iter().all(|(_, s)| is_terminal(s)) {
                        finished.insert(id.clone(), states);
                    } else {
                        all_done = false;
                    }
                }
                Seen::Gone => {
                    // Purged from the controller (MinJobAge): the job is over,
                    // and its end state is lost (there is no accounting).
                    say(&format!(
                        "job {id:<8} {:<22} no longer known to squeue (state unknown)",
                        j.describe()
                    ));
                    finished.insert(
                        id.clone(),
                        vec![(id.clone(), "UNKNOWN (purged)".to_string())],
                    );
                }
            }
        }
        if all_done {
            break;
        }
        std::thread::sleep(poll);
    }
    let mut ok = true;
    for j in &chain.jobs {
        let Some(id) = &j.id else { continue };
        let states = finished.get(id).cloned().unwrap_or_default();
        let bad: Vec<&(String, String)> = states
            .iter()
            .filter(|(_, s)| s != "COMPLETED" && !s.starts_with("UNKNOWN"))
            .collect();
        if !bad.is_empty() {
            ok = false;
            say(&format!(
                "job {id} ({}) did not complete: {}",
                j.describe(),
                bad.iter()
                    .map(|(t, s)| format!("{t} {s}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            // Show the end of the log of the first failed task.
            if let Some((task, _)) = bad.first() {
                let log = match task.split_once('_') {
                    Some((_, t)) => j.log.replace("%a", t),
                    None => j.log.clone(),
                };
                let t = tail(&log, 8);
                if !t.is_empty() {
                    say(&format!(
                        "  end of {log}:\n    {}",
                        t.replace('\n', "\n    ")
                    ));
                }
            }
        }
    }
    // The folder has the last word (a purged job's state is unknown): the
    // chain succeeded if the calibration got past its last update job.
    let target = chain
        .jobs
        .iter()
        .filter(|j| j.kind == "update")
        .filter_map(|j| j.iteration)
        .max();
    match RunFolder::open(dir).and_then(|wf| wf.state().map(|s| (wf, s))) {
        Ok((wf, ekp)) => {
            let complete = wf.is_complete(&ekp);
            if !(complete || target.is_some_and(|t| ekp.iterations() > t)) {
                ok = false;
            }
            if complete {
                say(&format!(
                    "calibration complete: {} updates applied; results in {}",
                    ekp.iterations(),
                    dir.join("result.toml").display()
                ));
            } else {
                say(&format!(
                    "calibration at iteration {} of {} (resume with `ekp-cli slurm --dir {} --submit`)",
                    ekp.iterations(),
                    wf.cal.iterations,
                    dir.display()
                ));
            }
        }
        Err(e) => {
            ok = false;
            say(&format!("the calibration folder cannot be read: {e}"));
        }
    }
    Ok(ok)
}

/// `ekp-cli slurm`.
pub fn slurm(args: &SlurmArgs, say: Say<'_>) -> Result<()> {
    if args.throttle == Some(0) {
        return Err(InputError::Argument("--throttle must be at least 1".into()).into());
    }
    if !(args.poll.is_finite() && args.poll > 0.0 && args.poll <= 3600.0) {
        return Err(InputError::Argument(
            "--poll must be a positive number of seconds, at most 3600".into(),
        )
        .into());
    }
    for (flag, t) in [("--time", &args.time), ("--update-time", &args.update_time)] {
        if let Some(t) = t
            && slurm_time_seconds(t).is_none()
        {
            return Err(InputError::Argument(format!(
                "{flag} {t}: not a SLURM time (MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS)"
            ))
            .into());
        }
    }
    let dir = std::path::absolute(&args.dir).unwrap_or(args.dir.clone());
    let poll = Duration::from_secs_f64(args.poll);
    let writing = args.submit || !args.wait;
    if !writing {
        let chain = read_chain(&dir).ok_or_else(|| {
            InputError::Argument(format!(
                "{}: no chain was submitted from this folder (use --submit)",
                chain_path(&dir).display()
            ))
        })?;
        return if wait(&dir, &chain, poll, say)? {
            Ok(())
        } else {
            Err(anyhow!("the SLURM chain did not complete").into())
        };
    }

    let initialised = dir.join(crate::folder::META_FILE).exists();
    let plan = if initialised {
        let wf = RunFolder::open(&dir)?;
        if let Some(config) = &args.config {
            let text = std::fs::read(config).map_err(|source| InputError::Read {
                path: config.clone(),
                source,
            })?;
            if config_hash(&text) != wf.meta.config_hash {
                return Err(InputError::Argument(format!(
                    "{}: differs from the calibration {} was initialised with; drop --config to \
                     resume it, or use a new folder",
                    config.display(),
                    dir.display()
                ))
                .into());
            }
        }
        let ekp = wf.state()?;
        if wf.is_complete(&ekp) {
            say(&format!(
                "the calibration in {} is complete; nothing to submit",
                dir.display()
            ));
            return Ok(());
        }
        let start = ekp.iterations();
        let d = crate::folder::output_dim(&ekp);
        let first_members: Vec<usize> = wf
            .members(start, d)
            .iter()
            .enumerate()
            .filter(|(_, s)| !matches!(s, MemberState::Done(_)))
            .map(|(j, _)| j + 1)
            .collect();
        if start > 0 || first_members.len() < wf.cal.ensemble_size {
            say(&format!(
                "resuming at iteration {start}: {} of {} members to run",
                first_members.len(),
                wf.cal.ensemble_size
            ));
        }
        Plan {
            dir: dir.clone(),
            cal: wf.cal,
            start,
            first_members,
            needs_init: false,
            terminated: ekp.is_terminated(),
        }
    } else {
        let Some(config) = &args.config else {
            return Err(InputError::Argument(format!(
                "{}: not an initialised calibration folder; give --config FILE to start the \
                 chain with an init job (or run `ekp-cli init` first)",
                dir.display()
            ))
            .into());
        };
        // Validate now rather than in the init job.
        let cal = Calibration::from_file(config)?;
        crate::models::observation(&cal)?;
        if dir.exists()
            && std::fs::read_dir(&dir)
                .map(|it| it.flatten().any(|e| e.file_name() != "slurm"))
                .unwrap_or(true)
        {
            return Err(InputError::Argument(format!(
                "{}: exists and is not empty, but is not an initialised calibration folder",
                dir.display()
            ))
            .into());
        }
        Plan {
            dir: dir.clone(),
            start: 0,
            first_members: (1..=cal.ensemble_size).collect(),
            cal,
            needs_init: true,
            terminated: false,
        }
    };
    let exe = match &args.ekp_cli {
        Some(p) => std::path::absolute(p).unwrap_or(p.clone()),
        None => std::env::current_exe().context("cannot find this program's path")?,
    };
    if args.submit
        && let Some(old) = read_chain(&dir)
    {
        let active = is_active(&old);
        if !active.is_empty() {
            return Err(anyhow!(
                "a chain submitted from {} is still active (jobs {}); wait for it (`ekp-cli slurm \
                 --dir {} --wait`) or cancel it (scancel) first; nothing was submitted",
                dir.display(),
                active.join(" "),
                dir.display()
            )
            .into());
        }
    }
    let mut jobs = write_scripts(args, &plan, &exe)?;
    say(&format!(
        "wrote {} job scripts to {}",
        jobs.len(),
        dir.join("slurm").display()
    ));
    if !args.submit {
        say(&format!(
            "submit them with: sh {}   (or `ekp-cli slurm --dir {} --submit`)",
            dir.join("slurm").join("submit.sh").display(),
            dir.display()
        ));
        return Ok(());
    }
    submit(&mut jobs, say)?;
    let chain = Chain {
        submitted_unix: unix_now(),
        jobs,
    };
    write_atomic(
        &chain_path(&dir),
        toml::to_string(&chain)
            .map_err(anyhow::Error::from)?
            .as_bytes(),
    )?;
    let ids: Vec<&str> = chain.jobs.iter().filter_map(|j| j.id.as_deref()).collect();
    say(&format!("job ids: {}", ids.join(" ")));
    if args.wait {
        if wait(&dir, &chain, poll, say)? {
            Ok(())
        } else {
            Err(anyhow!("the SLURM chain did not complete").into())
        }
    } else {
        say(&format!(
            "follow it with `ekp-cli slurm --dir {} --wait` or `ekp-cli status --dir {}`",
            dir.display(),
            dir.display()
        ));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn slurm_times_parse() {
        assert_eq!(slurm_time_seconds("30"), Some(1800));
        assert_eq!(slurm_time_seconds("10:30"), Some(630));
        assert_eq!(slurm_time_seconds("1:00:00"), Some(3600));
        assert_eq!(slurm_time_seconds("2-1"), Some(2 * 86400 + 3600));
        assert_eq!(slurm_time_seconds("1-0:30"), Some(86400 + 1800));
        assert_eq!(slurm_time_seconds("1-0:0:5"), Some(86405));
        assert_eq!(slurm_time_seconds("soon"), None);
    }

    #[test]
    fn array_lines_count_their_tasks() {
        assert_eq!(task_count("123"), 1);
        assert_eq!(task_count("123_4"), 1);
        assert_eq!(task_count("123_[5-20%4]"), 16);
        assert_eq!(task_count("123_[1,3-4]"), 3);
    }

    #[test]
    fn array_specs_compress_runs() {
        assert_eq!(array_spec(&[1, 2, 3, 7, 9, 10]), "1-3,7,9-10");
        assert_eq!(array_spec(&[4]), "4");
    }

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(sh_quote("a b'c"), r"'a b'\''c'");
    }
}
