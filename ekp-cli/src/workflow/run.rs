//! `run`: a whole calibration in one process, in a calibration folder it
//! claims, checkpointed after every update and resumable.
//!
//! Claiming `--output DIR` (before any model runs; nothing is touched when
//! it is refused, exit 2):
//!
//! | DIR holds | `run` | `run --resume` | `run --overwrite` |
//! |---|---|---|---|
//! | nothing, or an empty folder | starts | starts (nothing to resume) | starts |
//! | a calibration whose making was interrupted | starts again | starts again | starts again |
//! | a file | refused | refused | refused |
//! | this calibration, finished | replaced (run it again) | nothing to do | replaced |
//! | this calibration, unfinished | refused: use --resume or --overwrite | continues | replaced |
//! | another calibration | refused | refused | replaced |
//! | other files | refused | refused | refused |
//!
//! So `run --resume` is always safe to repeat: a job script that says it
//! starts a calibration the first time and continues it after any
//! interruption.
//!
//! "This calibration" is the same calibration file text (with the seed
//! written in) as the folder's `config.toml`.

use std::path::{Path, PathBuf};

use ekp_core::EnsembleKalmanProcess;

use crate::config::Calibration;
use crate::driver::{self, Advance, Driver, Evaluator, MissingMembers, Observer};
use crate::error::{Error, InputError, Result};
use crate::folder::lock::LockGuard;
use crate::folder::{self, LOCK_FILE, MadeBy, Occupant, RunFolder};
use crate::io::content_hash;
use crate::models::launcher::LaunchArgs;
use crate::models::{self, RunOptions};

/// What `run` was asked to do with its folder.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The calibration file (`None`: the embedded default, or with
    /// `resume`, the folder's own).
    pub config: Option<PathBuf>,
    /// The calibration folder.
    pub output: PathBuf,
    /// A seed overriding `process.seed`.
    pub seed: Option<u64>,
    /// Continue an unfinished run in `output`.
    pub resume: bool,
    /// Replace whatever calibration `output` holds.
    pub overwrite: bool,
    /// Where the members run: here, or as job steps of a SLURM allocation.
    pub launch: LaunchArgs,
}

/// A claimed calibration folder, ready to drive.
pub struct Prepared {
    /// The folder (made, or opened to resume).
    pub folder: RunFolder,
    /// Held until the run ends.
    pub lock: LockGuard,
    /// The evaluator of its model.
    pub evaluator: Box<dyn Evaluator>,
    /// Where the members run, in words.
    pub backend: String,
    /// `Some(iteration)` when an unfinished run is continued.
    pub resumed_at: Option<usize>,
    /// Whether a finished calibration was replaced.
    pub replaced: bool,
}

fn refuse(dir: &Path, what: String) -> Error {
    InputError::Argument(format!("{}: {what}. Nothing was changed.", dir.display())).into()
}

/// Load the calibration of `req`: the file (seeded), or for `--resume`
/// without `--config`, the folder's own.
fn calibration(req: &RunRequest, occupant: &Occupant) -> Result<Calibration> {
    let mut cal = match (&req.config, req.resume, occupant) {
        (None, true, Occupant::Calibration { .. }) => RunFolder::open(&req.output)?.cal,
        (Some(path), _, _) => Calibration::from_file(path)?,
        (None, _, _) => Calibration::embedded_default()?,
    };
    if let Some(seed) = req.seed {
        cal = cal.with_seed(seed)?;
    }
    Ok(cal)
}

/// Validate everything, then claim the folder of `req` as the table in the
/// module docs says: the model is built (program checked, GPU adapter
/// found) and the process started before the folder is touched.
pub fn prepare(req: &RunRequest, options: &RunOptions) -> Result<Prepared> {
    let dir = &req.output;
    let occupant = folder::inspect(dir)?;
    if matches!(occupant, Occupant::NotAFolder) {
        return Err(refuse(
            dir,
            "is a file, not a folder: give --output a folder".into(),
        ));
    }
    if let Occupant::Foreign(entries) = &occupant {
        return Err(refuse(
            dir,
            format!(
                "holds files that are not a calibration's ({}, ...); give --output an empty or \
                 new folder",
                entries.join(", ")
            ),
        ));
    }
    let cal = calibration(req, &occupant)?;
    let (evaluator, backend) = models::launcher::evaluator(&cal, options, &req.launch)?;
    let observation = models::observation(&cal)?;
    let first = driver::start(&cal, observation)?;
    let hash = content_hash(cal.text.as_bytes());
    let Claim { fresh, replaced } = decide(req, &occupant, &hash)?;
    std::fs::create_dir_all(dir)
        .map_err(|e| refuse(dir, format!("cannot create the folder ({e})")))?;
    folder::check_writable(dir)?;
    let lock = LockGuard::acquire(&dir.join(LOCK_FILE), "ekp-cli run").map_err(Error::Runtime)?;
    if fresh {
        folder::clear(dir)?;
        let config = req.config.as_deref();
        let folder = RunFolder::create(dir, cal, config, MadeBy::Run, &first)?;
        return Ok(Prepared {
            folder,
            lock,
            evaluator,
            backend,
            resumed_at: None,
            replaced,
        });
    }
    let folder = RunFolder::open(dir)?;
    let state = folder.state()?;
    Ok(Prepared {
        resumed_at: Some(state.iterations()),
        folder,
        lock,
        evaluator,
        backend,
        replaced: false,
    })
}

/// What claiming a folder means: start a fresh calibration in it (after
/// clearing a replaced one), or continue the one it holds.
struct Claim {
    fresh: bool,
    replaced: bool,
}

/// The table of the module docs: what `req` does with what `dir` holds
/// (`hash`: of the calibration to run).
fn decide(req: &RunRequest, occupant: &Occupant, hash: &str) -> Result<Claim> {
    let dir = &req.output;
    let resume_hint = format!(
        "continue it with `ekp-cli run --resume --output {d}`, replace it with `--overwrite`, \
         or give another --output",
        d = dir.display()
    );
    let (fresh, replaced) = match occupant {
        // Nothing finished to resume: `run --resume` starts, so a job script
        // can always say --resume.
        Occupant::Absent | Occupant::Empty | Occupant::Partial => (true, false),
        Occupant::Calibration { meta, complete } => {
            let same = meta.config_hash == hash;
            match (req.resume, req.overwrite, same, *complete) {
                (true, _, false, _) => {
                    return Err(refuse(
                        dir,
                        format!(
                            "holds another calibration (from {}); --resume continues the \
                             calibration it holds: drop --config and --seed, or pass the same ones",
                            meta.config_source
                        ),
                    ));
                }
                (true, _, true, _) => (false, false),
                (false, true, _, _) => (true, true),
                (false, false, true, true) => (true, true),
                (false, false, true, false) => {
                    return Err(refuse(
                        dir,
                        format!("holds an unfinished run of this calibration; {resume_hint}"),
                    ));
                }
                (false, false, false, _) => {
                    return Err(refuse(
                        dir,
                        format!(
                            "holds another calibration (from {}, made by `ekp-cli {}`); replace \
                             it with --overwrite, or give another --output",
                            meta.config_source,
                            match meta.made_by {
                                MadeBy::Init => "init",
                                MadeBy::Run => "run",
                            }
                        ),
                    ));
                }
            }
        }
        Occupant::NotAFolder | Occupant::Foreign(_) => {
            return Err(refuse(dir, "cannot be claimed".into()));
        }
    };
    Ok(Claim { fresh, replaced })
}

/// Drive the folder to the end: evaluate, collect, update and checkpoint
/// until the calibration completes. Returns the final process.
pub fn drive(
    folder: &RunFolder,
    evaluator: &dyn Evaluator,
    observers: Vec<&mut dyn Observer>,
) -> Result<EnsembleKalmanProcess> {
    let mut ekp = folder.state()?;
    if folder.is_complete(&ekp) {
        return Ok(ekp);
    }
    let mut driver = Driver::new(folder, observers);
    loop {
        driver.evaluate(&ekp, evaluator)?;
        let collected = driver.collect(&ekp, MissingMembers::Refuse)?;
        match driver.advance(ekp, collected)? {
            Advance::Updated { next, .. } => ekp = *next,
            Advance::Completed { ekp, .. } => return Ok(*ekp),
        }
        // A signal during the update: it is checkpointed; stop here.
        if let Some(signal) = crate::stop::requested() {
            return Err(crate::stop::interrupted(signal, String::new()));
        }
    }
}
