//! What the models run as the user's own program share — `command`
//! ([`super::command`]), `worker` ([`super::worker`]) and `batch`
//! ([`super::batch`]): finding the program, stopping its process group,
//! recording a member's outcome, and stopping a run early when the first
//! members all fail the same way.

use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ekp_models::MemberModel;

use crate::config::{Calibration, ObservationSpec, ProgramSpec};
use crate::error::{Error, InputError};
use crate::folder::RunFolder;
use crate::folder::member::{self, MemberRecord, OUTPUT_FILE, RecordStatus, STDERR_FILE};

/// How long a member's process group gets to end after SIGTERM (at its time
/// limit, or when ekp is stopped) before SIGKILL.
pub const GRACE: Duration = Duration::from_secs(5);

/// How one member's run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum MemberOutcome {
    /// Its outputs.
    Done(Vec<f64>),
    /// Why it failed (also in its `status.toml`).
    Failed(String),
    /// ekp was asked to stop while it ran: stopped, nothing recorded.
    Stopped,
}

/// How a process ended, in words (`exited with status 3`, `was killed by signal 9`).
pub fn describe_exit(status: ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return format!("was killed by signal {sig}");
        }
    }
    match status.code() {
        Some(c) => format!("exited with status {c}"),
        None => "ended abnormally".into(),
    }
}

/// Stop the child and every process in its process group: SIGTERM, up to
/// [`GRACE`] to end, then SIGKILL; and reap it.
pub fn stop_group(child: &mut Child) {
    #[cfg(unix)]
    {
        use nix::sys::signal::{Signal, killpg};
        use nix::unistd::Pid;
        // The child leads its own process group (see `run_member`): signal
        // the whole group, so a shell script's own children end with it.
        let group = i32::try_from(child.id()).ok().map(Pid::from_raw);
        if let Some(g) = group {
            let _ = killpg(g, Signal::SIGTERM);
            let start = Instant::now();
            while start.elapsed() < GRACE {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            // The leader may be gone while others of its group live on.
            let _ = killpg(g, Signal::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// In a member folder while its model runs: the process (group) id and host.
pub const RUNNING_FILE: &str = "running.pid";

/// Stop the process group of an earlier run of the member in `member_dir`
/// that is still running (its ekp was killed before it could stop it): the
/// process is ours only if it is on this host and runs in this very folder
/// (so a reused pid is never signalled).
pub fn stop_leftover(member_dir: &Path) {
    let path = member_dir.join(RUNNING_FILE);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return;
    };
    let mut words = text.split_whitespace();
    let (Some(pid), Some(host)) = (
        words.next().and_then(|p| p.parse::<i32>().ok()),
        words.next(),
    ) else {
        let _ = std::fs::remove_file(&path);
        return;
    };
    let in_folder = |pid: i32| {
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok();
        let here = std::fs::canonicalize(member_dir).ok();
        cwd.is_some() && cwd == here
    };
    #[cfg(unix)]
    if host == crate::io::hostname() && pid > 1 && in_folder(pid) {
        use nix::sys::signal::{Signal, killpg};
        use nix::unistd::Pid;
        tracing::warn!(
            "{}: stopping process group {pid} left running by an earlier, killed ekp",
            member_dir.display()
        );
        let _ = killpg(Pid::from_raw(pid), Signal::SIGTERM);
        let start = Instant::now();
        while in_folder(pid) && start.elapsed() < GRACE {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let _ = std::fs::remove_file(&path);
}

/// How waiting for a member's process ended.
pub enum Waited {
    /// It exited.
    Exited(ExitStatus),
    /// It ran past its time limit and was stopped.
    TimedOut,
    /// ekp was asked to stop (a signal) and stopped it.
    Stopped,
}

/// Wait for the child, at most `timeout`, watching for a stop request; a
/// child past its limit or interrupted is stopped with its process group.
pub fn wait_for(child: &mut Child, timeout: Option<Duration>) -> std::io::Result<Waited> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Waited::Exited(status));
        }
        if crate::stop::requested().is_some() {
            stop_group(child);
            return Ok(Waited::Stopped);
        }
        let elapsed = start.elapsed();
        if timeout.is_some_and(|limit| elapsed >= limit) {
            stop_group(child);
            return Ok(Waited::TimedOut);
        }
        let left = timeout.map_or(Duration::MAX, |limit| limit.saturating_sub(elapsed));
        std::thread::sleep(pause.min(left));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// How many members of iteration 0 must all fail the same way, with none
/// done, before a run stops early (the model is broken, not unlucky).
pub const EARLY_FAILURES: usize = 4;

/// The first members' failures of iteration 0, watched for an early stop.
#[derive(Default)]
pub struct Probe {
    done: usize,
    failures: Vec<(usize, String)>,
}

impl Probe {
    /// After a member of iteration 0 ended: whether every one so far failed,
    /// enough of them, for one reason.
    pub fn record(&mut self, number: usize, outcome: &MemberOutcome) -> bool {
        match outcome {
            MemberOutcome::Done(_) => self.done += 1,
            MemberOutcome::Failed(r) => self.failures.push((number, r.clone())),
            MemberOutcome::Stopped => {}
        }
        self.done == 0
            && self.failures.len() >= EARLY_FAILURES
            && self.failures.iter().all(|(_, r)| *r == self.failures[0].1)
    }
}

/// The early-stop error: the common reason, the end of one member's
/// stderr.log; the probe members' records are removed, so that once the
/// model is fixed, `run --resume` runs them again.
pub fn stopped_early(folder: &RunFolder, probe: &Probe) -> Error {
    let Some((first, reason)) = probe.failures.first() else {
        return Error::Runtime(anyhow::anyhow!("the run stopped early"));
    };
    for (number, _) in &probe.failures {
        let dir = folder.layout.member_dir(0, *number);
        let _ = std::fs::remove_file(dir.join(member::STATUS_FILE));
        let _ = std::fs::remove_file(dir.join(OUTPUT_FILE));
    }
    let log = folder.layout.member_dir(0, *first).join(STDERR_FILE);
    Error::Runtime(anyhow::anyhow!(
        "the first {} members of iteration 0 all failed the same way, so the model (or its \
         setup) is broken: {reason}; members not started yet were not run.{}",
        probe.failures.len(),
        crate::io::tail_of(&log, 5)
    ))
}

/// The program of a command model, checked before any member runs: a path
/// must be an executable file; a bare name must be found on `PATH`.
pub fn resolve_program(spec: &ProgramSpec, file: &str) -> Result<PathBuf, InputError> {
    let program = spec.check_program(file)?;
    let invalid = |message: String| InputError::Invalid {
        file: file.to_string(),
        key: "model.program".into(),
        message,
    };
    let found = if spec.program.contains('/') {
        Some(program.clone())
    } else {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(&program))
                .find(|p| p.is_file())
        })
    };
    let Some(path) = found else {
        return Err(invalid(format!(
            "`{}` is not found on PATH (give a path, e.g. `./{}`, relative to the calibration \
             file's folder)",
            spec.program.escape_debug(),
            spec.program.escape_debug()
        )));
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).map(|m| m.permissions().mode());
        if mode.is_ok_and(|m| m & 0o111 == 0) {
            return Err(invalid(format!(
                "{} is not executable (`chmod +x {}`)",
                path.display(),
                path.display()
            )));
        }
    }
    Ok(program)
}

/// The outputs of a command model, as a [`MemberModel`] stand-in that only
/// knows their number (the data must be given: a command model cannot
/// generate synthetic data). Its evaluations are NaN.
pub struct Outputs {
    names: Vec<String>,
    parameters: usize,
    outputs: usize,
}

impl Outputs {
    /// The stand-in for `cal`'s command model.
    pub fn new(cal: &Calibration) -> Result<Self, InputError> {
        let outputs = match &cal.observations {
            ObservationSpec::Given { values, .. } => values.len(),
            ObservationSpec::Truth { .. } => {
                return Err(InputError::Invalid {
                    file: cal.source.clone(),
                    key: "observations.truth".into(),
                    message: "a command model cannot generate synthetic data: give `values`".into(),
                });
            }
        };
        Ok(Self {
            names: cal.prior.flat_names(),
            parameters: cal.prior.dim(),
            outputs,
        })
    }
}

impl Outputs {
    /// How many outputs a member gives (the number of observations).
    pub fn outputs(&self) -> usize {
        self.outputs
    }
}

impl MemberModel for Outputs {
    fn name(&self) -> &str {
        "command"
    }
    fn parameter_names(&self) -> Vec<String> {
        self.names.clone()
    }
    fn parameter_dim(&self) -> usize {
        self.parameters
    }
    fn output_dim(&self) -> usize {
        self.outputs
    }
    fn evaluate_member(&self, _member: usize, _theta: &[f64], out: &mut [f64]) {
        out.fill(f64::NAN);
    }
}

/// The early stop of an evaluation shared by the threads running its
/// members: the [`Probe`] of iteration 0 and the flag that stops the rest.
#[derive(Default)]
pub struct EarlyStop {
    probe: Mutex<Probe>,
    abort: AtomicBool,
}

impl EarlyStop {
    /// Whether the members not yet started should be skipped.
    pub fn stopping(&self) -> bool {
        self.abort.load(Ordering::SeqCst)
    }

    /// After member `number` of `iteration` ended with `outcome`: note a
    /// failure in the log, and watch iteration 0 for an early stop.
    pub fn note(
        &self,
        folder: &RunFolder,
        iteration: usize,
        number: usize,
        outcome: &MemberOutcome,
    ) {
        if let MemberOutcome::Failed(reason) = outcome {
            tracing::warn!(
                "{} failed: {reason}",
                folder.layout.member_label(iteration, number)
            );
        }
        if iteration == 0
            && let Ok(mut p) = self.probe.lock()
            && p.record(number, outcome)
        {
            self.abort.store(true, Ordering::SeqCst);
        }
    }

    /// After the evaluation: the interruption or early-stop error, if any.
    pub fn finish(&self, folder: &RunFolder) -> Result<(), Error> {
        if let Some(signal) = crate::stop::requested() {
            return Err(crate::stop::interrupted(signal, String::new()));
        }
        if self.stopping() {
            let probe = self
                .probe
                .lock()
                .map_err(|_| anyhow::anyhow!("a member's thread panicked"))?;
            return Err(stopped_early(folder, &probe));
        }
        Ok(())
    }
}

/// Record the outcome of a member whose outputs ekp received (from a
/// worker's answer or a batch's CSV row) rather than read from its
/// `output.toml`: its `output.toml` (when there are values) and its
/// `status.toml`. Values of the wrong number, non-finite or too large fail
/// the member. Returns the outcome as recorded.
pub fn record_received(
    member_dir: &Path,
    result: Result<Vec<f64>, String>,
    outputs: usize,
    started: Instant,
    parameters_hash: Option<String>,
) -> MemberOutcome {
    let result = result.and_then(|values| check_values(values, outputs));
    let reason = match &result {
        Ok(values) => {
            if let Err(e) = crate::io::write_replace(
                &member_dir.join(OUTPUT_FILE),
                member::output_toml(values).as_bytes(),
            ) {
                tracing::warn!("{}: {e:#}", member_dir.display());
            }
            None
        }
        Err(reason) => {
            let _ = std::fs::remove_file(member_dir.join(OUTPUT_FILE));
            Some(reason.clone())
        }
    };
    let record = MemberRecord {
        status: if reason.is_some() {
            RecordStatus::Failed
        } else {
            RecordStatus::Done
        },
        reason,
        malformed: false,
        exit_code: None,
        seconds: started.elapsed().as_secs_f64(),
        host: crate::io::hostname(),
        parameters_hash,
    };
    if let Err(e) = record.write(member_dir) {
        tracing::warn!("{}: {e:#}", member_dir.display());
    }
    match result {
        Ok(v) => MemberOutcome::Done(v),
        Err(r) => MemberOutcome::Failed(r),
    }
}

/// Values a model returned, checked as an `output.toml` is: `outputs` of
/// them, finite, no larger than [`member::MAX_OUTPUT_MAGNITUDE`].
fn check_values(values: Vec<f64>, outputs: usize) -> Result<Vec<f64>, String> {
    if values.len() != outputs {
        return Err(format!(
            "{} values, expected {outputs} (one per observation)",
            values.len()
        ));
    }
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(format!(
            "the model produced non-finite outputs (value {} is {})",
            i + 1,
            values[i]
        ));
    }
    if let Some(i) = values
        .iter()
        .position(|v| v.abs() > member::MAX_OUTPUT_MAGNITUDE)
    {
        return Err(format!(
            "value {} is {:e}, beyond ±{:e}: the model failed",
            i + 1,
            values[i],
            member::MAX_OUTPUT_MAGNITUDE
        ));
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn received_values_are_checked_like_an_output_file() {
        assert_eq!(check_values(vec![1.0, 2.0], 2), Ok(vec![1.0, 2.0]));
        assert!(
            check_values(vec![1.0], 2)
                .unwrap_err()
                .contains("expected 2")
        );
        assert!(
            check_values(vec![1.0, f64::NAN], 2)
                .unwrap_err()
                .contains("value 2")
        );
        assert!(
            check_values(vec![1e200, 0.0], 2)
                .unwrap_err()
                .contains("value 1")
        );
    }
}
