//! `ekp-cli run`: claim the folder, drive the calibration to the end with
//! the progress bar, the table, logs and the report hanging off the driver,
//! then print the summary (or one JSON object with `--json`).

use std::path::PathBuf;
use std::time::Instant;

use ekp_core::EnsembleKalmanProcess;
use nalgebra::DVector;

use crate::cli::RunArgs;
use crate::config::ObservationSpec;
use crate::driver::{Completion, Observer};
use crate::error::{Error, Result};
use crate::folder::{IterationRow, RunFolder};
use crate::models::RunOptions;
use crate::report::number::sig;
use crate::report::{Format, ReportObserver};
use crate::ui::{logging::LogObserver, progress::Progress, table::Table};
use crate::workflow::run::{Prepared, RunRequest, drive, prepare};

use super::say;

/// Keeps the last row and how the calibration ended, for the summary.
#[derive(Default)]
struct Finish {
    last: Option<IterationRow>,
    terminated_early: bool,
}

impl Observer for Finish {
    fn completed(&mut self, done: &Completion<'_>) -> Result<()> {
        self.last = done.rows.last().cloned();
        self.terminated_early = done.terminated_early;
        Ok(())
    }
}

/// A JSON number, or `null` where it is not finite (JSON has no NaN/∞).
fn json_number(x: f64) -> serde_json::Value {
    serde_json::Number::from_f64(x).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

/// How the calibration ended, for the summary.
struct Outcome<'a> {
    prepared: &'a Prepared,
    ekp: &'a EnsembleKalmanProcess,
    last: Option<IterationRow>,
    terminated_early: bool,
    seconds: f64,
    report: &'a [PathBuf],
}

impl Outcome<'_> {
    fn truth(&self) -> Option<DVector<f64>> {
        match &self.prepared.folder.cal.observations {
            ObservationSpec::Truth { theta, .. } => Some(theta.clone()),
            ObservationSpec::Given { .. } => None,
        }
    }

    /// The summary as one JSON object (`run --json`).
    fn json(&self) -> serde_json::Value {
        let cal = &self.prepared.folder.cal;
        let truth = self.truth();
        let mut parameters = serde_json::Map::new();
        if let Some(r) = &self.last {
            for (i, n) in cal.prior.flat_names().iter().enumerate() {
                let mut p = serde_json::Map::new();
                p.insert("mean".into(), json_number(r.mean[i]));
                p.insert("std".into(), json_number(r.std[i]));
                if let Some(t) = &truth {
                    p.insert("truth".into(), json_number(t[i]));
                }
                parameters.insert(n.clone(), serde_json::Value::Object(p));
            }
        }
        let metric = |f: fn(&IterationRow) -> Option<f64>| {
            json_number(self.last.as_ref().and_then(f).unwrap_or(f64::NAN))
        };
        let dir = &self.prepared.folder.dir;
        let mut files = vec![dir.join("result.toml").display().to_string()];
        files.extend(self.report.iter().map(|p| p.display().to_string()));
        serde_json::json!({
            "process": cal.process.kind(),
            "ensemble_size": cal.ensemble_size,
            "iterations": self.ekp.iterations(),
            "terminated_early": self.terminated_early,
            "final_loss": metric(|r| Some(r.metrics.loss)),
            "final_bayes_loss": metric(|r| r.metrics.bayes_loss),
            "final_avg_rmse": metric(|r| Some(r.metrics.avg_rmse)),
            "final_crps": metric(|r| r.metrics.crps),
            "seconds": self.seconds,
            "backend": self.prepared.backend,
            "seed": cal.seed,
            "config": cal.source,
            "output": dir.display().to_string(),
            "resumed": self.prepared.resumed_at.is_some(),
            "parameters": parameters,
            "files": files,
        })
    }

    /// The summary for a person.
    fn print(&self) {
        say(&format!(
            "\n{} update(s) applied{} in {:.2} s ({}); final loss {:.4e}",
            self.ekp.iterations(),
            if self.terminated_early {
                " (the scheduler reached its terminal time)"
            } else {
                ""
            },
            self.seconds,
            self.prepared.backend,
            self.last.as_ref().map_or(f64::NAN, |r| r.metrics.loss)
        ));
        let truth = self.truth();
        if let Some(r) = &self.last {
            let names = self.prepared.folder.cal.prior.flat_names();
            for (i, n) in names.iter().enumerate() {
                let t = truth
                    .as_ref()
                    .map(|t| format!("   (truth {})", t[i]))
                    .unwrap_or_default();
                say(&format!(
                    "  {n:>12} = {} ± {}{t}",
                    sig(r.mean[i], 5),
                    sig(r.std[i], 3)
                ));
            }
            say(&format!(
                "  ({})",
                crate::report::number::spread_note(&self.prepared.folder.cal.process)
            ));
        }
        say(&format!(
            "results in {}",
            self.prepared.folder.dir.join("result.toml").display()
        ));
    }
}

/// The lines before the table: what runs where; on resume, the rows of the
/// iterations done before.
fn header(prepared: &Prepared, table: &mut Table) -> Result<()> {
    let (folder, cal) = (&prepared.folder, &prepared.folder.cal);
    say(&format!(
        "ekp: {} with {} members, up to {} iterations, model {}, backend {}, seed {} ({})",
        cal.process.kind(),
        cal.ensemble_size,
        cal.iterations,
        cal.model.kind(),
        prepared.backend,
        cal.seed,
        cal.source
    ));
    if prepared.replaced {
        say(&format!(
            "replacing the calibration in {}",
            folder.dir.display()
        ));
    }
    if let Some(k) = prepared.resumed_at {
        let state = folder.state()?;
        say(&if folder.is_complete(&state) {
            format!(
                "the calibration in {} is complete; nothing to run",
                folder.dir.display()
            )
        } else {
            format!("resuming {} at iteration {k}", folder.dir.display())
        });
        for row in folder.rows(&state, None) {
            table.iteration_done(&row)?;
        }
    }
    Ok(())
}

/// An error of the driver, with how to continue.
fn with_resume_hint(e: Error, folder: &RunFolder) -> Error {
    let resume = format!(
        "{} keeps every finished step: continue with `ekp-cli run --resume --output {}`",
        folder.dir.display(),
        folder.dir.display()
    );
    match e {
        Error::Runtime(err) => Error::Runtime(err.context(format!("the run stopped; {resume}"))),
        Error::Interrupted { signal, name, .. } => Error::Interrupted {
            signal,
            name,
            hint: resume,
        },
        other => other,
    }
}

pub(super) fn run(args: RunArgs, quiet: bool) -> Result<()> {
    let started = Instant::now();
    crate::stop::install()?;
    let request = RunRequest {
        config: args.config.clone(),
        output: args.output.clone(),
        seed: args.seed,
        resume: args.resume,
        overwrite: args.overwrite,
        launch: args.launch.clone(),
    };
    let options = RunOptions {
        backend: args.backend,
        precision: args.precision,
        threads: args.threads,
        jobs: args.jobs,
        member_timeout: args.member_timeout,
    };
    let prepared = prepare(&request, &options)?;
    let (folder, cal) = (&prepared.folder, &prepared.folder.cal);
    tracing::info!(
        process = cal.process.kind(),
        members = cal.ensemble_size,
        model = cal.model.kind(),
        backend = %prepared.backend,
        seed = cal.seed,
        output = %folder.dir.display(),
        "run starts"
    );
    let show = !quiet && !args.json;
    let mut log = LogObserver;
    let mut progress = Progress::new(cal.iterations);
    let mut table = Table::new(
        cal.prior.flat_names(),
        crate::report::number::spread_label(&cal.process),
    );
    let mut report = ReportObserver::new(Format::Both);
    let mut finish = Finish::default();
    if show {
        header(&prepared, &mut table)?;
    }
    let mut observers: Vec<&mut dyn Observer> = vec![&mut log, &mut report, &mut finish];
    if show {
        observers.push(&mut progress);
        observers.push(&mut table);
    }
    let ekp = drive(folder, prepared.evaluator.as_ref(), observers)
        .map_err(|e| with_resume_hint(e, folder))?;
    let last = finish.last.or_else(|| {
        // Already complete (`--resume` of a finished run): its last row.
        folder
            .record(ekp.iterations())
            .and_then(|r| IterationRow::from_record(&ekp, &r))
    });
    let outcome = Outcome {
        prepared: &prepared,
        ekp: &ekp,
        last,
        terminated_early: finish.terminated_early,
        seconds: started.elapsed().as_secs_f64(),
        report: &report.written,
    };
    if args.json {
        say(&outcome.json().to_string());
    } else {
        outcome.print();
    }
    Ok(())
}
