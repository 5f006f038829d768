//! Drawing the figures with `plotters` (the `plots` feature): the misfit,
//! parameter and output figures, the embedded font, and SVG / PNG output.
//! The pairwise scatter is in `pairs.rs`.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{Context, anyhow};
use plotters::coord::Shift;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::FontStyle;

use super::{
    MAX_MEMBERS, MAX_PAIRS, MAX_PANELS, PlotData, drawn_at_most, drawn_members, drawn_per_ensemble,
    grouped, sampled_note, sampled_note_at_most,
};

/// The embedded font (DejaVu Sans).
const FONT: &[u8] = include_bytes!("../../../assets/DejaVuSans.ttf");
/// The family name the font is registered under.
const FAMILY: &str = "sans-serif";
/// The size of one figure panel, in pixels.
const SIZE: (u32, u32) = (900, 560);

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

pub(super) fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing a plot: {e:?}")
}

/// A range around finite values, padded by 5 % (a unit range around a constant).
pub(super) fn padded(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
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

pub(super) fn color(i: usize) -> RGBColor {
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
pub(super) fn short_tick(v: &f64) -> String {
    format!("{v:.3}")
}

pub(super) fn font(size: u32) -> FontDesc<'static> {
    (FAMILY, size).into_font()
}

/// The misfit figure: the loss per iteration, with the noise level (loss 1:
/// the loss is `‖Γ^{-1/2}(y − ḡ)‖² / d`, whose mean at the truth is 1 when
/// the data carry noise of covariance Γ); where a scheduler drives time, a
/// second panel against the algorithm time.
fn draw_misfit<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    d: &PlotData,
) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let by_iteration: Vec<(f64, f64)> = d.loss.iter().map(|&(k, l)| (k as f64, l)).collect();
    match d.time.as_ref().filter(|t| t.len() == d.loss.len()) {
        Some(time) => {
            let (left, right) = root.split_horizontally(root.dim_in_pixel().0 / 2);
            let by_time: Vec<(f64, f64)> = time
                .iter()
                .zip(&d.loss)
                .map(|(&t, &(_, l))| (t, l))
                .collect();
            misfit_panel(
                &left,
                &by_iteration,
                Axis::Iteration,
                "Data misfit per iteration",
            )?;
            misfit_panel(
                &right,
                &by_time,
                Axis::Time,
                "Data misfit in algorithm time",
            )?;
        }
        None => misfit_panel(
            root,
            &by_iteration,
            Axis::Iteration,
            "Data misfit per iteration",
        )?,
    }
    root.present().map_err(err)
}

/// The x axis of a misfit panel.
#[derive(Clone, Copy)]
enum Axis {
    /// Iterations (whole-number ticks).
    Iteration,
    /// Algorithm time (the sum of the steps Δt).
    Time,
}

/// The loss against `x` (iteration or time) on a log axis where every loss
/// is positive, with the noise level marked.
fn misfit_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    points: &[(f64, f64)],
    axis: Axis,
    caption: &str,
) -> anyhow::Result<()> {
    let pts: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(x, l)| x.is_finite() && l.is_finite())
        .collect();
    let xmax = pts.iter().map(|p| p.0).fold(0.0, f64::max).max(1.0);
    let pad = 0.02 * xmax;
    let x = -pad..(xmax + pad);
    let positive = !pts.is_empty() && pts.iter().all(|p| p.1 > 0.0);
    let mut b = ChartBuilder::on(area);
    b.caption(caption, font(22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(80);
    if positive {
        // The noise level (1) is always in view.
        let lo = pts.iter().map(|p| p.1).fold(1.0, f64::min);
        let hi = pts.iter().map(|p| p.1).fold(1.0, f64::max);
        let c = b
            .build_cartesian_2d(x, (lo / 1.5..hi * 1.5).log_scale())
            .map_err(err)?;
        misfit_series(c, &pts, axis, "loss (log scale)")
    } else {
        let c = b
            .build_cartesian_2d(x, padded(pts.iter().map(|p| p.1).chain([1.0])))
            .map_err(err)?;
        misfit_series(c, &pts, axis, "loss")
    }
}

/// The misfit chart's mesh, line, points and noise level, on a linear or a
/// log `y` axis.
fn misfit_series<'a, DB: DrawingBackend + 'a, Y>(
    mut c: ChartContext<'a, DB, Cartesian2d<RangedCoordf64, Y>>,
    pts: &[(f64, f64)],
    axis: Axis,
    y_desc: &str,
) -> anyhow::Result<()>
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let x = c.x_range();
    let mut mesh = c.configure_mesh();
    match axis {
        Axis::Iteration => mesh
            .x_desc("iteration")
            .x_labels((x.end.floor() as usize + 1).min(30))
            .x_label_formatter(&integer_tick),
        Axis::Time => mesh.x_desc("algorithm time t (sum of the steps Δt)"),
    };
    mesh.y_desc(y_desc)
        .label_style(font(14))
        .axis_desc_style(font(16))
        .draw()
        .map_err(err)?;
    c.draw_series(DashedLineSeries::new(
        vec![(x.start, 1.0), (x.end, 1.0)],
        8,
        5,
        BLACK.stroke_width(1),
    ))
    .map_err(err)?
    .label("noise level (loss 1)")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLACK.stroke_width(1)));
    c.draw_series(LineSeries::new(pts.to_vec(), color(0).stroke_width(2)))
        .map_err(err)?
        .label("loss ‖Γ^-1/2 (y − ḡ)‖² / d")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color(0).stroke_width(2)));
    c.draw_series(pts.iter().map(|&p| Circle::new(p, 4, color(0).filled())))
        .map_err(err)?;
    legend(&mut c, 13)
}

/// A line of text across the top of a figure; the rest of it.
pub(super) fn title_strip<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    text: &str,
    size: u32,
) -> anyhow::Result<DrawingArea<DB, Shift>> {
    let (title, body) = root.split_vertically(size + 16);
    title
        .draw(&Text::new(text.to_string(), (12, 8), font(size)))
        .map_err(err)?;
    Ok(body)
}

fn draw_parameters<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    d: &PlotData,
) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let n = d.ensembles.iter().map(|e| e.ncols()).max().unwrap_or(0);
    let per = drawn_per_ensemble(d.ensembles.len());
    let body = match sampled_note_at_most(n, per) {
        Some(note) => title_strip(
            root,
            &format!(
                "Parameter ensembles per iteration: {note} of each (evenly spaced; at most {} \
                 points per panel)",
                grouped(MAX_MEMBERS)
            ),
            16,
        )?,
        None => root.clone(),
    };
    let p = d.names.len().min(MAX_PANELS);
    let cols = if p <= 1 { 1 } else { 2 };
    let rows = p.div_ceil(cols).max(1);
    let panels = body.split_evenly((rows, cols));
    for (i, name) in d.names.iter().enumerate().take(p) {
        parameter_panel(&panels[i], d, i, name)?;
    }
    root.present().map_err(err)
}

/// Component `i`'s panel: its (drawn) members per iteration, the estimate
/// (the constrained transform of the unconstrained mean, as in the tables),
/// the truth.
fn parameter_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    d: &PlotData,
    i: usize,
    name: &str,
) -> anyhow::Result<()> {
    let kmax = d.ensembles.len().saturating_sub(1).max(1) as f64;
    let per = drawn_per_ensemble(d.ensembles.len());
    let values = d
        .ensembles
        .iter()
        .flat_map(|e| e.row(i).iter().copied().collect::<Vec<_>>());
    let truth = d.truth.as_ref().and_then(|t| t.get(i).copied());
    let band = d
        .priors
        .get(i)
        .map(|&(mu, sigma, c)| super::prior_band(mu, sigma, c))
        .filter(|(lo, hi)| lo.is_finite() && hi.is_finite());
    let y = padded(
        values
            .chain(truth)
            .chain(band.into_iter().flat_map(|(lo, hi)| [lo, hi])),
    );
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
        .y_desc(name)
        .label_style(font(12))
        .axis_desc_style(font(14))
        .draw()
        .map_err(err)?;
    if let Some((lo, hi)) = band {
        c.draw_series(std::iter::once(Rectangle::new(
            [(-0.3, lo), (kmax + 0.3, hi)],
            color(2).mix(0.15).filled(),
        )))
        .map_err(err)?
        .label("prior 5–95 %")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], color(2).mix(0.3).filled()));
    }
    let members = d.ensembles.iter().enumerate().flat_map(|(k, e)| {
        drawn_at_most(e.ncols(), per)
            .into_iter()
            .map(|m| e[(i, m)])
            .filter(|v| v.is_finite())
            .map(move |v| Circle::new((k as f64, v), 3, color(0).mix(0.45).filled()))
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
        .map(|(k, e)| {
            let estimate = d.means.get(k).and_then(|m| m.get(i)).copied();
            (k as f64, estimate.unwrap_or_else(|| e.row(i).mean()))
        })
        .filter(|p| p.1.is_finite())
        .collect();
    c.draw_series(LineSeries::new(means, color(1).stroke_width(2)))
        .map_err(err)?
        .label("estimate (mean)")
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
    legend(&mut c, 12)
}

/// The series' legend, upper right.
fn legend<'a, DB: DrawingBackend + 'a, X: Ranged, Y: Ranged>(
    c: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    size: u32,
) -> anyhow::Result<()> {
    c.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(font(size))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(err)
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
    // The x of each datum: its coordinate, else its index (named on the
    // axis when the data are named).
    let labels = &d.data_labels;
    let coordinates = labels.coordinates.as_ref().filter(|c| c.len() == n);
    let x: Vec<f64> = match coordinates {
        Some(c) => c.clone(),
        None => (1..=n).map(|i| i as f64).collect(),
    };
    let xr = match coordinates {
        Some(c) => padded(c.iter().copied()),
        None => 0.5..(n as f64 + 0.5),
    };
    let names = labels.names.as_ref().filter(|v| v.len() == n);
    let x_desc = match (coordinates, names) {
        (Some(_), _) => "coordinate",
        (None, Some(_)) => "datum",
        (None, None) => "datum (1-based index)",
    };
    let tick = |v: &f64| match (coordinates, names) {
        (None, Some(names)) => {
            let i = v.round();
            if (v - i).abs() < 1e-9 && i >= 1.0 {
                names.get(i as usize - 1).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        }
        (None, None) => integer_tick(v),
        (Some(_), _) => format!("{v}"),
    };
    let caption = match outputs {
        Some((k, g)) => match sampled_note(g.ncols()) {
            Some(note) => format!("Observed data and the outputs of ensemble {k} ({note})"),
            None => format!("Observed data and the outputs of ensemble {k}"),
        },
        None => "Observed data".to_string(),
    };
    let mut c = ChartBuilder::on(root)
        .caption(caption, font(22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d(xr, yr)
        .map_err(err)?;
    c.configure_mesh()
        .x_desc(x_desc)
        .x_labels(if coordinates.is_some() { 10 } else { n.min(40) })
        .x_label_formatter(&tick)
        .y_desc("value")
        .label_style(font(14))
        .axis_desc_style(font(16))
        .draw()
        .map_err(err)?;
    if let Some((_, g)) = outputs {
        for (drawn, m) in drawn_members(g.ncols()).into_iter().enumerate() {
            let line: Vec<(f64, f64)> = (0..n)
                .map(|i| (x[i], g[(i, m)]))
                .filter(|p| p.1.is_finite())
                .collect();
            let s = c
                .draw_series(LineSeries::new(line, color(0).mix(0.25).stroke_width(1)))
                .map_err(err)?;
            if drawn == 0 {
                s.label("ensemble members")
                    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color(0)));
            }
        }
    }
    c.draw_series(d.y.iter().zip(&d.y_std).enumerate().map(|(i, (y, s))| {
        ErrorBar::new_vertical(x[i], y - 2.0 * s, *y, y + 2.0 * s, BLACK.stroke_width(2), 8)
    }))
    .map_err(err)?
    .label("data y ± 2σ")
    .legend(|(x, y)| Circle::new((x + 8, y), 3, BLACK.filled()));
    legend(&mut c, 13)?;
    root.present().map_err(err)
}

fn figure_size(stem: &str, d: &PlotData) -> (u32, u32) {
    match stem {
        "parameters" => {
            let rows = d.names.len().min(MAX_PANELS).div_ceil(2).max(1) as u32;
            (SIZE.0, (300 * rows).max(SIZE.1))
        }
        "pairs" => {
            let p = d.names.len().clamp(1, MAX_PAIRS) as u32;
            let s = (260 * p).clamp(560, 1200);
            (s, s + super::pairs::title_height(d))
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
        "pairs" => super::pairs::draw_pairs(root, d),
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
