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
//! [`crate::layout`]) as the working directory. It reads `parameters.toml`
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
//! killed, runs past its time limit (it is killed, with every process in its
//! process group), or leaves a missing, unreadable, non-finite or wrong-length
//! `output.toml`. ekp records what happened in `status.toml`; a failed member
//! becomes a NaN column and the failure policy deals with it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ekp_core::Prior;
use ekp_models::MemberModel;
use serde::Deserialize;

use crate::config::{Calibration, ObservationSpec};
use crate::error::InputError;
use crate::layout::{
    self, Layout, MemberRecord, OUTPUT_FILE, OutputProblem, PARAMETERS_FILE, RecordStatus,
    STDERR_FILE, STDOUT_FILE,
};

/// The arguments a program gets when `args` is not given.
pub const DEFAULT_ARGS: [&str; 2] = ["{parameters}", "{output}"];

/// A validated `[model]` table of `kind = "command"`.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandSpec {
    /// `program` as written.
    pub program: String,
    /// `args` (placeholders not yet substituted).
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: BTreeMap<String, String>,
    /// `timeout`: the time limit per member.
    pub timeout: Option<Duration>,
    /// Where a relative `program` path is resolved: the folder of the
    /// calibration file (for a folder made by `init`, the folder of the
    /// original file, recorded in `workflow.toml`).
    pub base_dir: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCommand {
    program: String,
    args: Option<Vec<String>>,
    env: Option<BTreeMap<String, String>>,
    timeout: Option<f64>,
}

impl CommandSpec {
    /// Validate the rest of a `[model]` table (`kind` and `fixed` removed) of
    /// the calibration file `file`, whose folder is `base`.
    pub fn from_table(table: toml::Table, file: &str, base: &Path) -> Result<Self, InputError> {
        let invalid = |key: &str, message: String| InputError::Invalid {
            file: file.to_string(),
            key: key.to_string(),
            message,
        };
        let raw: RawCommand = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| invalid("model", e.to_string().trim_end().to_string()))?;
        if raw.program.trim().is_empty() {
            return Err(invalid("model.program", "is empty".into()));
        }
        let timeout = match raw.timeout {
            None => None,
            Some(t) if t.is_finite() && t > 0.0 => Some(Duration::from_secs_f64(t)),
            Some(t) => {
                return Err(invalid(
                    "model.timeout",
                    format!("must be a positive number of seconds, got {t}"),
                ));
            }
        };
        let env = raw.env.unwrap_or_default();
        if let Some(k) = env
            .keys()
            .find(|k| k.is_empty() || k.contains('=') || k.contains('\0'))
        {
            return Err(invalid(
                &format!("model.env.{k}"),
                "is not a valid environment variable name".into(),
            ));
        }
        Ok(Self {
            program: raw.program,
            args: raw
                .args
                .unwrap_or_else(|| DEFAULT_ARGS.iter().map(|s| s.to_string()).collect()),
            env,
            timeout,
            base_dir: base.to_path_buf(),
        })
    }

    /// The program to start: a path with a `/` is taken relative to
    /// [`base_dir`](Self::base_dir) (and made absolute); a bare name is left
    /// for the operating system to find on `PATH`.
    pub fn resolved_program(&self) -> PathBuf {
        let p = Path::new(&self.program);
        if !self.program.contains('/') {
            return p.to_path_buf();
        }
        let joined = if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        };
        std::path::absolute(&joined).unwrap_or(joined)
    }

    /// Check, before any member runs, that a program given as a path exists
    /// and is a file.
    pub fn check_program(&self, file: &str) -> Result<PathBuf, InputError> {
        let program = self.resolved_program();
        if self.program.contains('/') && !program.is_file() {
            return Err(InputError::Invalid {
                file: file.to_string(),
                key: "model.program".into(),
                message: format!(
                    "{} is not a file (a relative `program` is taken from the folder of the \
                     calibration file, {})",
                    program.display(),
                    self.base_dir.display()
                ),
            });
        }
        Ok(program)
    }
}

/// Parse a time limit: seconds (`90`, `2.5`), or with a unit (`30s`, `5m`, `2h`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, scale) = match t.char_indices().last() {
        Some((i, 's')) => (&t[..i], 1.0),
        Some((i, 'm')) => (&t[..i], 60.0),
        Some((i, 'h')) => (&t[..i], 3600.0),
        _ => (t, 1.0),
    };
    match num.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(Duration::from_secs_f64(v * scale)),
        _ => Err(format!(
            "`{s}` is not a time limit: give seconds (90, 2.5) or a number with s, m or h (30s, 5m, 2h)"
        )),
    }
}

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
}

fn substitute(arg: &str, vars: &[(&str, String)]) -> String {
    let mut s = arg.to_string();
    for (name, value) in vars {
        s = s.replace(&format!("{{{name}}}"), value);
    }
    s
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

/// Kill the child and every process in its process group, and reap it.
fn kill_tree(child: &mut Child) {
    #[cfg(unix)]
    {
        // The child leads its own process group (see `run_member`): kill the
        // whole group, so a shell script's own children die with it.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", child.id())])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Wait for the child, at most `timeout`. `Ok(None)`: it timed out (and was killed).
fn wait_with_timeout(
    child: &mut Child,
    timeout: Option<Duration>,
) -> std::io::Result<Option<ExitStatus>> {
    let Some(limit) = timeout else {
        return child.wait().map(Some);
    };
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let elapsed = start.elapsed();
        if elapsed >= limit {
            kill_tree(child);
            return Ok(None);
        }
        std::thread::sleep(pause.min(limit - elapsed));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Run one member's program in its folder, wait for it (at most the time
/// limit), read its output and record the outcome in its `status.toml`.
///
/// Never fails: every problem is a failed member. Only a record that cannot be
/// written is reported (as a warning): the outcome is returned anyway.
pub fn run_member(spec: &CommandSpec, program: &Path, job: &MemberJob<'_>) -> MemberOutcome {
    let started = Instant::now();
    let member_dir = std::path::absolute(job.member_dir).unwrap_or(job.member_dir.to_path_buf());
    let dir = std::path::absolute(job.dir).unwrap_or(job.dir.to_path_buf());
    let output = member_dir.join(OUTPUT_FILE);
    // Leftovers of an earlier run of this member must not be taken for its output.
    for f in [OUTPUT_FILE, layout::STATUS_FILE] {
        let _ = std::fs::remove_file(member_dir.join(f));
    }
    let mut exit_code = None;
    let result: Result<Vec<f64>, (String, bool)> = (|| {
        let parameters = member_dir.join(PARAMETERS_FILE);
        if !parameters.is_file() {
            return Err((format!("{} is missing", parameters.display()), false));
        }
        let log = |name: &str| {
            std::fs::File::create(member_dir.join(name))
                .map_err(|e| (format!("cannot create {name}: {e}"), false))
        };
        let (stdout, stderr) = (log(STDOUT_FILE)?, log(STDERR_FILE)?);
        let vars = [
            ("parameters", parameters.display().to_string()),
            ("output", output.display().to_string()),
            ("member", job.member.to_string()),
            ("iteration", job.iteration.to_string()),
            ("member_dir", member_dir.display().to_string()),
            ("dir", dir.display().to_string()),
        ];
        let mut cmd = Command::new(program);
        cmd.args(spec.args.iter().map(|a| substitute(a, &vars)))
            .current_dir(&member_dir)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .env("EKP_PARAMETERS", &vars[0].1)
            .env("EKP_OUTPUT", &vars[1].1)
            .env("EKP_MEMBER", &vars[2].1)
            .env("EKP_ITERATION", &vars[3].1)
            .env("EKP_MEMBER_DIR", &vars[4].1)
            .env("EKP_DIR", &vars[5].1)
            .envs(&spec.env);
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| (format!("cannot start {}: {e}", program.display()), false))?;
        let status = wait_with_timeout(&mut child, job.timeout)
            .map_err(|e| (format!("cannot wait for the model: {e}"), false))?;
        let Some(status) = status else {
            let t = job.timeout.map_or(0.0, |t| t.as_secs_f64());
            return Err((format!("timed out after {t} s and was killed"), false));
        };
        exit_code = status.code();
        if !status.success() {
            return Err((
                format!("{} (see {STDERR_FILE})", describe_exit(status)),
                false,
            ));
        }
        layout::read_output(&output, job.outputs).map_err(|p| {
            let malformed = matches!(p, OutputProblem::Malformed(_));
            (p.to_string(), malformed)
        })
    })();
    let (status, reason, malformed) = match &result {
        Ok(_) => (RecordStatus::Done, None, false),
        Err((r, m)) => (RecordStatus::Failed, Some(r.clone()), *m),
    };
    let record = MemberRecord {
        status,
        reason,
        malformed,
        exit_code,
        seconds: started.elapsed().as_secs_f64(),
        host: layout::hostname(),
    };
    if member_dir.is_dir()
        && let Err(e) = record.write(&member_dir)
    {
        tracing::warn!("{}: {e:#}", member_dir.display());
    }
    match result {
        Ok(v) => MemberOutcome::Done(v),
        Err((r, _)) => MemberOutcome::Failed(r),
    }
}

/// Settings of how `run` runs a command model's members.
#[derive(Debug, Clone)]
pub struct CommandOptions {
    /// The folder the member folders go into (`run --output`).
    pub root: PathBuf,
    /// Time limit per member (`--member-timeout`; else `model.timeout`).
    pub timeout: Option<Duration>,
}

impl Default for CommandOptions {
    fn default() -> Self {
        Self {
            root: PathBuf::from("ekp-output"),
            timeout: None,
        }
    }
}

/// A command model as a [`MemberModel`], for `run`: each call writes the
/// member's `parameters.toml` and runs its program.
///
/// Member `j`'s `k`-th call is iteration `k` (a calibration evaluates every
/// member exactly once per iteration, in order), so calls for different
/// members may run in parallel.
pub struct CommandModel {
    spec: CommandSpec,
    program: PathBuf,
    prior: Prior,
    /// How `parameters.toml` is written.
    parameter_files: crate::layout::ParameterFiles,
    layout: Layout,
    outputs: usize,
    timeout: Option<Duration>,
    calls: Vec<AtomicUsize>,
}

impl CommandModel {
    /// The command model of `cal` (whose model must be a command), with its
    /// member folders under `options.root`.
    pub fn new(
        cal: &Calibration,
        spec: &CommandSpec,
        options: &CommandOptions,
    ) -> Result<Self, InputError> {
        let program = spec.check_program(&cal.source)?;
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
            spec: spec.clone(),
            program,
            prior: cal.prior.clone(),
            parameter_files: cal.parameter_files.clone(),
            layout: Layout::new(&options.root, cal.ensemble_size, cal.iterations),
            outputs,
            timeout: options.timeout.or(spec.timeout),
            calls: (0..cal.ensemble_size)
                .map(|_| AtomicUsize::new(0))
                .collect(),
        })
    }

    fn evaluate(&self, member: usize, theta: &[f64]) -> MemberOutcome {
        let iteration = self
            .calls
            .get(member)
            .map_or(0, |c| c.fetch_add(1, Ordering::SeqCst));
        let number = member + 1;
        let member_dir = self.layout.member_dir(iteration, number);
        if let Err(e) = std::fs::create_dir_all(&member_dir).and_then(|()| {
            std::fs::write(
                member_dir.join(PARAMETERS_FILE),
                self.parameter_files
                    .render(&self.prior, theta, iteration, number),
            )
        }) {
            return MemberOutcome::Failed(format!(
                "cannot write {}: {e}",
                member_dir.join(PARAMETERS_FILE).display()
            ));
        }
        let job = MemberJob {
            dir: &self.layout.root,
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
                self.layout.member_label(iteration, number)
            );
        }
        outcome
    }
}

impl MemberModel for CommandModel {
    fn name(&self) -> &str {
        "command"
    }
    fn parameter_names(&self) -> Vec<String> {
        self.prior.flat_names()
    }
    fn parameter_dim(&self) -> usize {
        self.prior.dim()
    }
    fn output_dim(&self) -> usize {
        self.outputs
    }
    fn evaluate_member(&self, member: usize, theta: &[f64], out: &mut [f64]) {
        match self.evaluate(member, theta) {
            MemberOutcome::Done(v) if v.len() == out.len() => out.copy_from_slice(&v),
            _ => out.fill(f64::NAN),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-3").is_err());
    }

    #[test]
    fn placeholders_are_substituted() {
        let vars = [("member", "3".to_string()), ("output", "/o.toml".into())];
        assert_eq!(substitute("--out={output}", &vars), "--out=/o.toml");
        assert_eq!(substitute("{member}{member}", &vars), "33");
        assert_eq!(substitute("{other}", &vars), "{other}");
    }
}
