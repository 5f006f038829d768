//! `batch` models: one process gets many members at once (EKP.jl's
//! `@distributed` loop; for vectorised models and the user's own GPU code).
//!
//! ```toml
//! [model]
//! kind = "batch"
//! program = "./batch.py"
//! args = ["{parameters}", "{outputs}"]   # the default
//! batch_size = 1000               # optional: members per process (default: all of them)
//! timeout = 3600.0                # optional: seconds per batch process (`--member-timeout` overrides)
//! env = { OMP_NUM_THREADS = "8" } # optional
//! templates = [...]               # optional: written in every member folder first
//! ```
//!
//! The members of an iteration run in batches of `batch_size`, `--jobs`
//! batch processes at once (default 1). A batch has its own folder,
//! `DIR/iteration_000/batch_001-100/` (its first and last member), which is
//! the process's working directory and holds:
//!
//! - `parameters.csv` (written by ekp): a header `member,NAME,...` — vector
//!   components as `theta[1]`, `theta[2]`, ... — then one row per member,
//!   constrained values as the shortest decimal that reads back exactly;
//! - `outputs.csv` (written by the program): a header, then one row per
//!   member, `member` first, then its values (one per observation);
//! - `stdout.log`, `stderr.log`.
//!
//! | placeholder in `args` | environment variable | value |
//! |---|---|---|
//! | `{parameters}` | `EKP_PARAMETERS` | absolute path of `parameters.csv` |
//! | `{outputs}` | `EKP_OUTPUTS` | absolute path of `outputs.csv` (to write) |
//! | `{iteration}` | `EKP_ITERATION` | iteration number, from 0 |
//! | `{batch_dir}` | `EKP_BATCH_DIR` | absolute path of the batch folder |
//! | `{dir}` | `EKP_DIR` | absolute path of the calibration folder |
//!
//! Each member's outcome is recorded in its own member folder
//! (`output.toml`, `status.toml`) as for every other model. A member fails
//! when its row is missing, repeated or of the wrong length, or holds a
//! value that is not a finite number (`NaN`, empty); every member of the
//! batch fails when the process cannot start, exits non-zero, runs past its
//! time limit (its process group is stopped: SIGTERM, then SIGKILL), or
//! leaves no readable `outputs.csv`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use nalgebra::DMatrix;

use super::command::substitute;
use super::program::{
    EarlyStop, GRACE, Outputs, RUNNING_FILE, Waited, describe_exit, record_received,
    resolve_program, stop_leftover, wait_for,
};
use super::template::{Templates, shortest};
use crate::config::{Calibration, ProgramSpec};
use crate::driver::Evaluator;
use crate::error::Error;
use crate::folder::member::{OUTPUT_FILE, STATUS_FILE, STDERR_FILE, STDOUT_FILE};
use crate::folder::{ParameterFilesExt, RunFolder};

/// The parameters file of a batch.
pub const PARAMETERS_CSV: &str = "parameters.csv";
/// The outputs file of a batch.
pub const OUTPUTS_CSV: &str = "outputs.csv";

/// A batch model as the driver's [`Evaluator`].
pub struct BatchEvaluator {
    cal: Calibration,
    spec: ProgramSpec,
    program: PathBuf,
    outputs: usize,
    timeout: Option<Duration>,
    templates: Templates,
    pool: rayon::ThreadPool,
}

impl BatchEvaluator {
    /// The evaluator of `cal`'s batch model `spec`, `jobs` batch processes
    /// at once (default 1): the program is resolved and the templates read now.
    pub fn new(
        cal: &Calibration,
        spec: &ProgramSpec,
        jobs: Option<usize>,
        timeout: Option<Duration>,
    ) -> Result<Self, Error> {
        Ok(Self {
            cal: cal.clone(),
            spec: spec.clone(),
            program: resolve_program(spec, &cal.source)?,
            outputs: Outputs::new(cal)?.outputs(),
            timeout: timeout.or(spec.timeout),
            templates: Templates::load(spec, &cal.prior, &cal.source)?,
            pool: crate::models::thread_pool(Some(jobs.unwrap_or(1)))?,
        })
    }
}

/// One member of a batch: its number, parameters and folder.
struct Entry {
    number: usize,
    theta: Vec<f64>,
    dir: PathBuf,
    hash: Option<String>,
}

/// The `parameters.csv` of a batch: the header and one row per entry.
fn parameters_csv(names: &[String], entries: &[&Entry]) -> anyhow::Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(std::iter::once("member").chain(names.iter().map(String::as_str)))?;
    for e in entries {
        let row = std::iter::once(e.number.to_string()).chain(e.theta.iter().map(|v| shortest(*v)));
        w.write_record(row)?;
    }
    w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))
}

/// The rows of an `outputs.csv`: member → its values (or why the row is
/// unusable); the error when the file as a whole is unusable.
fn read_outputs(
    path: &Path,
    outputs: usize,
    expected: usize,
) -> Result<BTreeMap<usize, Result<Vec<f64>, String>>, String> {
    // 100 bytes a value, at least 1 MiB: a runaway program is not read into memory.
    let cap = (1u64 << 20).max(100 * (outputs as u64 + 1) * expected as u64);
    let text = crate::io::read_text_capped(path, cap).map_err(|e| match e {
        crate::error::InputError::Read { source, .. }
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            format!("the batch process wrote no {OUTPUTS_CSV}")
        }
        other => other.to_string(),
    })?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header = reader
        .headers()
        .map_err(|e| format!("{OUTPUTS_CSV}: {e}"))?
        .clone();
    if header
        .get(0)
        .is_none_or(|h| !h.eq_ignore_ascii_case("member"))
    {
        return Err(format!(
            "{OUTPUTS_CSV}: the header must start with `member` (got `{}`)",
            header.iter().collect::<Vec<_>>().join(",").escape_debug()
        ));
    }
    let mut rows = BTreeMap::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = record.map_err(|e| format!("{OUTPUTS_CSV}: line {line}: {e}"))?;
        let Some(member) = record.get(0).and_then(|m| m.parse::<usize>().ok()) else {
            return Err(format!(
                "{OUTPUTS_CSV}: line {line}: `{}` is not a member number",
                record.get(0).unwrap_or("").escape_debug()
            ));
        };
        let values: Result<Vec<f64>, String> = record
            .iter()
            .skip(1)
            .enumerate()
            .map(|(k, v)| {
                v.parse::<f64>().map_err(|_| {
                    format!(
                        "{OUTPUTS_CSV} line {line}: value {} `{}` is not a number",
                        k + 1,
                        v.escape_debug()
                    )
                })
            })
            .collect();
        let row = if rows.contains_key(&member) {
            Err(format!(
                "{OUTPUTS_CSV} has two rows for this member (line {line})"
            ))
        } else {
            values
        };
        rows.insert(member, row);
    }
    Ok(rows)
}

impl BatchEvaluator {
    /// The batch folder of `entries` in `iteration`: `batch_FIRST-LAST`.
    fn batch_dir(&self, folder: &RunFolder, iteration: usize, entries: &[&Entry]) -> PathBuf {
        let name = |e: Option<&&Entry>| {
            let n = e.map_or(0, |e| e.number);
            let member = folder.layout.member_name(n);
            member
                .strip_prefix("member_")
                .unwrap_or(&member)
                .to_string()
        };
        let dir = folder.layout.iteration_dir(iteration).join(format!(
            "batch_{}-{}",
            name(entries.first()),
            name(entries.last())
        ));
        std::path::absolute(&dir).unwrap_or(dir)
    }

    /// Run one batch process over `entries` and record every member's outcome.
    fn run_batch(
        &self,
        folder: &RunFolder,
        iteration: usize,
        entries: &[&Entry],
        early: &EarlyStop,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        let dir = self.batch_dir(folder, iteration, entries);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("{}: cannot create", dir.display()))?;
        stop_leftover(&dir);
        let _ = std::fs::remove_file(dir.join(OUTPUTS_CSV));
        let names = self.cal.prior.flat_names();
        crate::io::write_replace(&dir.join(PARAMETERS_CSV), &parameters_csv(&names, entries)?)?;
        let result = self.execute(folder, iteration, &dir);
        let rows = match result {
            Err(Stop) => return Ok(()),
            Ok(Err(why)) => Err(why),
            Ok(Ok(())) => read_outputs(&dir.join(OUTPUTS_CSV), self.outputs, entries.len()),
        };
        let label = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for e in entries {
            let r = match &rows {
                Err(why) => Err(format!("{why} (batch {label})")),
                Ok(rows) => rows.get(&e.number).cloned().unwrap_or_else(|| {
                    Err(format!("no row for this member in {label}/{OUTPUTS_CSV}"))
                }),
            };
            let outcome = record_received(&e.dir, r, self.outputs, started, e.hash.clone());
            early.note(folder, iteration, e.number, &outcome);
        }
        Ok(())
    }

    /// Start the batch process in `dir` and wait for it: `Ok(Ok)` when it
    /// exited with status 0, `Ok(Err(why))` when it failed, `Err(Stop)`
    /// when ekp was asked to stop.
    fn execute(
        &self,
        folder: &RunFolder,
        iteration: usize,
        dir: &Path,
    ) -> Result<Result<(), String>, Stop> {
        if crate::stop::requested().is_some() {
            return Err(Stop);
        }
        let root = std::path::absolute(&folder.dir).unwrap_or(folder.dir.clone());
        let vars = [
            ("parameters", dir.join(PARAMETERS_CSV).display().to_string()),
            ("outputs", dir.join(OUTPUTS_CSV).display().to_string()),
            ("iteration", iteration.to_string()),
            ("batch_dir", dir.display().to_string()),
            ("dir", root.display().to_string()),
        ];
        let log = |name: &str| {
            std::fs::File::create(dir.join(name)).map_err(|e| format!("cannot create {name}: {e}"))
        };
        let (stdout, stderr) = match (log(STDOUT_FILE), log(STDERR_FILE)) {
            (Ok(o), Ok(e)) => (o, e),
            (Err(e), _) | (_, Err(e)) => return Ok(Err(e)),
        };
        let mut cmd = Command::new(&self.program);
        cmd.args(self.spec.args.iter().map(|a| substitute(a, &vars)))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        for (name, value) in &vars {
            cmd.env(format!("EKP_{}", name.to_ascii_uppercase()), value);
        }
        cmd.envs(&self.spec.env);
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return Ok(Err(format!("cannot start {}: {e}", self.program.display()))),
        };
        let running = dir.join(RUNNING_FILE);
        let _ = std::fs::write(
            &running,
            format!("{} {}\n", child.id(), crate::io::hostname()),
        );
        let waited = wait_for(&mut child, self.timeout);
        let _ = std::fs::remove_file(&running);
        Ok(match waited {
            Err(e) => Err(format!("cannot wait for the batch process: {e}")),
            Ok(Waited::Stopped) => return Err(Stop),
            Ok(Waited::TimedOut) => Err(format!(
                "the batch process timed out after {} s and was stopped (SIGTERM, then SIGKILL \
                 after {} s)",
                self.timeout.map_or(0.0, |t| t.as_secs_f64()),
                GRACE.as_secs()
            )),
            Ok(Waited::Exited(s)) if s.success() => Ok(()),
            Ok(Waited::Exited(s)) => Err(format!(
                "the batch process {} (see {STDERR_FILE} of the batch)",
                describe_exit(s)
            )),
        })
    }
}

/// ekp was asked to stop while a batch ran: nothing is recorded.
struct Stop;

impl Evaluator for BatchEvaluator {
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
        let mut ready = Vec::with_capacity(members.len());
        for (i, &number) in members.iter().enumerate() {
            let started = Instant::now();
            let dir = folder.layout.member_dir(iteration, number);
            let dir = std::path::absolute(&dir).unwrap_or(dir);
            for f in [OUTPUT_FILE, STATUS_FILE] {
                let _ = std::fs::remove_file(dir.join(f));
            }
            let theta: Vec<f64> = params.column(i).iter().copied().collect();
            let rendered =
                self.cal
                    .parameter_files
                    .render(&self.cal.prior, &theta, iteration, number);
            let hash = Some(crate::io::content_hash(rendered.as_bytes()));
            // A member whose templates cannot be written fails alone.
            if let Err(why) = self.templates.write(&dir, &theta) {
                let outcome = record_received(&dir, Err(why), self.outputs, started, hash);
                early.note(folder, iteration, number, &outcome);
                progress(1);
                continue;
            }
            ready.push(Entry {
                number,
                theta,
                dir,
                hash,
            });
        }
        let size = self.spec.batch_size.unwrap_or(ready.len()).max(1);
        let refs: Vec<&Entry> = ready.iter().collect();
        let batches: Vec<&[&Entry]> = refs.chunks(size).collect();
        let results: Vec<anyhow::Result<()>> = self.pool.install(|| {
            batches
                .par_iter()
                .map(|b| {
                    let r = self.run_batch(folder, iteration, b, &early);
                    progress(b.len());
                    r
                })
                .collect()
        });
        if let Some(signal) = crate::stop::requested() {
            return Err(crate::stop::interrupted(signal, String::new()));
        }
        results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
        early.finish(folder)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn outputs_csv_rows_are_checked_one_by_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(OUTPUTS_CSV);
        std::fs::write(
            &path,
            "member,y1,y2\n1,1.5,2\n2,nan,3\n3,1\n4,1,2\n4,1,2\n5, 7 , x\n",
        )
        .unwrap();
        let rows = read_outputs(&path, 2, 5).unwrap();
        assert_eq!(rows[&1], Ok(vec![1.5, 2.0]));
        assert!(rows[&2].as_ref().unwrap()[0].is_nan());
        assert_eq!(rows[&3], Ok(vec![1.0])); // the length is checked when recorded
        assert!(rows[&4].as_ref().unwrap_err().contains("two rows"));
        assert!(rows[&5].as_ref().unwrap_err().contains("`x`"));
        std::fs::write(&path, "y1,y2\n1,2\n").unwrap();
        assert!(read_outputs(&path, 2, 1).unwrap_err().contains("header"));
        std::fs::remove_file(&path).unwrap();
        assert!(
            read_outputs(&path, 2, 1)
                .unwrap_err()
                .contains("no outputs.csv")
        );
    }

    #[test]
    fn parameters_csv_has_a_header_and_exact_values() {
        let e = Entry {
            number: 7,
            theta: vec![0.1 + 0.2, 1e-300],
            dir: PathBuf::new(),
            hash: None,
        };
        let text =
            String::from_utf8(parameters_csv(&["F".into(), "theta[1]".into()], &[&e]).unwrap())
                .unwrap();
        assert_eq!(text, "member,F,theta[1]\n7,0.30000000000000004,1e-300\n");
    }
}
