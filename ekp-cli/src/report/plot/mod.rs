//! Plots of a calibration, as SVG and PNG, with `plotters` (the `plots`
//! feature, on by default; without it no figures are drawn and the report
//! says so).
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
//! Big ensembles stay readable and small: the points and lines of at most
//! [`MAX_MEMBERS`] members are drawn ([`drawn_members`]: evenly spaced, the
//! same members every time), and the figure says so; the parameter figure
//! shares that budget among its iterations ([`drawn_per_ensemble`]). Means,
//! histograms and axis ranges use every member.
//!
//! Text is drawn with an embedded font (DejaVu Sans, see
//! `ekp-cli/assets/DejaVuSans-LICENSE.txt`) rasterised in pure Rust, so PNGs
//! have their labels on any machine: no system fonts or fontconfig needed.

#[cfg(feature = "plots")]
mod draw;
#[cfg(feature = "plots")]
mod pairs;

use std::path::{Path, PathBuf};

use ekp_core::EnsembleKalmanProcess;
use nalgebra::DMatrix;

use crate::folder::{IterationRow, RunFolder, results};

#[cfg(feature = "plots")]
pub use draw::{png, svg};

/// The pairwise scatter shows at most this many parameter components.
pub const MAX_PAIRS: usize = 6;
/// The parameter figure shows at most this many components (the first ones).
pub const MAX_PANELS: usize = 12;
/// At most this many members of an ensemble are drawn as points or lines.
pub const MAX_MEMBERS: usize = 2000;
/// Whether this build draws figures (the `plots` feature).
pub const BUILT_IN: bool = cfg!(feature = "plots");

/// The members drawn of an ensemble of `n`: all of them up to
/// [`MAX_MEMBERS`], else [`MAX_MEMBERS`] evenly spaced ones (0-based column
/// indices, increasing; the first member is always among them).
pub fn drawn_members(n: usize) -> Vec<usize> {
    drawn_at_most(n, MAX_MEMBERS)
}

/// `max` (at least 1) evenly spaced members of an ensemble of `n`, or all
/// of them if there are no more.
pub fn drawn_at_most(n: usize, max: usize) -> Vec<usize> {
    let max = max.max(1);
    if n <= max {
        return (0..n).collect();
    }
    (0..max)
        .map(|i| (i as u128 * n as u128 / max as u128) as usize)
        .collect()
}

/// How many members of each ensemble the parameter figure draws: a budget
/// of [`MAX_MEMBERS`] points per panel, shared by the `ensembles` drawn.
pub fn drawn_per_ensemble(ensembles: usize) -> usize {
    (MAX_MEMBERS / ensembles.max(1)).max(1)
}

/// `1234567` as `1 234 567` (for captions).
pub fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// `showing 2 000 of 1 000 000 members` for an ensemble of `n` that is
/// sampled when drawn; `None` when every member is drawn.
pub fn sampled_note(n: usize) -> Option<String> {
    sampled_note_at_most(n, MAX_MEMBERS)
}

/// `showing MAX of N members` when `n` is more than `max`.
pub fn sampled_note_at_most(n: usize, max: usize) -> Option<String> {
    let max = max.max(1);
    (n > max).then(|| format!("showing {} of {} members", grouped(max), grouped(n)))
}

/// Everything the figures show.
#[derive(Debug, Clone)]
pub struct PlotData {
    /// Flat parameter names (`F`, `A`, `x[1]`, ...).
    pub names: Vec<String>,
    /// `(iteration, loss)` of each evaluated ensemble.
    pub loss: Vec<(usize, f64)>,
    /// The algorithm time `t_k = Δt_0 + … + Δt_{k-1}` of each `loss` point,
    /// where a scheduler drives time (some `Δt ≠ 1`); `None` otherwise (time
    /// is then the iteration).
    pub time: Option<Vec<f64>>,
    /// The constrained ensemble of each iteration (`p × N`).
    pub ensembles: Vec<DMatrix<f64>>,
    /// Each iteration's estimate: the constrained transform of the
    /// unconstrained ensemble mean — the "mean" of the table, the CSV files
    /// and result.toml (empty: the mean of the constrained members is drawn).
    pub means: Vec<Vec<f64>>,
    /// The true parameters (flat, constrained), when the data were generated.
    pub truth: Option<Vec<f64>>,
    /// The observed data `y`.
    pub y: Vec<f64>,
    /// The noise standard deviation of each datum (`√diag Γ`).
    pub y_std: Vec<f64>,
    /// The newest evaluated ensemble's outputs (`d × N`) and its iteration.
    pub outputs: Option<(usize, DMatrix<f64>)>,
    /// What each datum is (`observations.names`, `.coordinates`): the x
    /// axis of the outputs plot (by default the datum's index).
    pub data_labels: crate::config::DataLabels,
    /// Each flat component's prior: unconstrained mean and std, and its
    /// constraint (the corner plot draws the prior's density; empty: none).
    pub priors: Vec<(f64, f64, ekp_core::Constraint)>,
}

/// The density of the prior `N(μ, σ²)` in unconstrained space, at the
/// constrained value `x` (change of variables: `φ(u(x)) |du/dx|`); 0
/// outside the constraint's range.
pub fn prior_density(mu: f64, sigma: f64, c: ekp_core::Constraint, x: f64) -> f64 {
    use ekp_core::Constraint;
    let jacobian = match c {
        Constraint::Unbounded => 1.0,
        Constraint::BoundedBelow { lower } if x > lower => 1.0 / (x - lower),
        Constraint::BoundedAbove { upper } if x < upper => 1.0 / (upper - x),
        Constraint::Bounded { lower, upper } if x > lower && x < upper => {
            1.0 / (x - lower) + 1.0 / (upper - x)
        }
        Constraint::BoundedBelow { .. }
        | Constraint::BoundedAbove { .. }
        | Constraint::Bounded { .. } => return 0.0,
    };
    let z = (c.to_unconstrained(x) - mu) / sigma;
    (-0.5 * z * z).exp() / (sigma * (2.0 * std::f64::consts::PI).sqrt()) * jacobian
}

/// The algorithm time of each row, where a scheduler drives it: the sum of
/// the steps `Δt` of the updates before it. `None` if every step is 1 (time
/// is the iteration) or a step was not recorded.
pub fn algorithm_time(rows: &[IterationRow]) -> Option<Vec<f64>> {
    let steps: Vec<f64> = rows
        .iter()
        .take(rows.len().saturating_sub(1))
        .map(|r| r.dt)
        .collect::<Option<_>>()?;
    if steps.iter().all(|&dt| dt == 1.0) {
        return None;
    }
    let mut t = 0.0;
    let mut times = vec![0.0];
    for dt in steps {
        t += dt;
        times.push(t);
    }
    times.truncate(rows.len());
    Some(times)
}

/// The prior's central 90 % interval of a component, in constrained space:
/// the 5 % and 95 % quantiles of `N(μ, σ²)` (`μ ∓ 1.6449 σ`) mapped through
/// the constraint (monotone, so quantiles map to quantiles), lower first.
pub fn prior_band(mu: f64, sigma: f64, c: ekp_core::Constraint) -> (f64, f64) {
    /// The 95 % quantile of the standard normal distribution.
    const Z95: f64 = 1.644_853_626_951_472_2;
    let (a, b) = (
        c.to_constrained(mu - Z95 * sigma),
        c.to_constrained(mu + Z95 * sigma),
    );
    // Decreasing for an upper bound alone.
    (a.min(b), a.max(b))
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
            time: algorithm_time(rows),
            ensembles: constrained_history(ekp),
            means: ekp
                .u_history()
                .iter()
                .map(|u| {
                    let m = ekp
                        .prior()
                        .to_constrained(&ekp_core::linalg::column_mean(u));
                    m.iter().copied().collect()
                })
                .collect(),
            truth,
            y,
            y_std,
            outputs,
            data_labels: folder.cal.data_labels.clone(),
            priors: ekp
                .prior()
                .parameters()
                .iter()
                .flat_map(|p| {
                    let one = (
                        p.unconstrained_mean(),
                        p.unconstrained_std(),
                        p.constraint(),
                    );
                    std::iter::repeat_n(one, p.size())
                })
                .collect(),
        }
    }

    /// The size of the largest ensemble drawn (parameters or outputs).
    pub fn members(&self) -> usize {
        let ensembles = self.ensembles.iter().map(DMatrix::ncols);
        let outputs = self.outputs.iter().map(|(_, g)| g.ncols());
        ensembles.chain(outputs).max().unwrap_or(0)
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

/// The figures, in order: file stem, title.
pub const FIGURES: [(&str, &str); 4] = [
    ("misfit", "Data misfit per iteration"),
    ("parameters", "Parameter ensembles per iteration"),
    (
        "pairs",
        "Corner plot: prior and final marginals, pairwise final ensemble",
    ),
    ("outputs", "Observed data and ensemble outputs"),
];

/// The figures' titles and SVG texts.
pub type Svgs = Vec<(&'static str, String)>;

/// Every figure, written into `dir/plots/` (created if needed) in `format`.
/// Returns the files written, and each figure's SVG text (for the report).
#[cfg(feature = "plots")]
pub fn write_plots(
    dir: &Path,
    d: &PlotData,
    format: Format,
) -> anyhow::Result<(Vec<PathBuf>, Svgs)> {
    use anyhow::Context;

    let plots = dir.join("plots");
    std::fs::create_dir_all(&plots)
        .with_context(|| format!("{}: cannot create folder", plots.display()))?;
    let mut written = Vec::new();
    let mut svgs = Vec::new();
    for (stem, title) in FIGURES {
        let text = svg(stem, d)?;
        if format != Format::Png {
            let path = plots.join(format!("{stem}.svg"));
            crate::io::write_atomic(&path, text.as_bytes())?;
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

/// Without the `plots` feature: no figures (the report says why).
#[cfg(not(feature = "plots"))]
pub fn write_plots(
    _dir: &Path,
    _d: &PlotData,
    _format: Format,
) -> anyhow::Result<(Vec<PathBuf>, Svgs)> {
    Ok((Vec::new(), Vec::new()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn small_ensembles_are_drawn_whole() {
        assert_eq!(drawn_members(5), vec![0, 1, 2, 3, 4]);
        assert_eq!(drawn_members(MAX_MEMBERS).len(), MAX_MEMBERS);
        assert_eq!(sampled_note(MAX_MEMBERS), None);
    }

    #[test]
    fn big_ensembles_are_sampled_evenly() {
        let n = 1_000_000;
        let s = drawn_members(n);
        assert_eq!(s.len(), MAX_MEMBERS);
        assert_eq!(s[0], 0);
        assert_eq!(s[1], 500);
        assert!(s.windows(2).all(|w| w[1] - w[0] == 500));
        assert!(*s.last().unwrap() < n);
        // Not a multiple: still increasing and within range.
        let s = drawn_members(2001);
        assert!(s.windows(2).all(|w| w[1] > w[0]) && *s.last().unwrap() < 2001);
        assert_eq!(drawn_members(n), drawn_members(n), "deterministic");
        assert_eq!(drawn_per_ensemble(4), 500);
        assert_eq!(drawn_per_ensemble(5000), 1);
        assert_eq!(drawn_at_most(10, 0), vec![0]);
        assert_eq!(
            sampled_note(n).unwrap(),
            "showing 2 000 of 1 000 000 members"
        );
    }

    #[test]
    fn the_prior_band_holds_ninety_percent_of_the_prior() {
        use ekp_core::Constraint;
        for (mu, sigma, c) in [
            (1.0, 2.0, Constraint::Unbounded),
            (0.3, 0.5, Constraint::BoundedBelow { lower: 2.0 }),
            (-0.2, 0.8, Constraint::BoundedAbove { upper: -1.0 }),
            (
                0.4,
                1.3,
                Constraint::Bounded {
                    lower: -3.0,
                    upper: 5.0,
                },
            ),
        ] {
            let (lo, hi) = prior_band(mu, sigma, c);
            assert!(lo < hi, "{c:?}");
            // The constrained density integrated over the band (midpoint rule).
            let n = 200_000;
            let h = (hi - lo) / n as f64;
            let mass: f64 = (0..n)
                .map(|k| prior_density(mu, sigma, c, lo + (k as f64 + 0.5) * h) * h)
                .sum();
            assert!((mass - 0.9).abs() < 1e-6, "{c:?}: {mass}");
        }
    }

    #[test]
    fn algorithm_time_is_the_sum_of_the_steps_before() {
        let row = |k: usize, dt: Option<f64>| IterationRow {
            iteration: k,
            dt,
            metrics: ekp_core::ErrorMetrics {
                loss: 1.0,
                avg_rmse: 1.0,
                unweighted_loss: 1.0,
                bayes_loss: None,
                crps: None,
            },
            failed: Vec::new(),
            mean: nalgebra::DVector::zeros(1),
            std: nalgebra::DVector::zeros(1),
        };
        let unit = [row(0, Some(1.0)), row(1, Some(1.0)), row(2, None)];
        assert_eq!(algorithm_time(&unit), None);
        let scheduled = [row(0, Some(0.5)), row(1, Some(2.0)), row(2, None)];
        assert_eq!(algorithm_time(&scheduled), Some(vec![0.0, 0.5, 2.5]));
        let unknown = [row(0, None), row(1, Some(2.0)), row(2, None)];
        assert_eq!(algorithm_time(&unknown), None);
        assert_eq!(algorithm_time(&[]), None);
    }

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1 000");
        assert_eq!(grouped(200_000), "200 000");
        assert_eq!(grouped(1_234_567), "1 234 567");
    }
}
