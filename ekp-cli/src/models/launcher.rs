//! Where `run` starts its members: in this process (`--launcher local`, the
//! evaluators of this module's siblings), or as SLURM job steps inside the
//! current allocation (`--launcher srun`).
//!
//! With `srun`, `run` keeps the update, the checkpoints and `--resume` in
//! its own process, and runs each member, or each chunk of
//! `--members-per-task` members, as `srun --exclusive -N 1 -n 1 ekp-cli
//! forward --members LIST` on the allocation's nodes: no job waits in the
//! queue between iterations. As many steps run at once as the allocation
//! has tasks (`$SLURM_NTASKS`, else `$SLURM_JOB_NUM_NODES`).
//!
//! A member whose step ended without recording an outcome (SLURM killed it:
//! a node failure, a cancelled step) is *lost*, not failed: its step is run
//! again (`--retries`, default once), and a member still lost after that is
//! recorded as failed with the cause "node failure", which the failure
//! policy then handles like any failed member. [`record_lost`] is shared
//! with `forward --lost`, which the SLURM chain's requeued tasks use.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use clap::ValueEnum;
use nalgebra::DMatrix;

use super::{Backend, Precision, RunOptions};
use crate::config::Calibration;
use crate::driver::Evaluator;
use crate::error::{InputError, Result};
use crate::folder::RunFolder;
use crate::folder::member::{self, MemberRecord, MemberState, RecordStatus};
use crate::io::hostname;

/// How `run` starts its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Launcher {
    /// In this process (threads, GPU) or as child processes on this machine.
    Local,
    /// As `srun` job steps on the nodes of the current SLURM allocation
    /// (run `ekp-cli run` inside `salloc` or an `sbatch` script).
    Srun,
}

/// The flags of `run` that choose and shape its launcher.
#[derive(Debug, Clone, clap::Args)]
pub struct LaunchArgs {
    /// Where members run: local (this machine), or srun (each member, or
    /// each chunk of --members-per-task, as an `srun --exclusive` job step
    /// inside the current SLURM allocation; the update stays in this
    /// process, so no job waits in the queue between iterations).
    #[arg(long, value_enum, default_value_t = Launcher::Local)]
    pub launcher: Launcher,
    /// --launcher srun: members per job step (default 1), run in parallel
    /// within the step as --backend / --jobs say.
    #[arg(long, value_name = "K")]
    pub members_per_task: Option<usize>,
    /// --launcher srun: GPUs of each job step (`srun --gpus-per-task`).
    #[arg(long, value_name = "N")]
    pub gpus_per_task: Option<usize>,
    /// --launcher srun: how often the members of a step that ended without
    /// recording them (a node failure) are run again before they count as
    /// failed with the cause "node failure" (default 1).
    #[arg(long, value_name = "K")]
    pub retries: Option<usize>,
    /// --launcher srun: the ekp-cli binary the steps run (default: this
    /// one); it must be reachable from every node.
    #[arg(long = "ekp-cli", value_name = "PATH")]
    pub ekp_cli: Option<PathBuf>,
}

impl Default for LaunchArgs {
    fn default() -> Self {
        Self {
            launcher: Launcher::Local,
            members_per_task: None,
            gpus_per_task: None,
            retries: None,
            ekp_cli: None,
        }
    }
}

/// The most retries of lost members.
pub const MAX_RETRIES: usize = 100;

impl LaunchArgs {
    /// Check the flags (before anything is written): the srun-only flags
    /// need `--launcher srun`, numbers are in range.
    pub fn check(&self) -> Result<(), InputError> {
        let arg = |m: String| Err(InputError::Argument(m));
        if self.launcher == Launcher::Local {
            let given = [
                ("--members-per-task", self.members_per_task.is_some()),
                ("--gpus-per-task", self.gpus_per_task.is_some()),
                ("--retries", self.retries.is_some()),
                ("--ekp-cli", self.ekp_cli.is_some()),
            ];
            if let Some((flag, _)) = given.iter().find(|(_, g)| *g) {
                return arg(format!(
                    "{flag} applies to --launcher srun (members as job steps of a SLURM \
                     allocation); this run's launcher is local"
                ));
            }
        }
        if self.members_per_task == Some(0) {
            return arg("--members-per-task must be at least 1".into());
        }
        if self.gpus_per_task == Some(0) {
            return arg("--gpus-per-task must be at least 1 (leave it out for none)".into());
        }
        if self.retries.is_some_and(|r| r > MAX_RETRIES) {
            return arg(format!("--retries: at most {MAX_RETRIES}"));
        }
        Ok(())
    }
}

/// The evaluator of `cal`'s model as `launch` says, and where it runs in
/// words: `--launcher local` is [`super::evaluator`]; `--launcher srun`
/// needs a SLURM allocation (`$SLURM_JOB_ID`).
pub fn evaluator(
    cal: &Calibration,
    options: &RunOptions,
    launch: &LaunchArgs,
) -> Result<(Box<dyn Evaluator>, String)> {
    launch.check()?;
    if launch.launcher == Launcher::Local {
        return super::evaluator(cal, options);
    }
    options.check(cal)?;
    let Some(job) = std::env::var("SLURM_JOB_ID").ok().filter(|j| !j.is_empty()) else {
        return Err(InputError::Argument(
            "--launcher srun runs members as job steps of the current SLURM allocation, but \
             SLURM_JOB_ID is not set: run ekp-cli inside `salloc` or an `sbatch` script (or \
             use `ekp-cli slurm` for a chain of jobs)"
                .into(),
        )
        .into());
    };
    let steps = allocation_tasks();
    let exe = match &launch.ekp_cli {
        Some(p) => std::path::absolute(p).unwrap_or(p.clone()),
        None => std::env::current_exe()
            .map_err(|e| anyhow::anyhow!("cannot find this program's path: {e}"))?,
    };
    let ev = SrunEvaluator {
        exe,
        steps,
        members_per_task: launch.members_per_task.unwrap_or(1),
        gpus_per_task: launch.gpus_per_task,
        retries: launch.retries.unwrap_or(1),
        forward_flags: forward_flags(options),
    };
    let said = format!(
        "srun job steps of job {job}, {steps} at once, {} member(s) each",
        ev.members_per_task
    );
    Ok((Box::new(ev), said))
}

/// How many steps the allocation runs at once: `$SLURM_NTASKS`, else
/// `$SLURM_JOB_NUM_NODES`, else 1.
fn allocation_tasks() -> usize {
    ["SLURM_NTASKS", "SLURM_JOB_NUM_NODES"]
        .iter()
        .find_map(|v| {
            std::env::var(v)
                .ok()
                .and_then(|s| s.trim().parse::<usize>().ok())
        })
        .filter(|&n| n > 0)
        .unwrap_or(1)
        .min(super::MAX_WORKERS)
}

/// The flags of `forward` that carry `options` to a step.
fn forward_flags(options: &RunOptions) -> Vec<String> {
    let mut f = vec![
        "--backend".to_string(),
        match options.backend {
            Backend::Serial => "serial",
            Backend::Threads => "threads",
            Backend::Gpu => "gpu",
        }
        .to_string(),
    ];
    if let Some(p) = options.precision {
        f.push("--precision".into());
        f.push(match p {
            Precision::F32 => "f32".into(),
            Precision::F64 => "f64".into(),
        });
    }
    for (flag, n) in [("--threads", options.threads), ("--jobs", options.jobs)] {
        if let Some(n) = n {
            f.push(flag.into());
            f.push(n.to_string());
        }
    }
    if let Some(t) = options.member_timeout {
        f.push("--member-timeout".into());
        f.push(format!("{}s", t.as_secs_f64()));
    }
    f
}

/// Members as job steps of the current SLURM allocation.
struct SrunEvaluator {
    exe: PathBuf,
    steps: usize,
    members_per_task: usize,
    gpus_per_task: Option<usize>,
    retries: usize,
    forward_flags: Vec<String>,
}

impl Evaluator for SrunEvaluator {
    fn run_members(
        &self,
        folder: &RunFolder,
        iteration: usize,
        members: &[usize],
        _params: &DMatrix<f64>,
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<()> {
        let mut todo = members.to_vec();
        let mut why = String::new();
        for _attempt in 0..=self.retries {
            let problems = self.run_steps(folder, iteration, &todo, progress);
            if let Some(signal) = crate::stop::requested() {
                return Err(crate::stop::interrupted(signal, String::new()));
            }
            todo = lost(folder, iteration, &todo);
            if todo.is_empty() {
                return Ok(());
            }
            why = problems.join("; ");
        }
        let reason = format!(
            "node failure: its job step ended without recording it, {} time(s) ({})",
            self.retries + 1,
            if why.is_empty() { "no message" } else { &why }
        );
        record_lost(folder, iteration, &todo, &reason)?;
        progress(todo.len());
        Ok(())
    }
}

impl SrunEvaluator {
    /// Run `members` in chunks, `self.steps` steps at once; what went wrong
    /// with steps that failed.
    fn run_steps(
        &self,
        folder: &RunFolder,
        iteration: usize,
        members: &[usize],
        progress: &(dyn Fn(usize) + Sync),
    ) -> Vec<String> {
        let chunks: Vec<&[usize]> = members.chunks(self.members_per_task.max(1)).collect();
        let next = AtomicUsize::new(0);
        let problems = Mutex::new(Vec::new());
        let threads = self.steps.min(chunks.len()).max(1);
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(chunk) = chunks.get(i) else { break };
                        if crate::stop::requested().is_some() {
                            break;
                        }
                        if let Err(e) = self.step(&folder.dir, iteration, chunk) {
                            if let Ok(mut p) = problems.lock() {
                                p.push(e);
                            }
                        }
                        let recorded = chunk.len() - lost(folder, iteration, chunk).len();
                        progress(recorded);
                    }
                });
            }
        });
        problems.into_inner().unwrap_or_default()
    }

    /// One job step running `chunk`; why it failed, if it did.
    fn step(
        &self,
        dir: &Path,
        iteration: usize,
        chunk: &[usize],
    ) -> std::result::Result<(), String> {
        let list = member_list(chunk);
        let mut cmd = Command::new("srun");
        cmd.args(["--exclusive", "--nodes=1", "--ntasks=1", "--quiet"])
            .arg(format!("--job-name=ekp-members-{list}"));
        if let Some(g) = self.gpus_per_task {
            cmd.arg(format!("--gpus-per-task={g}"));
        }
        cmd.arg(&self.exe)
            .args(["forward", "--dir"])
            .arg(dir)
            .args(["--iteration", &iteration.to_string(), "--members", &list])
            .args(&self.forward_flags)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        match cmd.output() {
            Ok(out) if out.status.success() => Ok(()),
            Ok(out) => {
                let err = String::from_utf8_lossy(&out.stderr);
                let last: Vec<&str> = err.lines().rev().take(3).collect();
                Err(format!(
                    "step of members {list}: {} ({})",
                    out.status,
                    last.into_iter().rev().collect::<Vec<_>>().join(" / ")
                ))
            }
            Err(e) => Err(format!("cannot run srun: {e} (is SLURM on PATH?)")),
        }
    }
}

/// The members of `members` (of `iteration`) with no recorded outcome.
pub fn lost(folder: &RunFolder, iteration: usize, members: &[usize]) -> Vec<usize> {
    members
        .iter()
        .copied()
        .filter(|&m| is_missing(&folder.layout.member_dir(iteration, m)))
        .collect()
}

/// No outcome recorded in member folder `dir`: no `status.toml` and no
/// output file. (The expected output length does not matter for that.)
fn is_missing(dir: &Path) -> bool {
    matches!(member::classify(dir, 0), MemberState::Missing)
}

/// Record each of `members` of `iteration` that has no outcome yet as
/// failed with `reason` (members with an outcome are left alone); returns
/// the members recorded.
pub fn record_lost(
    folder: &RunFolder,
    iteration: usize,
    members: &[usize],
    reason: &str,
) -> Result<Vec<usize>> {
    let host = hostname();
    let mut recorded = Vec::new();
    for &m in members {
        let dir = folder.layout.member_dir(iteration, m);
        if !is_missing(&dir) {
            continue;
        }
        MemberRecord {
            status: RecordStatus::Failed,
            reason: Some(reason.to_string()),
            malformed: false,
            exit_code: None,
            seconds: 0.0,
            host: host.clone(),
            parameters_hash: None,
        }
        .write(&dir)?;
        recorded.push(m);
    }
    Ok(recorded)
}

/// `1-3,7,9-10` from sorted member numbers (as `forward --members` and
/// `--array` read them).
pub fn member_list(members: &[usize]) -> String {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn member_lists_compress_runs() {
        assert_eq!(member_list(&[1, 2, 3, 7, 9, 10]), "1-3,7,9-10");
        assert_eq!(member_list(&[4]), "4");
    }

    #[test]
    fn srun_flags_need_the_srun_launcher() {
        let local = LaunchArgs {
            members_per_task: Some(2),
            ..LaunchArgs::default()
        };
        let e = local.check().unwrap_err().to_string();
        assert!(
            e.contains("--members-per-task") && e.contains("--launcher srun"),
            "{e}"
        );
        let zero = LaunchArgs {
            launcher: Launcher::Srun,
            members_per_task: Some(0),
            ..LaunchArgs::default()
        };
        assert!(zero.check().unwrap_err().to_string().contains("at least 1"));
    }
}
