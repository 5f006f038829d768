//! `ekp-cli plot --dir DIR`: the plots and `report.html` of a calibration
//! folder, complete or in progress.

use crate::cli::PlotArgs;
use crate::error::Result;
use crate::folder::RunFolder;
use crate::report;

use super::say;

pub(super) fn plot(args: PlotArgs) -> Result<()> {
    let folder = RunFolder::open(&args.dir)?;
    for p in report::write_for_folder(&folder, args.format)? {
        say(&p.display().to_string());
    }
    Ok(())
}
