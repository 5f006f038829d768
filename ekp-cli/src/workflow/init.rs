//! `init`: make a calibration folder for the file workflow.

use std::path::Path;

use crate::config::{Calibration, ModelSpec};
use crate::driver;
use crate::error::{Error, InputError, Result};
use crate::folder::lock::LockGuard;
use crate::folder::{self, LOCK_FILE, MadeBy, Occupant, RunFolder};
use crate::models;

/// Validate the calibration file `config` (seeded by `seed` if given) and
/// make the calibration folder `dir` with iteration 0. The folder must not
/// exist or be empty (it may hold `slurm/` job scripts); it is locked while
/// it is made, so two `init`s of one folder cannot mix their files.
pub fn init(config: &Path, dir: &Path, seed: Option<u64>) -> Result<RunFolder> {
    let mut cal = Calibration::from_file(config)?;
    if let Some(seed) = seed {
        cal = cal.with_seed(seed)?;
    }
    // Validate everything (model, data, program) before writing.
    if let ModelSpec::Program(spec) = &cal.model {
        models::program::resolve_program(spec, &cal.source)?;
        models::template::Templates::load(spec, &cal.prior, &cal.source)?;
    }
    let observation = models::observation(&cal)?;
    let ekp = driver::start(&cal, observation)?;
    let refuse = |what: &str| {
        Error::from(InputError::Argument(format!(
            "{}: {what}; `init` makes a new calibration folder (nothing was changed)",
            dir.display()
        )))
    };
    match folder::inspect(dir)? {
        Occupant::Absent | Occupant::Empty => {}
        Occupant::Partial => {
            return Err(refuse(
                "holds the files of a calibration whose making was interrupted (no \
                 workflow.toml); remove the folder first",
            ));
        }
        Occupant::NotAFolder => return Err(refuse("is a file, not a folder")),
        Occupant::Calibration { .. } => return Err(refuse("is already a calibration folder")),
        Occupant::Foreign(_) => return Err(refuse("exists and is not an empty folder")),
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| InputError::Argument(format!("{}: cannot create: {e}", dir.display())))?;
    folder::check_writable(dir)?;
    let _lock = LockGuard::acquire(&dir.join(LOCK_FILE), "init").map_err(Error::Runtime)?;
    // Under the lock: another `init` may have made it in between.
    if dir.join(folder::META_FILE).exists() {
        return Err(refuse(
            "was made a calibration folder just now by another command",
        ));
    }
    RunFolder::create(dir, cal, Some(config), MadeBy::Init, &ekp)
}
