//! The CSV tables of a calibration folder, written through the `csv` crate
//! (fields with commas, quotes or newlines are quoted):
//!
//! - `history.csv`: one row per ensemble: Δt, loss, avg_rmse, failed members,
//!   bayes_loss, crps, unweighted_loss, each parameter's constrained mean and
//!   std (a metric that could not be computed is an empty field).
//! - `ensembles.csv`: every member of every ensemble, constrained and unconstrained.
//! - `outputs.csv`: every member's model outputs, per ensemble.
//! - `final_ensemble.csv`: the last ensemble, constrained.
//!
//! Numbers are written in Rust's shortest round-trip form, so they read back
//! to the same bits.

use anyhow::Context;
use ekp_core::EnsembleKalmanProcess;
use nalgebra::DMatrix;

use crate::folder::records::IterationRow;

/// `history.csv`.
pub const HISTORY_FILE: &str = "history.csv";
/// `ensembles.csv`.
pub const ENSEMBLES_FILE: &str = "ensembles.csv";
/// `outputs.csv`.
pub const OUTPUTS_FILE: &str = "outputs.csv";
/// `final_ensemble.csv`.
pub const FINAL_ENSEMBLE_FILE: &str = "final_ensemble.csv";

fn num(v: f64) -> String {
    format!("{v}")
}

/// A CSV document built row by row.
struct Table(csv::Writer<Vec<u8>>);

impl Table {
    fn new(header: impl IntoIterator<Item = String>) -> anyhow::Result<Self> {
        let mut t = Self(csv::Writer::from_writer(Vec::new()));
        t.row(header)?;
        Ok(t)
    }
    fn row(&mut self, fields: impl IntoIterator<Item = String>) -> anyhow::Result<()> {
        self.0
            .write_record(fields.into_iter().collect::<Vec<_>>())
            .context("cannot format a CSV row")
    }
    fn finish(self) -> anyhow::Result<Vec<u8>> {
        self.0.into_inner().context("cannot finish a CSV table")
    }
}

/// The contents of `history.csv`.
pub fn history_csv(names: &[String], rows: &[IterationRow]) -> anyhow::Result<Vec<u8>> {
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
    let mut t = Table::new(header)?;
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
        t.row(f)?;
    }
    t.finish()
}

/// The contents of `ensembles.csv`: every member of every ensemble.
pub fn ensembles_csv(ekp: &EnsembleKalmanProcess, names: &[String]) -> anyhow::Result<Vec<u8>> {
    let mut header = vec!["iteration".to_string(), "member".to_string()];
    header.extend(names.iter().cloned());
    header.extend(names.iter().map(|n| format!("u_{n}")));
    let mut t = Table::new(header)?;
    for (k, u) in ekp.u_history().iter().enumerate() {
        let x = ekp.prior().to_constrained_matrix(u);
        for j in 0..u.ncols() {
            let mut f = vec![k.to_string(), (j + 1).to_string()];
            f.extend(x.column(j).iter().map(|v| num(*v)));
            f.extend(u.column(j).iter().map(|v| num(*v)));
            t.row(f)?;
        }
    }
    t.finish()
}

/// The contents of `outputs.csv`: the outputs of every evaluated ensemble
/// the process kept (with `process.history = "last"`, the last two: the
/// outputs of the last update and of the final ensemble), `names` the
/// columns (`g1`, … unless the observations are named).
pub fn outputs_csv(
    ekp: &EnsembleKalmanProcess,
    final_g: &DMatrix<f64>,
    names: &[String],
) -> anyhow::Result<Vec<u8>> {
    let mut header = vec!["iteration".to_string(), "member".to_string()];
    header.extend(names.iter().cloned());
    let mut t = Table::new(header)?;
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
            t.row(f)?;
        }
    }
    t.finish()
}

/// The contents of `final_ensemble.csv`.
pub fn final_ensemble_csv(
    ekp: &EnsembleKalmanProcess,
    names: &[String],
) -> anyhow::Result<Vec<u8>> {
    let mut header = vec!["member".to_string()];
    header.extend(names.iter().cloned());
    let mut t = Table::new(header)?;
    let x = ekp.constrained_ensemble();
    for j in 0..x.ncols() {
        let mut f = vec![(j + 1).to_string()];
        f.extend(x.column(j).iter().map(|v| num(*v)));
        t.row(f)?;
    }
    t.finish()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use ekp_core::ErrorMetrics;
    use nalgebra::DVector;

    #[test]
    fn names_with_commas_and_newlines_stay_in_their_column() {
        let metrics = ErrorMetrics {
            loss: 1.5,
            avg_rmse: 0.5,
            bayes_loss: None,
            crps: Some(0.25),
            unweighted_loss: 2.0,
        };
        let row = IterationRow {
            iteration: 0,
            dt: Some(0.5),
            metrics,
            failed: vec![2, 4],
            mean: DVector::from_vec(vec![1.0]),
            std: DVector::from_vec(vec![0.1]),
        };
        let text = history_csv(&["a,b\nc".to_string()], &[row]).unwrap();
        let mut r = csv::Reader::from_reader(text.as_slice());
        let header = r.headers().unwrap().clone();
        assert_eq!(header.len(), 10);
        assert_eq!(&header[8], "a,b\nc_mean");
        let rec = r.records().next().unwrap().unwrap();
        assert_eq!(rec.len(), 10);
        assert_eq!(&rec[4], "3 5");
        assert_eq!(&rec[5], "");
        assert_eq!(rec[8].parse::<f64>().unwrap(), 1.0);
    }
}
