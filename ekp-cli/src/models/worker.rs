//! `worker` models: long-lived processes that load the model once and serve
//! members one at a time (EKP.jl's `pmap` over `addprocs` workers).
//!
//! ```toml
//! [model]
//! kind = "worker"
//! program = "./worker.py"         # as for command models
//! args = []                       # optional; placeholders {dir}, {worker}
//! timeout = 60.0                  # optional: seconds per member (`--member-timeout` overrides)
//! env = { OMP_NUM_THREADS = "1" } # optional
//! templates = [...]               # optional: written in the member folder before it is sent
//! ```
//!
//! ekp starts `--jobs` workers (default: one per core) the first time members
//! run and keeps them for the whole command (every iteration of a `run`),
//! each in its own process group, working directory the calibration folder,
//! with `EKP_DIR` and `EKP_WORKER` (from 1) in the environment. To serve a
//! member it writes one line of JSON to the worker's stdin:
//!
//! ```json
//! {"iteration": 0, "member": 1, "parameters": {"F": 8.1, "theta": [0.1, 0.2]}, "folder": "/abs/DIR/iteration_000/member_001"}
//! ```
//!
//! (constrained values by name, vector parameters as arrays), and reads one
//! line from its stdout: `{"values": [...]}` (one number per observation;
//! `null`, `NaN` or `Infinity` for a value the model could not compute
//! fails the member) or `{"error": "why"}` (the member failed; the worker
//! goes on). Blank lines are skipped. Anything else on stdout breaks the
//! protocol: write logs to stderr. A worker's stderr goes to
//! `DIR/workers/worker_NNN.log`, and the lines it writes while serving a
//! member also to that member's `stderr.log`. Closing stdin asks a worker
//! to exit (ekp waits [`GRACE`], then stops its process group).
//!
//! A worker that exits, runs past the member's time limit or answers
//! something that is not such a line fails that member (named, with the
//! cause) and is stopped (SIGTERM, then SIGKILL) and started again for the
//! next member. A worker slot that fails [`CRASHES_IN_A_ROW`] members in a
//! row that way is given up for the evaluation; when every slot is given
//! up, the members not yet served stay missing and the command stops with
//! an error (fix the model, then `run --resume`). As for command models, if
//! the first [`super::program::EARLY_FAILURES`] members of iteration 0 all
//! fail for one reason the run stops early.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nalgebra::DMatrix;

use super::command::substitute;
use super::program::{
    EarlyStop, GRACE, MemberOutcome, Outputs, describe_exit, record_received, resolve_program,
    stop_group,
};
use super::template::Templates;
use crate::config::{Calibration, ProgramSpec};
use crate::driver::Evaluator;
use crate::error::Error;
use crate::folder::member::{OUTPUT_FILE, STATUS_FILE, STDERR_FILE};
use crate::folder::{ParameterFilesExt, RunFolder, WORKERS_DIR};

/// A worker slot that fails this many members in a row by crashing,
/// hanging or answering garbage is given up for the evaluation.
pub const CRASHES_IN_A_ROW: usize = 3;

/// The longest line ekp reads from a worker (bytes): beyond it the answer
/// is garbage. Generous: 100 bytes per value, at least 1 MiB.
fn max_line(outputs: usize) -> usize {
    (1usize << 20).max(100 * outputs)
}

/// What a worker's stdout gave.
enum Line {
    /// One line (without its newline).
    Text(String),
    /// A line longer than the limit (the rest of it is skipped).
    TooLong,
    /// Not UTF-8.
    Binary,
    /// stdout closed: the worker exited (or closed it).
    Closed,
}

/// Read `stdout` line by line into `tx`, each at most `cap` bytes.
fn read_lines(stdout: impl Read, cap: usize, tx: Sender<Line>) {
    let mut reader = BufReader::new(stdout);
    loop {
        let mut buf = Vec::new();
        let mut too_long = false;
        // Read up to the newline, keeping at most `cap` bytes.
        let ended = loop {
            let chunk = match reader.fill_buf() {
                Ok([]) => break true,
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break true,
            };
            let (take, newline) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (i, true),
                None => (chunk.len(), false),
            };
            if buf.len() + take <= cap {
                buf.extend_from_slice(&chunk[..take]);
            } else {
                too_long = true;
            }
            reader.consume(take + usize::from(newline));
            if newline {
                break false;
            }
        };
        if ended && buf.is_empty() && !too_long {
            let _ = tx.send(Line::Closed);
            return;
        }
        let line = if too_long {
            Line::TooLong
        } else {
            match String::from_utf8(buf) {
                Ok(s) => Line::Text(s),
                Err(_) => Line::Binary,
            }
        };
        if tx.send(line).is_err() {
            return;
        }
        if ended {
            let _ = tx.send(Line::Closed);
            return;
        }
    }
}

/// A worker's stderr pipe, copied line by line into the worker's log and,
/// while a member is served, into that member's `stderr.log`.
///
/// Two parties read it: a thread that waits for output (so that a chatty
/// worker never blocks on a full pipe), and [`Worker::serve`], which drains
/// it once the worker has answered. A worker writes its log lines for a
/// member before its answer, so by the time ekp reads the answer they are in
/// this pipe: draining it then, before the member's log is closed, puts
/// every one of them into the member's `stderr.log` however far behind the
/// thread is (the thread alone lost them under load). The pipe is
/// non-blocking and read under a lock, so neither reader can block the
/// other or split a line between logs.
struct StderrCopy {
    pipe: std::fs::File,
    log: std::fs::File,
    /// The served member's `stderr.log`, while one is served.
    member: Option<std::fs::File>,
    /// The start of a line not yet ended by `\n`.
    partial: Vec<u8>,
    /// The worker closed its stderr.
    closed: bool,
}

impl StderrCopy {
    /// Copy what the pipe holds now, up to about `limit` bytes (no waiting;
    /// the limit keeps a worker that writes without pause from holding its
    /// reader here); complete lines go to the log and to the member's log, a
    /// line's start waits for its end.
    fn drain(&mut self, limit: usize) {
        let mut buf = [0u8; 8192];
        let mut read = 0;
        while !self.closed && read < limit {
            match self.pipe.read(&mut buf) {
                Ok(0) => {
                    self.closed = true;
                    // The last line, unended.
                    let rest = std::mem::take(&mut self.partial);
                    self.write(&rest);
                }
                Ok(n) => {
                    read += n;
                    self.partial.extend_from_slice(&buf[..n]);
                    if let Some(end) = self.partial.iter().rposition(|&b| b == b'\n') {
                        let lines: Vec<u8> = self.partial.drain(..=end).collect();
                        self.write(&lines);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(_) => self.closed = true,
            }
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let _ = self.log.write_all(bytes);
        if let Some(f) = self.member.as_mut() {
            let _ = f.write_all(bytes);
        }
    }
}

/// The most a pipe holds (Linux's default `pipe-max-size`): what a worker
/// wrote before its answer and ekp has not read yet is at most this much,
/// since the worker's writes block when its pipe is full.
const PIPE_MAX: usize = 1 << 20;

/// The worker's stderr, shared by [`watch_stderr`] and [`Worker::serve`].
type SharedStderr = Arc<Mutex<StderrCopy>>;

/// Make `stderr` a non-blocking [`StderrCopy`], with a second handle on the
/// same pipe for [`watch_stderr`] to wait on.
fn share_stderr(
    stderr: std::process::ChildStderr,
    log: std::fs::File,
) -> std::io::Result<(SharedStderr, std::os::fd::OwnedFd)> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let fd = std::os::fd::OwnedFd::from(stderr);
    let flags = fcntl(&fd, FcntlArg::F_GETFL).map_err(std::io::Error::from)?;
    fcntl(
        &fd,
        FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
    )
    .map_err(std::io::Error::from)?;
    let wait = fd.try_clone()?;
    let copy = StderrCopy {
        pipe: std::fs::File::from(fd),
        log,
        member: None,
        partial: Vec::new(),
        closed: false,
    };
    Ok((Arc::new(Mutex::new(copy)), wait))
}

/// Wait for the worker's stderr output and copy it as it comes, until the
/// worker closes its stderr.
fn watch_stderr(wait: std::os::fd::OwnedFd, copy: SharedStderr) {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    loop {
        let mut fds = [PollFd::new(wait.as_fd(), PollFlags::POLLIN)];
        // A timeout only bounds how long a missed wake-up could last.
        match poll(&mut fds, PollTimeout::from(1000u16)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return,
        }
        let Ok(mut copy) = copy.lock() else { return };
        copy.drain(64 * 1024);
        if copy.closed {
            return;
        }
    }
}

/// How serving one member ended.
enum Served {
    /// The worker answered: the values, or its error.
    Answer(Result<Vec<f64>, String>),
    /// The worker crashed, hung or broke the protocol: why (it must be
    /// stopped and restarted).
    Broken(String),
    /// ekp was asked to stop.
    Stopped,
}

/// One running worker process.
struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<Line>,
    /// Its stderr (see [`StderrCopy`]).
    stderr: SharedStderr,
    /// Its process group was stopped (and it was reaped).
    stopped: bool,
}

impl Worker {
    /// Start worker `slot` (from 1) of `spec` in the calibration folder `dir`.
    fn start(
        spec: &ProgramSpec,
        program: &Path,
        dir: &Path,
        slot: usize,
        outputs: usize,
    ) -> std::io::Result<Self> {
        let logs = dir.join(WORKERS_DIR);
        std::fs::create_dir_all(&logs)?;
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(logs.join(format!("worker_{slot:03}.log")))?;
        let vars = [
            ("dir", dir.display().to_string()),
            ("worker", slot.to_string()),
        ];
        let mut cmd = Command::new(program);
        cmd.args(spec.args.iter().map(|a| substitute(a, &vars)))
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("EKP_DIR", dir)
            .env("EKP_WORKER", slot.to_string())
            .envs(&spec.env);
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let mut child = cmd.spawn()?;
        let _ = writeln!(
            log,
            "--- ekp: worker {slot} started as process {} on {}",
            child.id(),
            crate::io::hostname()
        );
        let (stdout, stderr) = match (child.stdout.take(), child.stderr.take()) {
            (Some(o), Some(e)) => (o, e),
            _ => {
                stop_group(&mut child);
                return Err(std::io::Error::other("the worker's pipes are missing"));
            }
        };
        let (tx, lines) = std::sync::mpsc::channel();
        let cap = max_line(outputs);
        std::thread::spawn(move || read_lines(stdout, cap, tx));
        let (stderr, wait) = match share_stderr(stderr, log) {
            Ok(shared) => shared,
            Err(e) => {
                stop_group(&mut child);
                return Err(e);
            }
        };
        let watched = Arc::clone(&stderr);
        std::thread::spawn(move || watch_stderr(wait, watched));
        Ok(Self {
            stdin: child.stdin.take(),
            child,
            lines,
            stderr,
            stopped: false,
        })
    }

    /// Send `request` (one JSON line) and wait, at most `timeout`, for the
    /// answer; the worker's stderr meanwhile also goes to `member_log`.
    fn serve(
        &mut self,
        request: &str,
        member_log: Option<std::fs::File>,
        timeout: Option<Duration>,
    ) -> Served {
        // What the worker wrote before this member stays out of its log; what
        // it wrote before it answered is in the pipe once the answer is read,
        // and goes into it (see `StderrCopy`).
        if let Ok(mut copy) = self.stderr.lock() {
            copy.drain(PIPE_MAX);
            copy.member = member_log;
        }
        let served = self.exchange(request, timeout);
        if let Ok(mut copy) = self.stderr.lock() {
            copy.drain(PIPE_MAX);
            copy.member = None;
        }
        served
    }

    fn exchange(&mut self, request: &str, timeout: Option<Duration>) -> Served {
        let sent = self.stdin.as_mut().map(|stdin| {
            stdin
                .write_all(request.as_bytes())
                .and_then(|()| stdin.write_all(b"\n"))
                .and_then(|()| stdin.flush())
        });
        if !matches!(sent, Some(Ok(()))) {
            return Served::Broken(self.exit_cause("before it was sent the member"));
        }
        let start = Instant::now();
        loop {
            if crate::stop::requested().is_some() {
                return Served::Stopped;
            }
            if let Some(limit) = timeout
                && start.elapsed() >= limit
            {
                return Served::Broken(format!(
                    "timed out after {} s; the worker was stopped (SIGTERM, then SIGKILL after \
                     {} s) and is restarted for the next member",
                    limit.as_secs_f64(),
                    GRACE.as_secs()
                ));
            }
            match self.lines.recv_timeout(Duration::from_millis(50)) {
                Ok(Line::Text(t)) if t.trim().is_empty() => continue,
                Ok(Line::Text(t)) => return parse_answer(&t),
                Ok(Line::TooLong) => {
                    return Served::Broken(
                        "the worker answered a line longer than ekp reads; it is restarted".into(),
                    );
                }
                Ok(Line::Binary) => {
                    return Served::Broken(
                        "the worker answered a line that is not UTF-8 text; it is restarted".into(),
                    );
                }
                Ok(Line::Closed) | Err(RecvTimeoutError::Disconnected) => {
                    return Served::Broken(self.exit_cause("while serving the member"));
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }

    /// Why the worker stopped answering: how it exited (waiting a moment
    /// for it), or that it closed its stdout.
    fn exit_cause(&mut self, when: &str) -> String {
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(500) {
            if let Ok(Some(status)) = self.child.try_wait() {
                return format!(
                    "the worker {} {when} (see {STDERR_FILE}); it is restarted",
                    describe_exit(status)
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        format!("the worker closed its stdout {when} (see {STDERR_FILE}); it is restarted")
    }
}

impl Worker {
    /// Stop its process group now (SIGTERM, then SIGKILL after [`GRACE`]).
    fn kill(&mut self) {
        drop(self.stdin.take());
        stop_group(&mut self.child);
        self.stopped = true;
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        // Closing stdin asks the worker to exit; then its group is stopped.
        drop(self.stdin.take());
        let start = Instant::now();
        while start.elapsed() < GRACE {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        stop_group(&mut self.child);
    }
}

/// The answer line of a worker: its values, its error, or broken protocol.
fn parse_answer(line: &str) -> Served {
    let value = serde_json::from_str::<serde_json::Value>(line).or_else(|e| {
        // Python's json.dumps writes NaN and Infinity, which JSON lacks.
        let patched = line
            .replace("-Infinity", "null")
            .replace("Infinity", "null")
            .replace("NaN", "null");
        serde_json::from_str::<serde_json::Value>(&patched).map_err(|_| e)
    });
    let garbage = |why: &str| {
        let shown: String = line.chars().take(200).collect();
        Served::Broken(format!(
            "the worker answered `{}` ({why}), not a line {{\"values\": [...]}} or \
             {{\"error\": \"...\"}}; it is restarted",
            shown.escape_debug()
        ))
    };
    let Ok(serde_json::Value::Object(map)) = value else {
        return garbage("not a JSON object");
    };
    if let Some(e) = map.get("error") {
        let why = match e {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        return Served::Answer(Err(format!("the worker reported: {why}")));
    }
    let Some(serde_json::Value::Array(values)) = map.get("values") else {
        return garbage("no `values` array");
    };
    let values: Option<Vec<f64>> = values
        .iter()
        .map(|v| match v {
            serde_json::Value::Null => Some(f64::NAN),
            other => other.as_f64(),
        })
        .collect();
    match values {
        Some(v) => Served::Answer(Ok(v)),
        None => garbage("a value that is not a number"),
    }
}

/// The request line for a member: `{"iteration", "member", "parameters", "folder"}`.
fn request(
    cal: &Calibration,
    iteration: usize,
    member: usize,
    theta: &[f64],
    folder: &Path,
) -> String {
    let mut parameters = serde_json::Map::new();
    for (p, r) in cal.prior.parameters().iter().zip(cal.prior.ranges()) {
        let vals: Vec<f64> = r
            .map(|i| theta.get(i).copied().unwrap_or(f64::NAN))
            .collect();
        let value = match vals.as_slice() {
            [v] if p.size() == 1 => serde_json::Value::from(*v),
            _ => serde_json::Value::from(vals),
        };
        parameters.insert(p.name().to_string(), value);
    }
    serde_json::json!({
        "iteration": iteration,
        "member": member,
        "parameters": parameters,
        "folder": folder.display().to_string(),
    })
    .to_string()
}

/// A worker model as the driver's [`Evaluator`].
pub struct WorkerEvaluator {
    cal: Calibration,
    spec: ProgramSpec,
    program: PathBuf,
    outputs: usize,
    timeout: Option<Duration>,
    templates: Templates,
    /// Worker slots; a started worker stays in its slot between evaluations.
    slots: Vec<Mutex<Option<Worker>>>,
}

impl WorkerEvaluator {
    /// The evaluator of `cal`'s worker model `spec` with `workers` slots
    /// (default: one per core): the program is resolved and the templates
    /// read now; the workers start when the first members run.
    pub fn new(
        cal: &Calibration,
        spec: &ProgramSpec,
        workers: Option<usize>,
        timeout: Option<Duration>,
    ) -> Result<Self, Error> {
        let n = workers.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        });
        Ok(Self {
            cal: cal.clone(),
            spec: spec.clone(),
            program: resolve_program(spec, &cal.source)?,
            outputs: Outputs::new(cal)?.outputs(),
            timeout: timeout.or(spec.timeout),
            templates: Templates::load(spec, &cal.prior, &cal.source)?,
            slots: (0..n.max(1)).map(|_| Mutex::new(None)).collect(),
        })
    }
}

/// One evaluation, shared by the slots' threads.
struct Round<'a> {
    folder: &'a RunFolder,
    iteration: usize,
    members: &'a [usize],
    params: &'a DMatrix<f64>,
    progress: &'a (dyn Fn(usize) + Sync),
    next: AtomicUsize,
    early: EarlyStop,
    /// The last reason a slot was given up.
    given_up: Mutex<Option<String>>,
}

impl WorkerEvaluator {
    /// Serve members of `round` from slot `slot` (from 0) until none are left.
    fn serve_slot(&self, round: &Round<'_>, slot: usize) {
        let Ok(mut held) = self.slots[slot].lock() else {
            return;
        };
        let mut in_a_row = 0;
        while !round.early.stopping() && crate::stop::requested().is_none() {
            let i = round.next.fetch_add(1, Ordering::SeqCst);
            let Some(&number) = round.members.get(i) else {
                break;
            };
            let (outcome, broken) = self.serve_member(round, slot, &mut held, i, number);
            if matches!(outcome, MemberOutcome::Stopped) {
                break;
            }
            round
                .early
                .note(round.folder, round.iteration, number, &outcome);
            (round.progress)(1);
            in_a_row = if broken { in_a_row + 1 } else { 0 };
            if in_a_row >= CRASHES_IN_A_ROW {
                if let (MemberOutcome::Failed(why), Ok(mut g)) = (&outcome, round.given_up.lock()) {
                    *g = Some(format!("worker {}: {why}", slot + 1));
                }
                break;
            }
        }
    }

    /// Serve member `number` (the `i`-th of the round) on the slot's worker,
    /// starting one if needed; record its outcome. Returns the outcome and
    /// whether the worker broke (it is then stopped).
    fn serve_member(
        &self,
        round: &Round<'_>,
        slot: usize,
        held: &mut Option<Worker>,
        i: usize,
        number: usize,
    ) -> (MemberOutcome, bool) {
        let started = Instant::now();
        let member_dir = round.folder.layout.member_dir(round.iteration, number);
        let member_dir = std::path::absolute(&member_dir).unwrap_or(member_dir);
        for f in [OUTPUT_FILE, STATUS_FILE] {
            let _ = std::fs::remove_file(member_dir.join(f));
        }
        let theta: Vec<f64> = round.params.column(i).iter().copied().collect();
        let rendered =
            self.cal
                .parameter_files
                .render(&self.cal.prior, &theta, round.iteration, number);
        let hash = Some(crate::io::content_hash(rendered.as_bytes()));
        let record = |r: Result<Vec<f64>, String>| {
            record_received(&member_dir, r, self.outputs, started, hash.clone())
        };
        if let Err(why) = self.templates.write(&member_dir, &theta) {
            return (record(Err(why)), false);
        }
        if held.is_none() {
            let dir = std::path::absolute(&round.folder.dir).unwrap_or(round.folder.dir.clone());
            match Worker::start(&self.spec, &self.program, &dir, slot + 1, self.outputs) {
                Ok(w) => *held = Some(w),
                Err(e) => {
                    let why = format!("cannot start the worker {}: {e}", self.program.display());
                    return (record(Err(why)), true);
                }
            }
        }
        let Some(worker) = held.as_mut() else {
            return (MemberOutcome::Stopped, false);
        };
        let line = request(&self.cal, round.iteration, number, &theta, &member_dir);
        let log = std::fs::File::create(member_dir.join(STDERR_FILE)).ok();
        match worker.serve(&line, log, self.timeout) {
            Served::Answer(r) => (record(r), false),
            Served::Broken(why) => {
                if let Some(mut w) = held.take() {
                    w.kill();
                }
                (record(Err(why)), true)
            }
            Served::Stopped => {
                if let Some(mut w) = held.take() {
                    w.kill();
                }
                (MemberOutcome::Stopped, false)
            }
        }
    }
}

impl Evaluator for WorkerEvaluator {
    fn run_members(
        &self,
        folder: &RunFolder,
        iteration: usize,
        members: &[usize],
        params: &DMatrix<f64>,
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<(), Error> {
        if params.ncols() != members.len() {
            return Err(anyhow::anyhow!(
                "{} members but parameters for {}",
                members.len(),
                params.ncols()
            )
            .into());
        }
        let round = Round {
            folder,
            iteration,
            members,
            params,
            progress,
            next: AtomicUsize::new(0),
            early: EarlyStop::default(),
            given_up: Mutex::new(None),
        };
        let used = self.slots.len().min(members.len());
        std::thread::scope(|s| {
            for slot in 0..used {
                let round = &round;
                s.spawn(move || self.serve_slot(round, slot));
            }
        });
        round.early.finish(folder)?;
        let served = round.next.load(Ordering::SeqCst).min(members.len());
        if served < members.len() {
            let why = round
                .given_up
                .lock()
                .ok()
                .and_then(|g| g.clone())
                .unwrap_or_else(|| "the workers stopped".into());
            return Err(anyhow::anyhow!(
                "every worker failed {CRASHES_IN_A_ROW} members in a row by crashing, hanging \
                 or answering garbage (last: {why}); {} members of iteration {iteration} were \
                 not run (they are missing: fix the model, then `run --resume`). Logs: {}",
                members.len() - served,
                folder.dir.join(WORKERS_DIR).display()
            )
            .into());
        }
        Ok(())
    }
}

impl Drop for WorkerEvaluator {
    fn drop(&mut self) {
        // Close every worker's stdin first, so they all exit together.
        let mut workers: Vec<Worker> = self
            .slots
            .iter_mut()
            .filter_map(|s| s.get_mut().ok().and_then(Option::take))
            .collect();
        for w in &mut workers {
            drop(w.stdin.take());
        }
        drop(workers);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn answer(line: &str) -> Result<Result<Vec<f64>, String>, String> {
        match parse_answer(line) {
            Served::Answer(r) => Ok(r),
            Served::Broken(why) => Err(why),
            Served::Stopped => panic!("stopped"),
        }
    }

    #[test]
    fn answers_are_values_errors_or_garbage() {
        assert_eq!(answer(r#"{"values": [1, 2.5]}"#), Ok(Ok(vec![1.0, 2.5])));
        let nan = answer(r#"{"values": [NaN, -Infinity, null]}"#)
            .unwrap()
            .unwrap();
        assert!(nan.iter().all(|v| v.is_nan()));
        let e = answer(r#"{"error": "diverged"}"#).unwrap().unwrap_err();
        assert!(e.contains("diverged"), "{e}");
        for bad in [
            "hello",
            "[1, 2]",
            r#"{"value": [1]}"#,
            r#"{"values": ["a"]}"#,
            "{",
        ] {
            let why = answer(bad).unwrap_err();
            assert!(why.contains("restarted"), "{bad}: {why}");
        }
    }

    #[test]
    fn long_lines_are_cut_and_reported() {
        let (tx, rx) = std::sync::mpsc::channel();
        let text = format!("{}\nshort\nlast", "x".repeat(100));
        read_lines(text.as_bytes(), 10, tx);
        let got: Vec<String> = rx
            .iter()
            .map(|l| match l {
                Line::Text(t) => t,
                Line::TooLong => "<long>".into(),
                Line::Binary => "<binary>".into(),
                Line::Closed => "<closed>".into(),
            })
            .collect();
        assert_eq!(got, ["<long>", "short", "last", "<closed>"]);
    }
}
