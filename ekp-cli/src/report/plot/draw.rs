//! Plots of a calibration, as SVG and PNG, with `plotters`.
//!
//! Four figures, written into `DIR/plots/` at the end of `run` (and of the
//! file workflow), and by `ekp-cli plot --dir DIR` for any run folder — a
//! finished run, or a file-workflow / SLURM calibration still in progress:
//!
//! - `misfit`: the data misfit (loss) of each ensemble, per iteration;
//! - `parameters`: each parameter's ensemble per iteration, in constrained
//!   units, with the ensemble mean and the truth when it is known (the first
//!   [`MAX_PANELS`] components);
//! - `pairs`: the newest ensemble's pairwise scatter (histograms on the
//!   diagonal; the first [`MAX_PAIRS`] components);
//! - `outputs`: the observed data `y` (± 2 noise standard deviations) with
//!   the newest evaluated ensemble's outputs around it.
//!
//! Text is drawn with an embedded font (DejaVu Sans, see
//! `ekp-cli/assets/DejaVuSans-LICENSE.txt`) rasterised in pure Rust, so PNGs
//! have their labels on any machine: no system fonts or fontconfig needed.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, anyhow};
use ekp_core::EnsembleKalmanProcess;
use nalgebra::DMatrix;
use plotters::coord::Shift;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::folder::{IterationRow, RunFolder, results};
use crate::io::write_atomic;

/// The embedded font (DejaVu Sans).
const FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
/// The family name the font is registered under.
const FAMILY: &str = "sans-serif";
/// The size of one figure panel, in pixels.
const SIZE: (u32, u32) = (900, 560);
/// The pairwise scatter shows at most this many parameter components.
pub const MAX_PAIRS: usize = 6;
/// The parameter figure shows at most this many components (the first ones).
pub const MAX_PANELS: usize = 12;

/// Everything the figures show.
#[derive(Debug, Clone)]
pub struct PlotData {
    /// Flat parameter names (`F`, `A`, `x[1]`, ...).
    pub names: Vec<String>,
    /// `(iteration, loss)` of each evaluated ensemble.
    pub loss: Vec<(usize, f64)>,
    /// The constrained ensemble of each iteration (`p × N`).
    pub ensembles: Vec<DMatrix<f64>>,
    /// The true parameters (flat, constrained), when the data were generated.
    pub truth: Option<Vec<f64>>,
    /// The observed data `y`.
    pub y: Vec<f64>,
    /// The noise standard deviation of each datum (`√diag Γ`).
    pub y_std: Vec<f64>,
    /// The newest evaluated ensemble's outputs (`d × N`) and its iteration.
    pub outputs: Option<(usize, DMatrix<f64>)>,
}

fn constrained_history(ekp: &EnsembleKalmanProcess) -> Vec<DMatrix<f64>> {
    ekp.u_history()
        .iter()
        .map(|u| ekp.prior().to_constrained_matrix(u))
        .collect()
}

impl PlotData {
    /// The data of a calibration folder: the process `ekp`, the rows of its
    /// evaluated ensembles, the newest outputs (with their iteration), and
    /// the data and truth from `observations.toml` where it can be read.
    pub fn new(
        folder: &RunFolder,
        ekp: &EnsembleKalmanProcess,
        rows: &[IterationRow],
        outputs: Option<(usize, DMatrix<f64>)>,
    ) -> Self {
        let obs = ekp.observation_series().all_stacked();
        let mut y: Vec<f64> = obs.values().iter().copied().collect();
        let mut y_std: Vec<f64> = obs
            .noise()
            .dense()
            .diagonal()
            .iter()
            .map(|v| v.sqrt())
            .collect();
        let file = crate::io::read_text(&folder.dir.join(results::OBSERVATIONS_FILE))
            .ok()
            .and_then(|t| toml::from_str::<results::ObservationsRead>(&t).ok());
        let mut truth = None;
        if let Some(file) = file {
            if file.values.len() == y.len() {
                if file.covariance.len() == y.len() {
                    y_std = (0..y.len())
                        .map(|i| file.covariance[i].get(i).copied().unwrap_or(0.0).sqrt())
                        .collect();
                }
                y.clone_from(&file.values);
            }
            truth = file.truth_flat(ekp.prior());
        }
        Self {
            names: ekp.prior().flat_names(),
            loss: rows.iter().map(|r| (r.iteration, r.metrics.loss)).collect(),
            ensembles: constrained_history(ekp),
            truth,
            y,
            y_std,
            outputs,
        }
    }
}

/// Register the embedded font with plotters (once).
fn ensure_font() -> anyhow::Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        [
            FontStyle::Normal,
            FontStyle::Bold,
            FontStyle::Italic,
            FontStyle::Oblique,
        ]
        .into_iter()
        .all(|s| plotters::style::register_font(FAMILY, s, FONT).is_ok())
    });
    if ok {
        Ok(())
    } else {
        Err(anyhow!("the embedded plot font could not be loaded"))
    }
}

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing a plot: {e:?}")
}

/// A range around finite values, padded by 5 % (a unit range around a constant).
fn padded(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return 0.0..1.0;
    }
    let pad = if hi > lo {
        0.05 * (hi - lo)
    } else {
        0.5 * lo.abs().max(1.0)
    };
    (lo - pad)..(hi + pad)
}

fn color(i: usize) -> RGBColor {
    const C: [RGBColor; 6] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
    ];
    C[i % C.len()]
}

/// Tick labels at whole numbers only (iterations, data indices).
fn integer_tick(v: &f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        String::new()
    }
}

/// Compact tick labels for small panels.
fn short_tick(v: &f64) -> String {
    format!("{v:.3}")
}

fn font(size: u32) -> FontDesc<'static> {
    (FAMILY, size).into_font()
}

fn draw_misfit<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    d: &PlotData,
) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let pts: Vec<(f64, f64)> = d
        .loss
        .iter()
        .filter(|(_, l)| l.is_finite())
        .map(|&(k, l)| (k as f64, l))
        .collect();
    let xmax = d.loss.iter().map(|p| p.0).max().unwrap_or(0).max(1) as f64;
    let x = -0.2..(xmax + 0.2);
    let positive = !pts.is_empty() && pts.iter().all(|p| p.1 > 0.0);
    let mut b = ChartBuilder::on(root);
    b.caption("Data misfit per iteration", font(22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(80);
    if positive {
        let lo = pts.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let hi = pts.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
        let c = b
            .build_cartesian_2d(x, (lo / 1.5..hi * 1.5).log_scale())
            .map_err(err)?;
        misfit_series(c, &pts, xmax, "loss (log scale)")?;
    } else {
        let c = b
            .build_cartesian_2d(x, padded(pts.iter().map(|p| p.1)))
            .map_err(err)?;
        misfit_series(c, &pts, xmax, "loss")?;
    }
    root.present().map_err(err)
}

/// The misfit chart's mesh, line and points, on a linear or a log `y` axis.
fn misfit_series<DB: DrawingBackend, Y>(
    mut c: ChartContext<'_, DB, Cartesian2d<RangedCoordf64, Y>>,
    pts: &[(f64, f64)],
    xmax: f64,
    y_desc: &str,
) -> anyhow::Result<()>
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    c.configure_mesh()
        .x_desc("iteration")
        .x_labels(xmax as usize + 1)
        .x_label_formatter(&integer_tick)
        .y_desc(y_desc)
        .label_style(font(14))
        .axis_desc_style(font(16))
        .draw()
        .map_err(err)?;
    c.draw_series(LineSeries::new(pts.to_vec(), color(0).stroke_width(2)))
        .map_err(err)?;
    c.draw_series(pts.iter().map(|&p| Circle::new(p, 4, color(0).filled())))
        .map_err(err)?;
    Ok(())
}

fn draw_parameters<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    d: &PlotData,
) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let p = d.names.len().min(MAX_PANELS);
    let cols = if p <= 1 { 1 } else { 2 };
    let rows = p.div_ceil(cols).max(1);
    let panels = root.split_evenly((rows, cols));
    let kmax = d.ensembles.len().saturating_sub(1).max(1) as f64;
    for (i, name) in d.names.iter().enumerate().take(p) {
        let area = &panels[i];
        let values = d
            .ensembles
            .iter()
            .flat_map(|e| e.row(i).iter().copied().collect::<Vec<_>>());
        let truth = d.truth.as_ref().and_then(|t| t.get(i).copied());
        let y = padded(values.chain(truth));
        let mut c = ChartBuilder::on(area)
            .caption(format!("{name}: ensemble per iteration"), font(18))
            .margin(10)
            .x_label_area_size(38)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.3..(kmax + 0.3), y)
            .map_err(err)?;
        c.configure_mesh()
            .x_desc("iteration")
            .x_labels(kmax as usize + 1)
            .x_label_formatter(&integer_tick)
            .y_desc(name.as_str())
            .label_style(font(12))
            .axis_desc_style(font(14))
            .draw()
            .map_err(err)?;
        let members = d.ensembles.iter().enumerate().flat_map(|(k, e)| {
            e.row(i)
                .iter()
                .filter(|v| v.is_finite())
                .map(move |&v| Circle::new((k as f64, v), 3, color(0).mix(0.45).filled()))
                .collect::<Vec<_>>()
        });
        c.draw_series(members)
            .map_err(err)?
            .label("members")
            .legend(|(x, y)| Circle::new((x + 8, y), 3, color(0).filled()));
        let means: Vec<(f64, f64)> = d
            .ensembles
            .iter()
            .enumerate()
            .map(|(k, e)| (k as f64, e.row(i).mean()))
            .filter(|p| p.1.is_finite())
            .collect();
        c.draw_series(LineSeries::new(means, color(1).stroke_width(2)))
            .map_err(err)?
            .label("mean")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color(1).stroke_width(2)));
        if let Some(t) = truth {
            c.draw_series(DashedLineSeries::new(
                vec![(-0.3, t), (kmax + 0.3, t)],
                8,
                5,
                BLACK.stroke_width(2),
            ))
            .map_err(err)?
            .label(format!("truth {t}"))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLACK.stroke_width(2)));
        }
        c.configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(font(12))
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(err)?;
    }
    root.present().map_err(err)
}

fn draw_pairs<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    d: &PlotData,
) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let Some(last) = d.ensembles.last() else {
        return root.present().map_err(err);
    };
    let k = d.ensembles.len() - 1;
    let p = d.names.len().min(MAX_PAIRS);
    let (title, body) = root.split_vertically(36);
    title
        .draw(&Text::new(
            format!(
                "Ensemble {k}: pairwise scatter{}",
                if d.names.len() > p {
                    format!(" (first {p} of {} components)", d.names.len())
                } else {
                    String::new()
                }
            ),
            (12, 8),
            font(20),
        ))
        .map_err(err)?;
    let panels = body.split_evenly((p, p));
    let ranges: Vec<std::ops::Range<f64>> = (0..p)
        .map(|i| {
            let t = d.truth.as_ref().and_then(|t| t.get(i).copied());
            padded(last.row(i).iter().copied().chain(t))
        })
        .collect();
    for i in 0..p {
        for j in 0..p {
            let area = &panels[i * p + j];
            let label_x = if i + 1 == p { 30 } else { 0 };
            let label_y = if j == 0 { 55 } else { 0 };
            if i == j {
                // A histogram of component i.
                let r = ranges[i].clone();
                let bins = 12usize;
                let w = (r.end - r.start) / bins as f64;
                let mut counts = vec![0usize; bins];
                for v in last.row(i).iter().filter(|v| v.is_finite()) {
                    let b = (((v - r.start) / w).floor().max(0.0) as usize).min(bins - 1);
                    counts[b] += 1;
                }
                let top = counts.iter().copied().max().unwrap_or(1).max(1) as f64;
                let mut c = ChartBuilder::on(area)
                    .margin(4)
                    .x_label_area_size(label_x)
                    .y_label_area_size(label_y)
                    .build_cartesian_2d(r.clone(), 0.0..top * 1.1)
                    .map_err(err)?;
                let mut mesh = c.configure_mesh();
                mesh.disable_mesh()
                    .x_labels(4)
                    .y_labels(4)
                    .x_label_formatter(&short_tick)
                    .y_label_formatter(&short_tick)
                    .label_style(font(11))
                    .axis_desc_style(font(13));
                if i + 1 == p {
                    mesh.x_desc(d.names[j].as_str());
                }
                if j == 0 {
                    mesh.y_desc("count");
                }
                mesh.draw().map_err(err)?;
                c.draw_series(counts.iter().enumerate().map(|(b, &n)| {
                    let x0 = r.start + b as f64 * w;
                    Rectangle::new([(x0, 0.0), (x0 + w, n as f64)], color(0).mix(0.6).filled())
                }))
                .map_err(err)?;
                if let Some(t) = d.truth.as_ref().and_then(|t| t.get(i).copied()) {
                    c.draw_series(std::iter::once(PathElement::new(
                        vec![(t, 0.0), (t, top * 1.1)],
                        BLACK.stroke_width(2),
                    )))
                    .map_err(err)?;
                }
            } else {
                let mut c = ChartBuilder::on(area)
                    .margin(4)
                    .x_label_area_size(label_x)
                    .y_label_area_size(label_y)
                    .build_cartesian_2d(ranges[j].clone(), ranges[i].clone())
                    .map_err(err)?;
                let mut mesh = c.configure_mesh();
                mesh.disable_mesh()
                    .x_labels(4)
                    .y_labels(4)
                    .x_label_formatter(&short_tick)
                    .y_label_formatter(&short_tick)
                    .label_style(font(11))
                    .axis_desc_style(font(13));
                if i + 1 == p {
                    mesh.x_desc(d.names[j].as_str());
                }
                if j == 0 {
                    mesh.y_desc(d.names[i].as_str());
                }
                mesh.draw().map_err(err)?;
                c.draw_series(
                    (0..last.ncols())
                        .map(|m| (last[(j, m)], last[(i, m)]))
                        .filter(|(x, y)| x.is_finite() && y.is_finite())
                        .map(|pt| Circle::new(pt, 3, color(0).mix(0.6).filled())),
                )
                .map_err(err)?;
                if let Some(t) = &d.truth {
                    if let (Some(&tx), Some(&ty)) = (t.get(j), t.get(i)) {
                        c.draw_series(std::iter::once(Cross::new(
                            (tx, ty),
                            7,
                            BLACK.stroke_width(2),
                        )))
                        .map_err(err)?;
                    }
                }
            }
        }
    }
    root.present().map_err(err)
}

fn draw_outputs<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    d: &PlotData,
) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let n = d.y.len();
    let outputs = d.outputs.as_ref().filter(|(_, g)| g.nrows() == n);
    let bars =
        d.y.iter()
            .zip(&d.y_std)
            .flat_map(|(y, s)| [y - 2.0 * s, y + 2.0 * s]);
    let gs = outputs
        .map(|(_, g)| g.iter().copied().collect::<Vec<_>>())
        .unwrap_or_default();
    let yr = padded(bars.chain(gs.iter().copied()));
    let caption = match outputs {
        Some((k, _)) => format!("Observed data and the outputs of ensemble {k}"),
        None => "Observed data".to_string(),
    };
    let mut c = ChartBuilder::on(root)
        .caption(caption, font(22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d(0.5..(n as f64 + 0.5), yr)
        .map_err(err)?;
    c.configure_mesh()
        .x_desc("datum (1-based index)")
        .x_labels(n.min(40))
        .x_label_formatter(&integer_tick)
        .y_desc("value")
        .label_style(font(14))
        .axis_desc_style(font(16))
        .draw()
        .map_err(err)?;
    if let Some((_, g)) = outputs {
        for m in 0..g.ncols() {
            let line: Vec<(f64, f64)> = (0..n)
                .map(|i| ((i + 1) as f64, g[(i, m)]))
                .filter(|p| p.1.is_finite())
                .collect();
            let s = c
                .draw_series(LineSeries::new(line, color(0).mix(0.25).stroke_width(1)))
                .map_err(err)?;
            if m == 0 {
                s.label("ensemble members")
                    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color(0)));
            }
        }
    }
    c.draw_series(d.y.iter().zip(&d.y_std).enumerate().map(|(i, (y, s))| {
        ErrorBar::new_vertical(
            (i + 1) as f64,
            y - 2.0 * s,
            *y,
            y + 2.0 * s,
            BLACK.stroke_width(2),
            8,
        )
    }))
    .map_err(err)?
    .label("data y ± 2σ")
    .legend(|(x, y)| Circle::new((x + 8, y), 3, BLACK.filled()));
    c.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(font(13))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

/// The figures, in order: file stem, title.
pub const FIGURES: [(&str, &str); 4] = [
    ("misfit", "Data misfit per iteration"),
    ("parameters", "Parameter ensembles per iteration"),
    ("pairs", "Final ensemble: pairwise scatter"),
    ("outputs", "Observed data and ensemble outputs"),
];

fn figure_size(stem: &str, d: &PlotData) -> (u32, u32) {
    match stem {
        "parameters" => {
            let rows = d.names.len().min(MAX_PANELS).div_ceil(2).max(1) as u32;
            (SIZE.0, (300 * rows).max(SIZE.1))
        }
        "pairs" => {
            let p = d.names.len().clamp(1, MAX_PAIRS) as u32;
            let s = (260 * p).clamp(560, 1200);
            (s, s + 36)
        }
        _ => SIZE,
    }
}

fn draw<DB: DrawingBackend>(
    stem: &str,
    root: &DrawingArea<DB, Shift>,
    d: &PlotData,
) -> anyhow::Result<()> {
    match stem {
        "misfit" => draw_misfit(root, d),
        "parameters" => draw_parameters(root, d),
        "pairs" => draw_pairs(root, d),
        _ => draw_outputs(root, d),
    }
}

/// One figure as an SVG document.
pub fn svg(stem: &str, d: &PlotData) -> anyhow::Result<String> {
    ensure_font()?;
    let mut s = String::new();
    {
        let root = SVGBackend::with_string(&mut s, figure_size(stem, d)).into_drawing_area();
        draw(stem, &root, d)?;
    }
    Ok(s)
}

/// One figure as a PNG file at `path` (drawn to a temporary file, then renamed).
pub fn png(stem: &str, d: &PlotData, path: &Path) -> anyhow::Result<()> {
    ensure_font()?;
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let tmp = dir.join(format!(".{stem}.tmp.{}.png", std::process::id()));
    let result = {
        let root = BitMapBackend::new(&tmp, figure_size(stem, d)).into_drawing_area();
        draw(stem, &root, d)
    };
    match result {
        Ok(()) => {
            std::fs::rename(&tmp, path).with_context(|| format!("{}: cannot write", path.display()))
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e.context(format!("{}: cannot draw", path.display())))
        }
    }
}

/// Which image formats to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// SVG only.
    Svg,
    /// PNG only.
    Png,
    /// Both.
    Both,
}

/// The figures' titles and SVG texts.
pub type Svgs = Vec<(&'static str, String)>;

/// Every figure, written into `dir/plots/` (created if needed) in `format`.
/// Returns the files written, and each figure's SVG text (for the report).
pub fn write_plots(
    dir: &Path,
    d: &PlotData,
    format: Format,
) -> anyhow::Result<(Vec<PathBuf>, Svgs)> {
    let plots = dir.join("plots");
    std::fs::create_dir_all(&plots)
        .with_context(|| format!("{}: cannot create folder", plots.display()))?;
    let mut written = Vec::new();
    let mut svgs = Vec::new();
    for (stem, title) in FIGURES {
        let text = svg(stem, d)?;
        if format != Format::Png {
            let path = plots.join(format!("{stem}.svg"));
            write_atomic(&path, text.as_bytes())?;
            written.push(path);
        }
        if format != Format::Svg {
            let path = plots.join(format!("{stem}.png"));
            png(stem, d, &path)?;
            written.push(path);
        }
        svgs.push((title, text));
    }
    Ok((written, svgs))
}
