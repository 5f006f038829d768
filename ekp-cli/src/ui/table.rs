//! The per-iteration table `run` prints on stdout.

use std::io::Write;

use crate::driver::Observer;
use crate::error::Result;
use crate::folder::IterationRow;
use crate::report::number::sig;

/// A metric that may be absent (`—`), in the table's number format.
fn optional(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_string(), |v| format!("{v:.4e}"))
}

/// The per-iteration table, printed to stdout: Δt, the data misfit (`loss`),
/// the Bayesian loss (misfit plus prior term), the members' average RMSE in
/// units of the noise std (`rmse/σ`),
/// the CRPS, and each parameter's constrained mean ± spread (or std: see
/// [`crate::report::number::spread_label`]), with significant digits.
pub struct Table {
    names: Vec<String>,
    spread: &'static str,
    header_done: bool,
}

impl Table {
    /// A table with a column per flat parameter name; `spread` names what
    /// follows the "±" (`spread` or `std`).
    pub fn new(names: Vec<String>, spread: &'static str) -> Self {
        Self {
            names,
            spread,
            header_done: false,
        }
    }

    fn header(&self) -> String {
        let mut s = format!(
            "{:>4}  {:>10}  {:>11}  {:>11}  {:>11}  {:>11}",
            "iter", "Δt", "loss", "bayes loss", "rmse/σ", "crps"
        );
        for n in &self.names {
            s.push_str(&format!(
                "  {:>22}",
                format!("{n} (mean ± {})", self.spread)
            ));
        }
        s
    }

    /// One formatted row.
    pub fn row(&self, r: &IterationRow) -> String {
        let dt = r.dt.map_or_else(|| "—".to_string(), |d| format!("{d:.4e}"));
        let mut s = format!(
            "{:>4}  {:>10}  {:>11.4e}  {:>11}  {:>11.4e}  {:>11}",
            r.iteration,
            dt,
            r.metrics.loss,
            optional(r.metrics.bayes_loss),
            r.metrics.avg_rmse,
            optional(r.metrics.crps),
        );
        for (m, sd) in r.mean.iter().zip(r.std.iter()) {
            s.push_str(&format!(
                "  {:>22}",
                format!("{} ± {}", sig(*m, 5), sig(*sd, 3))
            ));
        }
        if !r.failed.is_empty() {
            let members: Vec<String> = r.failed.iter().map(|j| (j + 1).to_string()).collect();
            s.push_str(&format!("  failed members: {}", members.join(" ")));
        }
        s
    }
}

impl Observer for Table {
    fn iteration_done(&mut self, row: &IterationRow) -> Result<()> {
        // A closed stdout (`| head`) is not an error: the run goes on.
        let mut out = std::io::stdout().lock();
        if !self.header_done {
            let _ = writeln!(out, "{}", self.header());
            self.header_done = true;
        }
        let _ = writeln!(out, "{}", self.row(row));
        Ok(())
    }
}
