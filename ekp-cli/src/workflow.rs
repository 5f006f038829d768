//! The file workflow (EKP.jl's "HPC interface", done for the user): a
//! calibration folder that separate processes — a shell loop, SLURM array
//! jobs — move forward one step at a time.
//!
//! ```text
//! DIR/config.toml            the calibration file, copied by `init` (edits are refused)
//! DIR/workflow.toml          init's record: the config's hash, where relative programs resolve
//! DIR/observations.toml      the data calibrated against
//! DIR/state.toml             the process (`ekp_core::EnsembleKalmanProcess`): the newest iteration's
//! DIR/iteration_000/state.toml          the process as it was when iteration 000 was written
//! DIR/iteration_000/update.toml         what the update of iteration 000's outputs did
//! DIR/iteration_000/member_001/...      parameters.toml, output.toml, status.toml, logs
//! DIR/result.toml, history.csv, ...     as `run` writes them (complete once the calibration is)
//! DIR/update.lock            held while an update runs
//! ```
//!
//! - `init` validates the calibration, draws the initial ensemble and writes
//!   iteration 0's parameter files and the state.
//! - `forward` runs one member's model (a `command` model's program, or a
//!   built-in model in-process) and records the outcome; a failed member is
//!   recorded and `forward` still succeeds, so one bad member never stops a chain.
//! - `update` reads the newest iteration's outputs, applies one update and
//!   writes the next iteration's parameter files and the state. Once
//!   `process.iterations` updates are applied (or the scheduler stops), the
//!   update of the last iteration's outputs instead completes the calibration:
//!   it writes the same files `run` writes (`result.toml`, `history.csv`, ...).
//!   Every file is written to a temporary name and renamed; `DIR/state.toml` is
//!   renamed last, so an update killed at any point leaves the previous state
//!   in force and can simply be run again.
//! - `status` shows each member of an iteration (done, failed, missing) and
//!   the misfit history.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use ekp_core::{EnsembleKalmanProcess, ErrorMetrics, UpdateOutcome};
use ekp_models::{Execution, MemberModel};
use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

use crate::command_model::{MemberJob, MemberOutcome, parse_duration, run_member};
use crate::config::{Calibration, ModelSpec};
use crate::error::InputError;
use crate::layout::{
    self, Layout, MemberRecord, MemberState, OUTPUT_FILE, PARAMETERS_FILE, RecordStatus,
    STATUS_FILE,
};
use crate::lock::LockGuard;
use crate::output::{self, write_atomic};
use crate::run::{IterationRow, RunOutput, constrained_summary};

/// The copied calibration file.
pub const CONFIG_FILE: &str = "config.toml";
/// `init`'s record.
pub const WORKFLOW_FILE: &str = "workflow.toml";
/// The process state.
pub const STATE_FILE: &str = "state.toml";
/// Held while an update runs.
pub const LOCK_FILE: &str = "update.lock";
/// In an iteration folder: what the update of its outputs did.
pub const RECORD_FILE: &str = "update.toml";
/// Testing hook: `EKP_FAULT_INJECTION=update-before-commit` makes `update`
/// abort (as if killed) after writing the next iteration's files and before
/// replacing `state.toml`.
pub const FAULT_ENV: &str = "EKP_FAULT_INJECTION";

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// FNV-1a (64 bit) of `bytes`, as `fnv1a64:<hex>`: detects edits of the
/// calibration file (it is not a cryptographic hash).
pub fn config_hash(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("fnv1a64:{h:016x}")
}

// ---------------------------------------------------------------- arguments

/// Arguments of `init`.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// The calibration file (TOML); it is copied into the folder.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// The calibration folder to create (must not exist, or be empty).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Seed of every random draw (overrides `process.seed`).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
}

/// Arguments of `forward`.
#[derive(Debug, clap::Args)]
pub struct ForwardArgs {
    /// The calibration folder (made by `init`).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// The iteration (from 0). Default: the newest one.
    #[arg(long, value_name = "I")]
    pub iteration: Option<usize>,
    /// The member (from 1). Default: $SLURM_ARRAY_TASK_ID.
    #[arg(long, value_name = "J")]
    pub member: Option<usize>,
    /// Time limit of a `command` model's run (seconds, or 30s, 5m, 2h);
    /// overrides `model.timeout`. The model is killed when it runs longer.
    #[arg(long, value_name = "T", value_parser = parse_duration)]
    pub member_timeout: Option<std::time::Duration>,
}

/// Arguments of `update`.
#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// The calibration folder (made by `init`).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Apply the update only if the newest iteration is I; if the calibration
    /// is already past I, do nothing (for job chains: a repeated job is harmless).
    #[arg(long, value_name = "I")]
    pub iteration: Option<usize>,
    /// Go back to iteration K first: its saved state becomes the current one,
    /// and the later iterations' folders are moved to `DIR/rewound_<time>/`.
    /// Then apply the update of iteration K's outputs.
    #[arg(long, value_name = "K")]
    pub rewind_to: Option<usize>,
}

/// Arguments of `status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The calibration folder (made by `init`).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Show the members of iteration I. Default: the newest one.
    #[arg(long, value_name = "I")]
    pub iteration: Option<usize>,
}

// ------------------------------------------------------------- the folder

/// `workflow.toml`: what `init` recorded.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    /// Format version of the folder.
    pub format: u32,
    /// [`config_hash`] of `config.toml` as copied.
    pub config_hash: String,
    /// The calibration file `init` copied.
    pub config_source: String,
    /// Its folder (absolute): relative `command` programs resolve against it.
    pub config_dir: String,
    /// The seed the process was started with.
    pub seed: u64,
    /// The ekp version that made the folder.
    pub ekp_version: String,
    /// When (Unix seconds).
    pub created_unix: u64,
}

/// `iteration_NNN/update.toml`: what the update of an iteration's outputs did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpdateRecord {
    /// `update` (the next iteration was written) or `final` (the calibration
    /// completed with this iteration).
    pub kind: String,
    /// The iteration whose outputs were used.
    pub iteration: usize,
    /// How many members had usable outputs.
    pub done: usize,
    /// Members (from 1) that failed, as the process judged them.
    pub failed: Vec<usize>,
    /// Members (from 1) that had not run (among the failed).
    pub missing: Vec<usize>,
    /// The step of the update (absent for `final`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dt: Option<f64>,
    /// When (Unix seconds).
    pub finished_unix: u64,
    /// Error metrics of the outputs against all the data (as `run`'s table).
    pub metrics: ErrorMetrics,
}

/// An opened calibration folder.
#[derive(Debug)]
pub struct Workflow {
    /// The folder.
    pub dir: PathBuf,
    /// Its calibration (from `config.toml`, checked against `init`'s hash).
    pub cal: Calibration,
    /// `init`'s record.
    pub meta: Meta,
    /// Where the iteration and member folders are.
    pub layout: Layout,
}

fn read_file(path: &Path) -> Result<String, InputError> {
    std::fs::read_to_string(path).map_err(|source| InputError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The state file's text for a process (as `run` writes `state.toml`).
pub fn state_text(ekp: &EnsembleKalmanProcess) -> anyhow::Result<String> {
    Ok(format!(
        "# ekp process state: settings, history and RNG\n{}",
        toml::to_string(ekp).context("cannot serialise the process state")?
    ))
}

impl Workflow {
    /// Open `dir`: read `init`'s record and the calibration file, refusing a
    /// calibration file edited since `init`.
    pub fn open(dir: &Path) -> Result<Self, InputError> {
        if !dir.is_dir() {
            return Err(InputError::Argument(format!(
                "{}: no such folder (make one with `ekp-cli init --config FILE --dir {}`)",
                dir.display(),
                dir.display()
            )));
        }
        let meta_path = dir.join(WORKFLOW_FILE);
        if !meta_path.exists() {
            return Err(InputError::Argument(format!(
                "{}: not a calibration folder: {WORKFLOW_FILE} is missing (`ekp-cli init` makes one)",
                dir.display()
            )));
        }
        let meta: Meta =
            toml::from_str(&read_file(&meta_path)?).map_err(|e| InputError::Parse {
                file: meta_path.display().to_string(),
                message: e.to_string().trim_end().to_string(),
            })?;
        let config_path = dir.join(CONFIG_FILE);
        let text = read_file(&config_path)?;
        let hash = config_hash(text.as_bytes());
        if hash != meta.config_hash {
            return Err(InputError::Argument(format!(
                "{}: the calibration file was edited after `init` (its hash is {hash}, {} \
                 recorded {}); a calibration cannot change between iterations. Restore the \
                 file, or start a new calibration folder with `ekp-cli init`. Nothing was changed.",
                config_path.display(),
                meta_path.display(),
                meta.config_hash
            )));
        }
        // Relative paths in the file resolve where they did at `init`.
        let mut cal = Calibration::parse_with_base(
            &text,
            &config_path.display().to_string(),
            Path::new(&meta.config_dir),
        )?;
        cal.seed = meta.seed;
        if let ModelSpec::Command(spec) = &mut cal.model {
            spec.base_dir = PathBuf::from(&meta.config_dir);
        }
        let layout = Layout::new(dir, cal.ensemble_size, cal.iterations);
        Ok(Self {
            dir: dir.to_path_buf(),
            cal,
            meta,
            layout,
        })
    }

    /// `DIR/state.toml`.
    pub fn state_path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    /// Read and check a state file.
    pub fn read_state(&self, path: &Path) -> Result<EnsembleKalmanProcess, InputError> {
        let text = std::fs::read_to_string(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                InputError::Argument(format!(
                    "{}: the process state is missing (was the folder made by `ekp-cli init`, \
                     and is it complete?)",
                    path.display()
                ))
            } else {
                InputError::Read {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
        let ekp: EnsembleKalmanProcess = toml::from_str(&text).map_err(|e| InputError::Parse {
            file: path.display().to_string(),
            message: format!(
                "the process state is corrupted: {}",
                e.to_string().trim_end()
            ),
        })?;
        self.check_state(&ekp, path)?;
        Ok(ekp)
    }

    /// A state must belong to this calibration and be internally consistent
    /// (a hand-edited or truncated state must not reach the numerics).
    fn check_state(&self, ekp: &EnsembleKalmanProcess, path: &Path) -> Result<(), InputError> {
        let bad = |key: &str, message: String| InputError::Invalid {
            file: path.display().to_string(),
            key: key.to_string(),
            message,
        };
        let u = ekp.u_history();
        let k = ekp.dt_history().len();
        if u.is_empty() {
            return Err(bad("u", "the state holds no ensemble".into()));
        }
        if u.len() != k + 1
            || ekp.g_history_start() + ekp.g_history().len() != k
            || ekp.metrics_history().len() != k
            || ekp.failed_history().len() != k
        {
            return Err(bad(
                "u",
                format!(
                    "inconsistent history: {} ensembles, {} outputs, {} steps",
                    u.len(),
                    ekp.g_history_start() + ekp.g_history().len(),
                    k
                ),
            ));
        }
        let (p, n) = (self.cal.prior.dim(), self.cal.ensemble_size);
        if let Some((i, m)) = u
            .iter()
            .enumerate()
            .find(|(_, m)| m.nrows() != p || m.ncols() != n)
        {
            return Err(bad(
                "u",
                format!(
                    "ensemble {i} is {}×{}, but {} has {p} parameter components and {n} members",
                    m.nrows(),
                    m.ncols(),
                    CONFIG_FILE
                ),
            ));
        }
        let names = ekp.prior().flat_names();
        let want = self.cal.prior.flat_names();
        if names != want {
            return Err(bad(
                "prior",
                format!(
                    "the state's parameters ({}) are not the calibration's ({})",
                    names.join(", "),
                    want.join(", ")
                ),
            ));
        }
        if let Some((i, g)) = ekp
            .g_history()
            .iter()
            .enumerate()
            .find(|(_, g)| g.ncols() != n)
        {
            return Err(bad(
                "g",
                format!("outputs {i} have {} members, expected {n}", g.ncols()),
            ));
        }
        if k > self.cal.iterations {
            return Err(bad(
                "dt",
                format!(
                    "{k} updates applied, but process.iterations = {}",
                    self.cal.iterations
                ),
            ));
        }
        Ok(())
    }

    /// The current state.
    pub fn state(&self) -> Result<EnsembleKalmanProcess, InputError> {
        self.read_state(&self.state_path())
    }

    /// `iteration_NNN/update.toml`, if the update of that iteration ran.
    pub fn record(&self, iteration: usize) -> Option<UpdateRecord> {
        let text =
            std::fs::read_to_string(self.layout.iteration_dir(iteration).join(RECORD_FILE)).ok()?;
        toml::from_str(&text).ok()
    }

    /// Whether the calibration is complete: the update of the current
    /// iteration's outputs was the final one.
    pub fn is_complete(&self, ekp: &EnsembleKalmanProcess) -> bool {
        self.record(ekp.iterations())
            .is_some_and(|r| r.kind == "final")
    }

    /// Each member's state in `iteration` (outputs of dimension `d`).
    pub fn members(&self, iteration: usize, d: usize) -> Vec<MemberState> {
        (1..=self.cal.ensemble_size)
            .map(|j| layout::classify(&self.layout.member_dir(iteration, j), d))
            .collect()
    }

    /// Write the parameter files and the state snapshot of the process's
    /// current ensemble (its iteration), clearing leftovers of earlier runs.
    fn write_iteration(&self, ekp: &EnsembleKalmanProcess) -> anyhow::Result<()> {
        let k = ekp.iterations();
        let theta = ekp.constrained_ensemble();
        for j in 0..theta.ncols() {
            let member = j + 1;
            let dir = self.layout.member_dir(k, member);
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("{}: cannot create folder", dir.display()))?;
            for f in [OUTPUT_FILE, STATUS_FILE] {
                let _ = std::fs::remove_file(dir.join(f));
            }
            let col: Vec<f64> = theta.column(j).iter().copied().collect();
            write_atomic(
                &dir.join(PARAMETERS_FILE),
                self.cal
                    .parameter_files
                    .render(ekp.prior(), &col, k, member)
                    .as_bytes(),
            )?;
        }
        write_atomic(
            &self.layout.iteration_dir(k).join(STATE_FILE),
            state_text(ekp)?.as_bytes(),
        )
    }
}

/// How many outputs a member writes: one per observation (of every
/// minibatch).
pub fn output_dim(ekp: &EnsembleKalmanProcess) -> usize {
    ekp.observation_series().total_dim()
}

impl Workflow {
    /// The table rows of every ensemble the process has updated, plus the
    /// final ensemble's row when its assessment is given — the rows `run`
    /// makes (metrics against all the data, as the updates recorded them).
    pub fn rows(
        &self,
        ekp: &EnsembleKalmanProcess,
        last: Option<&ekp_core::ensemble_kalman_process::Assessment>,
    ) -> Vec<IterationRow> {
        let mut rows: Vec<IterationRow> = (0..ekp.iterations())
            .map(|k| {
                let (mean, std) = constrained_summary(ekp, &ekp.u_history()[k]);
                // The record holds what `run`'s table shows; the state's own
                // metrics (of the minibatch) stand in if it was lost.
                let (metrics, failed) = match self.record(k) {
                    Some(r) => (r.metrics, r.failed.iter().map(|j| j - 1).collect()),
                    None => (ekp.metrics_history()[k], ekp.failed_history()[k].clone()),
                };
                IterationRow {
                    iteration: k,
                    dt: Some(ekp.dt_history()[k]),
                    metrics,
                    failed,
                    mean,
                    std,
                }
            })
            .collect();
        if let Some(a) = last {
            let (mean, std) = constrained_summary(ekp, ekp.ensemble());
            rows.push(IterationRow {
                iteration: ekp.iterations(),
                dt: None,
                metrics: a.metrics,
                failed: a.failed.clone(),
                mean,
                std,
            });
        }
        rows
    }
}

// ------------------------------------------------------------------- init

/// `ekp-cli init`.
pub fn init(args: InitArgs) -> anyhow::Result<()> {
    let mut cal = Calibration::from_file(&args.config)?;
    if let Some(seed) = args.seed {
        cal.seed = seed;
    }
    let dir = &args.dir;
    if dir.exists() {
        // Empty, apart from the job scripts of `ekp-cli slurm --config`.
        let empty = dir.is_dir()
            && std::fs::read_dir(dir)
                .map(|it| it.flatten().all(|e| e.file_name() == "slurm"))
                .unwrap_or(false);
        if !empty {
            return Err(InputError::Argument(format!(
                "{}: exists and is not an empty folder; `init` makes a new calibration folder \
                 (nothing was changed)",
                dir.display()
            ))
            .into());
        }
    }
    // Validate everything (model, parameter names, program) before writing.
    let built = crate::model::BuiltModel::new(&cal, Execution::Serial)?;
    let observation = built.observation(&cal)?;
    let ekp = crate::run::build_process(&cal, observation)?;

    let config_dir = std::path::absolute(
        args.config
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new(".")),
    )
    .context("cannot resolve the calibration file's folder")?;
    let meta = Meta {
        format: 1,
        config_hash: config_hash(cal.text.as_bytes()),
        config_source: std::path::absolute(&args.config)
            .unwrap_or(args.config.clone())
            .display()
            .to_string(),
        config_dir: config_dir.display().to_string(),
        seed: cal.seed,
        ekp_version: env!("CARGO_PKG_VERSION").to_string(),
        created_unix: unix_now(),
    };
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let layout = Layout::new(dir, cal.ensemble_size, cal.iterations);
    let wf = Workflow {
        dir: dir.clone(),
        cal,
        meta,
        layout,
    };
    write_atomic(&dir.join(CONFIG_FILE), wf.cal.text.as_bytes())?;
    write_atomic(
        &dir.join("observations.toml"),
        output::observations_toml(&wf.cal, &ekp.observation_series().all_stacked())?.as_bytes(),
    )?;
    wf.write_iteration(&ekp)?;
    write_atomic(
        &dir.join(WORKFLOW_FILE),
        format!(
            "# ekp file workflow: written by `ekp-cli init`; do not edit\n{}",
            toml::to_string(&wf.meta)?
        )
        .as_bytes(),
    )?;
    write_atomic(&wf.state_path(), state_text(&ekp)?.as_bytes())?;
    println!(
        "initialised {}: {} with {} members, up to {} updates, model {}, seed {}",
        dir.display(),
        wf.cal.process.kind(),
        wf.cal.ensemble_size,
        wf.cal.iterations,
        wf.cal.model.kind(),
        wf.cal.seed
    );
    println!(
        "next: `ekp-cli forward --dir {d} --iteration 0 --member J` for J = 1..{n}, then \
         `ekp-cli update --dir {d}` (or `ekp-cli slurm --dir {d} --submit`)",
        d = dir.display(),
        n = wf.cal.ensemble_size
    );
    Ok(())
}

// ---------------------------------------------------------------- forward

fn member_number(arg: Option<usize>, n: usize) -> Result<usize, InputError> {
    let j = match arg {
        Some(j) => j,
        None => match std::env::var("SLURM_ARRAY_TASK_ID") {
            Ok(s) => s.trim().parse::<usize>().map_err(|_| {
                InputError::Argument(format!(
                    "SLURM_ARRAY_TASK_ID = `{s}` is not a member number"
                ))
            })?,
            Err(_) => {
                return Err(InputError::Argument(
                    "--member J is required (outside a SLURM array job, where it defaults to \
                     $SLURM_ARRAY_TASK_ID)"
                        .into(),
                ));
            }
        },
    };
    if j == 0 || j > n {
        return Err(InputError::Argument(format!(
            "member {j} does not exist: members are numbered 1 to {n}"
        )));
    }
    Ok(j)
}

/// `ekp-cli forward`.
pub fn forward(args: ForwardArgs) -> anyhow::Result<()> {
    let wf = Workflow::open(&args.dir)?;
    let ekp = wf.state()?;
    let current = ekp.iterations();
    let iteration = args.iteration.unwrap_or(current);
    let member = member_number(args.member, wf.cal.ensemble_size)?;
    let label = wf.layout.member_label(iteration, member);
    if iteration > current {
        if wf.is_complete(&ekp) {
            println!(
                "{label}: nothing to run: the calibration completed at iteration {current} \
                 ({} updates)",
                current
            );
            return Ok(());
        }
        return Err(InputError::Argument(format!(
            "iteration {iteration} has no parameters yet: the newest iteration is {current} \
             (`ekp-cli update --dir {}` makes the next one)",
            args.dir.display()
        ))
        .into());
    }
    if iteration < current {
        eprintln!(
            "note: iteration {iteration} was already used by an update; running {label} again \
             changes only its own files"
        );
    }
    let member_dir = wf.layout.member_dir(iteration, member);
    let params = member_dir.join(PARAMETERS_FILE);
    if !params.is_file() {
        return Err(InputError::Argument(format!(
            "{}: missing (it is written by `init` and `update`)",
            params.display()
        ))
        .into());
    }
    let d = output_dim(&ekp);
    let started = std::time::Instant::now();
    let outcome = match &wf.cal.model {
        ModelSpec::Command(spec) => {
            let program = spec.check_program(&wf.cal.source)?;
            let job = MemberJob {
                dir: &wf.dir,
                member_dir: &member_dir,
                iteration,
                member,
                outputs: d,
                timeout: args.member_timeout.or(spec.timeout),
            };
            run_member(spec, &program, &job)
        }
        _ => {
            if args.member_timeout.is_some() {
                eprintln!("note: --member-timeout applies to command models only");
            }
            let theta = wf.cal.parameter_files.read(&params, &wf.cal.prior)?;
            let built = crate::model::BuiltModel::new(&wf.cal, Execution::Serial)?;
            let values = built
                .ensemble
                .model
                .evaluate_single(member - 1, &theta)
                .map_err(|e| anyhow!("{label}: {e}"))?;
            write_atomic(
                &member_dir.join(OUTPUT_FILE),
                layout::output_toml(&values).as_bytes(),
            )?;
            let failed = values.iter().any(|v| !v.is_finite());
            let reason = failed.then(|| "the model produced non-finite outputs".to_string());
            MemberRecord {
                status: if failed {
                    RecordStatus::Failed
                } else {
                    RecordStatus::Done
                },
                reason: reason.clone(),
                malformed: false,
                exit_code: None,
                seconds: started.elapsed().as_secs_f64(),
                host: layout::hostname(),
            }
            .write(&member_dir)?;
            match reason {
                Some(r) => MemberOutcome::Failed(r),
                None => MemberOutcome::Done(values),
            }
        }
    };
    let secs = started.elapsed().as_secs_f64();
    match outcome {
        MemberOutcome::Done(_) => println!("{label}: done in {secs:.2} s"),
        MemberOutcome::Failed(reason) => println!(
            "{label}: FAILED after {secs:.2} s: {reason}\n  recorded in {}; the update's failure \
             policy deals with it",
            member_dir.join(STATUS_FILE).display()
        ),
    }
    Ok(())
}

// ----------------------------------------------------------------- update

/// Move iterations after `k` aside and make iteration `k`'s state the current one.
fn rewind(wf: &Workflow, k: usize, current: usize) -> anyhow::Result<()> {
    if k > current {
        return Err(InputError::Argument(format!(
            "--rewind-to {k}: the newest iteration is {current}"
        ))
        .into());
    }
    let snapshot_path = wf.layout.iteration_dir(k).join(STATE_FILE);
    let snapshot = wf.read_state(&snapshot_path)?;
    if snapshot.iterations() != k {
        return Err(InputError::Invalid {
            file: snapshot_path.display().to_string(),
            key: "dt".into(),
            message: format!(
                "holds the state after {} updates, not {k}",
                snapshot.iterations()
            ),
        }
        .into());
    }
    let aside = wf.dir.join(format!("rewound_{}", unix_now()));
    std::fs::create_dir_all(&aside)
        .with_context(|| format!("{}: cannot create", aside.display()))?;
    let mut it = k + 1;
    loop {
        let from = wf.layout.iteration_dir(it);
        if !from.exists() {
            break;
        }
        let to = aside.join(wf.layout.iteration_name(it));
        std::fs::rename(&from, &to)
            .with_context(|| format!("cannot move {} to {}", from.display(), to.display()))?;
        it += 1;
    }
    let record = wf.layout.iteration_dir(k).join(RECORD_FILE);
    if record.exists() {
        let to = aside.join(format!("{}_{RECORD_FILE}", wf.layout.iteration_name(k)));
        std::fs::rename(&record, &to)
            .with_context(|| format!("cannot move {}", record.display()))?;
    }
    write_atomic(&wf.state_path(), state_text(&snapshot)?.as_bytes())?;
    println!(
        "rewound to iteration {k}; later iterations moved to {}",
        aside.display()
    );
    Ok(())
}

/// `ekp-cli update`.
pub fn update(args: UpdateArgs) -> anyhow::Result<()> {
    let wf = Workflow::open(&args.dir)?;
    let _lock = LockGuard::acquire(&wf.dir.join(LOCK_FILE), "update")?;
    if let Some(k) = args.rewind_to {
        let current = wf.state()?.iterations();
        rewind(&wf, k, current)?;
    }
    let ekp = wf.state()?;
    let k = ekp.iterations();
    let it_name = wf.layout.iteration_name(k);
    if let Some(expected) = args.iteration {
        if expected < k || (expected == k && wf.is_complete(&ekp)) {
            println!(
                "nothing to do: the update of iteration {expected} was already applied \
                 (the newest iteration is {k}{})",
                if wf.is_complete(&ekp) {
                    ", and the calibration is complete"
                } else {
                    ""
                }
            );
            return Ok(());
        }
        if expected > k {
            if wf.is_complete(&ekp) {
                println!("nothing to do: the calibration completed at iteration {k}");
                return Ok(());
            }
            return Err(InputError::Argument(format!(
                "--iteration {expected}: the newest iteration is {k}"
            ))
            .into());
        }
    }
    if wf.is_complete(&ekp) {
        println!(
            "nothing to do: the calibration is complete ({k} updates applied; results in {})",
            wf.dir.join("result.toml").display()
        );
        return Ok(());
    }
    let d = output_dim(&ekp);
    let n = wf.cal.ensemble_size;
    let states = wf.members(k, d);
    if states.iter().all(|s| *s == MemberState::Missing) {
        println!(
            "nothing to do: no member of {it_name} has run yet{}",
            if k > 0 {
                format!(
                    " (the update of iteration {}'s outputs has already been applied)",
                    k - 1
                )
            } else {
                String::new()
            }
        );
        return Ok(());
    }

    let mut g = DMatrix::from_element(d, n, f64::NAN);
    let (mut done, mut missing) = (0usize, Vec::new());
    let mut reasons = Vec::new();
    let mut any_malformed = false;
    for (j, s) in states.iter().enumerate() {
        let member = j + 1;
        match s {
            MemberState::Done(v) => {
                g.set_column(j, &nalgebra::DVector::from_column_slice(v));
                done += 1;
            }
            MemberState::Failed { reason, malformed } => {
                any_malformed |= *malformed;
                reasons.push(format!("  {}: {reason}", wf.layout.member_label(k, member)));
            }
            MemberState::Missing => {
                missing.push(member);
                reasons.push(format!(
                    "  {}: missing ({OUTPUT_FILE} not written)",
                    wf.layout.member_label(k, member)
                ));
            }
        }
    }
    if done < 2 {
        let msg = format!(
            "{it_name}: only {done} of {n} members have usable outputs, and an update needs at \
             least 2; nothing was changed:\n{}",
            reasons.join("\n")
        );
        return Err(if any_malformed {
            InputError::Argument(msg).into()
        } else {
            anyhow!(msg)
        });
    }
    if !reasons.is_empty() {
        eprintln!(
            "{it_name}: {} of {n} members failed or are missing; the failure policy handles them:\n{}",
            n - done,
            reasons.join("\n")
        );
    }

    // As `run::calibrate`: judge the outputs against all the data (the table's
    // row), then update — unless this is the last ensemble (or the scheduler
    // ends on it), which is evaluated for the record only.
    let assessed = ekp
        .assess_all_outputs(&g)
        .map_err(|e| anyhow!("{it_name}: {e}; nothing was changed"))?;
    let record = |kind: &str, dt: Option<f64>| UpdateRecord {
        kind: kind.into(),
        iteration: k,
        done,
        failed: assessed.failed.iter().map(|j| j + 1).collect(),
        missing: missing.clone(),
        dt,
        finished_unix: unix_now(),
        metrics: assessed.metrics,
    };
    let last = k >= wf.cal.iterations || ekp.is_terminated();
    let mut next = ekp.clone();
    let outcome = if last {
        UpdateOutcome::Terminated
    } else {
        next.update_from_all_outputs(&g)
            .map_err(|e| anyhow!("update of {it_name}'s outputs: {e}; nothing was changed"))?
    };
    match outcome {
        UpdateOutcome::Updated(report) => {
            for w in &report.warnings {
                tracing::warn!("{it_name}: {w}");
            }
            wf.write_iteration(&next)?;
            write_atomic(
                &wf.layout.iteration_dir(k).join(RECORD_FILE),
                toml::to_string(&record("update", Some(report.dt)))?.as_bytes(),
            )?;
            if std::env::var(FAULT_ENV).as_deref() == Ok("update-before-commit") {
                eprintln!("{FAULT_ENV}: aborting before replacing {STATE_FILE}");
                std::process::abort();
            }
            // The commit: from here on the next iteration is the current one.
            write_atomic(&wf.state_path(), state_text(&next)?.as_bytes())?;
            let names = next.prior().flat_names();
            write_atomic(
                &wf.dir.join("result.toml"),
                output::result_toml(&next, f64::NAN)?.as_bytes(),
            )?;
            write_atomic(
                &wf.dir.join("history.csv"),
                output::history_csv(&names, &wf.rows(&next, None)).as_bytes(),
            )?;
            println!(
                "update {k} applied: Δt = {:.4e}, loss {:.4e}, {done}/{n} members; wrote {}'s \
                 parameter files and {}",
                report.dt,
                assessed.metrics.loss,
                wf.layout.iteration_name(k + 1),
                wf.state_path().display()
            );
            if k + 1 >= wf.cal.iterations || next.is_terminated() {
                println!(
                    "next: run {} (the final ensemble), then `ekp-cli update` once more to complete",
                    wf.layout.iteration_name(k + 1)
                );
            }
        }
        UpdateOutcome::Terminated => {
            let rows = wf.rows(&ekp, Some(&assessed));
            let run = RunOutput {
                terminated_early: k < wf.cal.iterations,
                ekp,
                final_g: g,
                rows,
            };
            output::write_all(&wf.dir, &wf.cal, &run)?;
            // The commit of completion.
            write_atomic(
                &wf.layout.iteration_dir(k).join(RECORD_FILE),
                toml::to_string(&record("final", None))?.as_bytes(),
            )?;
            println!(
                "calibration complete: {k} updates applied{}, final loss {:.4e}; results in {}",
                if run.terminated_early {
                    " (the scheduler reached its terminal time)"
                } else {
                    ""
                },
                assessed.metrics.loss,
                wf.dir.join("result.toml").display()
            );
        }
    }
    Ok(())
}

// ----------------------------------------------------------------- status

/// `ekp-cli status`.
pub fn status(args: StatusArgs) -> anyhow::Result<()> {
    let wf = Workflow::open(&args.dir)?;
    let ekp = wf.state()?;
    let k = ekp.iterations();
    let complete = wf.is_complete(&ekp);
    let shown = args.iteration.unwrap_or(k);
    if shown > k {
        bail!(InputError::Argument(format!(
            "--iteration {shown}: the newest iteration is {k}"
        )));
    }
    println!(
        "{}: {} with {} members, up to {} updates, model {} ({} unchanged since init)",
        wf.dir.display(),
        wf.cal.process.kind(),
        wf.cal.ensemble_size,
        wf.cal.iterations,
        wf.cal.model.kind(),
        CONFIG_FILE
    );
    if complete {
        println!("complete: {k} updates applied; results in result.toml");
    } else {
        println!(
            "newest iteration: {} ({k} updates applied); waiting for its outputs",
            wf.layout.iteration_name(k)
        );
    }
    let d = output_dim(&ekp);
    let states = wf.members(shown, d);
    let count = |f: fn(&MemberState) -> bool| states.iter().filter(|s| f(s)).count();
    println!(
        "\n{}: {} done, {} failed, {} missing",
        wf.layout.iteration_name(shown),
        count(|s| matches!(s, MemberState::Done(_))),
        count(|s| matches!(s, MemberState::Failed { .. })),
        count(|s| matches!(s, MemberState::Missing)),
    );
    for (j, s) in states.iter().enumerate() {
        let name = wf.layout.member_name(j + 1);
        match s {
            MemberState::Done(_) => println!("  {name}  done"),
            MemberState::Failed { reason, .. } => println!("  {name}  failed   {reason}"),
            MemberState::Missing => println!("  {name}  missing"),
        }
    }
    println!("\nmisfit history:");
    println!(
        "  {:>9}  {:>11}  {:>11}  {:>11}  {:>11}  {:>11}  failed members",
        "iteration", "Δt", "loss", "bayes loss", "avg rmse", "crps"
    );
    let line = |k: String, dt: String, m: &ekp_core::ErrorMetrics, failed: String| {
        let opt = |v: Option<f64>| v.map_or_else(|| "—".to_string(), |v| format!("{v:.4e}"));
        println!(
            "  {:>9}  {:>11}  {:>11.4e}  {:>11}  {:>11.4e}  {:>11}  {}",
            k,
            dt,
            m.loss,
            opt(m.bayes_loss),
            m.avg_rmse,
            opt(m.crps),
            failed
        );
    };
    let members = |f: &[usize], base: usize| {
        f.iter()
            .map(|j| (j + base).to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    for r in wf.rows(&ekp, None) {
        line(
            r.iteration.to_string(),
            format!("{:.4e}", r.dt.unwrap_or(f64::NAN)),
            &r.metrics,
            members(&r.failed, 1),
        );
    }
    match wf.record(k) {
        Some(r) if r.kind == "final" => line(
            k.to_string(),
            "—".to_string(),
            &r.metrics,
            format!("{}   (final ensemble)", members(&r.failed, 0)),
        ),
        _ => println!("  {:>9}  (awaiting outputs)", k),
    }
    Ok(())
}
