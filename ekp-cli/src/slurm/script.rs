//! Writing the chain's job scripts: `init.sbatch`, `forward_NNN.sbatch`,
//! `update_NNN.sbatch` and `submit.sh`.
//!
//! Nothing a user typed reaches a script as raw text. Every such value is a
//! [`Value`], which can only be made by checking it (no newline, carriage
//! return or other control character: an [`InputError::Argument`] naming the
//! flag), and a [`Script`] takes script text only as `&'static str` pieces of
//! this program and `Value`s, which it quotes where they go: for sbatch's
//! own parser on `#SBATCH` lines, for the shell on command lines. So no
//! argument can add a line or a command to a script.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use super::ChainJob;
use super::plan::Plan;
use crate::error::{InputError, Result};
use crate::folder::Layout;
use crate::io::write_atomic;
use crate::models::{Backend, Precision};

/// A value checked for a job script: text without control characters (so it
/// stays on its line), quoted wherever it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value(String);

impl Value {
    /// `value` of the flag `flag`, refused if it holds a control character
    /// (a newline, carriage return, tab, escape, ...).
    pub fn new(flag: &str, value: &str) -> std::result::Result<Self, InputError> {
        if let Some(c) = value.chars().find(|c| c.is_control()) {
            return Err(InputError::Argument(format!(
                "{flag} {value:?}: contains the control character {c:?}; values written into \
                 job scripts must be one line of printable text"
            )));
        }
        Ok(Self(value.to_string()))
    }

    /// The path of the flag `flag`: valid UTF-8, no control characters.
    pub fn path(flag: &str, path: &Path) -> std::result::Result<Self, InputError> {
        let Some(text) = path.to_str() else {
            return Err(InputError::Argument(format!(
                "{flag} {}: not valid UTF-8; paths written into job scripts must be",
                path.display()
            )));
        };
        Self::new(flag, text)
    }

    /// The value as one word of a POSIX shell command (always single-quoted).
    pub fn sh(&self) -> String {
        sh_quote(&self.0)
    }

    /// The value as one argument on an `#SBATCH` line: as is when it has
    /// nothing sbatch's parser treats specially, else double-quoted with `\`
    /// and `"` escaped (sbatch reads `'`, `"`, `\`, `#` and white space).
    pub fn sbatch(&self) -> String {
        let plain = !self.0.is_empty()
            && self
                .0
                .chars()
                .all(|c| !c.is_whitespace() && !matches!(c, '\'' | '"' | '\\' | '#'));
        if plain {
            return self.0.clone();
        }
        let mut s = String::with_capacity(self.0.len() + 2);
        s.push('"');
        for c in self.0.chars() {
            if matches!(c, '\\' | '"') {
                s.push('\\');
            }
            s.push(c);
        }
        s.push('"');
        s
    }
}

/// Single-quote `s` for a POSIX shell.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A SLURM file name pattern for the literal path `path`: `%` doubled (SLURM
/// expands `%a`, `%j`, ... in `--output`).
fn slurm_pattern(path: &str) -> String {
    path.replace('%', "%%")
}

/// One word of a command line in a script.
#[derive(Debug, Clone, Copy)]
pub enum Word<'a> {
    /// A fixed word of this program (a subcommand or a flag), written as is.
    Lit(&'static str),
    /// A number, written as is.
    Num(usize),
    /// A checked value, single-quoted.
    Val(&'a Value),
    /// A duration in seconds, written as `{seconds}s`.
    Seconds(Duration),
}

/// A job script, built line by line from this program's fixed text and
/// checked [`Value`]s only.
#[derive(Debug, Clone)]
pub struct Script {
    text: String,
}

impl Script {
    /// A script starting with `#!/bin/sh` and the comment `comment`.
    pub fn new(comment: &'static str) -> Self {
        let mut text = String::from("#!/bin/sh\n");
        let _ = writeln!(text, "# {comment}");
        Self { text }
    }

    /// `#SBATCH --OPTION=VALUE`.
    pub fn option(&mut self, option: &'static str, value: &Value) {
        let _ = writeln!(self.text, "#SBATCH --{option}={}", value.sbatch());
    }

    /// `#SBATCH --OPTION` (a flag without a value).
    pub fn flag(&mut self, option: &'static str) {
        let _ = writeln!(self.text, "#SBATCH --{option}");
    }

    /// `#SBATCH ARG`: one sbatch argument given whole (`--sbatch-arg`).
    pub fn argument(&mut self, arg: &Value) {
        let _ = writeln!(self.text, "#SBATCH {}", arg.sbatch());
    }

    /// A comment line.
    pub fn comment(&mut self, comment: &'static str) {
        let _ = writeln!(self.text, "# {comment}");
    }

    /// A shell line: `prefix` (fixed text of this program, e.g. `exec`), then
    /// the words, each quoted as it needs.
    pub fn command(&mut self, prefix: &'static str, words: &[Word<'_>]) {
        self.text.push_str(prefix);
        for w in words {
            self.text.push(' ');
            match w {
                Word::Lit(s) => self.text.push_str(s),
                Word::Num(n) => {
                    let _ = write!(self.text, "{n}");
                }
                Word::Val(v) => self.text.push_str(&v.sh()),
                Word::Seconds(t) => {
                    let _ = write!(self.text, "{}s", t.as_secs_f64());
                }
            }
        }
        self.text.push('\n');
    }

    /// `MEMBERS` set from `$SLURM_ARRAY_TASK_ID`: task `t` (from 1) gets
    /// `lists[t - 1]` (member lists made by this program: digits, `-`, `,`).
    pub fn members_case(&mut self, lists: &[String]) {
        self.text.push_str("case \"$SLURM_ARRAY_TASK_ID\" in\n");
        for (t, list) in lists.iter().enumerate() {
            debug_assert!(
                list.bytes()
                    .all(|b| b.is_ascii_digit() || b == b'-' || b == b',')
            );
            let _ = writeln!(self.text, "  {}) MEMBERS={list} ;;", t + 1);
        }
        self.text.push_str(
            "  *) echo \"ekp: array task $SLURM_ARRAY_TASK_ID has no members\" >&2; exit 1 ;;\nesac\n",
        );
    }

    /// `--setup` lines, each run through `eval` (the value single-quoted);
    /// a failing one ends the job.
    pub fn setup(&mut self, lines: &[Value]) {
        for l in lines {
            self.command(
                "eval",
                &[
                    Word::Val(l),
                    Word::Lit("|| { echo 'ekp: a --setup line failed' >&2; exit 1; }"),
                ],
            );
        }
    }

    /// `if` a task SLURM requeued (after a node failure) more than `retries`
    /// times: the lines up to [`Script::line`]`("fi")` run instead.
    pub fn if_restarted_more_than(&mut self, retries: usize) {
        let _ = writeln!(
            self.text,
            "if [ \"${{SLURM_RESTART_COUNT:-0}}\" -gt {retries} ]; then"
        );
    }

    /// A fixed line of shell text of this program.
    pub fn line(&mut self, line: &'static str) {
        self.text.push_str(line);
        self.text.push('\n');
    }

    /// The script's text.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// The checked values of `slurm`'s flags that go into the scripts.
#[derive(Debug, Clone)]
pub struct Options {
    /// The calibration folder (absolute).
    pub dir: Value,
    /// The calibration file (absolute), for an init job.
    pub config: Option<Value>,
    /// The ekp-cli binary the jobs run (absolute).
    pub exe: Value,
    /// `--partition`.
    pub partition: Option<Value>,
    /// `--account`.
    pub account: Option<Value>,
    /// `--time` of the member tasks.
    pub time: Option<Value>,
    /// `--time` of the init and update jobs.
    pub update_time: Option<Value>,
    /// `--mem` of the member tasks.
    pub mem: Option<Value>,
    /// `--mem` of the init and update jobs.
    pub update_mem: Option<Value>,
    /// Extra sbatch arguments, one each.
    pub sbatch_args: Vec<Value>,
    /// `%K` of `--array`.
    pub throttle: Option<usize>,
    /// `--member-timeout` of `forward`.
    pub member_timeout: Option<Duration>,
    /// Members per array task (1: the task id is the member).
    pub members_per_task: usize,
    /// `--backend` of `forward`.
    pub backend: Option<Backend>,
    /// `--threads` of `forward`.
    pub threads: Option<usize>,
    /// `--precision` of `forward`.
    pub precision: Option<Precision>,
    /// `--jobs` of `forward`.
    pub jobs: Option<usize>,
    /// Shell lines every job runs first (`--setup`).
    pub setup: Vec<Value>,
    /// `--gpus-per-task` of the member tasks.
    pub gpus_per_task: Option<usize>,
    /// How often a member task may be requeued after a node failure.
    pub retries: usize,
}

/// The `--backend` flag of `forward`, as a fixed word.
fn backend_flag(b: Backend) -> &'static str {
    match b {
        Backend::Serial => "--backend serial",
        Backend::Threads => "--backend threads",
        Backend::Gpu => "--backend gpu",
    }
}

/// The `--precision` flag of `forward`, as a fixed word.
fn precision_flag(p: Precision) -> &'static str {
    match p {
        Precision::F32 => "--precision f32",
        Precision::F64 => "--precision f64",
    }
}

/// The member lists of the array tasks: `members` (sorted) cut into runs
/// of `k`, each written as `forward --members` reads it (`1-10`, `3,7,9-10`).
pub fn task_members(members: &[usize], k: usize) -> Vec<String> {
    members.chunks(k.max(1)).map(array_spec).collect()
}

/// The `#SBATCH` lines every job has; `member_job`: the forward array's
/// (member `--time`/`--mem`) rather than the init/update jobs'.
fn header(o: &Options, name: &Value, log: &Value, member_job: bool) -> Script {
    let mut s = Script::new("written by `ekp-cli slurm`");
    s.option("job-name", name);
    s.option("output", log);
    s.flag("kill-on-invalid-dep=yes");
    s.flag("ntasks=1");
    if let Some(p) = &o.partition {
        s.option("partition", p);
    }
    if let Some(a) = &o.account {
        s.option("account", a);
    }
    let (time, mem) = if member_job {
        (o.time.as_ref(), o.mem.as_ref())
    } else {
        (
            o.update_time.as_ref().or(o.time.as_ref()),
            o.update_mem.as_ref(),
        )
    };
    if let Some(t) = time {
        s.option("time", t);
    }
    if member_job
        && let Some(g) = o.gpus_per_task
        && let Ok(v) = Value::new("--gpus-per-task", &g.to_string())
    {
        s.option("gpus-per-task", &v);
    }
    if let Some(m) = mem {
        s.option("mem", m);
    }
    for a in &o.sbatch_args {
        s.argument(a);
    }
    s
}

/// The lines of a forward task that SLURM requeued after node failures
/// more often than `--retries`: its members not yet recorded are recorded
/// as failed ("node failure") instead of run again.
fn lost_guard(s: &mut Script, o: &Options, it: usize, tasks: &[String]) -> Result<()> {
    s.comment("a task SLURM requeued (its node failed) more often than --retries allows:");
    s.comment("its members not recorded yet fail with the cause \"node failure\"");
    s.if_restarted_more_than(o.retries);
    let reason = Value::new(
        "--retries",
        &format!(
            "node failure: its task was lost with its node {} time(s) (slurm --retries {})",
            o.retries + 1,
            o.retries
        ),
    )?;
    let mut words = vec![
        Word::Val(&o.exe),
        Word::Lit("forward --dir"),
        Word::Val(&o.dir),
        Word::Lit("--iteration"),
        Word::Num(it),
    ];
    if o.members_per_task > 1 && !tasks.is_empty() {
        words.push(Word::Lit("--members \"$MEMBERS\""));
    }
    words.extend([Word::Lit("--lost"), Word::Val(&reason)]);
    s.command("  exec", &words);
    s.line("fi");
    Ok(())
}

/// Where the scripts go, and their jobs so far.
struct Writer<'a> {
    o: &'a Options,
    slurm_dir: PathBuf,
    logs: PathBuf,
    jobs: Vec<ChainJob>,
}

impl Writer<'_> {
    /// Write `script` as `file` and record its job.
    fn job(
        &mut self,
        kind: &str,
        iteration: Option<usize>,
        file: &str,
        log: String,
        script: &Script,
        tasks: Vec<String>,
    ) -> Result<()> {
        let path = self.slurm_dir.join(file);
        write_atomic(&path, script.text().as_bytes())?;
        self.jobs.push(ChainJob {
            kind: kind.into(),
            iteration,
            script: path.display().to_string(),
            log,
            id: None,
            tasks,
        });
        Ok(())
    }

    /// The log path `name` in `logs/` (as recorded), and its checked
    /// `--output` pattern; `array`: followed by the task id (`_%a`).
    fn log(&self, name: &str, array: bool) -> Result<(String, Value)> {
        let base = self.logs.join(name).display().to_string();
        let (log, pattern) = if array {
            (
                format!("{base}_%a.out"),
                format!("{}_%a.out", slurm_pattern(&base)),
            )
        } else {
            (
                format!("{base}.out"),
                format!("{}.out", slurm_pattern(&base)),
            )
        };
        Ok((log, Value::new("--dir", &pattern)?))
    }

    fn init(&mut self) -> Result<()> {
        let o = self.o;
        let config = o
            .config
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("--config is needed to initialise the folder"))?;
        let (log, pattern) = self.log("init", false)?;
        let mut s = header(o, &Value::new("job-name", "ekp-init")?, &pattern, false);
        s.setup(&o.setup);
        s.command(
            "exec",
            &[
                Word::Val(&o.exe),
                Word::Lit("init --config"),
                Word::Val(config),
                Word::Lit("--dir"),
                Word::Val(&o.dir),
            ],
        );
        self.job("init", None, "init.sbatch", log, &s, Vec::new())
    }

    fn forward(&mut self, it: usize, number: &str, members: &[usize]) -> Result<()> {
        let o = self.o;
        let (log, pattern) = self.log(&format!("forward_{number}"), true)?;
        let name = Value::new("job-name", &format!("ekp-forward-{it}"))?;
        let mut s = header(o, &name, &pattern, true);
        s.flag("requeue");
        let throttle = o.throttle.map(|t| format!("%{t}")).unwrap_or_default();
        let tasks = task_members(members, o.members_per_task);
        let array = if o.members_per_task > 1 {
            format!("1-{}", tasks.len())
        } else {
            array_spec(members)
        };
        s.option(
            "array",
            &Value::new("--array", &format!("{array}{throttle}"))?,
        );
        let mut words = vec![
            Word::Val(&o.exe),
            Word::Lit("forward --dir"),
            Word::Val(&o.dir),
            Word::Lit("--iteration"),
            Word::Num(it),
        ];
        if o.members_per_task > 1 {
            s.comment("each array task runs the members listed for it");
            s.members_case(&tasks);
            words.push(Word::Lit("--members \"$MEMBERS\""));
        } else {
            s.comment("the member is $SLURM_ARRAY_TASK_ID");
        }
        if let Some(b) = o.backend {
            words.push(Word::Lit(backend_flag(b)));
        }
        if let Some(p) = o.precision {
            words.push(Word::Lit(precision_flag(p)));
        }
        for (flag, n) in [("--threads", o.threads), ("--jobs", o.jobs)] {
            if let Some(n) = n {
                words.extend([Word::Lit(flag), Word::Num(n)]);
            }
        }
        if let Some(t) = o.member_timeout {
            words.extend([Word::Lit("--member-timeout"), Word::Seconds(t)]);
        }
        s.setup(&o.setup);
        lost_guard(&mut s, o, it, &tasks)?;
        s.command("exec", &words);
        let file = format!("forward_{number}.sbatch");
        let listed = if o.members_per_task > 1 {
            tasks
        } else {
            Vec::new()
        };
        self.job("forward", Some(it), &file, log, &s, listed)
    }

    fn update(&mut self, it: usize, number: &str) -> Result<()> {
        let o = self.o;
        let (log, pattern) = self.log(&format!("update_{number}"), false)?;
        let name = Value::new("job-name", &format!("ekp-update-{it}"))?;
        let mut s = header(o, &name, &pattern, false);
        s.flag("requeue");
        s.setup(&o.setup);
        s.comment("members that SLURM killed before they could record anything (a node");
        s.comment("failure, the task's time limit) count as failed: the chain never stalls");
        s.command(
            "exec",
            &[
                Word::Val(&o.exe),
                Word::Lit("update --dir"),
                Word::Val(&o.dir),
                Word::Lit("--iteration"),
                Word::Num(it),
                Word::Lit("--allow-missing"),
            ],
        );
        let file = format!("update_{number}.sbatch");
        self.job("update", Some(it), &file, log, &s, Vec::new())
    }

    /// `submit.sh`: the same chain, for submitting by hand.
    fn submit_sh(&self) -> Result<()> {
        let mut s =
            Script::new("Submits the job chain written by `ekp-cli slurm`; prints the job ids.");
        s.line("set -eu");
        s.line("prev=");
        for j in &self.jobs {
            let script = Value::path("--dir", Path::new(&j.script))?;
            s.command(
                "id=$(sbatch --parsable --kill-on-invalid-dep=yes ${prev:+--dependency=afterok:$prev}",
                &[Word::Val(&script), Word::Lit(")")],
            );
            s.line("prev=${id%%;*}");
            let said = Value::new("--dir", &format!("{}:", j.describe()))?;
            s.command("echo", &[Word::Val(&said), Word::Lit("\"$prev\"")]);
        }
        let path = self.slurm_dir.join("submit.sh");
        write_atomic(&path, s.text().as_bytes())?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755));
        }
        Ok(())
    }
}

/// Write the chain's scripts into `DIR/slurm/` for the iterations `plan.start
/// ..= end`; returns its jobs, in order (not yet submitted).
pub fn write_scripts(o: &Options, plan: &Plan, end: usize) -> Result<Vec<ChainJob>> {
    let slurm_dir = plan.dir.join("slurm");
    let logs = slurm_dir.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("{}: cannot create", logs.display()))?;
    let cal = &plan.cal;
    let layout = Layout::new(&plan.dir, cal.ensemble_size, cal.iterations);
    let mut w = Writer {
        o,
        slurm_dir,
        logs,
        jobs: Vec::new(),
    };
    if plan.needs_init {
        w.init()?;
    }
    for it in plan.start..=end {
        let name = layout.iteration_name(it);
        let number = name.strip_prefix("iteration_").unwrap_or(name.as_str());
        let all: Vec<usize>;
        let members = if it == plan.start {
            &plan.first_members
        } else {
            all = (1..=cal.ensemble_size).collect();
            &all
        };
        if !members.is_empty() {
            w.forward(it, number, members)?;
        }
        w.update(it, number)?;
    }
    w.submit_sh()?;
    Ok(w.jobs)
}

/// `1-3,7,9-10` from sorted member numbers.
pub fn array_spec(members: &[usize]) -> String {
    crate::models::launcher::member_list(members)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn array_specs_compress_runs() {
        assert_eq!(array_spec(&[1, 2, 3, 7, 9, 10]), "1-3,7,9-10");
        assert_eq!(array_spec(&[4]), "4");
    }

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(sh_quote("a b'c"), r"'a b'\''c'");
    }

    #[test]
    fn control_characters_are_refused() {
        for bad in ["a\nb", "a\rb", "a\tb", "\u{1b}[1m", "a\u{85}b", "a\0b"] {
            let e = Value::new("--partition", bad).unwrap_err().to_string();
            assert!(e.contains("--partition"), "{e}");
        }
        assert!(Value::new("--partition", "debug").is_ok());
    }

    #[test]
    fn sbatch_quoting_follows_sbatchs_parser() {
        let v = |s: &str| Value::new("--x", s).unwrap().sbatch();
        assert_eq!(v("debug"), "debug");
        assert_eq!(v("4G"), "4G");
        assert_eq!(v("--qos=low"), "--qos=low");
        assert_eq!(v("a b"), r#""a b""#);
        assert_eq!(v(r#"it's "x" \ #1"#), r#""it's \"x\" \\ #1""#);
        assert_eq!(v(""), r#""""#);
    }

    #[test]
    fn a_script_has_one_line_per_call() {
        let v = Value::new("--dir", "/tmp/a b/it's $HOME").unwrap();
        let mut s = Script::new("test");
        s.option("output", &v);
        s.command("exec", &[Word::Val(&v), Word::Lit("update"), Word::Num(3)]);
        assert_eq!(
            s.text(),
            "#!/bin/sh\n# test\n#SBATCH --output=\"/tmp/a b/it's $HOME\"\n\
             exec '/tmp/a b/it'\\''s $HOME' update 3\n"
        );
    }
}
