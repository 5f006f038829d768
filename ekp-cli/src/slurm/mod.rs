//! `ekp-cli slurm`: the file workflow as a chain of SLURM jobs.
//!
//! For each iteration, one array job runs `ekp-cli forward` for every member
//! (task id = member number; with `--members-per-task K`, task `t` runs K
//! members with `forward --members`), and one job runs `ekp-cli update` once the whole
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
//!
//! A node that fails mid-iteration takes its tasks with it: the forward
//! arrays and update jobs are `--requeue`, so SLURM runs a lost task again
//! (on another node), and a task requeued more than `--retries` times
//! records its members not yet done as failed with the cause "node
//! failure" (`forward --lost`) instead of running them: the update's
//! failure policy then deals with them, and the chain never waits on a dead
//! node. `forward` is safe to repeat.
//!
//! Every value that goes into a script is checked first (no control
//! characters: a newline in `--partition` must not become a command of the
//! job) and quoted where it is written; see `script.rs`.
//!
//! - `plan.rs`: the flags checked, and what the chain runs;
//! - `script.rs`: the sbatch scripts and `submit.sh`;
//! - `chain.rs`: submitting, `chain.toml`, following the jobs with squeue;
//! - `view.rs`: the jobs' and members' SLURM states for `ekp-cli status`.

mod chain;
mod plan;
mod script;
mod view;

pub use view::{ChainView, JobView, chain_view};

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::parse_duration;
use crate::error::Result;

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
    /// Run at most K array tasks of an iteration at once (`--array=...%K`).
    #[arg(long, value_name = "K")]
    pub throttle: Option<usize>,
    /// Members run by each array task (default 1): each task runs
    /// `forward --members A-B`, its K members in parallel as --backend /
    /// --jobs say, so N members need N/K tasks. Ask SLURM for the cores or
    /// GPU the task needs with --sbatch-arg (e.g. --sbatch-arg=--cpus-per-task=8).
    #[arg(long, value_name = "K")]
    pub members_per_task: Option<usize>,
    /// Where a task's built-in members run: threads (default) or gpu.
    #[arg(long, value_enum)]
    pub backend: Option<crate::models::Backend>,
    /// Threads of a task for `--backend threads` (default: one per core the
    /// task sees).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// GPU precision of a task for `--backend gpu` (default f32).
    #[arg(long, value_enum)]
    pub precision: Option<crate::models::Precision>,
    /// Command, worker and batch models: processes a task runs at once
    /// (default: one per core, batch processes 1).
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
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
    /// A shell line every job runs before ekp-cli, e.g. --setup 'module load
    /// julia/1.10' or --setup 'source /shared/venv/bin/activate' (repeatable,
    /// run in order; a failing line fails the job).
    #[arg(long, value_name = "LINE")]
    pub setup: Vec<String>,
    /// GPUs of each member task (`--gpus-per-task`; with --backend gpu, or
    /// for a program model that uses one).
    #[arg(long, value_name = "N")]
    pub gpus_per_task: Option<usize>,
    /// A member task whose node fails is requeued by SLURM (`--requeue`) and
    /// runs again, at most K times (default 1); after that, its members not
    /// yet recorded count as failed with the cause "node failure", never as
    /// model failures, and the chain goes on.
    #[arg(long, value_name = "K")]
    pub retries: Option<usize>,
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
    /// A forward array with `--members-per-task K`: the members of each task
    /// (task `t` runs `tasks[t - 1]`, as `forward --members` reads it). Empty:
    /// the task id is the member.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<String>,
}

impl ChainJob {
    /// `init`, or e.g. `forward of iteration 2`.
    pub fn describe(&self) -> String {
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

/// `ekp-cli slurm`.
pub fn slurm(args: &SlurmArgs, say: Say<'_>) -> Result<()> {
    let dir = std::path::absolute(&args.dir).unwrap_or(args.dir.clone());
    // Every flag is checked before anything is read or written.
    let mut options = plan::options(args, &dir)?;
    let poll = Duration::from_secs_f64(args.poll);
    let writing = args.submit || !args.wait;
    if !writing {
        return chain::wait_for_last(&dir, poll, say);
    }
    let Some(plan) = plan::plan(args, &dir, say)? else {
        return Ok(());
    };
    options.member_timeout = plan::member_timeout(args, &plan.cal);
    plan::check_run_options(args, &plan.cal)?;
    let end = plan::last_iteration(args, &plan)?;
    if args.submit {
        chain::refuse_active(&dir)?;
    }
    let jobs = script::write_scripts(&options, &plan, end)?;
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
    chain::submit_chain(&dir, jobs, args.wait.then_some(poll), say)
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
}
