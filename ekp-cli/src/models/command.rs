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
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nalgebra::DMatrix;

use super::program::{
    EarlyStop, GRACE, MemberOutcome, Outputs, RUNNING_FILE, Waited, describe_exit, resolve_program,
    stop_leftover, wait_for,
};
use super::template::Templates;
use crate::config::{Calibration, ProgramSpec};
use crate::driver::Evaluator;
use crate::error::Error;
use crate::folder::RunFolder;
use crate::folder::member::{
    self, MemberRecord, OUTPUT_FILE, OutputProblem, PARAMETERS_FILE, RecordStatus, STDERR_FILE,
    STDOUT_FILE,
};

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
    /// Input files to write in the member folder first.
    pub templates: &'a Templates,
    /// The member's constrained parameters (for the templates).
    pub theta: &'a [f64],
}

/// Replace each `{name}` of `vars` in `arg`, in one pass: a value is never
/// searched again (a path holding `{member}` stays as it is).
pub fn substitute(arg: &str, vars: &[(&str, String)]) -> String {
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
    spec: &ProgramSpec,
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
    spec: &ProgramSpec,
    program: &Path,
    job: &MemberJob<'_>,
    member_dir: &Path,
    exit_code: &mut Option<i32>,
) -> Result<Vec<f64>, Problem> {
    if crate::stop::requested().is_some() {
        return Err(Problem::Stopped);
    }
    job.templates.write(member_dir, job.theta).map_err(failed)?;
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
pub fn run_member(spec: &ProgramSpec, program: &Path, job: &MemberJob<'_>) -> MemberOutcome {
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
    spec: ProgramSpec,
    program: PathBuf,
    outputs: usize,
    timeout: Option<Duration>,
    templates: Templates,
    pool: rayon::ThreadPool,
}

impl CommandEvaluator {
    /// The evaluator of `cal`'s command model `spec`: the program is
    /// resolved and checked, the templates read, now, before any member runs.
    pub fn new(
        cal: &Calibration,
        spec: &ProgramSpec,
        workers: Option<usize>,
        timeout: Option<Duration>,
    ) -> Result<Self, Error> {
        let program = resolve_program(spec, &cal.source)?;
        let outputs = Outputs::new(cal)?.outputs();
        Ok(Self {
            spec: spec.clone(),
            program,
            outputs,
            timeout: timeout.or(spec.timeout),
            templates: Templates::load(spec, &cal.prior, &cal.source)?,
            pool: crate::models::thread_pool(workers)?,
        })
    }

    /// Run member `number`, whose parameters are `theta`, unless the run
    /// is stopping early.
    fn one(
        &self,
        folder: &RunFolder,
        iteration: usize,
        number: usize,
        theta: &[f64],
        early: &EarlyStop,
    ) {
        if early.stopping() {
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
            templates: &self.templates,
            theta,
        };
        let outcome = run_member(&self.spec, &self.program, &job);
        early.note(folder, iteration, number, &outcome);
    }
}

impl Evaluator for CommandEvaluator {
    fn run_members(
        &self,
        folder: &RunFolder,
        iteration: usize,
        members: &[usize],
        params: &DMatrix<f64>,
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<(), Error> {
        use rayon::prelude::*;
        let early = EarlyStop::default();
        self.pool.install(|| {
            members.par_iter().enumerate().for_each(|(i, &number)| {
                let theta: Vec<f64> = if i < params.ncols() {
                    params.column(i).iter().copied().collect()
                } else {
                    Vec::new()
                };
                self.one(folder, iteration, number, &theta, &early);
                progress(1);
            });
        });
        early.finish(folder)
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
