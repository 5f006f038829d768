//! The `pairs` figure, a corner plot: on the diagonal each component's
//! marginal — the newest ensemble's histogram as a density (every member
//! counted) with the prior's density over it; below it, the newest
//! ensemble's pairwise scatter (at most [`MAX_MEMBERS`](super::MAX_MEMBERS)
//! members drawn as points); the truth where known (a line, a cross); the
//! upper triangle holds the legend. Every panel has its own axes.

use std::ops::Range;

use nalgebra::DMatrix;
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::draw::{color, err, font, padded, short_tick};
use super::{MAX_PAIRS, PlotData, drawn_members, sampled_note};

/// The height of the figure's title: one line, two when the ensemble is
/// sampled (the second says so).
pub(super) fn title_height(d: &PlotData) -> u32 {
    let n = d.ensembles.last().map_or(0, DMatrix::ncols);
    if sampled_note(n).is_some() { 60 } else { 36 }
}

/// One panel of the matrix: its place and what it shows.
struct Panel<'a> {
    d: &'a PlotData,
    ensemble: &'a DMatrix<f64>,
    ranges: &'a [Range<f64>],
    /// Row (y component) and column (x component).
    i: usize,
    j: usize,
}

pub(super) fn draw_pairs<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    d: &PlotData,
) -> anyhow::Result<()> {
    root.fill(&WHITE).map_err(err)?;
    let Some(last) = d.ensembles.last() else {
        return root.present().map_err(err);
    };
    let p = d.names.len().min(MAX_PAIRS);
    let (title, body) = root.split_vertically(title_height(d));
    draw_title(&title, d, p)?;
    let panels = body.split_evenly((p, p));
    let ranges: Vec<Range<f64>> = (0..p)
        .map(|i| {
            let t = d.truth.as_ref().and_then(|t| t.get(i).copied());
            padded(last.row(i).iter().copied().chain(t))
        })
        .collect();
    for i in 0..p {
        for j in 0..p {
            let panel = Panel {
                d,
                ensemble: last,
                ranges: &ranges,
                i,
                j,
            };
            match i.cmp(&j) {
                std::cmp::Ordering::Equal => histogram(&panels[i * p + j], &panel)?,
                std::cmp::Ordering::Greater => scatter(&panels[i * p + j], &panel)?,
                std::cmp::Ordering::Less if (i, j) == (0, p - 1) => legend_panel(&panels[j], d)?,
                std::cmp::Ordering::Less => {}
            }
        }
    }
    root.present().map_err(err)
}

/// `Ensemble k: pairwise scatter` (with which components), and whether the
/// members are sampled.
fn draw_title<DB: DrawingBackend>(
    title: &DrawingArea<DB, Shift>,
    d: &PlotData,
    p: usize,
) -> anyhow::Result<()> {
    let k = d.ensembles.len().saturating_sub(1);
    let n = d.ensembles.last().map_or(0, DMatrix::ncols);
    let components = if d.names.len() > p {
        format!(" (first {p} of {} components)", d.names.len())
    } else {
        String::new()
    };
    title
        .draw(&Text::new(
            format!("Corner plot of ensemble {k}{components}"),
            (12, 8),
            font(20),
        ))
        .map_err(err)?;
    if let Some(note) = sampled_note(n) {
        title
            .draw(&Text::new(
                format!("{note} (evenly spaced); histograms count all"),
                (12, 34),
                font(16),
            ))
            .map_err(err)?;
    }
    Ok(())
}

/// A panel's chart on `x` × `y`: every panel has its own axes, with tick
/// labels and the names of what they show (a histogram's y axis is a
/// density, not a parameter).
fn chart<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    panel: &Panel<'_>,
    x: Range<f64>,
    y: Range<f64>,
    y_desc: &str,
) -> anyhow::Result<ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>> {
    let mut c = ChartBuilder::on(area)
        .margin(6)
        .x_label_area_size(34)
        .y_label_area_size(58)
        .build_cartesian_2d(x, y)
        .map_err(err)?;
    c.configure_mesh()
        .disable_mesh()
        .x_labels(4)
        .y_labels(4)
        .x_label_formatter(&short_tick)
        .y_label_formatter(&short_tick)
        .label_style(font(11))
        .axis_desc_style(font(13))
        .x_desc(panel.d.names[panel.j].as_str())
        .y_desc(y_desc)
        .draw()
        .map_err(err)?;
    Ok(c)
}

/// The legend, in the (empty) top-right panel.
fn legend_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    d: &PlotData,
) -> anyhow::Result<()> {
    let mut entries: Vec<(&str, ShapeStyle, bool)> = vec![
        ("newest ensemble", color(0).mix(0.6).filled(), true),
        ("prior density", color(1).stroke_width(2), false),
    ];
    if d.truth.is_some() {
        entries.push(("truth", BLACK.stroke_width(2), false));
    }
    for (k, (label, style, filled)) in entries.into_iter().enumerate() {
        let y = 14 + 22 * k as i32;
        if filled {
            area.draw(&Rectangle::new([(10, y - 6), (28, y + 6)], style))
                .map_err(err)?;
        } else {
            area.draw(&PathElement::new(vec![(10, y), (28, y)], style))
                .map_err(err)?;
        }
        area.draw(&Text::new(label.to_string(), (36, y - 7), font(14)))
            .map_err(err)?;
    }
    Ok(())
}

/// Component `i`'s marginal: the newest ensemble's histogram as a density
/// (every member), the prior's density, the truth.
fn histogram<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel<'_>,
) -> anyhow::Result<()> {
    let i = panel.i;
    let r = panel.ranges[i].clone();
    let bins = 12usize;
    let w = (r.end - r.start) / bins as f64;
    let mut counts = vec![0usize; bins];
    for v in panel.ensemble.row(i).iter().filter(|v| v.is_finite()) {
        let b = (((v - r.start) / w).floor().max(0.0) as usize).min(bins - 1);
        counts[b] += 1;
    }
    let total = counts.iter().sum::<usize>().max(1) as f64;
    let density: Vec<f64> = counts.iter().map(|&n| n as f64 / (total * w)).collect();
    let prior: Vec<(f64, f64)> = match panel.d.priors.get(i) {
        Some(&(mu, sigma, c)) => (0..=100)
            .map(|k| {
                let x = r.start + (r.end - r.start) * k as f64 / 100.0;
                (x, super::prior_density(mu, sigma, c, x))
            })
            .filter(|(_, y)| y.is_finite())
            .collect(),
        None => Vec::new(),
    };
    // The prior is wide next to a converged ensemble: the axis follows the
    // ensemble, and the prior's curve is cut at its top.
    let top = density
        .iter()
        .copied()
        .fold(0.0_f64, f64::max)
        .max(f64::MIN_POSITIVE)
        * 1.1;
    let mut c = chart(area, panel, r.clone(), 0.0..top, "density")?;
    c.draw_series(density.iter().enumerate().map(|(b, &y)| {
        let x0 = r.start + b as f64 * w;
        Rectangle::new([(x0, 0.0), (x0 + w, y)], color(0).mix(0.6).filled())
    }))
    .map_err(err)?;
    c.draw_series(LineSeries::new(
        prior.into_iter().map(|(x, y)| (x, y.min(top))),
        color(1).stroke_width(2),
    ))
    .map_err(err)?;
    if let Some(t) = panel.d.truth.as_ref().and_then(|t| t.get(i).copied()) {
        c.draw_series(std::iter::once(PathElement::new(
            vec![(t, 0.0), (t, top * 1.1)],
            BLACK.stroke_width(2),
        )))
        .map_err(err)?;
    }
    Ok(())
}

/// Component `j` against `i`: the drawn members, and the truth as a cross.
fn scatter<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel<'_>,
) -> anyhow::Result<()> {
    let (i, j, e) = (panel.i, panel.j, panel.ensemble);
    let y_desc = panel.d.names[i].as_str();
    let mut c = chart(
        area,
        panel,
        panel.ranges[j].clone(),
        panel.ranges[i].clone(),
        y_desc,
    )?;
    c.draw_series(
        drawn_members(e.ncols())
            .into_iter()
            .map(|m| (e[(j, m)], e[(i, m)]))
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .map(|pt| Circle::new(pt, 3, color(0).mix(0.6).filled())),
    )
    .map_err(err)?;
    if let Some(t) = &panel.d.truth
        && let (Some(&tx), Some(&ty)) = (t.get(j), t.get(i))
    {
        c.draw_series(std::iter::once(Cross::new(
            (tx, ty),
            7,
            BLACK.stroke_width(2),
        )))
        .map_err(err)?;
    }
    Ok(())
}
