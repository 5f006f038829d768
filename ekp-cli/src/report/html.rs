//! `report.html`: one self-contained page per run folder — the plots (SVG,
//! inlined), the per-iteration table, the prior and posterior summary, the
//! configuration and the software version. No scripts, no stylesheets or
//! fonts from the network: it opens offline in any browser.
//!
//! Written at the end of `run` (and when the file workflow completes), and by
//! `ekp-cli plot --dir DIR`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use ekp_core::{EnsembleKalmanProcess, Prior};

use crate::folder::{IterationRow, constrained_summary};
use crate::io::write_atomic;
use crate::report::number::{sig, spread_label, spread_note};
use crate::report::plot::{self, Format, PlotData, sampled_note};

/// The ids of the page's sections, in order (tests and scripts rely on them).
pub const SECTIONS: [&str; 6] = [
    "summary",
    "plots",
    "iterations",
    "parameters",
    "configuration",
    "software",
];

/// What the report shows besides the plots.
pub struct ReportInput<'a> {
    /// The run folder (shown in the title).
    pub dir: &'a Path,
    /// The process (final ensemble, prior).
    pub ekp: &'a EnsembleKalmanProcess,
    /// The calibration file's text (empty if unknown).
    pub config_text: &'a str,
    /// The rows of the evaluated ensembles.
    pub rows: &'a [IterationRow],
    /// Whether the calibration is complete (else: in progress).
    pub complete: bool,
    /// The most updates the calibration applies (`process.iterations`).
    pub max_updates: usize,
}

/// Escape text for HTML.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// A plotters SVG document, ready to inline: any XML declaration dropped.
fn inline_svg(svg: &str) -> &str {
    match svg.find("<svg") {
        Some(i) => &svg[i..],
        None => svg,
    }
}

/// A number for the page: 5 significant digits, `—` where absent.
fn number(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_string(), |v| sig(v, 5))
}

fn rows_table(out: &mut String, names: &[String], rows: &[IterationRow], spread: &str) {
    if rows.is_empty() {
        out.push_str("<p>No iteration finished yet.</p>\n");
        return;
    }
    out.push_str(
        "<div class=\"wide\"><table>\n<thead><tr><th>iteration</th><th>Δt</th><th>loss</th><th>bayes loss</th>\
         <th>avg rmse (in noise σ)</th><th>crps</th><th>failed members</th>",
    );
    for n in names {
        let _ = write!(
            out,
            "<th>{} mean</th><th>{} {spread}</th>",
            escape(n),
            escape(n)
        );
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for r in rows {
        let failed: Vec<String> = r.failed.iter().map(|j| (j + 1).to_string()).collect();
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
            r.iteration,
            number(r.dt),
            number(Some(r.metrics.loss)),
            number(r.metrics.bayes_loss),
            number(Some(r.metrics.avg_rmse)),
            number(r.metrics.crps),
            failed.join(" ")
        );
        for (m, sd) in r.mean.iter().zip(r.std.iter()) {
            let _ = write!(
                out,
                "<td>{}</td><td>{}</td>",
                number(Some(*m)),
                number(Some(*sd))
            );
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table></div>\n");
}

fn prior_rows(out: &mut String, prior: &Prior) {
    out.push_str(
        "<table>\n<thead><tr><th>parameter</th><th>size</th><th>constraint</th>\
         <th>unconstrained mean</th><th>unconstrained std</th><th>mean</th><th>std</th>\
         <th>5 %</th><th>95 %</th></tr></thead>\n<tbody>\n",
    );
    for p in prior.parameters() {
        let c = p.constraint();
        let constraint = match (c.lower().is_finite(), c.upper().is_finite()) {
            (false, false) => "none".to_string(),
            (true, false) => format!("&gt; {}", c.lower()),
            (false, true) => format!("&lt; {}", c.upper()),
            (true, true) => format!("({}, {})", c.lower(), c.upper()),
        };
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{constraint}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(p.name()),
            p.size(),
            sig(p.unconstrained_mean(), 5),
            sig(p.unconstrained_std(), 5),
            sig(p.constrained_mean(), 5),
            sig(p.constrained_std(), 5),
            sig(p.constrained_quantile(0.05), 5),
            sig(p.constrained_quantile(0.95), 5),
        );
    }
    out.push_str("</tbody>\n</table>\n");
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em auto;max-width:1100px;padding:0 1em;color:#222}\
table{border-collapse:collapse;margin:1em 0;font-size:90%}\
th,td{border:1px solid #bbb;padding:3px 8px;text-align:right;white-space:nowrap}\
.wide{overflow-x:auto}\
th{background:#eee}pre{background:#f6f6f6;padding:1em;overflow-x:auto}\
figure{margin:1.5em 0}figure svg{max-width:100%;height:auto}\
figcaption{font-weight:bold;margin-bottom:.3em}";

/// The page.
pub fn report_html(
    input: &ReportInput<'_>,
    plot_data: &PlotData,
    svgs: &[(&str, String)],
) -> String {
    let mut h = String::new();
    let title = format!("ekp calibration: {}", input.dir.display());
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>\n",
        escape(&title),
        escape(&title)
    );
    summary(&mut h, input, plot_data);
    plots(&mut h, plot_data, svgs);
    h.push_str("<section id=\"iterations\">\n<h2>Iterations</h2>\n");
    rows_table(
        &mut h,
        &plot_data.names,
        input.rows,
        spread_label(input.ekp.process()),
    );
    h.push_str("</section>\n");
    parameters(&mut h, input.ekp, plot_data);
    let _ = write!(
        h,
        "<section id=\"configuration\">\n<h2>Configuration</h2>\n<pre>{}</pre>\n</section>\n",
        escape(input.config_text)
    );
    let _ = write!(
        h,
        "<section id=\"software\">\n<h2>Software</h2>\n<p>ekp-cli {} (ekp-core {})</p>\n</section>\n\
         </body>\n</html>\n",
        escape(env!("CARGO_PKG_VERSION")),
        escape(env!("CARGO_PKG_VERSION")),
    );
    h
}

/// Why the calibration stopped (or that it goes on).
fn stop_reason(input: &ReportInput<'_>) -> String {
    let k = input.ekp.iterations();
    match (input.complete, k < input.max_updates) {
        (true, false) => format!("complete: all {k} updates (process.iterations) applied"),
        (true, true) => format!(
            "complete: the scheduler reached its terminal time after {k} of at most {} updates",
            input.max_updates
        ),
        (false, _) => format!(
            "in progress: {k} of at most {} updates applied; the newest ensemble awaits its outputs",
            input.max_updates
        ),
    }
}

/// The summary: why the run stopped, the estimates, then the process,
/// ensemble size, newest loss, and whether the plots show a sample.
fn summary(h: &mut String, input: &ReportInput<'_>, plot_data: &PlotData) {
    let ekp = input.ekp;
    let final_loss = plot_data.loss.last().map(|l| l.1);
    let _ = write!(
        h,
        "<section id=\"summary\">\n<h2>Summary</h2>\n<p><strong>{}</strong></p>\n",
        escape(&stop_reason(input))
    );
    estimates(h, ekp, plot_data);
    let _ = write!(
        h,
        "<ul>\n<li>process: {}</li>\n<li>ensemble size: {}</li>\n\
         <li>newest loss: {}</li>\n",
        escape(ekp.process().kind()),
        ekp.ensemble_size(),
        number(final_loss),
    );
    if let (true, Some(note)) = (plot::BUILT_IN, sampled_note(plot_data.members())) {
        let _ = writeln!(h, "<li>plots: {note} (evenly spaced)</li>");
    }
    h.push_str("</ul>\n</section>\n");
}

/// The estimates of the newest ensemble: mean ± spread (or std), truth.
fn estimates(h: &mut String, ekp: &EnsembleKalmanProcess, plot_data: &PlotData) {
    let (mean, std) = constrained_summary(ekp, ekp.iterations());
    let _ = write!(
        h,
        "<table>\n<thead><tr><th>parameter</th><th>estimate</th><th>± {}</th><th>truth</th>\
         </tr></thead>\n<tbody>\n",
        spread_label(ekp.process())
    );
    for (i, n) in plot_data.names.iter().enumerate() {
        let truth = plot_data
            .truth
            .as_ref()
            .and_then(|t| t.get(i))
            .map_or_else(|| "—".to_string(), |t| format!("{t}"));
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(n),
            sig(mean[i], 5),
            sig(std[i], 3),
            escape(&truth)
        );
    }
    let _ = writeln!(
        h,
        "</tbody>\n</table>\n<p>{}.</p>",
        escape(spread_note(ekp.process()))
    );
}

/// The figures, inlined; or why there are none.
fn plots(h: &mut String, plot_data: &PlotData, svgs: &[(&str, String)]) {
    h.push_str("<section id=\"plots\">\n<h2>Plots</h2>\n");
    if !plot::BUILT_IN {
        h.push_str(
            "<p>Plots were not built into this ekp-cli (it was built without the \
             <code>plots</code> feature): no figures.</p>\n",
        );
    } else if let Some(note) = sampled_note(plot_data.members()) {
        let _ = writeln!(
            h,
            "<p>The scatter and line plots are {note}: {} evenly spaced members of each \
             ensemble are drawn (the parameter figure shares them among its iterations); \
             means, histograms and the tables use every member.</p>",
            plot::grouped(plot::MAX_MEMBERS)
        );
    }
    for (title, svg) in svgs {
        let _ = write!(
            h,
            "<figure>\n<figcaption>{}</figcaption>\n{}\n</figure>\n",
            escape(title),
            inline_svg(svg).trim_end()
        );
    }
    h.push_str("</section>\n");
}

/// The prior, and the posterior (the newest ensemble) with the truth.
fn parameters(h: &mut String, ekp: &EnsembleKalmanProcess, plot_data: &PlotData) {
    h.push_str("<section id=\"parameters\">\n<h2>Parameters</h2>\n<h3>Prior</h3>\n");
    prior_rows(h, ekp.prior());
    let _ = writeln!(h, "<h3>Posterior (ensemble {})</h3>", ekp.iterations());
    estimates(h, ekp, plot_data);
    h.push_str("<p>Estimate: the constrained transform of the unconstrained ensemble mean (as in result.toml and the CSV files); ± over the constrained ensemble.</p>\n</section>\n");
}

/// Draw the plots into `dir/plots/` and write `dir/report.html`. Returns the
/// files written.
pub fn write_report(
    input: &ReportInput<'_>,
    plot_data: &PlotData,
    format: Format,
) -> anyhow::Result<Vec<PathBuf>> {
    let (mut written, svgs) = plot::write_plots(input.dir, plot_data, format)?;
    let path = input.dir.join("report.html");
    write_atomic(&path, report_html(input, plot_data, &svgs).as_bytes())?;
    written.push(path);
    Ok(written)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use nalgebra::DMatrix;

    fn data(n: usize) -> PlotData {
        PlotData {
            names: vec!["a".into()],
            loss: vec![(0, 1.0)],
            time: None,
            ensembles: vec![DMatrix::zeros(1, n)],
            truth: None,
            y: vec![1.0],
            y_std: vec![0.1],
            outputs: None,
            data_labels: Default::default(),
            means: Vec::new(),
            priors: Vec::new(),
        }
    }

    #[test]
    fn the_plots_section_says_when_members_are_sampled() {
        let mut h = String::new();
        plots(&mut h, &data(1_000_000), &[]);
        if plot::BUILT_IN {
            assert!(h.contains("showing 2 000 of 1 000 000 members"), "{h}");
        } else {
            assert!(h.contains("not built into this ekp-cli"), "{h}");
        }
        let mut h = String::new();
        plots(&mut h, &data(20), &[]);
        assert!(!h.contains("showing"), "{h}");
    }
}
