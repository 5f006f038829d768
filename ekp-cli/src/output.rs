//! The files a run leaves in its output folder. Every file is written to a
//! temporary name and renamed into place, so a crash never leaves half a file.
//!
//! - `result.toml`: iterations applied, each parameter's constrained and
//!   unconstrained mean and std, the unconstrained mean vector and covariance.
//! - `observations.toml`: the data calibrated against (`values`, `covariance`,
//!   `source` = `"given"` or `"truth"`, and `truth` when generated).
//! - `history.csv`: one row per ensemble: Δt, loss, avg_rmse, failed members,
//!   bayes_loss, crps, unweighted_loss, each parameter's constrained mean and
//!   std (a metric that could not be computed is an empty field).
//! - `ensembles.csv`: every member of every ensemble, constrained and unconstrained.
//! - `outputs.csv`: every member's model outputs, per ensemble.
//! - `final_ensemble.csv`: the last ensemble, constrained.
//! - `state.toml`: the whole process (history and RNG included).
//! - `config.toml`: the calibration file that was run.
//! - `plots/*.svg`, `plots/*.png` and `report.html`: see [`crate::plot`] and
//!   [`crate::report_html`].

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use ekp_core::{EnsembleKalmanProcess, Observation};
use nalgebra::{DMatrix, DVector};
use serde::Serialize;

use crate::config::{Calibration, ObservationSpec};
use crate::run::{IterationRow, RunOutput, constrained_summary};

/// Write `contents` to `path` atomically: a temporary file in the same folder,
/// flushed, then renamed over `path`.
pub fn write_atomic(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("{}: cannot write", path.display()))
}

fn matrix_rows(m: &DMatrix<f64>) -> Vec<Vec<f64>> {
    m.row_iter().map(|r| r.iter().copied().collect()).collect()
}

/// One parameter's summary in `result.toml`: scalars for scalar parameters,
/// arrays for vector parameters.
#[derive(Serialize)]
#[serde(untagged)]
enum Value {
    Scalar(f64),
    Vector(Vec<f64>),
}

impl Value {
    fn of(v: &DVector<f64>, range: std::ops::Range<usize>) -> Self {
        if range.len() == 1 {
            Value::Scalar(v[range.start])
        } else {
            Value::Vector(v.rows(range.start, range.len()).iter().copied().collect())
        }
    }
}

#[derive(Serialize)]
struct ParameterResult {
    mean: Value,
    std: Value,
    unconstrained_mean: Value,
    unconstrained_std: Value,
}

#[derive(Serialize)]
struct Unconstrained {
    mean: Vec<f64>,
    covariance: Vec<Vec<f64>>,
}

#[derive(Serialize)]
struct ResultFile {
    iterations: usize,
    process: String,
    ensemble_size: usize,
    final_loss: f64,
    parameters: indexmap_like::Ordered<ParameterResult>,
    unconstrained: Unconstrained,
}

/// A map that serialises in insertion order (parameter order).
mod indexmap_like {
    use serde::ser::{Serialize, SerializeMap, Serializer};

    /// Entries in insertion order.
    pub struct Ordered<T>(pub Vec<(String, T)>);

    impl<T: Serialize> Serialize for Ordered<T> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut m = s.serialize_map(Some(self.0.len()))?;
            for (k, v) in &self.0 {
                m.serialize_entry(k, v)?;
            }
            m.end()
        }
    }
}

/// The contents of `result.toml` for a process (and its final loss).
pub fn result_toml(ekp: &EnsembleKalmanProcess, final_loss: f64) -> anyhow::Result<String> {
    let u = ekp.ensemble();
    let (mean, std) = constrained_summary(ekp, u);
    let mean_u = ekp.unconstrained_mean();
    let cov_u = ekp.unconstrained_covariance();
    let std_u = cov_u.diagonal().map(f64::sqrt);
    let prior = ekp.prior();
    let parameters = prior
        .parameters()
        .iter()
        .zip(prior.ranges())
        .map(|(p, r)| {
            (
                p.name().to_string(),
                ParameterResult {
                    mean: Value::of(&mean, r.clone()),
                    std: Value::of(&std, r.clone()),
                    unconstrained_mean: Value::of(&mean_u, r.clone()),
                    unconstrained_std: Value::of(&std_u, r),
                },
            )
        })
        .collect();
    let file = ResultFile {
        iterations: ekp.iterations(),
        process: ekp.process().kind().to_string(),
        ensemble_size: ekp.ensemble_size(),
        final_loss,
        parameters: indexmap_like::Ordered(parameters),
        unconstrained: Unconstrained {
            mean: mean_u.iter().copied().collect(),
            covariance: matrix_rows(&cov_u),
        },
    };
    Ok(toml::to_string(&file)?)
}

#[derive(Serialize)]
struct ObservationsFile {
    source: &'static str,
    values: Vec<f64>,
    covariance: Vec<Vec<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    truth: Option<indexmap_like::Ordered<Value>>,
}

/// The contents of `observations.toml`.
pub fn observations_toml(cal: &Calibration, obs: &Observation) -> anyhow::Result<String> {
    let (source, truth) = match &cal.observations {
        ObservationSpec::Given { .. } => ("given", None),
        ObservationSpec::Truth { theta, .. } => {
            let entries = cal
                .prior
                .parameters()
                .iter()
                .zip(cal.prior.ranges())
                .map(|(p, r)| (p.name().to_string(), Value::of(theta, r)))
                .collect();
            ("truth", Some(indexmap_like::Ordered(entries)))
        }
    };
    let file = ObservationsFile {
        source,
        values: obs.values().iter().copied().collect(),
        covariance: matrix_rows(&obs.noise().dense()),
        truth,
    };
    Ok(toml::to_string(&file)?)
}

fn csv_row(out: &mut String, fields: impl IntoIterator<Item = String>) {
    let line: Vec<String> = fields.into_iter().collect();
    out.push_str(&line.join(","));
    out.push('\n');
}

fn num(v: f64) -> String {
    format!("{v}")
}

/// The contents of `history.csv`.
pub fn history_csv(names: &[String], rows: &[IterationRow]) -> String {
    let mut s = String::new();
    let mut header: Vec<String> = [
        "iteration",
        "dt",
        "loss",
        "avg_rmse",
        "failed_members",
        "bayes_loss",
        "crps",
        "unweighted_loss",
    ]
    .iter()
    .map(|h| h.to_string())
    .collect();
    for n in names {
        header.push(format!("{n}_mean"));
        header.push(format!("{n}_std"));
    }
    csv_row(&mut s, header);
    for r in rows {
        let mut f = vec![
            r.iteration.to_string(),
            r.dt.map(num).unwrap_or_default(),
            num(r.metrics.loss),
            num(r.metrics.avg_rmse),
            r.failed
                .iter()
                .map(|j| (j + 1).to_string())
                .collect::<Vec<_>>()
                .join(" "),
            r.metrics.bayes_loss.map(num).unwrap_or_default(),
            r.metrics.crps.map(num).unwrap_or_default(),
            num(r.metrics.unweighted_loss),
        ];
        for (m, sd) in r.mean.iter().zip(r.std.iter()) {
            f.push(num(*m));
            f.push(num(*sd));
        }
        csv_row(&mut s, f);
    }
    s
}

/// The contents of `ensembles.csv`: every member of every ensemble.
pub fn ensembles_csv(ekp: &EnsembleKalmanProcess, names: &[String]) -> String {
    let mut s = String::new();
    let mut header = vec!["iteration".to_string(), "member".to_string()];
    header.extend(names.iter().cloned());
    header.extend(names.iter().map(|n| format!("u_{n}")));
    csv_row(&mut s, header);
    for (k, u) in ekp.u_history().iter().enumerate() {
        let x = ekp.prior().to_constrained_matrix(u);
        for j in 0..u.ncols() {
            let mut f = vec![k.to_string(), (j + 1).to_string()];
            f.extend(x.column(j).iter().map(|v| num(*v)));
            f.extend(u.column(j).iter().map(|v| num(*v)));
            csv_row(&mut s, f);
        }
    }
    s
}

/// The contents of `outputs.csv`: the outputs of every evaluated ensemble
/// the process kept (with `process.history = "last"`, the last two: the
/// outputs of the last update and of the final ensemble).
pub fn outputs_csv(ekp: &EnsembleKalmanProcess, final_g: &DMatrix<f64>) -> String {
    let mut s = String::new();
    let d = final_g.nrows();
    let mut header = vec!["iteration".to_string(), "member".to_string()];
    header.extend((1..=d).map(|i| format!("g{i}")));
    csv_row(&mut s, header);
    let first = ekp.g_history_start();
    for (k, g) in ekp
        .g_history()
        .iter()
        .chain(std::iter::once(final_g))
        .enumerate()
        .map(|(i, g)| (first + i, g))
    {
        for j in 0..g.ncols() {
            let mut f = vec![k.to_string(), (j + 1).to_string()];
            f.extend(g.column(j).iter().map(|v| num(*v)));
            csv_row(&mut s, f);
        }
    }
    s
}

/// The contents of `final_ensemble.csv`.
pub fn final_ensemble_csv(ekp: &EnsembleKalmanProcess, names: &[String]) -> String {
    let mut s = String::new();
    let mut header = vec!["member".to_string()];
    header.extend(names.iter().cloned());
    csv_row(&mut s, header);
    let x = ekp.constrained_ensemble();
    for j in 0..x.ncols() {
        let mut f = vec![(j + 1).to_string()];
        f.extend(x.column(j).iter().map(|v| num(*v)));
        csv_row(&mut s, f);
    }
    s
}

/// Write every output file of a finished run into `dir` (created if needed).
pub fn write_all(dir: &Path, cal: &Calibration, run: &RunOutput) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("{}: cannot create folder", dir.display()))?;
    let ekp = &run.ekp;
    let names = ekp.prior().flat_names();
    let final_loss = run.rows.last().map_or(f64::NAN, |r| r.metrics.loss);
    let mut state = String::new();
    let _ = writeln!(state, "# ekp process state: settings, history and RNG");
    state.push_str(&toml::to_string(ekp).context("cannot serialise the process state")?);
    let files: Vec<(&str, String)> = vec![
        ("config.toml", cal.text.clone()),
        (
            "observations.toml",
            observations_toml(cal, &ekp.observation_series().all_stacked())?,
        ),
        ("history.csv", history_csv(&names, &run.rows)),
        ("ensembles.csv", ensembles_csv(ekp, &names)),
        ("outputs.csv", outputs_csv(ekp, &run.final_g)),
        ("final_ensemble.csv", final_ensemble_csv(ekp, &names)),
        ("state.toml", state),
        ("result.toml", result_toml(ekp, final_loss)?),
    ];
    let history = files
        .iter()
        .find(|(n, _)| *n == "history.csv")
        .map(|(_, c)| c.clone())
        .unwrap_or_default();
    let mut written = Vec::new();
    for (name, contents) in files {
        let path = dir.join(name);
        write_atomic(&path, contents.as_bytes())?;
        written.push(path);
    }
    // The plots and report.html.
    let input = crate::report_html::ReportInput {
        dir,
        ekp,
        config_text: &cal.text,
        history_csv: &history,
        complete: true,
    };
    let data = crate::plot::PlotData::from_run(cal, run);
    written.extend(crate::report_html::write_report(
        &input,
        &data,
        crate::plot::Format::Both,
    )?);
    Ok(written)
}
