//! `command` models: any executable, one process per member.
//!
//! ```toml
//! [model]
//! kind = "command"
//! program = "./model.sh"          # relative to the calibration file's folder; a bare name is looked up on PATH
//! args = ["--fast", "{parameters}", "{output}"]   # optional; default ["{parameters}", "{output}"]
//! timeout = 600.0                 # optional: seconds per member (`--member-timeout` overrides)
//! env = { OMP_NUM_THREADS = "1" } # optional: extra environment variables
//! ```
//!
//! Each member runs in its own folder (`DIR/iteration_000/member_001/`, see
//! [`crate::folder::layout`]) as the working directory. It reads `parameters.toml`
//! (each parameter by name, constrained values, vectors as arrays) and writes
//! `output.toml` (`values = [...]`, as many as there are observations). The
//! program is started directly with its arguments as a list — never through a
//! shell — with stdin closed and stdout/stderr going to `stdout.log` and
//! `stderr.log` in the member folder. It gets:
//!
//! | placeholder in `args` | environment variable | value |
//! |---|---|---|
//! | `{parameters}` | `EKP_PARAMETERS` | absolute path of `parameters.toml` |
//! | `{output}` | `EKP_OUTPUT` | absolute path of `output.toml` (to write) |
//! | `{member}` | `EKP_MEMBER` | member number, from 1 |
//! | `{iteration}` | `EKP_ITERATION` | iteration number, from 0 |
//! | `{member_dir}` | `EKP_MEMBER_DIR` | absolute path of the member folder |
//! | `{dir}` | `EKP_DIR` | absolute path of the calibration folder |
//!
//! A member fails when its program cannot be started, exits non-zero or is
//! killed, runs past its time limit (its whole process group gets SIGTERM,
//! then SIGKILL after a grace of 5 s), or leaves a missing, unreadable, non-finite or wrong-length
//! `output.toml`. ekp records what happened in `status.toml`; a failed member
//! becomes a NaN column and the failure policy deals with it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use ekp_models::MemberModel;
use nalgebra::DMatrix;

use crate::config::{Calibration, CommandSpec, ObservationSpec};
use crate::driver::Evaluator;
use crate::error::{Error, InputError};
use crate::folder::RunFolder;
use crate::folder::member::{
    self, MemberRecord, OUTPUT_FILE, OutputProblem, PARAMETERS_FILE, RecordStatus, STDERR_FILE,
    STDOUT_FILE,
};

/// How long a member's process group gets to end after SIGTERM (at its time
/// limit, or when ekp is stopped) before SIGKILL.
pub const GRACE: Duration = Duration::from_secs(5);

/// Which member of which calibration is run, and where.
#[derive(Debug, Clone)]
pub struct MemberJob<'a> {
    /// The calibration folder.
    pub dir: &'a Path,
    /// The member's folder (holds `parameters.toml`).
    pub member_dir: &'a Path,
    /// Iteration, from 0.
    pub iteration: usize,
    /// Member, from 1.
    pub member: usize,
    /// Number of outputs expected.
    pub outputs: usize,
    /// Time limit.
    pub timeout: Option<Duration>,
}

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

/// Replace each `{name}` of `vars` in `arg`, in one pass: a value is never
/// searched again (a path holding `{member}` stays as it is).
fn substitute(arg: &str, vars: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(arg.len());
    let mut rest = arg;
    'scan: while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        for (name, value) in vars {
            if let Some(after) = tail
                .strip_prefix('{')
                .and_then(|t| t.strip_prefix(name))
                .and_then(|t| t.strip_prefix('}'))
            {
                out.push_str(value);
                rest = after;
                continue 'scan;
            }
        }
        out.push('{');
        rest = &tail[1..];
    }
    out.push_str(rest);
    out
}

fn describe_exit(status: ExitStatus) -> String {
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
fn stop_leftover(member_dir: &Path) {
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
enum Waited {
    /// It exited.
    Exited(ExitStatus),
    /// It ran past its time limit and was stopped.
    TimedOut,
    /// ekp was asked to stop (a signal) and stopped it.
    Stopped,
}

/// Wait for the child, at most `timeout`, watching for a stop request; a
/// child past its limit or interrupted is stopped with its process group.
fn wait_for(child: &mut Child, timeout: Option<Duration>) -> std::io::Result<Waited> {
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

/// Why a member's run did not give outputs: the reason, and whether the
/// fault is a malformed output file; or that ekp was stopped.
enum Problem {
    Failed(String, bool),
    Stopped,
}

fn failed(reason: String) -> Problem {
    Problem::Failed(reason, false)
}

/// The member's program as a command: its arguments (placeholders
/// substituted), folder, environment, log files, its own process group.
fn command(
    spec: &CommandSpec,
    program: &Path,
    job: &MemberJob<'_>,
    member_dir: &Path,
) -> Result<Command, Problem> {
    let dir = std::path::absolute(job.dir).unwrap_or(job.dir.to_path_buf());
    let parameters = member_dir.join(PARAMETERS_FILE);
    if !parameters.is_file() {
        return Err(failed(format!("{} is missing", parameters.display())));
    }
    let log = |name: &str| {
        std::fs::File::create(member_dir.join(name))
            .map_err(|e| failed(format!("cannot create {name}: {e}")))
    };
    let (stdout, stderr) = (log(STDOUT_FILE)?, log(STDERR_FILE)?);
    let vars = [
        ("parameters", parameters.display().to_string()),
        ("output", member_dir.join(OUTPUT_FILE).display().to_string()),
        ("member", job.member.to_string()),
        ("iteration", job.iteration.to_string()),
        ("member_dir", member_dir.display().to_string()),
        ("dir", dir.display().to_string()),
    ];
    let mut cmd = Command::new(program);
    cmd.args(spec.args.iter().map(|a| substitute(a, &vars)))
        .current_dir(member_dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    for (name, value) in &vars {
        cmd.env(format!("EKP_{}", name.to_ascii_uppercase()), value);
    }
    cmd.envs(&spec.env);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    Ok(cmd)
}

/// Start the member's program, wait for it and read its outputs.
fn execute(
    spec: &CommandSpec,
    program: &Path,
    job: &MemberJob<'_>,
    member_dir: &Path,
    exit_code: &mut Option<i32>,
) -> Result<Vec<f64>, Problem> {
    if crate::stop::requested().is_some() {
        return Err(Problem::Stopped);
    }
    let mut child = command(spec, program, job, member_dir)?
        .spawn()
        .map_err(|e| failed(format!("cannot start {}: {e}", program.display())))?;
    let running = member_dir.join(RUNNING_FILE);
    let _ = std::fs::write(
        &running,
        format!("{} {}\n", child.id(), crate::io::hostname()),
    );
    let waited = wait_for(&mut child, job.timeout);
    let _ = std::fs::remove_file(&running);
    let status = match waited.map_err(|e| failed(format!("cannot wait for the model: {e}")))? {
        Waited::Exited(status) => status,
        Waited::Stopped => return Err(Problem::Stopped),
        Waited::TimedOut => {
            let t = job.timeout.map_or(0.0, |t| t.as_secs_f64());
            return Err(failed(format!(
                "timed out after {t} s and was stopped (SIGTERM, then SIGKILL after {} s)",
                GRACE.as_secs()
            )));
        }
    };
    *exit_code = status.code();
    if !status.success() {
        return Err(failed(format!(
            "{} (see {STDERR_FILE})",
            describe_exit(status)
        )));
    }
    member::read_output(&member_dir.join(OUTPUT_FILE), job.outputs).map_err(|p| {
        let malformed = matches!(p, OutputProblem::Malformed(_));
        Problem::Failed(p.to_string(), malformed)
    })
}

/// Run one member's program in its folder, wait for it (at most the time
/// limit), read its output and record the outcome in its `status.toml`.
///
/// Never fails: every problem is a failed member, except a stop request
/// (a signal), after which nothing is recorded (the member is run again on
/// resume). Only a record that cannot be written is reported (as a
/// warning): the outcome is returned anyway.
pub fn run_member(spec: &CommandSpec, program: &Path, job: &MemberJob<'_>) -> MemberOutcome {
    let started = Instant::now();
    let member_dir = std::path::absolute(job.member_dir).unwrap_or(job.member_dir.to_path_buf());
    // A run of this member left by an ekp that was killed (SIGKILL) must not
    // write into the folder while it runs again.
    stop_leftover(&member_dir);
    // Leftovers of an earlier run of this member must not be taken for its output.
    for f in [OUTPUT_FILE, member::STATUS_FILE] {
        let _ = std::fs::remove_file(member_dir.join(f));
    }
    let parameters_hash = std::fs::read(member_dir.join(PARAMETERS_FILE))
        .ok()
        .map(|b| crate::io::content_hash(&b));
    let mut exit_code = None;
    let result = execute(spec, program, job, &member_dir, &mut exit_code);
    let (status, reason, malformed) = match &result {
        Ok(_) => (RecordStatus::Done, None, false),
        Err(Problem::Failed(r, m)) => (RecordStatus::Failed, Some(r.clone()), *m),
        Err(Problem::Stopped) => {
            let _ = std::fs::remove_file(member_dir.join(OUTPUT_FILE));
            return MemberOutcome::Stopped;
        }
    };
    let record = MemberRecord {
        status,
        reason,
        malformed,
        exit_code,
        seconds: started.elapsed().as_secs_f64(),
        host: crate::io::hostname(),
        parameters_hash,
    };
    if member_dir.is_dir()
        && let Err(e) = record.write(&member_dir)
    {
        tracing::warn!("{}: {e:#}", member_dir.display());
    }
    match result {
        Ok(v) => MemberOutcome::Done(v),
        Err(Problem::Failed(r, _)) => MemberOutcome::Failed(r),
        Err(Problem::Stopped) => MemberOutcome::Stopped,
    }
}

/// A command model as the driver's [`Evaluator`]: members run as
/// processes, `workers` at once, each in its member folder.
pub struct CommandEvaluator {
    spec: CommandSpec,
    program: PathBuf,
    outputs: usize,
    timeout: Option<Duration>,
    pool: rayon::ThreadPool,
}

impl CommandEvaluator {
    /// The evaluator of `cal`'s command model `spec`: the program is
    /// resolved and checked now, before any member runs.
    pub fn new(
        cal: &Calibration,
        spec: &CommandSpec,
        workers: Option<usize>,
        timeout: Option<Duration>,
    ) -> Result<Self, Error> {
        let program = resolve_program(spec, &cal.source)?;
        let outputs = Outputs::new(cal)?.outputs;
        Ok(Self {
            spec: spec.clone(),
            program,
            outputs,
            timeout: timeout.or(spec.timeout),
            pool: crate::models::thread_pool(workers)?,
        })
    }
}

/// How many members of iteration 0 must all fail the same way, with none
/// done, before a run stops early (the model is broken, not unlucky).
pub const EARLY_FAILURES: usize = 4;

/// The first members' failures of iteration 0, watched for an early stop.
#[derive(Default)]
struct Probe {
    done: usize,
    failures: Vec<(usize, String)>,
}

impl Probe {
    /// After a member of iteration 0 ended: whether every one so far failed,
    /// enough of them, for one reason.
    fn record(&mut self, number: usize, outcome: &MemberOutcome) -> bool {
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

impl CommandEvaluator {
    /// Run one member, unless the run is stopping early.
    fn one(
        &self,
        folder: &RunFolder,
        iteration: usize,
        number: usize,
        probe: &std::sync::Mutex<Probe>,
        abort: &std::sync::atomic::AtomicBool,
    ) {
        use std::sync::atomic::Ordering;
        if abort.load(Ordering::SeqCst) {
            return;
        }
        let member_dir = folder.layout.member_dir(iteration, number);
        let job = MemberJob {
            dir: &folder.dir,
            member_dir: &member_dir,
            iteration,
            member: number,
            outputs: self.outputs,
            timeout: self.timeout,
        };
        let outcome = run_member(&self.spec, &self.program, &job);
        if let MemberOutcome::Failed(reason) = &outcome {
            tracing::warn!(
                "{} failed: {reason}",
                folder.layout.member_label(iteration, number)
            );
        }
        if iteration == 0
            && let Ok(mut p) = probe.lock()
            && p.record(number, &outcome)
        {
            abort.store(true, Ordering::SeqCst);
        }
    }
}

/// The early-stop error: the common reason, the end of one member's
/// stderr.log; the probe members' records are removed, so that once the
/// model is fixed, `run --resume` runs them again.
fn stopped_early(folder: &RunFolder, probe: &Probe) -> Error {
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
         setup) is broken: {reason}; stopped before running the others.{}",
        probe.failures.len(),
        crate::io::tail_of(&log, 5)
    ))
}

impl Evaluator for CommandEvaluator {
    fn run_members(
        &self,
        folder: &RunFolder,
        iteration: usize,
        members: &[usize],
        _params: &DMatrix<f64>,
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<(), Error> {
        use rayon::prelude::*;
        let probe = std::sync::Mutex::new(Probe::default());
        let abort = std::sync::atomic::AtomicBool::new(false);
        self.pool.install(|| {
            members.par_iter().for_each(|&number| {
                self.one(folder, iteration, number, &probe, &abort);
                progress(1);
            });
        });
        if let Some(signal) = crate::stop::requested() {
            return Err(crate::stop::interrupted(signal, String::new()));
        }
        if abort.load(std::sync::atomic::Ordering::SeqCst) {
            let probe = probe
                .lock()
                .map_err(|_| anyhow::anyhow!("a member's thread panicked"))?;
            return Err(stopped_early(folder, &probe));
        }
        Ok(())
    }
}

/// The program of a command model, checked before any member runs: a path
/// must be an executable file; a bare name must be found on `PATH`.
pub fn resolve_program(spec: &CommandSpec, file: &str) -> Result<PathBuf, InputError> {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn placeholders_are_substituted() {
        let vars = [("member", "3".to_string()), ("output", "/o.toml".into())];
        assert_eq!(substitute("--out={output}", &vars), "--out=/o.toml");
        assert_eq!(substitute("{member}{member}", &vars), "33");
        assert_eq!(substitute("{other}", &vars), "{other}");
        // One pass: a substituted value is not searched again.
        let vars = [
            ("output", "/runs/x{member}/o.toml".to_string()),
            ("member", "3".into()),
        ];
        assert_eq!(
            substitute("{output}:{member}", &vars),
            "/runs/x{member}/o.toml:3"
        );
        assert_eq!(substitute("{{member}}", &vars), "{3}");
    }
}
