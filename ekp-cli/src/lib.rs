//! # ekp-cli
//!
//! The library behind the `ekp-cli` binary: the calibration file
//! ([`config`]), building its model ([`model`]), the calibration loop with its
//! observers ([`run`], [`report`]), and the files it writes ([`output`]). The
//! binary only parses arguments, calls [`execute`], and maps errors to exit
//! codes ([`error`]).

pub mod cli;
pub mod config;
pub mod error;
pub mod model;
pub mod output;
pub mod prior_cmd;
pub mod report;
pub mod run;

use std::time::Instant;

use anyhow::Context;
use ekp_models::Execution;

use crate::cli::{Backend, Cli, Command, PriorArgs, RunArgs};
use crate::config::{Calibration, ObservationSpec};
use crate::error::InputError;
use crate::run::Observer;

/// Run one parsed command line.
pub fn execute(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => run_command(args),
        Command::Prior(args) => prior_command(args),
    }
}

fn load(config: Option<&std::path::Path>) -> Result<Calibration, InputError> {
    match config {
        Some(path) => Calibration::from_file(path),
        None => Calibration::embedded_default(),
    }
}

fn prior_command(args: PriorArgs) -> anyhow::Result<()> {
    let cal = load(args.config.as_deref())?;
    println!("prior of {}", cal.source);
    print!("{}", prior_cmd::prior_table(&cal.prior));
    Ok(())
}

fn execution(backend: Backend) -> Result<Execution, InputError> {
    match backend {
        Backend::Serial => Ok(Execution::Serial),
        Backend::Threads => Ok(Execution::Threads),
        Backend::Gpu => Err(InputError::Argument(
            "--backend gpu: the GPU backend is not available in this build of ekp-cli \
             (the ekp-gpu crate is not part of it yet); use --backend threads"
                .into(),
        )),
    }
}

fn run_command(args: RunArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut cal = load(args.config.as_deref())?;
    if let Some(seed) = args.seed {
        cal.seed = seed;
    }
    let exec = execution(args.backend)?;
    if args.threads == Some(0) {
        return Err(InputError::Argument("--threads must be at least 1".into()).into());
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads.unwrap_or(0))
        .build()
        .context("cannot start the thread pool")?;
    let built = model::BuiltModel::new(&cal, exec)?;
    let observation = built.observation(&cal)?;

    let names = cal.prior.flat_names();
    let mut progress = report::Progress::new(cal.iterations);
    let mut table = report::Table::new(names.clone());
    let mut observers: Vec<&mut dyn Observer> = Vec::new();
    if !args.quiet {
        println!(
            "ekp: {} with {} members, up to {} iterations, model {}, backend {}, seed {} ({})",
            cal.process.kind(),
            cal.ensemble_size,
            cal.iterations,
            cal.model.kind(),
            exec,
            cal.seed,
            cal.source
        );
        observers.push(&mut progress);
        observers.push(&mut table);
    }
    let out =
        pool.install(|| run::calibrate(&cal, observation, &built.ensemble, &mut observers))?;
    let written = output::write_all(&args.output, &cal, &out)?;

    let last = out.rows.last();
    println!(
        "\n{} update(s) applied{} in {:.2} s; final loss {:.4e}",
        out.ekp.iterations(),
        if out.terminated_early {
            " (the scheduler reached its terminal time)"
        } else {
            ""
        },
        started.elapsed().as_secs_f64(),
        last.map_or(f64::NAN, |r| r.metrics.loss)
    );
    let truth = match &cal.observations {
        ObservationSpec::Truth { theta, .. } => Some(theta.clone()),
        ObservationSpec::Given { .. } => None,
    };
    if let Some(r) = last {
        for (i, n) in names.iter().enumerate() {
            let t = truth
                .as_ref()
                .map(|t| format!("   (truth {})", t[i]))
                .unwrap_or_default();
            println!("  {n:>12} = {:.5} ± {:.5}{t}", r.mean[i], r.std[i]);
        }
    }
    if let Some(result) = written.iter().find(|p| p.ends_with("result.toml")) {
        println!("results in {}", result.display());
    }
    Ok(())
}
