//! Submitting the chain, `chain.toml`, and following its jobs with
//! `squeue` (no accounting database needed) until they end.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{anyhow, bail};

use super::{Chain, ChainJob, Say};
use crate::error::{InputError, Result};
use crate::folder::RunFolder;
use crate::io::{unix_now, write_atomic};

/// `DIR/slurm/chain.toml`.
pub fn chain_path(dir: &Path) -> PathBuf {
    dir.join("slurm").join("chain.toml")
}

/// The chain submitted last from `dir`, if it can be read.
pub fn read_chain(dir: &Path) -> Option<Chain> {
    toml::from_str(&std::fs::read_to_string(chain_path(dir)).ok()?).ok()
}

/// What squeue says about a job.
#[derive(Debug)]
pub(super) enum Seen {
    /// `(task, state)` per line (`123`, `123_4`, or `123_[5-20%4]` for
    /// pending array tasks).
    Known(Vec<(String, String)>),
    /// squeue no longer knows the job (purged after `MinJobAge`).
    Gone,
    /// squeue could not be asked (the controller is busy, ...).
    Error(String),
}

pub(super) fn job_states(id: &str) -> Seen {
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
pub(super) fn task_count(task: &str) -> usize {
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
pub(super) fn summarise(states: &[(String, String)]) -> String {
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

/// What sbatch said about one script: the job id, or why there is none.
fn sbatch(script: &str, after: Option<&str>) -> std::result::Result<String, String> {
    let mut cmd = Command::new("sbatch");
    cmd.args(["--parsable", "--kill-on-invalid-dep=yes"]);
    if let Some(p) = after {
        cmd.arg(format!("--dependency=afterok:{p}"));
    }
    cmd.arg(script);
    match cmd.output() {
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
    }
}

/// Submit `jobs` in order, each depending on the one before; their ids are
/// filled in. On a failure, the jobs already submitted are cancelled.
fn submit(jobs: &mut [ChainJob], say: Say<'_>) -> anyhow::Result<()> {
    let mut submitted: Vec<String> = Vec::new();
    for j in jobs.iter_mut() {
        match sbatch(&j.script, submitted.last().map(String::as_str)) {
            Ok(id) => {
                say(&format!("submitted {:<22} job {id}", j.describe()));
                submitted.push(id.clone());
                j.id = Some(id);
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

/// Refuse to submit while a chain submitted from `dir` is still active.
pub fn refuse_active(dir: &Path) -> Result<()> {
    let Some(old) = read_chain(dir) else {
        return Ok(());
    };
    let active = is_active(&old);
    if active.is_empty() {
        return Ok(());
    }
    Err(anyhow!(
        "a chain submitted from {} is still active (jobs {}); wait for it (`ekp-cli slurm \
         --dir {} --wait`) or cancel it (scancel) first; nothing was submitted",
        dir.display(),
        active.join(" "),
        dir.display()
    )
    .into())
}

/// Submit `jobs`, record them in `chain.toml`, and with `wait` follow them.
pub fn submit_chain(
    dir: &Path,
    mut jobs: Vec<ChainJob>,
    wait: Option<Duration>,
    say: Say<'_>,
) -> Result<()> {
    submit(&mut jobs, say)?;
    let chain = Chain {
        submitted_unix: unix_now(),
        jobs,
    };
    write_atomic(
        &chain_path(dir),
        toml::to_string(&chain)
            .map_err(anyhow::Error::from)?
            .as_bytes(),
    )?;
    let ids: Vec<&str> = chain.jobs.iter().filter_map(|j| j.id.as_deref()).collect();
    say(&format!("job ids: {}", ids.join(" ")));
    match wait {
        Some(poll) => follow_to_end(dir, &chain, poll, say),
        None => {
            say(&format!(
                "follow it with `ekp-cli slurm --dir {} --wait` or `ekp-cli status --dir {}`",
                dir.display(),
                dir.display()
            ));
            Ok(())
        }
    }
}

/// `--wait` without `--submit`: follow the chain submitted last.
pub fn wait_for_last(dir: &Path, poll: Duration, say: Say<'_>) -> Result<()> {
    let chain = read_chain(dir).ok_or_else(|| {
        InputError::Argument(format!(
            "{}: no chain was submitted from this folder (use --submit)",
            chain_path(dir).display()
        ))
    })?;
    follow_to_end(dir, &chain, poll, say)
}

/// Follow `chain` until its jobs end; an error if it did not complete.
fn follow_to_end(dir: &Path, chain: &Chain, poll: Duration, say: Say<'_>) -> Result<()> {
    if wait(dir, chain, poll, say)? {
        Ok(())
    } else {
        Err(anyhow!("the SLURM chain did not complete").into())
    }
}

fn tail(path: &str, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The end state of each job (by id), as squeue last saw it.
type Finished = BTreeMap<String, Vec<(String, String)>>;

/// Poll squeue until every job of `chain` has ended, saying each change.
fn follow(chain: &Chain, poll: Duration, say: Say<'_>) -> anyhow::Result<Finished> {
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    let mut finished = Finished::new();
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
            return Ok(finished);
        }
        std::thread::sleep(poll);
    }
}

/// Say which jobs did not complete (with the end of the first failed task's
/// log); `true` if none.
fn report_failures(chain: &Chain, finished: &Finished, say: Say<'_>) -> bool {
    let mut ok = true;
    for j in &chain.jobs {
        let Some(id) = &j.id else { continue };
        let states = finished.get(id).cloned().unwrap_or_default();
        let bad: Vec<&(String, String)> = states
            .iter()
            .filter(|(_, s)| s != "COMPLETED" && !s.starts_with("UNKNOWN"))
            .collect();
        if bad.is_empty() {
            continue;
        }
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
    ok
}

/// The folder has the last word (a purged job's state is unknown): `true`
/// if the calibration got past the chain's last update job.
fn folder_verdict(dir: &Path, chain: &Chain, say: Say<'_>) -> bool {
    let target = chain
        .jobs
        .iter()
        .filter(|j| j.kind == "update")
        .filter_map(|j| j.iteration)
        .max();
    match RunFolder::open(dir).and_then(|wf| wf.state().map(|s| (wf, s))) {
        Ok((wf, ekp)) => {
            let complete = wf.is_complete(&ekp);
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
            complete || target.is_some_and(|t| ekp.iterations() > t)
        }
        Err(e) => {
            say(&format!("the calibration folder cannot be read: {e}"));
            false
        }
    }
}

/// Follow the chain until every job has ended; `Ok(true)` if all completed.
fn wait(dir: &Path, chain: &Chain, poll: Duration, say: Say<'_>) -> anyhow::Result<bool> {
    let finished = follow(chain, poll, say)?;
    let ok = report_failures(chain, &finished, say);
    Ok(folder_verdict(dir, chain, say) && ok)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn array_lines_count_their_tasks() {
        assert_eq!(task_count("123"), 1);
        assert_eq!(task_count("123_4"), 1);
        assert_eq!(task_count("123_[5-20%4]"), 16);
        assert_eq!(task_count("123_[1,3-4]"), 3);
    }
}
