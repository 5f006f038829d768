//! What a chain runs: `slurm`'s flags checked (every value bound for a job
//! script made a [`Value`]), and the [`Plan`] — from which iteration, which
//! members of it, whether an init job comes first, and up to which
//! iteration.

use std::path::Path;
use std::time::Duration;

use super::SlurmArgs;
use super::script::{Options, Value};
use crate::config::{Calibration, ModelSpec};
use crate::error::{InputError, Result};
use crate::folder::{MemberState, RunFolder};
use crate::io::content_hash as config_hash;

use super::{Say, slurm_time_seconds};

/// Where the chain starts.
#[derive(Debug)]
pub struct Plan {
    /// The calibration folder (absolute).
    pub dir: std::path::PathBuf,
    /// The calibration.
    pub cal: Calibration,
    /// The first iteration to run.
    pub start: usize,
    /// The members of `start` still to run.
    pub first_members: Vec<usize>,
    /// The chain starts with an init job.
    pub needs_init: bool,
    /// The scheduler has stopped: the next update is the final one.
    pub terminated: bool,
}

fn checked(flag: &str, value: Option<&String>) -> Result<Option<Value>> {
    Ok(value.map(|v| Value::new(flag, v)).transpose()?)
}

/// The numbers among the flags: `--throttle`, `--poll`, and the SLURM times.
fn check_numbers(args: &SlurmArgs) -> Result<()> {
    if args.throttle == Some(0) {
        return Err(InputError::Argument("--throttle must be at least 1".into()).into());
    }
    if args.gpus_per_task == Some(0) {
        return Err(InputError::Argument(
            "--gpus-per-task must be at least 1 (leave it out for none)".into(),
        )
        .into());
    }
    if args
        .retries
        .is_some_and(|r| r > crate::models::launcher::MAX_RETRIES)
    {
        return Err(InputError::Argument(format!(
            "--retries: at most {}",
            crate::models::launcher::MAX_RETRIES
        ))
        .into());
    }
    if args.members_per_task == Some(0) {
        return Err(InputError::Argument("--members-per-task must be at least 1".into()).into());
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
    Ok(())
}

/// Every flag checked, before anything is read or written: the values that
/// go into job scripts (no control characters; `--sbatch-arg` an option),
/// then the numbers. `dir`: `--dir`, absolute.
pub fn options(args: &SlurmArgs, dir: &Path) -> Result<Options> {
    let mut sbatch_args = Vec::new();
    for a in &args.sbatch_arg {
        let v = Value::new("--sbatch-arg", a)?;
        if !a.starts_with('-') {
            return Err(InputError::Argument(format!(
                "--sbatch-arg {a:?}: not an sbatch option (give one option per --sbatch-arg, \
                 e.g. --sbatch-arg=--qos=long)"
            ))
            .into());
        }
        sbatch_args.push(v);
    }
    let o = Options {
        partition: checked("--partition", args.partition.as_ref())?,
        account: checked("--account", args.account.as_ref())?,
        time: checked("--time", args.time.as_ref())?,
        update_time: checked("--update-time", args.update_time.as_ref())?,
        mem: checked("--mem", args.mem.as_ref())?,
        update_mem: checked("--update-mem", args.update_mem.as_ref())?,
        sbatch_args,
        setup: args
            .setup
            .iter()
            .map(|l| Value::new("--setup", l))
            .collect::<std::result::Result<_, _>>()?,
        gpus_per_task: args.gpus_per_task,
        retries: args.retries.unwrap_or(1),
        dir: Value::path("--dir", dir)?,
        config: args
            .config
            .as_ref()
            .map(|c| Value::path("--config", &std::path::absolute(c).unwrap_or(c.clone())))
            .transpose()?,
        exe: exe(args)?,
        throttle: args.throttle,
        member_timeout: args.member_timeout,
        members_per_task: args.members_per_task.unwrap_or(1),
        backend: args.backend,
        threads: args.threads,
        precision: args.precision,
        jobs: args.jobs,
    };
    check_numbers(args)?;
    Ok(o)
}

/// The ekp-cli binary the jobs run: `--ekp-cli`, else this one.
fn exe(args: &SlurmArgs) -> Result<Value> {
    match &args.ekp_cli {
        Some(p) => Ok(Value::path(
            "--ekp-cli",
            &std::path::absolute(p).unwrap_or(p.clone()),
        )?),
        None => {
            let p = std::env::current_exe()
                .map_err(|e| anyhow::anyhow!("cannot find this program's path: {e}"))?;
            Ok(Value::path("this program's path (give --ekp-cli)", &p)?)
        }
    }
}

/// The plan of a chain in `dir` (absolute); `None` if the calibration there
/// is already complete (said).
pub fn plan(args: &SlurmArgs, dir: &Path, say: Say<'_>) -> Result<Option<Plan>> {
    if dir.join(crate::folder::META_FILE).exists() {
        resume(args, dir, say)
    } else {
        start(args, dir).map(Some)
    }
}

/// An initialised folder: from its newest iteration, the members not done.
fn resume(args: &SlurmArgs, dir: &Path, say: Say<'_>) -> Result<Option<Plan>> {
    let wf = RunFolder::open(dir)?;
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
        return Ok(None);
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
    Ok(Some(Plan {
        dir: dir.to_path_buf(),
        cal: wf.cal,
        start,
        first_members,
        needs_init: false,
        terminated: ekp.is_terminated(),
    }))
}

/// A folder not initialised yet: an init job first (`--config` needed).
fn start(args: &SlurmArgs, dir: &Path) -> Result<Plan> {
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
        && std::fs::read_dir(dir)
            .map(|it| it.flatten().any(|e| e.file_name() != "slurm"))
            .unwrap_or(true)
    {
        return Err(InputError::Argument(format!(
            "{}: exists and is not empty, but is not an initialised calibration folder",
            dir.display()
        ))
        .into());
    }
    Ok(Plan {
        dir: dir.to_path_buf(),
        start: 0,
        first_members: (1..=cal.ensemble_size).collect(),
        cal,
        needs_init: true,
        terminated: false,
    })
}

/// The last iteration the chain runs: `--iterations` updates, or to the end
/// (the final ensemble's evaluation included).
pub fn last_iteration(args: &SlurmArgs, plan: &Plan) -> Result<usize> {
    let remaining = if plan.terminated {
        0
    } else {
        plan.cal.iterations.saturating_sub(plan.start)
    };
    let k = match args.iterations {
        Some(0) => {
            return Err(InputError::Argument("--iterations must be at least 1".into()).into());
        }
        Some(k) => k,
        None => remaining,
    };
    Ok(if k >= remaining {
        plan.start + remaining
    } else {
        plan.start + k - 1
    })
}

/// The forward tasks' --backend, --threads, --precision and --jobs, checked
/// against the calibration's model as `run` checks them.
pub fn check_run_options(args: &SlurmArgs, cal: &Calibration) -> Result<()> {
    let options = crate::models::RunOptions {
        backend: args.backend.unwrap_or(crate::models::Backend::Threads),
        precision: args.precision,
        threads: args.threads,
        jobs: args.jobs,
        member_timeout: None,
    };
    options.check(cal)?;
    Ok(())
}

/// The `--member-timeout` of `forward`: the flag, else for a command model a
/// little less than `--time`, so that the member is recorded as failed
/// rather than its task killed.
pub fn member_timeout(args: &SlurmArgs, cal: &Calibration) -> Option<Duration> {
    args.member_timeout.or_else(|| {
        if !matches!(cal.model, ModelSpec::Program(_)) {
            return None;
        }
        let t = slurm_time_seconds(args.time.as_deref()?)?;
        Some(Duration::from_secs(
            t.saturating_sub((t / 10).min(60)).max(1),
        ))
    })
}
