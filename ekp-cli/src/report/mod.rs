//! What a calibration shows a person: the plots ([`plot`], SVG and PNG) and
//! one self-contained `report.html` ([`html`]), drawn from a calibration
//! folder — at the end of `run` and of the file workflow (the
//! [`ReportObserver`] hangs off the driver), and by `ekp-cli plot`.

pub mod html;
pub mod number;
pub mod plot;

use std::path::PathBuf;

use ekp_core::EnsembleKalmanProcess;
use nalgebra::DMatrix;

use crate::driver::{Completion, Observer};
use crate::error::Result;
use crate::folder::{IterationRow, RunFolder, output_dim};

pub use plot::Format;

/// Draw the plots of `folder` into `DIR/plots/` and write `DIR/report.html`.
/// `outputs`: the newest evaluated ensemble's outputs and its iteration.
pub fn write(
    folder: &RunFolder,
    ekp: &EnsembleKalmanProcess,
    rows: &[IterationRow],
    outputs: Option<(usize, DMatrix<f64>)>,
    complete: bool,
    format: Format,
) -> Result<Vec<PathBuf>> {
    let data = plot::PlotData::new(folder, ekp, rows, outputs);
    let config_text =
        crate::io::read_text(&folder.dir.join(crate::folder::CONFIG_FILE)).unwrap_or_default();
    let input = html::ReportInput {
        dir: &folder.dir,
        ekp,
        config_text: &config_text,
        rows,
        complete,
        max_updates: folder.cal.iterations,
    };
    Ok(html::write_report(&input, &data, format)?)
}

/// The plots and report of a calibration folder as it stands (complete or
/// in progress), for `ekp-cli plot`.
pub fn write_for_folder(folder: &RunFolder, format: Format) -> Result<Vec<PathBuf>> {
    let ekp = folder.state()?;
    let k = ekp.iterations();
    let d = output_dim(&ekp);
    let last = folder
        .record(k)
        .filter(|r| r.kind == crate::folder::RecordKind::Final);
    let complete = last.is_some();
    let rows = folder.rows(&ekp, last.as_ref());
    // The newest iteration with any outputs: the current one, else the one before.
    let outputs = [Some(k), k.checked_sub(1)]
        .into_iter()
        .flatten()
        .map(|i| (i, folder.outputs(i, d)))
        .find(|(_, g)| g.iter().any(|v| v.is_finite()));
    write(folder, &ekp, &rows, outputs, complete, format)
}

/// Writes the plots and the report when the calibration completes.
pub struct ReportObserver {
    format: Format,
    /// The files written.
    pub written: Vec<PathBuf>,
}

impl ReportObserver {
    /// An observer writing figures in `format`.
    pub fn new(format: Format) -> Self {
        Self {
            format,
            written: Vec::new(),
        }
    }
}

impl Observer for ReportObserver {
    fn completed(&mut self, done: &Completion<'_>) -> Result<()> {
        self.written = write(
            done.folder,
            done.ekp,
            done.rows,
            Some((done.ekp.iterations(), done.final_g.clone())),
            true,
            self.format,
        )?;
        Ok(())
    }
}
