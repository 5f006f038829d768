//! `ekp-cli init`.

use crate::cli::InitArgs;
use crate::error::Result;
use crate::workflow;

use super::say;

pub(super) fn init(args: InitArgs) -> Result<()> {
    let folder = workflow::init::init(&args.config, &args.dir, args.seed)?;
    let cal = &folder.cal;
    say(&format!(
        "initialised {}: {} with {} members, up to {} updates, model {}, seed {}",
        args.dir.display(),
        cal.process.kind(),
        cal.ensemble_size,
        cal.iterations,
        cal.model.kind(),
        cal.seed
    ));
    say(&format!(
        "next: `ekp-cli forward --dir {d} --iteration 0 --member J` for J = 1..{n}, then \
         `ekp-cli update --dir {d}` (or `ekp-cli slurm --dir {d} --submit`)",
        d = args.dir.display(),
        n = cal.ensemble_size
    ));
    Ok(())
}
