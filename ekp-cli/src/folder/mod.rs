//! The calibration folder: every file in it has one owner here, which
//! writes it and reads it back. `run`, `init`, `forward`, `update`,
//! `status`, `plot` and `slurm` all work on this one layout.
//!
//! ```text
//! DIR/config.toml            the calibration file as it ran (command-line overrides written in)
//! DIR/workflow.toml          the folder's record: the config's hash, the seed, who made it
//! DIR/observations.toml      the data calibrated against
//! DIR/state.toml             the process (ekp_core::EnsembleKalmanProcess) of the newest iteration
//! DIR/update.lock            held while `run`, `init` or `update` changes the folder
//! DIR/iteration_000/state.toml          the process as it was when iteration 000 was written
//! DIR/iteration_000/update.toml         what the update of iteration 000's outputs did
//! DIR/iteration_000/member_001/...      parameters.toml, output.toml, status.toml, logs
//! DIR/result.toml, history.csv, ...     results (complete once the calibration is)
//! DIR/plots/, DIR/report.html           figures and the report (see the report layer)
//! ```
//!
//! The order of writes makes every step safe to kill at any point: an
//! update writes the next iteration's files and its record first, then
//! replaces `DIR/state.toml` (the commit), then the result snapshot; the
//! completion writes the result files first and the final record last.
//! Each file is written to a temporary name and renamed into place.
//!
//! | module | owns |
//! |---|---|
//! | [`layout`] | the names of iteration and member folders |
//! | [`member`] | `parameters.toml`, `output.toml`, `status.toml` |
//! | [`records`] | `iteration_NNN/update.toml`, the per-iteration rows |
//! | [`results`] | `result.toml`, `observations.toml` |
//! | [`tables`] | the CSV files |
//! | [`lock`] | `update.lock` |
//! | this module | `config.toml`, `workflow.toml`, the states, claiming a folder |

pub mod layout;
pub mod lock;
pub mod member;
pub mod records;
pub mod results;
pub mod tables;

use std::path::{Path, PathBuf};

use anyhow::Context;
use ekp_core::EnsembleKalmanProcess;
use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use crate::config::{Calibration, ModelSpec};
use crate::error::{Error, InputError};
use crate::io::{content_hash, read_text, unix_now, write_atomic, write_replace};

pub use layout::Layout;
pub use member::{MemberState, ParameterFilesExt};
pub use records::{IterationRow, RECORD_FILE, RecordKind, UpdateRecord, constrained_summary};

/// The calibration file as it ran.
pub const CONFIG_FILE: &str = "config.toml";
/// The folder's record.
pub const META_FILE: &str = "workflow.toml";
/// The process state.
pub const STATE_FILE: &str = "state.toml";
/// Held while a command changes the folder.
pub const LOCK_FILE: &str = "update.lock";
/// The files and folders of a calibration folder (besides `iteration_*`
/// and `rewound_*`): what `run --overwrite` removes, and all it removes.
pub const OWNED_ENTRIES: [&str; 14] = [
    CONFIG_FILE,
    META_FILE,
    STATE_FILE,
    results::OBSERVATIONS_FILE,
    results::RESULT_FILE,
    tables::HISTORY_FILE,
    tables::ENSEMBLES_FILE,
    tables::OUTPUTS_FILE,
    tables::FINAL_ENSEMBLE_FILE,
    "plots",
    "report.html",
    "slurm",
    WORKERS_DIR,
    LOCK_FILE,
];

/// The logs of a `worker` model's processes (`workers/worker_001.log`).
pub const WORKERS_DIR: &str = "workers";

/// Which command made a calibration folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum MadeBy {
    /// `ekp-cli init` (the file workflow, SLURM).
    #[default]
    Init,
    /// `ekp-cli run`.
    Run,
}

/// `workflow.toml`: the folder's record.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    /// Format version of the folder.
    pub format: u32,
    /// [`content_hash`] of `config.toml` as written.
    pub config_hash: String,
    /// The calibration file it came from.
    pub config_source: String,
    /// Its folder (absolute): relative `command` programs resolve against it.
    pub config_dir: String,
    /// The seed the process was started with.
    pub seed: u64,
    /// The ekp version that made the folder.
    pub ekp_version: String,
    /// When (Unix seconds).
    pub created_unix: u64,
    /// Which command made it.
    #[serde(default)]
    pub made_by: MadeBy,
}

/// An opened calibration folder.
#[derive(Debug)]
pub struct RunFolder {
    /// The folder.
    pub dir: PathBuf,
    /// Its calibration (from `config.toml`, checked against the recorded hash).
    pub cal: Calibration,
    /// The folder's record.
    pub meta: Meta,
    /// Where the iteration and member folders are.
    pub layout: Layout,
}

/// What is at a path that a command wants to make a calibration folder.
#[derive(Debug)]
pub enum Occupant {
    /// Nothing.
    Absent,
    /// An empty folder (or one holding only `slurm/` job scripts).
    Empty,
    /// A file, not a folder.
    NotAFolder,
    /// A calibration folder: its record, and whether it is complete.
    Calibration {
        /// Its `workflow.toml`.
        meta: Box<Meta>,
        /// Whether the calibration in it completed.
        complete: bool,
    },
    /// Only a calibration's own files, but no `workflow.toml`: a folder
    /// whose making was interrupted (it holds no finished step).
    Partial,
    /// A folder with other things in it (some of them listed).
    Foreign(Vec<String>),
}

/// Look at `dir` before claiming it.
pub fn inspect(dir: &Path) -> Result<Occupant, InputError> {
    let meta = match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Occupant::Absent),
        Err(source) => {
            return Err(InputError::Read {
                path: dir.to_path_buf(),
                source,
            });
        }
        Ok(m) => m,
    };
    if !meta.is_dir() && !dir.is_dir() {
        return Ok(Occupant::NotAFolder);
    }
    let entries: Vec<String> = std::fs::read_dir(dir)
        .map_err(|source| InputError::Read {
            path: dir.to_path_buf(),
            source,
        })?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if entries.iter().all(|e| e == "slurm") {
        return Ok(Occupant::Empty);
    }
    if entries.iter().any(|e| e == META_FILE) {
        let path = dir.join(META_FILE);
        let meta = read_meta(&path)?;
        let complete = RunFolder::open(dir)
            .ok()
            .and_then(|f| f.state().ok().map(|s| f.is_complete(&s)))
            .unwrap_or(false);
        return Ok(Occupant::Calibration {
            meta: Box::new(meta),
            complete,
        });
    }
    if entries.iter().all(|e| is_owned(e)) {
        return Ok(Occupant::Partial);
    }
    let mut shown: Vec<String> = entries
        .into_iter()
        .filter(|e| !is_owned(e))
        .take(5)
        .collect();
    shown.sort();
    Ok(Occupant::Foreign(shown))
}

/// Whether `name` is an entry a calibration folder owns.
fn is_owned(name: &str) -> bool {
    OWNED_ENTRIES.contains(&name)
        || name.starts_with("iteration_")
        || name.starts_with("rewound_")
        || (name.starts_with('.') && name.contains(".tmp."))
}

/// Remove a calibration's own files and folders from `dir` (for `run
/// --overwrite`): the entries of [`OWNED_ENTRIES`], `iteration_*` and
/// `rewound_*`. Anything else in the folder is left alone. `workflow.toml`
/// goes first, so an interrupted removal leaves no folder that claims to be
/// a calibration.
pub fn clear(dir: &Path) -> anyhow::Result<()> {
    let meta = dir.join(META_FILE);
    if meta.exists() {
        std::fs::remove_file(&meta)
            .with_context(|| format!("{}: cannot remove", meta.display()))?;
    }
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("{}: cannot list", dir.display()))?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !is_owned(&name) || name == LOCK_FILE {
            continue;
        }
        let path = e.path();
        let removed = if path.is_dir() && !path.is_symlink() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.with_context(|| format!("{}: cannot remove", path.display()))?;
    }
    Ok(())
}

/// Check that `dir` (an existing folder) can be written: a probe file is
/// created and removed.
pub fn check_writable(dir: &Path) -> Result<(), InputError> {
    let probe = dir.join(format!(".ekp-probe.{}", std::process::id()));
    match std::fs::write(&probe, b"") {
        Ok(()) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(InputError::Argument(format!(
            "{}: cannot write in this folder ({e}); nothing was run",
            dir.display()
        ))),
    }
}

fn read_meta(path: &Path) -> Result<Meta, InputError> {
    toml::from_str(&read_text(path)?).map_err(|e| InputError::Parse {
        file: path.display().to_string(),
        message: e.to_string().trim_end().to_string(),
    })
}

/// The state file's text for a process.
pub fn state_text(ekp: &EnsembleKalmanProcess) -> anyhow::Result<String> {
    Ok(format!(
        "# ekp process state: settings, history and RNG\n{}",
        toml::to_string(ekp).context("cannot serialise the process state")?
    ))
}

/// How many outputs a member writes: one per observation (of every minibatch).
pub fn output_dim(ekp: &EnsembleKalmanProcess) -> usize {
    ekp.observation_series().total_dim()
}

impl RunFolder {
    /// Open `dir`: read its record and the calibration file, refusing a
    /// calibration file edited since the folder was made.
    pub fn open(dir: &Path) -> Result<Self, InputError> {
        if !dir.is_dir() {
            return Err(InputError::Argument(format!(
                "{}: no such folder (make one with `ekp-cli init --config FILE --dir {}` or \
                 `ekp-cli run --output {}`)",
                dir.display(),
                dir.display(),
                dir.display()
            )));
        }
        let meta_path = dir.join(META_FILE);
        if !meta_path.exists() {
            return Err(InputError::Argument(format!(
                "{}: not a calibration folder: {META_FILE} is missing (`ekp-cli init` or \
                 `ekp-cli run` makes one)",
                dir.display()
            )));
        }
        let meta = read_meta(&meta_path)?;
        let config_path = dir.join(CONFIG_FILE);
        let text = read_text(&config_path)?;
        let hash = content_hash(text.as_bytes());
        if hash != meta.config_hash {
            return Err(InputError::Argument(format!(
                "{}: the calibration file was edited after the folder was made (its hash is \
                 {hash}, {} recorded {}); a calibration cannot change between iterations. \
                 Restore the file, or start a new calibration folder. Nothing was changed.",
                config_path.display(),
                meta_path.display(),
                meta.config_hash
            )));
        }
        // Relative paths in the file resolve where they did when it was made.
        let mut cal = Calibration::parse_with_base(
            &text,
            &config_path.display().to_string(),
            Path::new(&meta.config_dir),
        )?;
        cal.seed = meta.seed;
        if let ModelSpec::Program(spec) = &mut cal.model {
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

    /// Make a calibration folder in `dir` (absent, or empty and claimed by
    /// the caller) for `cal` started as `first`: the calibration file, the
    /// data, iteration 0's files and the state, then the record last: a
    /// folder without it is not a calibration (a run killed before it is
    /// [`Occupant::Partial`] and starts again), and a folder with it holds
    /// everything a calibration needs.
    /// `config_path` is the file `cal` came from (`None`: the embedded default).
    pub fn create(
        dir: &Path,
        cal: Calibration,
        config_path: Option<&Path>,
        made_by: MadeBy,
        first: &EnsembleKalmanProcess,
    ) -> Result<Self, Error> {
        let config_dir = match config_path {
            Some(p) => std::path::absolute(
                p.parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new(".")),
            ),
            None => std::path::absolute("."),
        }
        .context("cannot resolve the calibration file's folder")?;
        let meta = Meta {
            format: 1,
            config_hash: content_hash(cal.text.as_bytes()),
            config_source: match config_path {
                Some(p) => std::path::absolute(p)
                    .unwrap_or(p.to_path_buf())
                    .display()
                    .to_string(),
                None => cal.source.clone(),
            },
            config_dir: config_dir.display().to_string(),
            seed: cal.seed,
            ekp_version: env!("CARGO_PKG_VERSION").to_string(),
            created_unix: unix_now(),
            made_by,
        };
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create", dir.display()))?;
        let layout = Layout::new(dir, cal.ensemble_size, cal.iterations);
        let folder = Self {
            dir: dir.to_path_buf(),
            cal,
            meta,
            layout,
        };
        write_atomic(&dir.join(CONFIG_FILE), folder.cal.text.as_bytes())?;
        write_atomic(
            &dir.join(results::OBSERVATIONS_FILE),
            results::observations_toml(&folder.cal, &first.observation_series().all_stacked())?
                .as_bytes(),
        )?;
        folder.write_iteration(first)?;
        write_atomic(&folder.state_path(), state_text(first)?.as_bytes())?;
        write_atomic(
            &dir.join(META_FILE),
            format!(
                "# ekp calibration folder: written by `ekp-cli {}`; do not edit\n{}",
                match made_by {
                    MadeBy::Init => "init",
                    MadeBy::Run => "run",
                },
                toml::to_string(&folder.meta).context("cannot serialise the folder record")?
            )
            .as_bytes(),
        )?;
        Ok(folder)
    }

    /// `DIR/state.toml`.
    pub fn state_path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    /// `DIR/iteration_NNN/state.toml`.
    pub fn iteration_state_path(&self, iteration: usize) -> PathBuf {
        self.layout.iteration_dir(iteration).join(STATE_FILE)
    }

    /// The current state.
    pub fn state(&self) -> Result<EnsembleKalmanProcess, InputError> {
        self.read_state(&self.state_path())
    }

    /// Read and check a state file.
    pub fn read_state(&self, path: &Path) -> Result<EnsembleKalmanProcess, InputError> {
        let text = read_text(path).map_err(|e| match e {
            InputError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                InputError::Argument(format!(
                    "{}: the process state is missing (is the folder complete?)",
                    path.display()
                ))
            }
            other => other,
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
                    "ensemble {i} is {}×{}, but {CONFIG_FILE} has {p} parameter components and \
                     {n} members",
                    m.nrows(),
                    m.ncols(),
                ),
            ));
        }
        Self::check_values(ekp).map_err(|(key, message)| bad(key, message))?;
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

    /// The numbers of a state must be usable: finite ensembles, positive steps.
    fn check_values(ekp: &EnsembleKalmanProcess) -> Result<(), (&'static str, String)> {
        if let Some(i) = ekp
            .u_history()
            .iter()
            .position(|m| m.iter().any(|v| !v.is_finite()))
        {
            return Err(("u", format!("ensemble {i} holds non-finite values")));
        }
        if let Some(i) = ekp
            .dt_history()
            .iter()
            .position(|t| !(t.is_finite() && *t > 0.0))
        {
            return Err(("dt", format!("step {i} is not a positive number")));
        }
        Ok(())
    }

    /// `iteration_NNN/update.toml`, if the update of that iteration ran.
    pub fn record(&self, iteration: usize) -> Option<UpdateRecord> {
        let text = read_text(&self.layout.iteration_dir(iteration).join(RECORD_FILE)).ok()?;
        toml::from_str(&text).ok()
    }

    /// Write `iteration_NNN/update.toml` (durably: for the completion it is
    /// the commit).
    pub fn write_record(&self, record: &UpdateRecord) -> anyhow::Result<()> {
        let text = toml::to_string(record).context("cannot serialise an update record")?;
        write_atomic(
            &self
                .layout
                .iteration_dir(record.iteration)
                .join(RECORD_FILE),
            text.as_bytes(),
        )
    }

    /// Whether the calibration is complete: the update of the current
    /// iteration's outputs was the final one.
    pub fn is_complete(&self, ekp: &EnsembleKalmanProcess) -> bool {
        self.record(ekp.iterations())
            .is_some_and(|r| r.kind == RecordKind::Final)
    }

    /// Each member's state in `iteration` (outputs of dimension `d`).
    pub fn members(&self, iteration: usize, d: usize) -> Vec<MemberState> {
        (1..=self.cal.ensemble_size)
            .map(|j| member::classify(&self.layout.member_dir(iteration, j), d))
            .collect()
    }

    /// Write the parameter files and the state snapshot of the process's
    /// current ensemble (its iteration), clearing leftovers of earlier runs.
    pub fn write_iteration(&self, ekp: &EnsembleKalmanProcess) -> anyhow::Result<()> {
        let k = ekp.iterations();
        let theta = ekp.constrained_ensemble();
        for j in 0..theta.ncols() {
            let number = j + 1;
            let dir = self.layout.member_dir(k, number);
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("{}: cannot create folder", dir.display()))?;
            for f in [member::OUTPUT_FILE, member::STATUS_FILE] {
                let _ = std::fs::remove_file(dir.join(f));
            }
            let col: Vec<f64> = theta.column(j).iter().copied().collect();
            write_replace(
                &dir.join(member::PARAMETERS_FILE),
                self.cal
                    .parameter_files
                    .render(ekp.prior(), &col, k, number)
                    .as_bytes(),
            )?;
        }
        write_atomic(&self.iteration_state_path(k), state_text(ekp)?.as_bytes())
    }

    /// The rows of every ensemble the process has updated, plus the final
    /// ensemble's row when its record is given — the rows `run` shows
    /// (metrics against all the data, as the updates recorded them).
    pub fn rows(
        &self,
        ekp: &EnsembleKalmanProcess,
        last: Option<&UpdateRecord>,
    ) -> Vec<IterationRow> {
        let mut rows: Vec<IterationRow> = (0..ekp.iterations())
            .map(|k| {
                // The record holds what `run`'s table shows; the state's own
                // metrics (of the minibatch) stand in if it was lost.
                let record = self.record(k).unwrap_or_else(|| UpdateRecord {
                    kind: RecordKind::Update,
                    iteration: k,
                    done: 0,
                    failed: ekp.failed_history()[k].iter().map(|j| j + 1).collect(),
                    missing: Vec::new(),
                    dt: Some(ekp.dt_history()[k]),
                    finished_unix: 0,
                    metrics: ekp.metrics_history()[k],
                });
                let (mean, std) = constrained_summary(ekp, k);
                IterationRow {
                    iteration: k,
                    dt: Some(ekp.dt_history()[k]),
                    metrics: record.metrics,
                    failed: record.failed.iter().map(|j| j.saturating_sub(1)).collect(),
                    mean,
                    std,
                }
            })
            .collect();
        if let Some(r) = last
            && let Some(row) = IterationRow::from_record(ekp, r)
        {
            rows.push(row);
        }
        rows
    }

    /// The outputs of iteration `k` as its members left them (`d × N`, a NaN
    /// column where a member has none), for plots of a calibration in progress.
    pub fn outputs(&self, k: usize, d: usize) -> DMatrix<f64> {
        let mut g = DMatrix::from_element(d, self.cal.ensemble_size, f64::NAN);
        for (j, s) in self.members(k, d).iter().enumerate() {
            if let MemberState::Done(v) = s {
                g.set_column(j, &DVector::from_column_slice(v));
            }
        }
        g
    }
}
